"""Tests for twisted_dht.testing: the in-memory transports, network and reactor."""

from __future__ import annotations

import errno
import socket

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import (
    CannotListenError,
    DNSLookupError,
    InvalidAddressError,
    MessageLengthError,
)
from twisted.internet.interfaces import (
    IHostnameResolver,
    IListeningPort,
    IReactorPluggableNameResolver,
    IReactorSocket,
    IReactorTime,
    IReactorUDP,
    IUDPTransport,
)
from twisted.internet.protocol import DatagramProtocol
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_dht.addresses import Address
from twisted_dht.resolve import resolveHost
from twisted_dht.sockets import listenUDP6
from twisted_dht.testing import (
    FakeDatagramTransport,
    MemoryNetwork,
    MemoryReactor,
    MemoryUDPPort,
)

UNREACHABLE = OSError(errno.ENETUNREACH, "Network is unreachable")


class Recorder(DatagramProtocol):
    """Records datagrams, and how often it was stopped."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, Address]] = []
        self.stops = 0

    def datagramReceived(self, datagram: bytes, addr: Address) -> None:
        self.received.append((datagram, addr))

    def stopProtocol(self) -> None:
        self.stops += 1


class Echo(Recorder):
    """Records datagrams and answers each through C{socket.sendto}, as KRPC replies go."""

    def datagramReceived(self, datagram: bytes, addr: Address) -> None:
        super().datagramReceived(datagram, addr)
        self.transport.socket.sendto(b"re:" + datagram, addr)  # type: ignore[union-attr]


class Case(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactor(hosts={"router.example": ["10.0.0.9", "2001:db8::9"]})
        self.network = self.reactor.network

    def bind(self, host: str, port: int = 0, protocol: Recorder | None = None) -> MemoryUDPPort:
        return self.reactor.listenUDP(port, protocol or Recorder(), interface=host)

    def receivedBy(self, udp: MemoryUDPPort) -> list[tuple[bytes, Address]]:
        assert isinstance(udp.protocol, Recorder)
        return udp.protocol.received


class InterfaceTests(Case):
    def test_portInterfaces(self) -> None:
        """A bound port provides IListeningPort and IUDPTransport; the fake, IUDPTransport."""
        udp = self.bind("127.0.0.1")
        self.assertTrue(verifyObject(IListeningPort, udp))
        self.assertTrue(verifyObject(IUDPTransport, udp))
        self.assertTrue(verifyObject(IUDPTransport, FakeDatagramTransport()))

    def test_reactorInterfaces(self) -> None:
        """The reactor provides IReactorTime, IReactorUDP and IReactorPluggableNameResolver,
        its resolver IHostnameResolver, and it does not claim IReactorSocket."""
        self.assertTrue(verifyObject(IReactorTime, self.reactor))
        self.assertTrue(verifyObject(IReactorUDP, self.reactor))
        self.assertTrue(verifyObject(IReactorPluggableNameResolver, self.reactor))
        self.assertTrue(verifyObject(IHostnameResolver, self.reactor.nameResolver))
        self.assertFalse(IReactorSocket.providedBy(self.reactor))

    def test_listenUDP6FallsBack(self) -> None:
        """listenUDP6 binds an IPv6 port through listenUDP on the memory reactor."""
        udp = listenUDP6(self.reactor, 0, Recorder(), "::1")
        self.assertEqual(udp.getHost(), IPv6Address("UDP", "::1", udp.getHost().port))  # type: ignore[attr-defined]

    def test_callWhenRunning(self) -> None:
        """callWhenRunning calls at once with the arguments given."""
        calls: list[tuple[int, int]] = []
        self.reactor.callWhenRunning(lambda a, b: calls.append((a, b)), 1, b=2)
        self.assertEqual(calls, [(1, 2)])


class ExchangeTests(Case):
    def test_exchangeAfterLatency(self) -> None:
        """A datagram arrives after the latency, from the sender's address; the reply sent
        with socket.sendto comes back the same way and both are recorded in C{written}."""
        server = self.bind("10.0.0.9", 6881, Echo())
        client = self.bind("10.0.0.1", 4000)
        client.write(b"ping", ("10.0.0.9", 6881))
        self.reactor.advance(self.network.latency / 2)
        self.assertEqual(self.receivedBy(server), [])
        self.reactor.advance(self.network.latency / 2)
        self.assertEqual(self.receivedBy(server), [(b"ping", ("10.0.0.1", 4000))])
        self.reactor.advance(self.network.latency)
        self.assertEqual(self.receivedBy(client), [(b"re:ping", ("10.0.0.9", 6881))])
        self.assertEqual(client.written, [(b"ping", ("10.0.0.9", 6881))])
        self.assertEqual(server.written, [(b"re:ping", ("10.0.0.1", 4000))])
        self.assertEqual((self.network.sent, self.network.bytesSent), (2, 11))

    def test_truncatedToMaxPacketSize(self) -> None:
        """A datagram longer than the receiver's maxPacketSize arrives truncated."""
        server = self.reactor.listenUDP(6881, Recorder(), "10.0.0.9", maxPacketSize=100)
        self.bind("10.0.0.1").write(b"x" * 150, ("10.0.0.9", 6881))
        self.reactor.advance(1)
        self.assertEqual(self.receivedBy(server)[0][0], b"x" * 100)

    def test_zonedDestination(self) -> None:
        """An IPv6 destination with a %zone is accepted and reaches the address without it."""
        server = self.bind("fe80::9", 6881)
        self.bind("fe80::1", 4000).write(b"hi", ("fe80::9%eth0", 6881))
        self.reactor.advance(1)
        self.assertEqual(self.receivedBy(server), [(b"hi", ("fe80::1", 4000))])

    def test_networkListenAndUnbind(self) -> None:
        """MemoryNetwork.listen binds and starts a protocol; unbind stops it and frees the
        address."""
        protocol = Recorder()
        transport = self.network.listen(protocol, ("10.0.0.2", 6881))
        self.assertIs(protocol.transport, transport)
        self.network.unbind(("10.0.0.2", 6881))
        self.assertEqual((protocol.stops, transport.listening), (1, False))
        self.network.listen(Recorder(), ("10.0.0.2", 6881))

    def test_connected(self) -> None:
        """A connected port writes to its peer without an address and hears only from it."""
        server = self.bind("10.0.0.9", 6881)
        client = self.bind("10.0.0.1", 4000)
        client.connect("10.0.0.9", 6881)
        client.write(b"hi")
        server.write(b"from peer", ("10.0.0.1", 4000))
        self.bind("10.0.0.3").write(b"stranger", ("10.0.0.1", 4000))
        self.reactor.advance(1)
        self.assertEqual(self.receivedBy(server), [(b"hi", ("10.0.0.1", 4000))])
        self.assertEqual(self.receivedBy(client), [(b"from peer", ("10.0.0.9", 6881))])
        self.assertRaises(RuntimeError, client.connect, "10.0.0.9", 6881)


class ValidationTests(Case):
    def test_writeRejectsHostname(self) -> None:
        """write() refuses a hostname with InvalidAddressError, on the port and on the fake."""
        for transport in (self.bind("10.0.0.1"), FakeDatagramTransport()):
            self.assertRaises(InvalidAddressError, transport.write, b"x", ("router.example", 1))
            self.assertEqual(transport.written, [])
        self.assertEqual(self.network.sent, 0)

    def test_writeRejectsOtherFamily(self) -> None:
        """write() refuses an IPv6 address on an IPv4 port and an IPv4 one on an IPv6 port."""
        self.assertRaises(InvalidAddressError, self.bind("").write, b"x", ("::1", 1))
        self.assertRaises(InvalidAddressError, self.bind("::").write, b"x", ("127.0.0.1", 1))
        fake = FakeDatagramTransport(("::1", 6881))
        self.assertRaises(InvalidAddressError, fake.write, b"x", ("127.0.0.1", 1))

    def test_writeRejectsOversize(self) -> None:
        """write() raises MessageLengthError for a datagram larger than a UDP payload."""
        udp4, udp6 = self.bind("10.0.0.1"), self.bind("::1")
        self.assertRaises(MessageLengthError, udp4.write, b"x" * 65508, ("10.0.0.9", 1))
        self.assertRaises(MessageLengthError, udp6.write, b"x" * 65528, ("::2", 1))
        udp4.write(b"x" * 65507, ("10.0.0.9", 1))
        self.assertEqual(self.network.sent, 1)

    def test_sendtoSkipsChecksButFailsLikeASocket(self) -> None:
        """socket.sendto raises OSError (gaierror) for a hostname or the wrong family."""
        for transport in (self.bind("10.0.0.1"), FakeDatagramTransport()):
            sendto = transport.socket.sendto
            self.assertRaises(socket.gaierror, sendto, b"x", ("router.example", 1))
            self.assertRaises(OSError, sendto, b"x", ("::1", 1))
            self.assertEqual(sendto(b"x", ("10.0.0.9", 1)), 1)
            self.assertEqual(transport.written, [(b"x", ("10.0.0.9", 1))])


class RecordTests(Case):
    def test_recordSeesBothPaths(self) -> None:
        """Datagrams sent by write and by socket.sendto both pass through record()."""
        seen: list[Address] = []

        class Counting(FakeDatagramTransport):
            def record(self, data: bytes, address: Address) -> None:
                seen.append(address)

        fake = Counting()
        fake.write(b"query", ("10.0.0.9", 1))
        fake.socket.sendto(b"reply", ("10.0.0.8", 2))
        self.assertEqual((seen, fake.written), ([("10.0.0.9", 1), ("10.0.0.8", 2)], []))


class FailSendsTests(Case):
    def test_failSends(self) -> None:
        """After failSends, write and socket.sendto to that host raise the error and send
        nothing; None lets sends through again."""
        udp = self.bind("2001:db8::1")
        self.network.failSends("2001:db8::9", UNREACHABLE)
        for send in (udp.write, udp.socket.sendto):
            error = self.assertRaises(OSError, send, b"x", ("2001:db8::9", 6881))
            self.assertIs(error, UNREACHABLE)
        udp.write(b"x", ("2001:db8::8", 6881))
        self.assertEqual(self.network.sent, 1)
        self.network.failSends("2001:db8::9", None)
        udp.write(b"x", ("2001:db8::9", 6881))
        self.assertEqual(self.network.sent, 2)

    def test_fakeFailSends(self) -> None:
        """FakeDatagramTransport.failSends makes write and socket.sendto raise, unrecorded."""
        fake = FakeDatagramTransport()
        fake.failSends("10.0.0.9", UNREACHABLE)
        self.assertIs(self.assertRaises(OSError, fake.write, b"x", ("10.0.0.9", 1)), UNREACHABLE)
        self.assertRaises(OSError, fake.socket.sendto, b"x", ("10.0.0.9", 1))
        self.assertEqual(fake.written, [])


class BindTests(Case):
    def test_ephemeralPorts(self) -> None:
        """Port 0 gives each bind a distinct non-zero port, reported by getHost."""
        ports = [self.bind("127.0.0.1").getHost().port for _ in range(3)]
        self.assertEqual(len(set(ports)), 3)
        self.assertNotIn(0, ports)
        self.assertEqual(self.bind("").getHost(), IPv4Address("UDP", "0.0.0.0", ports[-1] + 1))

    def test_addressInUse(self) -> None:
        """Binding a bound address raises CannotListenError with EADDRINUSE."""
        self.bind("127.0.0.1", 6881)
        error = self.assertRaises(CannotListenError, self.bind, "127.0.0.1", 6881)
        self.assertEqual(error.socketError.errno, errno.EADDRINUSE)

    def test_wildcardConflicts(self) -> None:
        """A wildcard and a specific bind on one port and family conflict either way round;
        the other family, or another port, does not."""
        self.bind("0.0.0.0", 6881)
        self.assertRaises(CannotListenError, self.bind, "10.0.0.1", 6881)
        self.bind("2001:db8::1", 6881)
        self.assertRaises(CannotListenError, self.bind, "::", 6881)
        self.bind("10.0.0.1", 6882)

    def test_rebindAfterStop(self) -> None:
        """Once a port stops listening its address can be bound again."""
        self.bind("10.0.0.1", 6881).stopListening()
        self.bind("10.0.0.1", 6881)

    def test_invalidInterface(self) -> None:
        """Binding a hostname raises InvalidAddressError, as Twisted's Port does."""
        self.assertRaises(InvalidAddressError, self.bind, "localhost", 6881)


class WildcardTests(Case):
    def test_wildcardReceivesAndReplies(self) -> None:
        """A wildcard port hears datagrams to any address of its family on its port, and
        its replies come from 127.0.0.1 or ::1."""
        server4, server6 = self.bind("", 6881, Echo()), self.bind("::", 6881, Echo())
        client4, client6 = self.bind("10.0.0.1", 4000), self.bind("2001:db8::1", 4000)
        client4.write(b"a", ("10.0.0.9", 6881))
        client4.write(b"b", ("192.0.2.1", 6881))
        client6.write(b"c", ("2001:db8::9", 6881))
        self.reactor.advance(1)  # the queries arrive
        self.reactor.advance(1)  # the replies arrive
        self.assertEqual([d for d, _ in self.receivedBy(server4)], [b"a", b"b"])
        self.assertEqual(self.receivedBy(server6), [(b"c", ("2001:db8::1", 4000))])
        self.assertEqual({a for _, a in self.receivedBy(client4)}, {("127.0.0.1", 6881)})
        self.assertEqual(self.receivedBy(client6), [(b"re:c", ("::1", 6881))])

    def test_configuredSource(self) -> None:
        """A network's sourceIPv4 is where a wildcard port's datagrams come from."""
        reactor = MemoryReactor(MemoryNetwork(sourceIPv4="198.51.100.7"))
        server = reactor.listenUDP(6881, Recorder(), "10.0.0.9")
        reactor.listenUDP(4000, Recorder()).write(b"x", ("10.0.0.9", 6881))
        reactor.network.clock.advance(1)  # type: ignore[attr-defined]
        self.assertEqual(self.receivedBy(server), [(b"x", ("198.51.100.7", 4000))])


class StopTests(Case):
    def test_stopListening(self) -> None:
        """stopListening stops the protocol once (however often called), returns a fired
        Deferred, leaves no delayed call on an idle network and ends delivery."""
        protocol = Recorder()
        udp = self.bind("10.0.0.9", 6881, protocol)
        self.assertIsNone(self.successResultOf(udp.stopListening()))
        self.assertIsNone(self.successResultOf(udp.stopListening()))
        self.assertEqual((protocol.stops, protocol.numPorts, protocol.transport), (1, 0, None))
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.bind("10.0.0.1").write(b"x", ("10.0.0.9", 6881))
        self.reactor.advance(1)
        self.assertEqual(protocol.received, [])


class ResolutionTests(Case):
    def test_resolveHost(self) -> None:
        """resolveHost through the reactor's nameResolver gives the mapped addresses."""
        found = self.successResultOf(resolveHost(self.reactor, "router.example", 6881))
        self.assertEqual(found, [("10.0.0.9", 6881), ("2001:db8::9", 6881)])

    def test_literalAndUnknownNames(self) -> None:
        """An IP literal resolves to itself; an unknown name to nothing."""
        self.assertEqual(self.successResultOf(resolveHost(self.reactor, "::1", 53)), [("::1", 53)])
        self.assertEqual(self.successResultOf(resolveHost(self.reactor, "nowhere.example", 1)), [])

    def test_addressTypes(self) -> None:
        """Only addresses of the asked types are reported, with the given port and type."""
        found: list[object] = []
        receiver = type(
            "R",
            (),
            {
                "resolutionBegan": lambda self, r: None,
                "addressResolved": lambda self, a: found.append(a),
                "resolutionComplete": lambda self: found.append("done"),
            },
        )()
        self.reactor.nameResolver.resolveHostName(
            receiver, "Router.Example.", 7, [IPv6Address], "UDP"
        )
        self.assertEqual(found, [IPv6Address("UDP", "2001:db8::9", 7), "done"])

    def test_resolve(self) -> None:
        """resolve() gives the first IPv4 address, and fails with DNSLookupError without."""
        self.assertEqual(self.successResultOf(self.reactor.resolve("router.example")), "10.0.0.9")
        self.reactor.hosts["v6only.example"] = ["2001:db8::1"]
        for name in ("v6only.example", "nowhere.example"):
            self.failureResultOf(self.reactor.resolve(name), DNSLookupError)


class LossTests(SynchronousTestCase):
    def delivered(self, seed: int) -> list[bytes]:
        reactor = MemoryReactor(lossRate=0.5, seed=seed)
        server = Recorder()
        reactor.listenUDP(6881, server, "10.0.0.9")
        client = reactor.listenUDP(0, Recorder())
        for i in range(40):
            client.write(b"%d" % i, ("10.0.0.9", 6881))
        reactor.advance(1)
        self.assertEqual(reactor.network.sent, 40)
        return [d for d, _ in server.received]

    def test_seededLossRepeats(self) -> None:
        """With a lossRate, one seed loses the same datagrams every run, some but not all."""
        first = self.delivered(seed=3)
        self.assertEqual(self.delivered(seed=3), first)
        self.assertTrue(0 < len(first) < 40)
        self.assertNotEqual(self.delivered(seed=4), first)
