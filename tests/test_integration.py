"""Integration tests on real loopback UDP sockets, one reactor, bounded in time."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, gatherResults
from twisted.internet.protocol import DatagramProtocol
from twisted.trial.unittest import SkipTest, TestCase
from zope.interface import implementer

from twisted_dht import bencoding, krpc
from twisted_dht.addresses import Address
from twisted_dht.admission import AdmissionPolicy
from twisted_dht.errors import ErrorCode, QueryTimeout
from twisted_dht.interfaces import Handler, IKRPCController
from twisted_dht.krpc import Query
from twisted_dht.node import DHTNode
from twisted_dht.protocol import KRPCProtocol

LOCAL_OPTIONS: dict[str, Any] = {"relaxLocal": True}


class Client(DatagramProtocol):
    """A plain UDP client: every reply received fires the next waiting Deferred.

    Queries sent to it (the node pings new queriers to confirm them) go to C{queries}.
    """

    def __init__(self, repliesOnly: bool = True) -> None:
        self.repliesOnly = repliesOnly
        self.waiting: list[Deferred[tuple[bytes, Address]]] = []
        self.received: list[tuple[bytes, Address]] = []
        self.queries: list[bytes] = []

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        if self.repliesOnly and datagram.endswith(b"1:y1:qe"):
            self.queries.append(datagram)
            return
        self.received.append((datagram, (addr[0], addr[1])))
        if self.waiting:
            self.waiting.pop(0).callback(self.received[-1])

    def send(self, data: bytes, address: Address) -> Deferred[tuple[bytes, Address]]:
        d: Deferred[tuple[bytes, Address]] = Deferred()
        self.waiting.append(d)
        assert self.transport is not None
        self.transport.write(data, address)
        return d.addTimeout(5, reactor)


@implementer(IKRPCController)
class PingOnly:
    """The smallest controller: no limits, and an answer to ping only."""

    def __init__(self, nodeId: bytes) -> None:
        self.nodeId = nodeId
        self.policy = AdmissionPolicy(reactor=reactor, ipRateLimit=0, queryRateLimit=0)

    def handlerFor(self, method: bytes) -> Handler | None:
        return self.ping if method == b"ping" else None

    def queryAnswered(self, query: Query, address: Address) -> None:
        pass

    def ping(self, query: Query, address: Address) -> dict[bytes, Any]:
        return {b"id": self.nodeId}


def listen(protocol: DatagramProtocol) -> Address:
    port = reactor.listenUDP(0, protocol, interface="127.0.0.1")  # type: ignore[attr-defined]
    return ("127.0.0.1", port.getHost().port)


class ProtocolOverUDPTests(TestCase):
    timeout = 20

    def setUp(self) -> None:
        self.ports: list[Any] = []

    def tearDown(self) -> Deferred[Any]:
        return DeferredList([port.stopListening() for port in self.ports])

    def bind(self, protocol: DatagramProtocol) -> Address:
        port = reactor.listenUDP(0, protocol, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.ports.append(port)
        return ("127.0.0.1", port.getHost().port)

    async def test_pingRoundTrip(self) -> None:
        """Two KRPCProtocols on loopback: a ping gets the other side's id."""
        a = KRPCProtocol(PingOnly(b"\x01" * 20), reactor=reactor)
        b = KRPCProtocol(PingOnly(b"\x02" * 20), reactor=reactor)
        self.bind(a)
        addressB = self.bind(b)
        response = await a.query(addressB, b"ping", {b"id": b"\x01" * 20}, timeout=5)
        self.assertEqual(response.nodeId, b"\x02" * 20)
        self.assertEqual(response.ip, ("127.0.0.1", a.transport.getHost().port))  # type: ignore[union-attr]

    async def test_timeout(self) -> None:
        """A query to a silent socket fails with QueryTimeout."""
        a = KRPCProtocol(PingOnly(b"\x01" * 20), reactor=reactor)
        self.bind(a)
        silent = self.bind(DatagramProtocol())
        with self.assertRaises(QueryTimeout):
            await a.query(silent, b"ping", {b"id": b"\x01" * 20}, timeout=0.3)

    async def test_replyFromWrongAddressIgnored(self) -> None:
        """A reply with the right tid from another socket does not fire the query."""
        a = KRPCProtocol(PingOnly(b"\x01" * 20), reactor=reactor)
        self.bind(a)
        target = Client(repliesOnly=False)
        targetAddress = self.bind(target)
        impostor = Client()
        self.bind(impostor)
        arrived: Deferred[tuple[bytes, Address]] = Deferred()
        target.waiting.append(arrived)
        d = a.query(targetAddress, b"ping", {b"id": b"\x01" * 20}, timeout=5)
        data, source = await arrived
        tid = krpc.decodeMessage(data).tid
        assert impostor.transport is not None and target.transport is not None
        impostor.transport.write(krpc.encodeResponse(tid, {b"id": b"\x66" * 20}), source)
        # the genuine reply goes second, on the same path: when it wins, the impostor lost
        target.transport.write(krpc.encodeResponse(tid, {b"id": b"\x02" * 20}), source)
        response = await d
        self.assertEqual(response.nodeId, b"\x02" * 20)
        self.assertEqual(a.counters["unknownTransaction"], 1)


class ServerOverUDPTests(TestCase):
    timeout = 20

    def setUp(self) -> None:
        self.node = DHTNode(b"\x11" * 20, routers=[], **LOCAL_OPTIONS)
        self.serverPort = reactor.listenUDP(0, self.node.ipv4.protocol, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.server: Address = ("127.0.0.1", self.serverPort.getHost().port)
        self.client = Client()
        self.clientPort = reactor.listenUDP(0, self.client, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.node.start(bootstrap=False)

    def tearDown(self) -> Deferred[Any]:
        self.node.stop()
        return gatherResults([self.serverPort.stopListening(), self.clientPort.stopListening()])

    async def ask(self, method: bytes, args: dict[bytes, Any]) -> krpc.Message:
        query = krpc.encodeQuery(b"tx", method, {b"id": b"\x22" * 20, **args})
        data, source = await self.client.send(query, self.server)
        self.assertEqual(source, self.server)
        return krpc.decodeMessage(data)

    async def test_fullConversation(self) -> None:
        """ping, find_node, get_peers, announce_peer with its token, then get_peers finds it."""
        infoHash = b"\x44" * 20
        ping = await self.ask(b"ping", {})
        assert isinstance(ping, krpc.Response)
        self.assertEqual(ping.nodeId, b"\x11" * 20)
        found = await self.ask(b"find_node", {b"target": b"\x33" * 20})
        assert isinstance(found, krpc.Response)
        self.assertIn(b"nodes", found.values)
        first = await self.ask(b"get_peers", {b"info_hash": infoHash})
        assert isinstance(first, krpc.Response)
        token = krpc.responseToken(first)
        self.assertIsNotNone(token)
        announced = await self.ask(
            b"announce_peer", {b"info_hash": infoHash, b"port": 51413, b"token": token}
        )
        self.assertIsInstance(announced, krpc.Response)
        second = await self.ask(b"get_peers", {b"info_hash": infoHash})
        assert isinstance(second, krpc.Response)
        self.assertEqual(krpc.responseValues(second), [("127.0.0.1", 51413)])

    async def test_badToken(self) -> None:
        """An announce with a bad token gets error 203."""
        reply = await self.ask(
            b"announce_peer", {b"info_hash": b"\x44" * 20, b"port": 1, b"token": b"nope"}
        )
        assert isinstance(reply, krpc.Error)
        self.assertEqual(reply.code, ErrorCode.PROTOCOL)

    async def test_unknownMethod(self) -> None:
        """An unknown method gets error 204."""
        reply = await self.ask(b"sample_everything", {})
        assert isinstance(reply, krpc.Error)
        self.assertEqual(reply.code, ErrorCode.METHOD_UNKNOWN)

    async def test_garbageGetsNoReply(self) -> None:
        """Garbage gets no reply: the next datagram back answers the ping sent after it."""
        assert self.client.transport is not None
        self.client.transport.write(b"\x00garbage\xff", self.server)
        self.client.transport.write(bencoding.encode({b"t": b"x", b"y": b"r"}), self.server)
        reply = await self.ask(b"ping", {})
        self.assertIsInstance(reply, krpc.Response)
        self.assertEqual(len(self.client.received), 1)


class NetworkOverUDPTests(TestCase):
    timeout = 90

    async def test_twentyFourNodes(self) -> None:
        """24 nodes on loopback join through one (a known node, as from a state file);
        an announce is found by another node."""
        nodes: list[DHTNode] = []
        ports: list[Any] = []
        router: Address | None = None
        for _ in range(24):
            node = DHTNode(
                routers=[],
                queryTimeout=2.0,
                shortTimeout=0.5,
                **LOCAL_OPTIONS,
            )
            port = reactor.listenUDP(0, node.ipv4.protocol, interface="127.0.0.1")  # type: ignore[attr-defined]
            ports.append(port)
            nodes.append(node)
            node.knownNodes = [router] if router else []
            if router is None:
                router = ("127.0.0.1", port.getHost().port)

        def cleanup() -> Deferred[Any]:
            for node in nodes:
                node.stop()
            return DeferredList([port.stopListening() for port in ports])

        self.addCleanup(cleanup)
        for node in nodes:
            node.start(bootstrap=False)
        for node in nodes[1:]:
            result = await node.bootstrap()
            self.assertTrue(result.success)
        infoHash = b"\x5a" * 20
        accepted = await nodes[3].announce(infoHash, 40000)
        self.assertGreater(accepted, 0)
        peers = await nodes[20].getPeers(infoHash)
        self.assertIn(("127.0.0.1", 40000), peers)


class ListenTests(TestCase):
    timeout = 20

    async def test_listenBindsBothFamiliesOnOnePort(self) -> None:
        """DHTNode.listen binds IPv4 and an IPv6-only socket on the same port, where a
        plain listenUDP on [::] would fail with "address in use" on Linux."""
        node = DHTNode(routers=[], **LOCAL_OPTIONS)
        ports = node.listen(0, "127.0.0.1", "::1")
        self.addCleanup(lambda: DeferredList([port.stopListening() for port in ports]))
        if len(ports) < 2:
            raise SkipTest("this machine cannot bind ::1")
        self.assertEqual(ports[0].getHost().port, ports[1].getHost().port)  # type: ignore[attr-defined]
        other = DHTNode(routers=[], **LOCAL_OPTIONS)
        otherPorts = other.listen(0, "127.0.0.1", "::1")
        self.addCleanup(lambda: DeferredList([port.stopListening() for port in otherPorts]))
        port = ports[0].getHost().port  # type: ignore[attr-defined]
        self.assertEqual(await other.ping(("127.0.0.1", port)), node.nodeId)
        self.assertEqual(await other.ping(("::1", port)), node.nodeId)
