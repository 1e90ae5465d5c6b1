"""QueryHandlers: the answers to ping, find_node, get_peers, announce_peer, sample_infohashes.

get_peers also serves BEP 33: with C{scrape=1} the reply carries the bloom filters of the
stored seeds (C{BFsd}) and other peers (C{BFpe}) of the requester's family, and with
C{noseed=1} its C{values} are non-seeds first. sample_infohashes is rate-limited per IP
(L{RepeatLimiter}): an IP asking again within the C{interval} its sample stands for gets
the cached sample once (a retry after a lost reply), then no reply at all.

The handlers own nothing: they are given our identity, the two routing tables, the token
store, the peer store and the admission policy (told of requesters that presented a valid
token), and answer with L{twisted_dht.reply.Answer}s that the wire layer fits into the
reply budget. Invalid arguments raise L{KRPCError} 203.
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.interfaces import IReactorTime

from . import bencoding, krpc
from .addresses import Address
from .admission import AdmissionPolicy
from .bloom import BloomFilter
from .errors import DropQuery, ErrorCode, KRPCError
from .interfaces import IEncodedPeerSource, IPeerStore
from .krpc import Query
from .nodeid import Identity
from .peers import encodeStrings
from .ratelimit import REFUSED, REPEAT, RepeatLimiter
from .reply import VALUES_OVERHEAD, Answer, bytesTail, valuesTail
from .routing import RoutingTable
from .tokens import TokenStore

K = 8
"""Bucket size, and how many nodes a reply carries."""

SAMPLE_INTERVAL = 21600
"""BEP 51: seconds between two refreshes of the info_hash sample (libtorrent's default)."""

MAX_SAMPLES = 20
"""BEP 51: info_hashes in a sample (libtorrent's cap)."""

_WANT_4 = frozenset({b"n4"})
_WANT_6 = frozenset({b"n6"})

_VALUE_WIDTH_4 = len(b"6:") + 6
_VALUE_WIDTH_6 = len(b"18:") + 18


def _sample(items: list[bytes], count: int) -> list[bytes]:
    """All of C{items} when they are at most C{count}, else C{count} drawn at random."""
    return items if len(items) <= count else random.sample(items, max(count, 0))


def _missing(name: str) -> KRPCError:
    return KRPCError(ErrorCode.PROTOCOL, f"missing argument: {name}")


class QueryHandlers:
    """The BEP 5 and BEP 51 query handlers, as C{krpc_<method>(query, address)}."""

    def __init__(
        self,
        identity: Identity,
        table4: RoutingTable,
        table6: RoutingTable,
        tokens: TokenStore,
        peers: IPeerStore,
        policy: AdmissionPolicy,
        *,
        reactor: IReactorTime,
    ) -> None:
        self.identity = identity
        self.table4 = table4
        self.table6 = table6
        self.tokens = tokens
        self.peers = peers
        self.policy = policy
        self.clock = reactor
        self._encodedPeers = IEncodedPeerSource.providedBy(peers)
        self._sample: tuple[float, bytes] | None = None
        self.sampleLimiter = RepeatLimiter(SAMPLE_INTERVAL, reactor=reactor)
        """Per IP, how often sample_infohashes is answered within L{SAMPLE_INTERVAL}."""
        self.sampleRepeats = {"cached": 0, "dropped": 0}
        """sample_infohashes queries asked again within the interval: answered with the
        cached sample, or dropped (see L{RepeatLimiter})."""
        self._idReply = (identity.nodeId, bencoding.encode({b"id": identity.nodeId}))
        """(our id, the bencoded reply carrying only it), for ping and announce_peer."""

    def _onlyId(self) -> bytes:
        """The bencoded reply that carries only our id, encoded again when the id changed."""
        nodeId, encoded = self._idReply
        current = self.identity.nodeId
        if nodeId is not current:
            nodeId, encoded = self._idReply = (current, bencoding.encode({b"id": current}))
        return encoded

    def krpc_ping(self, query: Query, address: Address) -> bytes:
        """ping: our id."""
        return self._onlyId()

    def krpc_find_node(self, query: Query, address: Address) -> Answer:
        """find_node: the K closest good nodes to C{target}, per BEP 32's C{want}."""
        target = krpc.queryTarget(query)
        if target is None:
            raise _missing("target")
        return self.withNodes({b"id": self.identity.nodeId}, target, query, address)

    def krpc_get_peers(self, query: Query, address: Address) -> Answer:
        """get_peers: a token, the closest nodes, and the peers we store (as many as the
        reply budget leaves room for, a random sample when there are more)."""
        infoHash = krpc.queryInfoHash(query)
        if infoHash is None:
            raise _missing("info_hash")
        fields: dict[bytes, Any] = {
            b"id": self.identity.nodeId,
            b"token": self.tokens.generate(address[0], infoHash),
        }
        answer = self.withNodes(fields, infoHash, query, address)
        ipv6 = ":" in address[0]
        args = query.args  # BEP 33's flags; a plain get_peers has 2 or 3 keys: one test
        if len(args) > 2 and (b"scrape" in args or b"noseed" in args):
            self._scrape(answer, infoHash, ipv6, query)
            return answer
        width = _VALUE_WIDTH_6 if ipv6 else _VALUE_WIDTH_4
        peers = self.peers
        encoded = self._encodedPeers

        def values(room: int) -> bytes:
            limit = (room - VALUES_OVERHEAD) // width
            if limit <= 0:
                return b""
            if encoded:
                items = peers.getEncodedPeers(infoHash, ipv6, limit)  # type: ignore[attr-defined]
            else:
                items = encodeStrings(peers.getCompactPeers(infoHash, ipv6, limit))
            return valuesTail(items)

        answer.tail = values
        return answer

    def _scrape(self, answer: Answer, infoHash: bytes, ipv6: bool, query: Query) -> None:
        """BEP 33: the bloom filters of the stored IPs (with C{scrape}) and the values,
        non-seeds first (with C{noseed}) or a sample of every stored peer."""
        seeds, others = self.peers.getSeedsAndPeers(infoHash, ipv6)
        if krpc.queryScrape(query) and (seeds or others):
            answer.extras = {
                b"BFsd": BloomFilter.ofIPs(peer[:-2] for peer in seeds).toBytes(),
                b"BFpe": BloomFilter.ofIPs(peer[:-2] for peer in others).toBytes(),
            }
        noSeed = krpc.queryNoSeed(query)
        width = _VALUE_WIDTH_6 if ipv6 else _VALUE_WIDTH_4

        def values(room: int) -> bytes:
            limit = (room - VALUES_OVERHEAD) // width
            if limit <= 0:
                return b""
            if noSeed:
                chosen = _sample(others, limit)
                chosen = chosen + _sample(seeds, limit - len(chosen))
            else:
                chosen = _sample(seeds + others, limit)
            return valuesTail(encodeStrings(chosen))

        answer.tail = values

    def krpc_sample_infohashes(self, query: Query, address: Address) -> Answer:
        """sample_infohashes (BEP 51): a random sample of the info_hashes we store, how many
        we store, how long the sample stands, and the closest nodes to C{target}; no reply
        (L{DropQuery}) to an IP that asked too often within the interval."""
        target = krpc.queryTarget(query)
        if target is None:
            raise _missing("target")
        verdict = self.sampleLimiter.check(address[0])
        if verdict is REFUSED:
            self.sampleRepeats["dropped"] += 1
            raise DropQuery()
        fields: dict[bytes, Any] = {
            b"id": self.identity.nodeId,
            b"interval": SAMPLE_INTERVAL,
            b"num": self.peers.infoHashCount(),
        }
        answer = self.withNodes(fields, target, query, address)
        if verdict is REPEAT and self._sample is not None:
            self.sampleRepeats["cached"] += 1
            samples = self._sample[1]
        else:
            samples = self._currentSample()
        answer.tail = lambda room: bytesTail(b"samples", samples, 20, room)
        return answer

    def _currentSample(self) -> bytes:
        """The concatenated info_hash sample, drawn again every L{SAMPLE_INTERVAL} seconds,
        or sooner while it is short of L{MAX_SAMPLES} and the store has grown past it."""
        now = self.clock.seconds()
        sample = self._sample
        if (
            sample is None
            or now - sample[0] >= SAMPLE_INTERVAL
            or len(sample[1]) // 20 < min(MAX_SAMPLES, self.peers.infoHashCount())
        ):
            sample = self._sample = (now, b"".join(self.peers.sampleInfoHashes(MAX_SAMPLES)))
        return sample[1]

    def krpc_announce_peer(self, query: Query, address: Address) -> bytes:
        """announce_peer: check the token, then store the announcing peer."""
        infoHash = krpc.queryInfoHash(query)
        if infoHash is None:
            raise _missing("info_hash")
        token = krpc.queryToken(query)
        if token is None:
            raise _missing("token")
        if krpc.queryImpliedPort(query):
            port = address[1]
        else:
            queryPort = krpc.queryPort(query)
            if queryPort is None:
                raise _missing("port")
            port = queryPort
        if not 0 < port < 65536:
            raise KRPCError(ErrorCode.PROTOCOL, f"invalid port: {port}")
        if not self.tokens.validate(address[0], infoHash, token):
            raise KRPCError(ErrorCode.PROTOCOL, "invalid token")
        self.policy.markVerified(address[0])
        self.peers.addPeer(infoHash, (address[0], port), seed=krpc.querySeed(query))
        return self._onlyId()

    def withNodes(
        self, fields: dict[bytes, Any], target: bytes, query: Query, address: Address
    ) -> Answer:
        """An answer of C{fields} and the closest nodes of the families C{want} asks for
        (default: the requester's)."""
        want = krpc.queryWant(query)
        if not want:
            want = _WANT_6 if ":" in address[0] else _WANT_4
        return Answer(
            fields,
            nodes=self.table4.closestCompact(target, K) if b"n4" in want else None,
            nodes6=self.table6.closestCompact(target, K) if b"n6" in want else None,
        )
