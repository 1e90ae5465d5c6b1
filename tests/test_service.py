"""Tests for L{twisted_dht.service.DHTService} on real loopback sockets."""

from __future__ import annotations

import os
import socket
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall, deferLater
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import TestCase

from twisted_dht import krpc
from twisted_dht.service import DHTService
from twisted_dht.state import NodeState, readState, saveState

from .test_cli import temporaryDirectory

reactor: Any = _reactor
HASH = bytes.fromhex("0123456789abcdef0123456789abcdef01234567")
ID = bytes(range(20))


class PingClient(DatagramProtocol):
    """A plain UDP socket that sends one KRPC ping and fires with the decoded reply."""

    def __init__(self) -> None:
        self.reply: Deferred[krpc.Message] = Deferred()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        message = krpc.decodeMessage(datagram)
        if isinstance(message, krpc.Query):
            return  # the node may query us back
        if message.tid == b"pi" and not self.reply.called:
            self.reply.callback(message)

    def ping(self, address: tuple[str, int]) -> Deferred[krpc.Message]:
        assert self.transport is not None
        self.transport.write(krpc.encodeQuery(b"pi", b"ping", {b"id": b"c" * 20}), address)
        return self.reply


def ours(call: IDelayedCall) -> bool:
    """Whether a DelayedCall runs code of twisted_dht (directly or through a LoopingCall)."""
    func = call.func  # type: ignore[attr-defined]
    if isinstance(func, LoopingCall):
        func = func.f
    owner = getattr(func, "__self__", None)
    modules = [getattr(func, "__module__", None) or "", type(owner).__module__]
    return any(module.startswith("twisted_dht") for module in modules)


def ipv6Loopback() -> bool:
    """Whether this machine can bind ::1."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


class DHTServiceTests(TestCase):
    """DHTService binds, answers, saves its state and cleans up after itself."""

    def setUp(self) -> None:
        directory = temporaryDirectory(self)
        self.statePath = os.path.join(directory, "dht.state")

    def makeService(self, **kwargs: Any) -> DHTService:
        options: dict[str, Any] = {
            "port": 0,
            "interface": "127.0.0.1",
            "ipv6": False,
            "bootstrap": False,
            "statePath": self.statePath,
            "reactor": reactor,
        }
        options.update(kwargs)
        return DHTService(**options)

    def start(self, service: DHTService) -> DHTService:
        service.startService()
        self.addCleanup(lambda: service.stopService() if service.running else None)
        return service

    def test_startBindsLoopback(self) -> None:
        """Starting binds 127.0.0.1 on a free port that is read back from the socket."""
        service = self.start(self.makeService())
        [(host, port)] = service.addresses()
        self.assertEqual(host, "127.0.0.1")
        self.assertNotEqual(port, 0)
        assert service.node is not None
        self.assertTrue(service.node.running)
        self.assertIsNone(service.node.protocol6.transport)

    def test_noBootstrap(self) -> None:
        """Without bootstrap the node has no routers and sends no query."""
        service = self.start(self.makeService())
        node = service.node
        assert node is not None
        self.assertEqual(node.routers, [])
        self.assertEqual(node.stats()["queriesOut"], {})
        self.assertEqual(node.protocol4.pendingCount, 0)

    async def test_answersPing(self) -> None:
        """A real UDP ping from a plain DatagramProtocol gets a reply with the node's id."""
        service = self.start(self.makeService())
        client = PingClient()
        port = reactor.listenUDP(0, client, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        reply = await client.ping(service.addresses()[0]).addTimeout(5, reactor)
        assert service.node is not None
        self.assertIsInstance(reply, krpc.Response)
        self.assertEqual(reply.tid, b"pi")
        self.assertEqual(reply.nodeId, service.node.nodeId)

    async def test_stopSavesStateAndLeavesNoDelayedCall(self) -> None:
        """Stopping saves the state file, closes the socket and leaves no DelayedCall."""
        service = self.start(self.makeService(statsInterval=1.0, saveInterval=1.0))
        node = service.node
        assert node is not None
        self.assertTrue([call for call in reactor.getDelayedCalls() if ours(call)])
        await service.stopService()
        self.assertFalse(service.running)
        self.assertIsNone(node.protocol4.transport)
        self.assertFalse(node.running)
        self.assertEqual(readState(self.statePath).nodeId, node.nodeId)
        self.assertEqual([call for call in reactor.getDelayedCalls() if ours(call)], [])

    async def test_restartReusesNodeId(self) -> None:
        """A new service with the same state file, or the same one restarted, keeps its id."""
        first = self.start(self.makeService())
        assert first.node is not None
        nodeId = first.node.nodeId
        await first.stopService()
        second = self.start(self.makeService())
        assert second.node is not None
        self.assertEqual(second.node.nodeId, nodeId)
        await second.stopService()
        second.startService()
        self.addCleanup(second.stopService)
        assert second.node is not None
        self.assertEqual(second.node.nodeId, nodeId)
        self.assertEqual(len(second.addresses()), 1)

    def test_newNodeIdSaved(self) -> None:
        """When the node takes a new (BEP 42) id, the state file is saved with it at once."""
        service = self.start(self.makeService())
        assert service.node is not None
        service.node.setNodeId(b"\x42" * 20)
        saved = readState(self.statePath)
        self.assertEqual(saved.nodeId, b"\x42" * 20)

    def test_nodeIdOptionWins(self) -> None:
        """An explicit node id wins over the state file's; saved nodes become known nodes."""
        saveState(self.statePath, NodeState(bytes(20), nodes=((b"n" * 20, ("10.0.0.1", 9)),)))
        service = self.start(self.makeService(nodeId=ID, nodes=[("127.0.0.2", 7)]))
        assert service.node is not None
        self.assertEqual(service.node.nodeId, ID)
        self.assertEqual(service.node.knownNodes, [("10.0.0.1", 9), ("127.0.0.2", 7)])

    async def test_savedNodesKeptWhileTableEmpty(self) -> None:
        """Stopping before any saved node answered keeps the saved nodes in the file."""
        saved = NodeState(ID, nodes=((b"n" * 20, ("10.0.0.1", 9)),))
        saveState(self.statePath, saved)
        service = self.start(self.makeService())
        await service.stopService()
        self.assertEqual(readState(self.statePath), saved)

    async def test_corruptStateStartsFresh(self) -> None:
        """A corrupt state file is moved aside and the node starts with a fresh id."""
        with open(self.statePath, "w") as f:
            f.write("not json")
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        service = self.start(self.makeService())
        self.assertTrue(os.path.exists(self.statePath + ".corrupt"))
        self.assertEqual(len([e for e in events if e["log_level"] == LogLevel.warn]), 1)
        await service.stopService()
        assert service.node is not None
        self.assertEqual(readState(self.statePath).nodeId, service.node.nodeId)

    def test_ipv4BindFailure(self) -> None:
        """A port that cannot be bound raises CannotListenError from startService."""
        taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        service = self.makeService(port=taken.getsockname()[1])
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.assertRaises(CannotListenError, service.startService)
        self.assertFalse(service.running)
        self.assertTrue([e for e in events if e["log_level"] == LogLevel.error])

    def test_dualStackSamePort(self) -> None:
        """With IPv6 the node binds ::1 on the same port as 127.0.0.1."""
        if not ipv6Loopback():
            raise self.skipTest("no IPv6 loopback")
        service = self.start(self.makeService(ipv6=True, interface6="::1"))
        [(host4, port4), (host6, port6)] = service.addresses()
        self.assertEqual((host4, host6), ("127.0.0.1", "::1"))
        self.assertEqual(port4, port6)

    async def test_answersPingOverIPv6(self) -> None:
        """The IPv6 socket answers a real ping."""
        if not ipv6Loopback():
            raise self.skipTest("no IPv6 loopback")
        service = self.start(self.makeService(ipv6=True, interface6="::1"))
        client = PingClient()
        port = reactor.listenUDP(0, client, interface="::1")
        self.addCleanup(port.stopListening)
        reply = await client.ping(service.addresses()[1]).addTimeout(5, reactor)
        assert service.node is not None
        self.assertEqual(reply.nodeId, service.node.nodeId)  # type: ignore[union-attr]

    def test_ipv6BindFailureContinues(self) -> None:
        """When IPv6 cannot be bound the service logs one warning and runs IPv4-only."""
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        service = self.start(self.makeService(ipv6=True, interface6="2001:db8::1"))
        self.assertEqual(len(service.addresses()), 1)
        warnings = [e for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual(len(warnings), 1)
        self.assertIn("IPv6 disabled", warnings[0]["log_format"])

    def test_statsLine(self) -> None:
        """logStats logs one line with table sizes, peers, query rates and drops."""
        service = self.start(self.makeService())
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        service.logStats()
        [event] = events
        for key in ("nodes4", "nodes6", "peers", "infoHashes", "rateIn", "rateOut", "drops"):
            self.assertIn(key, event)

    def test_composes(self) -> None:
        """The service is a child like any other in a MultiService; stopping it stops it."""
        parent = MultiService()
        service = self.makeService()
        service.setServiceParent(parent)
        parent.startService()
        self.addCleanup(parent.stopService)
        self.assertTrue(service.running)
        self.assertEqual(len(service.addresses()), 1)

    async def test_keepsAnnounced(self) -> None:
        """A node joined through another keeps its --announce hashes announced there."""
        first = self.start(self.makeService())
        address = first.addresses()[0]
        second = self.start(
            self.makeService(
                statePath=self.statePath + "2",
                bootstrap=True,
                routers=[address],
                nodes=[address],
                announces=[(HASH, 5555)],
                relaxLocal=True,
            )
        )
        assert first.node is not None and second.node is not None
        for _ in range(100):
            if first.node.peerStore.hasPeers(HASH):
                break
            await deferLater(reactor, 0.1)
        self.assertEqual(first.node.peerStore.getPeers(HASH), [("127.0.0.1", 5555)])
        self.assertEqual(second.node.announcing(), [HASH])
