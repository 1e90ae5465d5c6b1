"""Zope interfaces: the seams where applications plug in their own objects."""

from __future__ import annotations

from zope.interface import Interface

from .krpc import Address, Query


class IKRPCController(Interface):
    """Answers the queries a L{KRPCProtocol} receives.

    Besides L{queryReceived}, a controller has one C{krpc_<method>(query, address)}
    handler per query it answers, returning the reply's C{r} dictionary (or that
    dictionary already bencoded, as bytes) or a Deferred of it; a method without a
    handler is answered with error 204.
    """

    def queryReceived(query: Query, address: Address) -> None:
        """Called for every well-formed query, before its handler (if any)."""


class IPeerStore(Interface):
    """Peers announced for info_hashes (BEP 5 announce_peer), served by get_peers."""

    def addPeer(infoHash: bytes, address: Address, seed: bool = False) -> None:
        """Store or refresh C{address} under C{infoHash}; C{seed} is BEP 33's flag.

        @raise ValueError: if C{address} is not an IPv4 or IPv6 literal and a port.
        """

    def getPeers(infoHash: bytes, ipv6: bool = False, limit: int | None = None) -> list[Address]:
        """The non-expired peers of one family; a uniform random sample of C{limit} of them
        when more are stored."""

    def getCompactPeers(
        infoHash: bytes, ipv6: bool = False, limit: int | None = None
    ) -> list[bytes]:
        """Like L{getPeers}, as compact 6-byte (IPv4) or 18-byte (IPv6) strings for a
        C{values} list."""

    def getEncodedPeers(infoHash: bytes, ipv6: bool = False, limit: int | None = None) -> bytes:
        """Like L{getCompactPeers}, each string bencoded (C{6:} or C{18:} and the compact
        form) and all joined: the items of a get_peers reply's C{values} list."""

    def hasPeers(infoHash: bytes) -> bool:
        """Whether any non-expired peer, of either family, is stored for C{infoHash}."""

    def cleanup() -> None:
        """Drop expired peers, and info_hashes left without peers."""

    def infoHashCount() -> int:
        """How many info_hashes are stored (some may hold only expired peers)."""

    def peerCount() -> int:
        """How many peers are stored in all (some may have expired)."""

    def sampleInfoHashes(count: int) -> list[bytes]:
        """Up to C{count} of the stored info_hashes, chosen at random (BEP 51)."""

    def seedCount(infoHash: bytes) -> int:
        """How many non-expired peers of C{infoHash}, of either family, announced as seeds."""

    def clear() -> None:
        """Forget every peer."""

    def start() -> None:
        """Start periodic cleanup; calling it while running does nothing."""

    def stop() -> None:
        """Stop periodic cleanup, leaving no pending timer."""
