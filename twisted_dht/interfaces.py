"""Zope interfaces: the seams where applications plug in their own objects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeAlias

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from .addresses import Address
from .krpc import Query, Response

Handler = Callable[[Query, Address], Any]
"""C{handler(query, address)}: returns an L{twisted_dht.reply.Answer}, a bencoded C{r}
dictionary (bytes), a plain C{r} dictionary, or a Deferred or coroutine of one; raises
L{twisted_dht.errors.KRPCError} (or L{twisted_dht.errors.MalformedMessage}, answered
with 203) to answer with an error, or L{twisted_dht.errors.DropQuery} to send nothing."""


SendQuery: TypeAlias = Callable[
    [Address, bytes, "dict[bytes, Any]", "float | None"], "Deferred[Response]"
]
"""C{send(address, method, args, timeout)}: send one query (C{timeout} None: the sender's
default) and return a Deferred that fires with the L{Response}, or fails with
L{twisted_dht.errors.KRPCError}, L{twisted_dht.errors.QueryTimeout},
L{twisted_dht.errors.SendFailed}, L{twisted_dht.errors.ProtocolStopped} or
L{twisted.internet.defer.CancelledError}. C{args} excludes our own id: the sender adds it."""


class LookupReporter(Protocol):
    """What a lookup tells the routing table of its address family."""

    def nodeResponded(self, nodeId: bytes, address: Address) -> None:
        """A node answered one of our queries with a well-formed reply."""

    def nodeFailed(self, address: Address) -> None:
        """A node did not answer one of our queries before the final timeout."""


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
        C{seed} is BEP 33's flag. One entry per info_hash and IP: an announce from an IP
        already stored replaces its port and seed flag."""

    def getCompactPeers(infoHash: bytes, ipv6: bool, limit: int) -> list[bytes]:
        """Up to C{limit} non-expired peers of one family as compact 6-byte (IPv4) or
        18-byte (IPv6) strings, a uniform random sample when more are stored."""

    def getSeedsAndPeers(infoHash: bytes, ipv6: bool) -> tuple[list[bytes], list[bytes]]:
        """Every non-expired peer of one family as compact strings, split by BEP 33's seed
        flag: (seeds, the others). For get_peers with C{scrape} (whose bloom filters
        count every stored IP) or C{noseed} only, never on the plain get_peers path; a
        store keeps one entry per info_hash and IP (BEP 33), so the two lists are
        disjoint."""

    def infoHashCount() -> int:
        """How many info_hashes are stored."""

    def peerCount() -> int:
        """How many peers are stored in all."""

    def sampleInfoHashes(count: int) -> list[bytes]:
        """Up to C{count} of the stored info_hashes, chosen at random (BEP 51)."""

    def removeExpired() -> None:
        """Drop expired peers, and info_hashes left without peers."""


class IItemStore(Interface):
    """BEP 44 items stored for others, served by get; the same pattern as L{IPeerStore}
    (no timers: the node calls L{removeExpired}). The handlers check tokens, sizes,
    signatures, C{cas} and C{seq} before they call L{put}."""

    def get(target: bytes) -> Any:
        """The L{twisted_dht.bep44.Item} stored under C{target}, or None."""

    def put(item: Any, putter: str) -> None:
        """Store a checked L{twisted_dht.bep44.Item} put from IP C{putter}; an item with
        the C{seq} of the stored one only refreshes it (the value stays)."""

    def immutableCount() -> int:
        """How many immutable items are stored."""

    def mutableCount() -> int:
        """How many mutable items are stored."""

    def removeExpired() -> int:
        """Drop expired items; how many went."""


class IEncodedPeerSource(Interface):
    """An optional fast path of an L{IPeerStore}: peers already bencoded for a reply."""

    def getEncodedPeers(infoHash: bytes, ipv6: bool, limit: int) -> bytes:
        """L{IPeerStore.getCompactPeers}, each string bencoded (C{6:} or C{18:} and the
        compact form) and all joined: the items of a get_peers reply's C{values} list."""
