"""Public test doubles: in-memory UDP transports, a simulated network and a reactor on a Clock.

Run twisted_dht nodes (or any L{DatagramProtocol}) in your own tests without sockets or DNS::

    reactor = MemoryReactor(hosts={"router.example": ["10.0.0.9"]})
    reactor.listenUDP(6881, routerProtocol, interface="10.0.0.9")
    port = reactor.listenUDP(0, clientProtocol)          # 0.0.0.0 on an ephemeral port
    port.write(b"ping", ("10.0.0.9", 6881))              # seen as from 127.0.0.1
    reactor.advance(reactor.network.latency)             # delivered now
    reactor.network.failSends("10.0.0.9", OSError(errno.ENETUNREACH, "unreachable"))

The transports check what C{twisted.internet.udp.Port} checks, so a test cannot pass with
an address production would refuse: C{write} takes only IP literals of the port's family
(else L{InvalidAddressError}) and raises L{MessageLengthError} where the kernel would
refuse the size (65,507 bytes over IPv4, 65,527 over IPv6); C{maxPacketSize} is, as in
Twisted, the receive buffer: longer datagrams arrive truncated. C{transport.socket.sendto}
skips those checks like a real socket, raising C{OSError} (C{socket.gaierror}) for a
hostname or the wrong family; both record and deliver the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.error import DNSLookupError
from twisted.internet.interfaces import (
    IAddress,
    IHostnameResolver,
    IHostResolution,
    IReactorPluggableNameResolver,
    IReactorUDP,
    IResolutionReceiver,
)
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock
from zope.interface import implementer

from .addresses import Address, isIPLiteral, isIPv6
from .memoryudp import FakeDatagramTransport, MemoryNetwork, MemoryUDPPort
from .resolve import resolveHost

__all__ = [
    "FakeDatagramTransport",
    "MemoryNetwork",
    "MemoryReactor",
    "MemoryResolver",
    "MemoryUDPPort",
]


@implementer(IHostResolution)
class _Resolution:
    def __init__(self, name: str) -> None:
        self.name = name

    def cancel(self) -> None:
        """Nothing to cancel: resolutions complete at once."""


@implementer(IHostnameResolver)
class MemoryResolver:
    """Resolves names from C{hosts} (lower-case name -> IP literals) at once.

    IP literals resolve to themselves; unknown names resolve to no address.
    """

    def __init__(self, hosts: dict[str, list[str]] | None = None) -> None:
        self.hosts: dict[str, list[str]] = hosts if hosts is not None else {}

    def resolveHostName(
        self,
        resolutionReceiver: IResolutionReceiver,
        hostName: str,
        portNumber: int = 0,
        addressTypes: Sequence[type[IAddress]] | None = None,
        transportSemantics: str = "TCP",
    ) -> IHostResolution:
        """Report the addresses of C{hostName} of the wanted C{addressTypes} (None: all)."""
        resolution = _Resolution(hostName)
        resolutionReceiver.resolutionBegan(resolution)
        kind: Literal["TCP", "UDP"] = "UDP" if transportSemantics == "UDP" else "TCP"
        if isIPLiteral(hostName):
            ips = [hostName]
        else:
            ips = self.hosts.get(hostName.lower().rstrip("."), [])
        for ip in ips:
            address = (IPv6Address if isIPv6(ip) else IPv4Address)(kind, ip, portNumber)
            if not addressTypes or type(address) in addressTypes:
                resolutionReceiver.addressResolved(address)
        resolutionReceiver.resolutionComplete()
        return resolution


@implementer(IReactorUDP, IReactorPluggableNameResolver)
class MemoryReactor(Clock):
    """A L{Clock} that binds UDP ports on a L{MemoryNetwork} and resolves names from a dict.

    Provides C{IReactorTime} (the Clock), C{IReactorUDP} (on C{network}, made on this clock
    unless given: a shared network delivers on its own clock), C{IReactorPluggableNameResolver}
    (a L{MemoryResolver} over C{hosts}), C{resolve} and C{callWhenRunning} (calls at once).
    Not provided: TCP, multicast, C{IReactorSocket} (so L{twisted_dht.sockets.listenUDP6} falls
    back to C{listenUDP}), system event triggers, C{run} and C{stop}.
    """

    def __init__(
        self,
        network: MemoryNetwork | None = None,
        *,
        hosts: dict[str, list[str]] | None = None,
        latency: float = 0.01,
        lossRate: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if network is None:
            network = MemoryNetwork(self, latency=latency, lossRate=lossRate, seed=seed)
        self.network = network
        resolver = MemoryResolver(hosts)
        self.hosts = resolver.hosts
        self.nameResolver: IHostnameResolver = resolver

    def listenUDP(
        self,
        port: int,
        protocol: DatagramProtocol,
        interface: str = "",
        maxPacketSize: int = 8192,
    ) -> MemoryUDPPort:
        """Bind C{protocol} on the network (see L{MemoryNetwork.bind})."""
        return self.network.bind(protocol, interface, port, maxPacketSize)

    def installNameResolver(self, resolver: IHostnameResolver) -> IHostnameResolver:
        """Use C{resolver} from now on; return the one it replaces."""
        previous, self.nameResolver = self.nameResolver, resolver
        return previous

    def resolve(self, name: str, timeout: Sequence[int] = (1, 3, 11, 45)) -> Deferred[str]:
        """The first IPv4 address of C{name}, or a L{DNSLookupError} failure."""

        def first(found: list[Address]) -> str:
            for host, _ in found:
                if not isIPv6(host):
                    return host
            raise DNSLookupError(name)

        return resolveHost(self, name, 0).addCallback(first)

    def callWhenRunning(self, callable: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Call C{callable} now: this reactor is always running."""
        callable(*args, **kwargs)
