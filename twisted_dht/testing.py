"""Public test doubles: in-memory UDP transports and a simulated network on a Clock.

Use them in your own tests to run twisted_dht nodes without sockets::

    clock = Clock()
    network = MemoryNetwork(clock)
    network.listen(protocol, ("10.0.0.1", 6881))
    ...
    clock.advance(1)
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock

from .krpc import Address, isIPv6


def _hostAddress(address: Address) -> IPv4Address | IPv6Address:
    host, port = address
    if isIPv6(host):
        return IPv6Address("UDP", host, port)
    return IPv4Address("UDP", host, port)


class FakeDatagramTransport:
    """A UDP transport that records what is written: C{written} is [(data, address)]."""

    def __init__(self, address: Address = ("127.0.0.1", 6881)) -> None:
        self.address = address
        self.written: list[tuple[bytes, Address]] = []
        self.listening = True

    def write(self, packet: bytes, addr: Any = None) -> None:
        """Record one datagram."""
        self.written.append((packet, addr))

    def getHost(self) -> IPv4Address | IPv6Address:
        """Our bound address."""
        return _hostAddress(self.address)

    def stopListening(self) -> None:
        """Mark the transport closed."""
        self.listening = False


class MemoryTransport(FakeDatagramTransport):
    """A UDP transport bound to an address of a L{MemoryNetwork}."""

    def __init__(self, network: MemoryNetwork, address: Address) -> None:
        super().__init__(address)
        self.network = network

    def write(self, packet: bytes, addr: Any = None) -> None:
        """Send one datagram through the network."""
        super().write(packet, addr)
        self.network.send(self.address, (addr[0], addr[1]), packet)

    def stopListening(self) -> None:
        """Unbind from the network."""
        super().stopListening()
        self.network.unbind(self.address)


class MemoryNetwork:
    """A simulated UDP network: datagrams arrive after C{latency} seconds on C{clock}.

    C{lossRate} drops that share of datagrams (seeded, so runs repeat); addresses in
    C{unreachable} swallow everything sent to them. C{sent} counts datagrams sent.
    """

    def __init__(
        self,
        clock: IReactorTime | None = None,
        *,
        latency: float = 0.01,
        lossRate: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.clock: IReactorTime = clock if clock is not None else Clock()
        self.latency = latency
        self.lossRate = lossRate
        self.random = random.Random(seed)
        self.unreachable: set[Address] = set()
        self.sent = 0
        self.bytesSent = 0
        self._endpoints: dict[Address, DatagramProtocol] = {}

    def listen(self, protocol: DatagramProtocol, address: Address) -> MemoryTransport:
        """Bind C{protocol} to C{address} and start it."""
        if address in self._endpoints:
            raise ValueError(f"address already bound: {address}")
        transport = MemoryTransport(self, address)
        self._endpoints[address] = protocol
        protocol.makeConnection(transport)  # type: ignore[arg-type]
        return transport

    def unbind(self, address: Address) -> None:
        """Forget the endpoint at C{address} and stop its protocol."""
        protocol = self._endpoints.pop(address, None)
        if protocol is not None:
            protocol.doStop()

    def send(self, source: Address, destination: Address, packet: bytes) -> None:
        """Deliver C{packet} to C{destination} after the latency, unless it is lost."""
        self.sent += 1
        self.bytesSent += len(packet)
        if destination in self.unreachable:
            return
        if self.lossRate and self.random.random() < self.lossRate:
            return
        self.clock.callLater(self.latency, self._deliver, source, destination, packet)

    def _deliver(self, source: Address, destination: Address, packet: bytes) -> None:
        protocol = self._endpoints.get(destination)
        if protocol is not None:
            protocol.datagramReceived(packet, source)
