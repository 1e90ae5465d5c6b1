"""Zope interfaces: the seams where applications plug in their own objects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zope.interface import Attribute, Interface

from .addresses import Address
from .krpc import Query

Handler = Callable[[Query, Address], Any]
"""C{handler(query, address)}: returns an L{twisted_dht.reply.Answer}, a bencoded C{r}
dictionary (bytes), a plain C{r} dictionary, or a Deferred or coroutine of one; raises
L{twisted_dht.errors.KRPCError} (or L{twisted_dht.errors.MalformedMessage}, answered
with 203) to answer with an error."""


class IKRPCController(Interface):
    """Answers the queries a L{twisted_dht.protocol.KRPCProtocol} receives."""

    policy = Attribute(
        "The L{twisted_dht.admission.AdmissionPolicy} the protocol consults for every "
        "datagram, query and reply."
    )

    def handlerFor(method: bytes) -> Handler | None:
        """The handler of a query method (C{b"ping"}, ...), or None: error 204."""

    def queryAnswered(query: Query, address: Address) -> None:
        """Called once a well-formed query was answered (or its error sent)."""


class IPeerStore(Interface):
    """Peers announced for info_hashes (BEP 5 announce_peer), served by get_peers.

    What a third-party store (Redis, SQL) implements: the node drives expiry by calling
    L{removeExpired} periodically; the store keeps no timers. A store may also provide
    L{IEncodedPeerSource}, a faster path for get_peers.
    """

    def addPeer(infoHash: bytes, address: Address, seed: bool = False) -> None:
        """Store or refresh C{address} (an IP literal and a port) under C{infoHash};
        C{seed} is BEP 33's flag."""

    def getCompactPeers(infoHash: bytes, ipv6: bool, limit: int) -> list[bytes]:
        """Up to C{limit} non-expired peers of one family as compact 6-byte (IPv4) or
        18-byte (IPv6) strings, a uniform random sample when more are stored."""

    def infoHashCount() -> int:
        """How many info_hashes are stored."""

    def peerCount() -> int:
        """How many peers are stored in all."""

    def sampleInfoHashes(count: int) -> list[bytes]:
        """Up to C{count} of the stored info_hashes, chosen at random (BEP 51)."""

    def removeExpired() -> None:
        """Drop expired peers, and info_hashes left without peers."""


class IEncodedPeerSource(Interface):
    """An optional fast path of an L{IPeerStore}: peers already bencoded for a reply."""

    def getEncodedPeers(infoHash: bytes, ipv6: bool, limit: int) -> bytes:
        """L{IPeerStore.getCompactPeers}, each string bencoded (C{6:} or C{18:} and the
        compact form) and all joined: the items of a get_peers reply's C{values} list."""
