"""In-memory UDP: sockets, transports and a simulated network on a clock (the parts of
L{twisted_dht.testing.MemoryReactor}; see that module for their checks)."""

from __future__ import annotations

import errno
import functools
import random
import socket
from socket import AF_INET, AF_INET6

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import (
    CannotListenError,
    InvalidAddressError,
    MessageLengthError,
)
from twisted.internet.interfaces import (
    IListeningPort,
    IReactorTime,
    IUDPTransport,
)
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock
from twisted.logger import Logger
from zope.interface import implementer

from .addresses import Address, isIPv6

_log = Logger()

MAX_PAYLOAD: dict[int, int] = {AF_INET: 65507, AF_INET6: 65527}
"""The largest UDP payload the kernel sends, by address family."""

_WILDCARD: dict[int, str] = {AF_INET: "0.0.0.0", AF_INET6: "::"}
_EPHEMERAL = range(32768, 61000)
"""Linux's default ephemeral port range, handed out in order."""


@functools.lru_cache(maxsize=4096)
def _literal(host: str) -> tuple[int, str] | None:
    """The family and canonical text of an IP literal (an IPv6 zone dropped), else None."""
    family = AF_INET6 if isIPv6(host) else AF_INET
    try:
        packed = socket.inet_pton(family, host.partition("%")[0] if family == AF_INET6 else host)
    except (OSError, ValueError, TypeError):
        return None
    return family, socket.inet_ntop(family, packed)


def _interface(host: str) -> tuple[int, str]:
    """The family and canonical host of a bind address; C{""} is the IPv4 wildcard."""
    found = _literal(host or "0.0.0.0")
    if found is None:
        raise InvalidAddressError(host, "not an IPv4 or IPv6 address.")
    return found


def _failSends(failures: dict[str, OSError], host: str, error: OSError | None) -> None:
    _, canonical = _interface(host)
    if error is None:
        failures.pop(canonical, None)
    else:
        failures[canonical] = error


class _Socket:
    """The C{socket} of a fake transport: a real socket's C{sendto}, without Port's checks."""

    def __init__(self, transport: FakeDatagramTransport) -> None:
        self._transport = transport

    def sendto(self, data: bytes, address: Address) -> int:
        """Send C{data} as the kernel would, or raise C{OSError} as it would."""
        return self._transport._sendto(bytes(data), address)


@implementer(IUDPTransport)
class FakeDatagramTransport:
    """A UDP transport that records what is sent: C{written} is [(data, address)].

    Sends through C{write} (queries) or C{socket.sendto} (replies) are checked as the module
    says, then passed to L{record}, and go nowhere. L{failSends} makes sends to a host raise.
    """

    def __init__(self, address: Address = ("127.0.0.1", 6881), maxPacketSize: int = 8192) -> None:
        self.addressFamily, _ = _interface(address[0])
        self.address = address
        self.maxPacketSize = maxPacketSize
        self.written: list[tuple[bytes, Address]] = []
        self.listening = True
        self.socket = _Socket(self)
        self._failures: dict[str, OSError] = {}
        self._broadcast = False
        self._connected: Address | None = None
        self._peer: Address | None = None

    def failSends(self, host: str, error: OSError | None) -> None:
        """Make every send to C{host} raise C{error} at once (None: send normally again)."""
        _failSends(self._failures, host, error)

    def write(self, packet: bytes, addr: Address | None = None) -> None:
        """Send one datagram, checking C{addr} as C{twisted.internet.udp.Port.write} does.

        @raise InvalidAddressError: for a hostname or an address of the other family.
        @raise MessageLengthError: for a datagram larger than a UDP payload can be.
        """
        if self._connected is not None:
            assert addr in (None, self._connected)
            addr = self._connected
        assert addr is not None
        host = addr[0]
        if not isIPAddress(host) and not isIPv6Address(host) and host != "<broadcast>":
            raise InvalidAddressError(host, "write() only accepts IP addresses, not hostnames")
        if (isIPAddress(host) or host == "<broadcast>") and self.addressFamily == AF_INET6:
            raise InvalidAddressError(
                host, "IPv6 port write() called with IPv4 or broadcast address"
            )
        if isIPv6Address(host) and self.addressFamily == AF_INET:
            raise InvalidAddressError(host, "IPv4 port write() called with IPv6 address")
        try:
            self.socket.sendto(packet, addr)
        except OSError as e:
            if e.errno == errno.EMSGSIZE:
                raise MessageLengthError("message too long") from e
            if e.errno != errno.ECONNREFUSED:  # ignored by Port.write, too
                raise

    def _sendto(self, data: bytes, address: Address) -> int:
        host, port = address
        found = _literal("255.255.255.255" if host == "<broadcast>" else host)
        if found is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        family, canonical = found
        if family != self.addressFamily:
            raise socket.gaierror(
                socket.EAI_ADDRFAMILY, "Address family for hostname not supported"
            )
        if not 0 <= port <= 65535:
            raise OverflowError("sendto(): port must be 0-65535.")
        if port == 0:
            raise OSError(errno.EINVAL, "Invalid argument")
        if len(data) > MAX_PAYLOAD[family]:
            raise OSError(errno.EMSGSIZE, "Message too long")
        if canonical == "255.255.255.255" and not self._broadcast:
            raise OSError(errno.EACCES, "Permission denied")
        error = self._failures.get(canonical)
        if error is not None:
            raise error
        self._transmit(data, (canonical, port))
        self.record(data, address)
        return len(data)

    def record(self, data: bytes, address: Address) -> None:
        """Keep a datagram that was sent in C{written}; override to count or forget them."""
        self.written.append((data, address))

    def _transmit(self, data: bytes, destination: Address) -> None:
        """Where a checked datagram goes: nowhere."""

    def connect(self, host: str, port: int) -> None:
        """Send to C{(host, port)} when C{write} gets no address (and hear only from it).

        @raise RuntimeError: when already connected, as Twisted does.
        """
        if self._connected is not None:
            raise RuntimeError("already connected, reconnecting is not currently supported")
        found = _literal(host)
        if found is None:
            raise InvalidAddressError(host, "not an IPv4 or IPv6 address.")
        self._connected, self._peer = (host, port), (found[1], port)

    def getHost(self) -> IPv4Address | IPv6Address:
        """Our bound address."""
        host, port = self.address
        if self.addressFamily == AF_INET6:
            return IPv6Address("UDP", host, port)
        return IPv4Address("UDP", host or "0.0.0.0", port)

    def stopListening(self) -> Deferred[None]:
        """Mark the transport closed."""
        self.listening = False
        return succeed(None)

    def setBroadcastAllowed(self, enabled: bool) -> None:
        """Allow or forbid sending to C{<broadcast>} (such datagrams reach nobody)."""
        self._broadcast = bool(enabled)

    def getBroadcastAllowed(self) -> bool:
        """Whether broadcasts are allowed."""
        return self._broadcast


@implementer(IListeningPort)
class MemoryUDPPort(FakeDatagramTransport):
    """A UDP port of a L{MemoryNetwork}: what L{MemoryNetwork.bind} and C{listenUDP} return."""

    def __init__(
        self,
        network: MemoryNetwork,
        protocol: DatagramProtocol,
        interface: str,
        port: int,
        maxPacketSize: int = 8192,
    ) -> None:
        _, host = _interface(interface)
        super().__init__((host, port), maxPacketSize)
        self.network = network
        self.protocol = protocol
        self.interface = host
        self.port = port
        self.listening = False
        self._failures = network._failures

    def startListening(self) -> None:
        """Bind (C{port} 0: a free ephemeral one) and start the protocol.

        @raise CannotListenError: when the address is in use (C{EADDRINUSE}).
        """
        if self.listening:
            return
        self.address = (self.interface, self.network._register(self))
        self.listening = True
        self.protocol.makeConnection(self)

    def stopListening(self) -> Deferred[None]:
        """Unbind at once and stop the protocol (once, however often this is called)."""
        if self.listening:
            self.listening = False
            self.network._unregister(self)
            self.protocol.doStop()
        return succeed(None)

    def _transmit(self, data: bytes, destination: Address) -> None:
        host = self.interface
        if host == _WILDCARD[self.addressFamily]:
            network = self.network
            host = network.sourceIPv6 if self.addressFamily == AF_INET6 else network.sourceIPv4
        self.network.send((host, self.address[1]), destination, data)

    def _receive(self, data: bytes, source: Address) -> None:
        if self._peer is not None and source != self._peer:
            return
        try:
            self.protocol.datagramReceived(data[: self.maxPacketSize], source)
        except Exception:
            _log.failure("{protocol} failed to handle a datagram", protocol=self.protocol)


class MemoryNetwork:
    """A simulated UDP network: datagrams arrive after C{latency} seconds on C{clock}.

    Ports bind as on Linux with C{IPV6_V6ONLY}: one address per family and port, a wildcard
    (C{""}/C{"0.0.0.0"} or C{"::"}) receiving for every address of its family on its port.
    A wildcard-bound port sends from C{sourceIPv4} or C{sourceIPv6}.
    C{lossRate} drops that share of datagrams (seeded, so runs repeat); addresses in
    C{unreachable} swallow everything sent to them. C{sent} and C{bytesSent} count what was
    sent, lost or not. A datagram in flight is a delayed call on C{clock} until it arrives
    (or finds no port), so advance by C{latency} before asserting C{getDelayedCalls() == []}.
    """

    def __init__(
        self,
        clock: IReactorTime | None = None,
        *,
        latency: float = 0.01,
        lossRate: float = 0.0,
        seed: int = 0,
        sourceIPv4: str = "127.0.0.1",
        sourceIPv6: str = "::1",
    ) -> None:
        self.clock: IReactorTime = clock if clock is not None else Clock()
        self.latency = latency
        self.lossRate = lossRate
        self.random = random.Random(seed)
        self.sourceIPv4 = sourceIPv4
        self.sourceIPv6 = sourceIPv6
        self.unreachable: set[Address] = set()
        self.sent = 0
        self.bytesSent = 0
        self._ports: dict[tuple[int, int], dict[str, MemoryUDPPort]] = {}
        self._failures: dict[str, OSError] = {}
        self._nextPort = _EPHEMERAL.start

    def bind(
        self, protocol: DatagramProtocol, host: str, port: int, maxPacketSize: int = 8192
    ) -> MemoryUDPPort:
        """Bind C{protocol} to C{host} and C{port} (0: a free port) and start it.

        @raise CannotListenError: when the address is in use.
        @raise InvalidAddressError: when C{host} is not an IP literal.
        """
        udp = MemoryUDPPort(self, protocol, host, port, maxPacketSize)
        udp.startListening()
        return udp

    def listen(self, protocol: DatagramProtocol, address: Address) -> MemoryUDPPort:
        """Bind C{protocol} to C{address} and start it."""
        return self.bind(protocol, *address)

    def unbind(self, address: Address) -> None:
        """Close the port bound to exactly C{address}, stopping its protocol."""
        family, host = _interface(address[0])
        udp = self._ports.get((family, address[1]), {}).get(host)
        if udp is not None:
            udp.stopListening()

    def failSends(self, host: str, error: OSError | None) -> None:
        """Make every send to C{host} raise C{error} at once (None: send normally again)."""
        _failSends(self._failures, host, error)

    def send(self, source: Address, destination: Address, packet: bytes) -> None:
        """Deliver C{packet} to C{destination} after the latency, unless it is lost.

        @raise OSError: the error L{failSends} set for the destination host.
        """
        family, host = _literal(destination[0]) or (0, "")
        if host in self._failures:
            raise self._failures[host]
        self.sent += 1
        self.bytesSent += len(packet)
        route = (host, destination[1])
        if not host or route in self.unreachable or destination in self.unreachable:
            return
        if self.lossRate and self.random.random() < self.lossRate:
            return
        self.clock.callLater(self.latency, self._deliver, family, route, source, packet)

    def _deliver(self, family: int, route: Address, source: Address, packet: bytes) -> None:
        bound = self._ports.get((family, route[1]), {})
        udp = bound.get(route[0]) or bound.get(_WILDCARD[family])
        if udp is not None:
            udp._receive(packet, source)

    def _register(self, udp: MemoryUDPPort) -> int:
        family, host, port = udp.addressFamily, udp.interface, udp.port
        if port == 0:
            port = self._freePort(family)
        if not 0 <= port <= 65535:
            raise OverflowError("bind(): port must be 0-65535.")
        bound = self._ports.get((family, port), {})
        wildcard = _WILDCARD[family]
        if host in bound or (bound and (host == wildcard or wildcard in bound)):
            error = OSError(errno.EADDRINUSE, "Address already in use")
            raise CannotListenError(udp.interface, port, error)
        self._ports.setdefault((family, port), {})[host] = udp
        return port

    def _unregister(self, udp: MemoryUDPPort) -> None:
        key = (udp.addressFamily, udp.address[1])
        bound = self._ports.get(key, {})
        if bound.get(udp.interface) is udp:
            del bound[udp.interface]
            if not bound:
                del self._ports[key]

    def _freePort(self, family: int) -> int:
        for _ in _EPHEMERAL:
            port = self._nextPort
            self._nextPort = port + 1 if port + 1 < _EPHEMERAL.stop else _EPHEMERAL.start
            if (family, port) not in self._ports:
                return port
        raise CannotListenError("", 0, OSError(errno.EADDRINUSE, "Address already in use"))
