"""NodeFamily: what a node has once per address family (BEP 32 runs IPv4 and IPv6 apart)."""

from __future__ import annotations

from .ipvoter import IPVoter
from .protocol import KRPCProtocol
from .routing import RoutingTable


class NodeFamily:
    """One address family of a node: its socket's protocol, its routing table, and the
    vote on our external IP as that family's nodes see it.

    Bind C{protocol} to a UDP socket of the family (L{twisted_dht.node.DHTNode.listen}
    does it for both); a family whose protocol has no transport is not used.
    """

    def __init__(
        self, ipv6: bool, protocol: KRPCProtocol, table: RoutingTable, voter: IPVoter
    ) -> None:
        self.ipv6 = ipv6
        self.protocol = protocol
        self.table = table
        self.voter = voter

    @property
    def listening(self) -> bool:
        """Whether the protocol is bound to a socket."""
        return self.protocol.transport is not None

    @property
    def port(self) -> int | None:
        """The UDP port the socket is bound to, if it is."""
        transport = self.protocol.transport
        return transport.getHost().port if transport is not None else None  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"<NodeFamily IPv{6 if self.ipv6 else 4}: {len(self.table)} contacts>"
