"""resolveHost: a host name to all its IPv4 and IPv6 UDP addresses, with the reactor's resolver."""

from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IAddress,
    IHostResolution,
    IReactorPluggableNameResolver,
    IResolutionReceiver,
)
from zope.interface import implementer

from .addresses import Address


@implementer(IResolutionReceiver)
class _Collector:
    """Gathers the addresses of one resolution, then fires C{done} with them."""

    def __init__(self) -> None:
        self.addresses: list[Address] = []
        self.done: Deferred[list[Address]] = Deferred()

    def resolutionBegan(self, resolutionInProgress: IHostResolution) -> None:
        """Nothing to do until addresses arrive."""

    def addressResolved(self, address: IAddress) -> None:
        """Keep each IP address once."""
        if isinstance(address, IPv4Address | IPv6Address):
            found = (address.host, address.port)
            if found not in self.addresses:
                self.addresses.append(found)

    def resolutionComplete(self) -> None:
        """Hand over what was found (nothing when the name does not resolve)."""
        self.done.callback(self.addresses)


def resolveHost(
    reactor: IReactorPluggableNameResolver, host: str, port: int
) -> Deferred[list[Address]]:
    """All the IPv4 and IPv6 UDP addresses of C{host}; an empty list when it has none."""
    collector = _Collector()
    reactor.nameResolver.resolveHostName(
        collector, host, port, addressTypes=[IPv4Address, IPv6Address], transportSemantics="UDP"
    )
    return collector.done
