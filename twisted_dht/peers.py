"""In-memory storage of announced peers (BEP 5), with BEP 33's seed flag.

Layout
======
The store is an C{OrderedDict} from info_hash to a L{_Swarm}, ordered by last announce:
every announce moves its info_hash to the end, and a new info_hash arriving when
C{maxInfoHashes} are stored evicts the first one, the least recently announced.

A swarm holds up to two L{_Peers}, one per address family (BEP 32: IPv4 and IPv6 peers
are served separately), each capped at C{maxPeersPerInfoHash}. Instead of one Python
object per peer (a dict entry with a 6-byte key costs about 86 bytes in CPython), a
L{_Peers} keeps three parallel arrays of fixed-size slots:

    - C{addresses}: C{bytearray}, the compact address of slot i at C{[i*w:(i+1)*w]},
      C{w} being 6 (IPv4) or 18 (IPv6), ready to go into a C{values} list;
    - C{times}: C{array('d')}, the reactor time of the slot's last announce;
    - C{seeds}: C{bytearray}, 1 where the peer announced itself as a seed.

That is 15 bytes per IPv4 peer (27 per IPv6 peer) plus a few hundred bytes per swarm.
A swarm that get_peers reads also keeps its peers as the bencoded items of a C{values}
list (L{PeerStore.getEncodedPeers}, the L{IEncodedPeerSource} fast path) until it
changes: 8 more bytes per IPv4 peer (21 per IPv6 peer), so a store whose every swarm is
read stays within about 30 bytes per peer.

Slots are kept in announce order, oldest first, so the arrays stay sorted by time:
    - expired peers are a prefix, found by bisection and dropped with one slice deletion;
    - the non-expired ones are the suffix, sampled without scanning (L{getCompactPeers});
    - when a family is full, slot 0 (the oldest announce) makes room;
    - a re-announce from a stored IP (BEP 33: one entry per info_hash and IP, its port
      and seed flag updated) is found with C{bytearray.find}, checked for slot
      alignment, and moved to the end.
Finding and moving are C-speed memory operations bounded by the per-hash cap, so adding
a peer costs O(1) in the number of stored peers. Times come from the injected reactor
and are made monotonic, so a clock stepping back cannot unsort them.

The store keeps no timers: reads ignore expired peers, and the node frees their memory by
calling L{PeerStore.removeExpired} periodically.
"""

from __future__ import annotations

import random
from array import array
from bisect import bisect_right
from collections import OrderedDict

from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from .addresses import Address, packAddress, unpackAddress
from .interfaces import IEncodedPeerSource, IPeerStore


class _Peers:
    """The peers of one info_hash and one address family, as slots in announce order."""

    __slots__ = ("_encoded", "addresses", "seeds", "times", "width")

    def __init__(self, width: int) -> None:
        self.width = width
        self.addresses = bytearray()
        self.times = array("d")
        self.seeds = bytearray()
        self._encoded: tuple[int, bytes] | None = None
        """(first, the compact strings of slots first..end bencoded and joined), kept until
        the slots change: about 8 bytes per IPv4 peer (21 per IPv6 peer) of a swarm that
        is read, where a list of bytes objects would cost some 50."""

    def __len__(self) -> int:
        return len(self.times)

    def find(self, ip: bytes) -> int:
        """The slot of the packed IP C{ip} (whatever its port), or -1."""
        addresses, width = self.addresses, self.width
        offset = addresses.find(ip)
        while offset >= 0 and offset % width:
            offset = addresses.find(ip, offset + 1)
        return offset // width if offset >= 0 else -1

    def add(self, compact: bytes, now: float, seed: bool, cap: int) -> int:
        """Store a peer as the newest, replacing the entry of its IP if there is one;
        return the change in the peer count."""
        slot = self.find(compact[:-2])
        if slot >= 0:
            self._remove(slot)
            added = 0
        elif len(self.times) >= cap:
            excess = len(self.times) - cap + 1
            self.removeFirst(excess)
            added = 1 - excess
        else:
            added = 1
        self.addresses += compact
        self.times.append(now)
        self.seeds.append(seed)
        self._encoded = None
        return added

    def _remove(self, slot: int) -> None:
        width = self.width
        del self.addresses[slot * width : (slot + 1) * width]
        del self.times[slot]
        del self.seeds[slot]
        self._encoded = None

    def removeFirst(self, count: int) -> None:
        """Drop the C{count} oldest slots."""
        del self.addresses[: count * self.width]
        del self.times[:count]
        del self.seeds[:count]
        self._encoded = None

    def firstValid(self, cutoff: float) -> int:
        """The first slot announced after C{cutoff}: all slots before it have expired."""
        return bisect_right(self.times, cutoff)

    def compactFrom(self, first: int) -> list[bytes]:
        """The compact strings of slots C{first} to the end, in slot order."""
        data, width = bytes(self.addresses), self.width  # one copy, then bytes slices
        return [data[i : i + width] for i in range(first * width, len(data), width)]

    def sampleFrom(self, first: int, count: int) -> list[bytes]:
        """The compact strings of C{count} slots drawn uniformly from C{first} to the end:
        O(count), the slot numbers drawn, then sliced."""
        data, width = bytes(self.addresses), self.width
        return [
            data[slot * width : (slot + 1) * width]
            for slot in random.sample(range(first, len(self.times)), count)
        ]

    def splitFrom(self, first: int) -> tuple[list[bytes], list[bytes]]:
        """The compact strings of slots C{first} to the end, as (seeds, non-seeds)."""
        data, width, flags = bytes(self.addresses), self.width, self.seeds
        seeds: list[bytes] = []
        others: list[bytes] = []
        for slot in range(first, len(flags)):
            (seeds if flags[slot] else others).append(data[slot * width : (slot + 1) * width])
        return seeds, others

    def encodedFrom(self, first: int) -> bytes:
        """L{compactFrom} bencoded and joined (see L{encodeStrings}), kept until the slots
        change (every mutation goes through L{add}, L{_remove} or L{removeFirst}, which
        drop it) or a different C{first} is asked for (a peer expired): a get_peers for a
        swarm that did not change slices nothing."""
        cached = self._encoded
        if cached is not None and cached[0] == first:
            return cached[1]
        encoded = encodeStrings(self.compactFrom(first))
        self._encoded = (first, encoded)
        return encoded


def encodeStrings(strings: list[bytes]) -> bytes:
    """Byte strings of one length, each bencoded (``6:`` + 6 bytes), joined: the items of
    a bencoded list. A third cheaper than bencoding the list when they are compact peers."""
    if not strings:
        return b""
    prefix = b"%d:" % len(strings[0])
    return prefix + prefix.join(strings)


class _Swarm:
    """The peers of one info_hash: one L{_Peers} per family, created when needed."""

    __slots__ = ("v4", "v6")

    def __init__(self) -> None:
        self.v4: _Peers | None = None
        self.v6: _Peers | None = None

    def families(self) -> list[_Peers]:
        return [peers for peers in (self.v4, self.v6) if peers is not None]


@implementer(IPeerStore, IEncodedPeerSource)
class PeerStore:
    """Peers by info_hash, with expiry and caps; see the module docstring for the layout.

    A peer expires C{peerTTL} seconds after its last announce. Each info_hash keeps at
    most C{maxPeersPerInfoHash} peers of each family (the oldest announce goes first),
    and at most C{maxInfoHashes} info_hashes are kept (the least recently announced goes
    first). Reads ignore expired peers; L{removeExpired}, which the node calls
    periodically, frees them. The store schedules nothing on C{reactor}: it only reads
    its clock.
    """

    def __init__(
        self,
        *,
        reactor: IReactorTime,
        peerTTL: float = 1800.0,
        maxPeersPerInfoHash: int = 100,
        maxInfoHashes: int = 10000,
    ) -> None:
        """
        @param reactor: the clock that times announces.
        @param peerTTL: seconds a peer stays after its last announce.
        @param maxPeersPerInfoHash: peers kept per info_hash and address family.
        @param maxInfoHashes: info_hashes kept.
        @raise ValueError: if a cap is below 1 or C{peerTTL} is not positive.
        """
        if maxPeersPerInfoHash < 1 or maxInfoHashes < 1:
            raise ValueError("the caps must be at least 1")
        if not peerTTL > 0:
            raise ValueError("peerTTL must be positive")
        self.reactor = reactor
        self.peerTTL = peerTTL
        self.maxPeersPerInfoHash = maxPeersPerInfoHash
        self.maxInfoHashes = maxInfoHashes
        self._swarms: OrderedDict[bytes, _Swarm] = OrderedDict()
        self._peerCount = 0
        self._lastTime = float("-inf")

    def _now(self) -> float:
        """The reactor's time, never less than a time already returned."""
        now = self._lastTime = max(self.reactor.seconds(), self._lastTime)
        return now

    def _cutoff(self) -> float:
        """Peers last announced at or before this time have expired."""
        return self._now() - self.peerTTL

    # Writing -------------------------------------------------------------------

    def addPeer(self, infoHash: bytes, address: Address, seed: bool = False) -> None:
        """Store or refresh C{address} under C{infoHash}, with its seed flag: one entry per
        IP (BEP 33), so a new port or seed flag replaces the IP's earlier announce.

        @raise ValueError: if C{address} is not an IPv4 or IPv6 literal and a port.
        """
        compact = packAddress(address)
        swarms = self._swarms
        swarm = swarms.get(infoHash)
        if swarm is None:
            if len(swarms) >= self.maxInfoHashes:
                self._evict(swarms.popitem(last=False)[1])
            swarm = swarms[infoHash] = _Swarm()
        else:
            swarms.move_to_end(infoHash)
        if len(compact) == 6:
            peers = swarm.v4
            if peers is None:
                peers = swarm.v4 = _Peers(6)
        else:
            peers = swarm.v6
            if peers is None:
                peers = swarm.v6 = _Peers(18)
        self._peerCount += peers.add(compact, self._now(), seed, self.maxPeersPerInfoHash)

    def _evict(self, swarm: _Swarm) -> None:
        self._peerCount -= sum(len(peers) for peers in swarm.families())

    def removeExpired(self) -> None:
        """Drop expired peers, and info_hashes left without peers: O(number of
        info_hashes), for the node to call every few minutes."""
        cutoff = self._cutoff()
        swarms = self._swarms
        for infoHash, swarm in list(swarms.items()):
            for peers in swarm.families():
                expired = peers.firstValid(cutoff)
                if expired:
                    peers.removeFirst(expired)
                    self._peerCount -= expired
            if not (swarm.v4 or swarm.v6):
                del swarms[infoHash]

    # Reading -------------------------------------------------------------------

    def getCompactPeers(
        self, infoHash: bytes, ipv6: bool = False, limit: int | None = None
    ) -> list[bytes]:
        """The non-expired peers of one family as compact strings for a C{values} list
        (L{IPeerStore.getCompactPeers}).

        All of them, oldest announce first, when they fit in C{limit} (or C{limit} is
        None); otherwise a uniform random sample of C{limit} of them, in O(limit) time.
        """
        found = self._valid(infoHash, ipv6)
        if found is None:
            return []
        peers, first = found
        if limit is not None and limit < len(peers) - first:
            return peers.sampleFrom(first, max(limit, 0))
        return peers.compactFrom(first)

    def getEncodedPeers(
        self, infoHash: bytes, ipv6: bool = False, limit: int | None = None
    ) -> bytes:
        """L{getCompactPeers}, each string bencoded and all joined: the items of a
        C{values} list (L{IEncodedPeerSource.getEncodedPeers}). When they all fit in
        C{limit}, the joined string is kept until the swarm changes, so a popular swarm is
        not joined again for every get_peers."""
        found = self._valid(infoHash, ipv6)
        if found is None:
            return b""
        peers, first = found
        if limit is not None and limit < len(peers) - first:
            return encodeStrings(peers.sampleFrom(first, max(limit, 0)))
        return peers.encodedFrom(first)

    def _valid(self, infoHash: bytes, ipv6: bool) -> tuple[_Peers, int] | None:
        """The peers of one family of C{infoHash} and their first non-expired slot."""
        swarm = self._swarms.get(infoHash)
        if swarm is None:
            return None
        peers = swarm.v6 if ipv6 else swarm.v4
        if peers is None:
            return None
        return peers, peers.firstValid(self._cutoff())

    def getPeers(
        self, infoHash: bytes, ipv6: bool = False, limit: int | None = None
    ) -> list[Address]:
        """L{getCompactPeers} as addresses: the non-expired peers of one family, or a
        uniform random sample of C{limit} of them when more are stored."""
        return [unpackAddress(compact) for compact in self.getCompactPeers(infoHash, ipv6, limit)]

    def sampleInfoHashes(self, count: int) -> list[bytes]:
        """Up to C{count} of the stored info_hashes, chosen at random (BEP 51).

        O(number of info_hashes): callers cache the sample (the query handlers do, for
        BEP 51's C{interval}).
        """
        return random.sample(list(self._swarms), min(count, len(self._swarms)))

    def getSeedsAndPeers(
        self, infoHash: bytes, ipv6: bool = False
    ) -> tuple[list[bytes], list[bytes]]:
        """The non-expired peers of one family as compact strings, split by BEP 33's seed
        flag: (seeds, the others) (L{IPeerStore.getSeedsAndPeers}), oldest announce first."""
        found = self._valid(infoHash, ipv6)
        if found is None:
            return [], []
        peers, first = found
        return peers.splitFrom(first)

    def infoHashCount(self) -> int:
        """How many info_hashes are stored (some may hold only expired peers)."""
        return len(self._swarms)

    def peerCount(self) -> int:
        """How many peers are stored in all (some may have expired)."""
        return self._peerCount
