"""Tests for L{twisted_dht.service.DHTService} on the in-memory reactor (no sockets, no
wall clock); the real sockets are in test_integration, test_e2e and test_interop."""

from __future__ import annotations

import os
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht import krpc
from twisted_dht.addresses import Address, packAddress
from twisted_dht.service import DHTService
from twisted_dht.state import SavedState, readState, saveState
from twisted_dht.testing import MemoryReactor

from .test_cli import temporaryDirectory

HASH = bytes.fromhex("0123456789abcdef0123456789abcdef01234567")
ID = bytes(range(20))


class PingClient(DatagramProtocol):
    """A plain UDP socket that sends one KRPC ping and keeps the decoded reply."""

    def __init__(self) -> None:
        self.replies: list[krpc.Message] = []

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        message = krpc.decodeMessage(datagram)
        if not isinstance(message, krpc.Query):  # the node may query us back
            self.replies.append(message)

    def ping(self, address: Address) -> None:
        assert self.transport is not None
        self.transport.write(krpc.encodeQuery(b"pi", b"ping", {b"id": b"c" * 20}), address)


class DHTServiceTests(SynchronousTestCase):
    """DHTService binds, answers, saves its state and cleans up after itself."""

    def setUp(self) -> None:
        directory = temporaryDirectory(self)
        self.statePath = os.path.join(directory, "dht.state")
        self.reactor = MemoryReactor()
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def makeService(self, **kwargs: Any) -> DHTService:
        options: dict[str, Any] = {
            "port": 0,
            "interface": "127.0.0.1",
            "ipv6": False,
            "bootstrap": False,
            "statePath": self.statePath,
            "reactor": self.reactor,
        }
        options.update(kwargs)
        return DHTService(**options)

    def start(self, service: DHTService) -> DHTService:
        service.startService()
        self.addCleanup(lambda: service.stopService() if service.running else None)
        return service

    def stop(self, service: DHTService) -> None:
        self.successResultOf(service.stopService())

    def logged(self, level: LogLevel) -> list[dict[str, Any]]:
        return [e for e in self.events if e["log_level"] == level]

    def ping(self, address: Address, interface: str = "127.0.0.1") -> list[krpc.Message]:
        client = PingClient()
        port = self.reactor.listenUDP(0, client, interface=interface)
        self.addCleanup(port.stopListening)
        client.ping(address)
        for _ in range(10):  # a round trip, at the network's latency
            self.reactor.advance(0.01)
        return client.replies

    def test_startBindsLoopback(self) -> None:
        """Starting binds 127.0.0.1 on a free port that is read back from the socket."""
        service = self.start(self.makeService())
        [(host, port)] = service.addresses()
        self.assertEqual(host, "127.0.0.1")
        self.assertNotEqual(port, 0)
        assert service.node is not None
        self.assertTrue(service.node.running)
        self.assertIsNone(service.node.ipv6.protocol.transport)

    def test_noBootstrap(self) -> None:
        """Without bootstrap, routers or saved nodes, the node sends no query and logs no
        warning, however long it runs (it waits to be contacted)."""
        service = self.start(self.makeService())
        node = service.node
        assert node is not None
        self.assertEqual(node.routers, [])
        for _ in range(60):
            self.reactor.advance(60)
        self.assertEqual(node.stats().queriesOut, {})
        self.assertEqual(node.ipv4.protocol.pendingCount, 0)
        self.assertEqual(self.logged(LogLevel.warn), [])

    def test_answersPing(self) -> None:
        """A ping from a plain DatagramProtocol gets a reply with the node's id."""
        service = self.start(self.makeService())
        [reply] = self.ping(service.addresses()[0])
        assert service.node is not None
        self.assertIsInstance(reply, krpc.Response)
        self.assertEqual(reply.tid, b"pi")
        self.assertEqual(reply.nodeId, service.node.nodeId)  # type: ignore[union-attr]

    def test_stopSavesStateAndLeavesNoDelayedCall(self) -> None:
        """Stopping saves the state file, closes the socket and leaves no DelayedCall."""
        service = self.start(self.makeService(statsInterval=1.0, saveInterval=1.0))
        node = service.node
        assert node is not None
        self.reactor.advance(5)
        self.assertNotEqual(self.reactor.getDelayedCalls(), [])
        self.stop(service)
        self.assertFalse(service.running)
        self.assertIsNone(node.ipv4.protocol.transport)
        self.assertFalse(node.running)
        self.assertEqual(readState(self.statePath).nodeId, node.nodeId)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_restartReusesNodeId(self) -> None:
        """A new service with the same state file, or the same one restarted, keeps its id."""
        first = self.start(self.makeService())
        assert first.node is not None
        nodeId = first.node.nodeId
        self.stop(first)
        second = self.start(self.makeService())
        assert second.node is not None
        self.assertEqual(second.node.nodeId, nodeId)
        self.stop(second)
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
        self.assertEqual(readState(self.statePath).nodeId, b"\x42" * 20)

    def test_nodeIdOptionWins(self) -> None:
        """An explicit node id wins over the state file's; saved nodes become known nodes."""
        saveState(self.statePath, SavedState(bytes(20), nodes=((b"n" * 20, ("10.0.0.1", 9)),)))
        service = self.start(self.makeService(nodeId=ID, nodes=[("127.0.0.2", 7)]))
        assert service.node is not None
        self.assertEqual(service.node.nodeId, ID)
        self.assertEqual(service.node.knownNodes, [("10.0.0.1", 9), ("127.0.0.2", 7)])

    def test_savedNodesKeptWhileTableEmpty(self) -> None:
        """Stopping before any saved node answered keeps the saved nodes in the file."""
        saved = SavedState(ID, nodes=((b"n" * 20, ("10.0.0.1", 9)),))
        saveState(self.statePath, saved)
        service = self.start(self.makeService())
        self.stop(service)
        self.assertEqual(readState(self.statePath), saved)

    def test_corruptStateStartsFresh(self) -> None:
        """A corrupt state file is moved aside and the node starts with a fresh id."""
        with open(self.statePath, "w") as f:
            f.write("not json")
        service = self.start(self.makeService())
        self.assertTrue(os.path.exists(self.statePath + ".corrupt"))
        self.assertEqual(len(self.logged(LogLevel.warn)), 1)
        self.stop(service)
        assert service.node is not None
        self.assertEqual(readState(self.statePath).nodeId, service.node.nodeId)

    def test_failedSaveRetriedNextInterval(self) -> None:
        """A state save that fails (the directory went away) is logged, and the next
        interval saves again."""
        service = self.start(self.makeService(saveInterval=10.0))
        directory = os.path.dirname(self.statePath)
        os.rename(directory, directory + ".gone")
        try:
            self.reactor.advance(10)
        finally:
            os.rename(directory + ".gone", directory)
        self.assertEqual(len(self.logged(LogLevel.error)), 1)
        self.assertFalse(os.path.exists(self.statePath))
        self.reactor.advance(10)
        assert service.node is not None
        self.assertEqual(readState(self.statePath).nodeId, service.node.nodeId)

    def test_ipv4BindFailure(self) -> None:
        """A port that cannot be bound raises CannotListenError from startService."""
        taken = self.reactor.listenUDP(0, DatagramProtocol(), interface="127.0.0.1")
        service = self.makeService(port=taken.getHost().port)  # type: ignore[attr-defined]
        self.assertRaises(CannotListenError, service.startService)
        self.assertFalse(service.running)
        self.assertTrue(self.logged(LogLevel.error))

    def test_dualStackSamePort(self) -> None:
        """With IPv6 the node binds ::1 on the same port as 127.0.0.1, and answers there."""
        service = self.start(self.makeService(ipv6=True, interface6="::1"))
        [(host4, port4), (host6, port6)] = service.addresses()
        self.assertEqual((host4, host6), ("127.0.0.1", "::1"))
        self.assertEqual(port4, port6)
        [reply] = self.ping(("::1", port6), interface="::1")
        assert service.node is not None
        self.assertEqual(reply.nodeId, service.node.nodeId)  # type: ignore[union-attr]

    def test_ipv6BindFailureContinues(self) -> None:
        """When IPv6 cannot be bound the service logs one warning and runs IPv4-only."""
        self.reactor.listenUDP(6881, DatagramProtocol(), interface="::1")
        service = self.start(self.makeService(port=6881, ipv6=True, interface6="::1"))
        self.assertEqual(len(service.addresses()), 1)
        [warning] = self.logged(LogLevel.warn)
        self.assertIn("IPv6 disabled", warning["log_format"])

    def test_statsLine(self) -> None:
        """logStats logs one line with table sizes, peers, query rates and drops."""
        service = self.start(self.makeService())
        before = len(self.events)
        service.logStats()
        [event] = list(self.events)[before:]
        for key in ("nodes4", "nodes6", "peers", "infoHashes", "rateIn", "rateOut", "drops"):
            self.assertIn(key, event)

    def test_composes(self) -> None:
        """The service is a child like any other in a MultiService; stopping it stops it."""
        parent = MultiService()
        service = self.makeService()
        service.setServiceParent(parent)
        parent.startService()
        self.assertTrue(service.running)
        self.assertEqual(len(service.addresses()), 1)
        stopped: Deferred[Any] = parent.stopService()  # type: ignore[no-untyped-call]
        self.successResultOf(stopped)
        self.assertFalse(service.running)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_keepsAnnounced(self) -> None:
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
        for _ in range(1000):
            self.reactor.advance(0.01)
        self.assertEqual(
            first.node.peerStore.getCompactPeers(HASH, False, 10),
            [packAddress(("127.0.0.1", 5555))],
        )
        self.assertEqual(second.node.announcing(), [HASH])
