"""DHTServer: the controller that answers ping, find_node, get_peers and announce_peer."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from . import bencoding, krpc
from .bep42 import isLocal, verifyId
from .errors import ErrorCode, KRPCError
from .interfaces import IKRPCController, IPeerStore
from .krpc import Address, Query
from .nodeid import randomId
from .peers import PeerStore
from .routing import Contact, RoutingTable
from .tokens import TokenStore

K = 8
"""Bucket size, and how many nodes a reply carries."""

AMPLIFICATION = 4.0
"""A find_node or get_peers reply to an unverified requester is at most this many times
the size of its query. A plain find_node query is about 95 bytes and its reply with 8
nodes about 290 (3x), so 4x trims nothing an ordinary IPv4 lookup needs, while a spoofed
query can never make us send more than 4 bytes per byte received. Verified requesters
(they answered one of our queries, or presented a valid token) and local addresses get
the full 1,024 bytes."""

SAMPLE_INTERVAL = 21600
"""BEP 51: seconds between two refreshes of the info_hash sample (libtorrent's default)."""

MAX_SAMPLES = 20
"""BEP 51: info_hashes in a sample (libtorrent's cap)."""

MAX_VERIFIED = 1024
"""IPs remembered as having presented a valid token (an LRU)."""

RECENT_QUERIERS = 4096
"""Queriers remembered within one second of the clock (see L{DHTServer.offerQuerier})."""

_WANT_4 = frozenset({b"n4"})
_WANT_6 = frozenset({b"n6"})


def _missing(name: str) -> KRPCError:
    return KRPCError(ErrorCode.PROTOCOL, f"missing argument: {name}")


@implementer(IKRPCController)
class DHTServer:
    """The server side of a DHT node: routing tables, tokens, peers and the query handlers.

    Handlers are called by L{KRPCProtocol} as C{krpc_<method>(query, address)} and return
    the reply's C{r} dictionary; invalid arguments raise L{KRPCError} 203.

    @param amplification: replies to unverified requesters are trimmed (fewer nodes, then
        fewer values) to this many times the query's size; 0 disables the rule.
    @param enforceNodeId: keep nodes whose id fails BEP 42 for their IP out of the
        routing tables (local addresses are exempt).
    """

    log = Logger()

    def __init__(
        self,
        nodeId: bytes | None = None,
        *,
        reactor: IReactorTime | None = None,
        peerStore: IPeerStore | None = None,
        tokenStore: TokenStore | None = None,
        maxPeersPerInfoHash: int = 100,
        maxInfoHashes: int = 10000,
        restrictIPs: bool = True,
        relaxLocal: bool = False,
        amplification: float = AMPLIFICATION,
        enforceNodeId: bool = False,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor  # type: ignore[assignment]
        self.reactor: IReactorTime = reactor  # type: ignore[assignment]
        self.nodeId = nodeId if nodeId is not None else randomId()
        if len(self.nodeId) != krpc.ID_LENGTH:
            raise ValueError("a node id is 20 bytes")
        self.peerStore: IPeerStore = (
            peerStore
            if peerStore is not None
            else PeerStore(
                maxPeersPerInfoHash=maxPeersPerInfoHash,
                maxInfoHashes=maxInfoHashes,
                reactor=self.reactor,
            )
        )
        self.tokenStore = (
            tokenStore if tokenStore is not None else TokenStore(reactor=self.reactor)
        )
        self.amplification = amplification
        self.enforceNodeId = enforceNodeId
        self.relaxLocal = relaxLocal
        self._verified: OrderedDict[str, None] = OrderedDict()
        self._sample: tuple[float, bytes] | None = None
        self._recentQueriers: dict[Address, bytes] = {}
        self._recentSecond = -1
        self._idReply = (self.nodeId, bencoding.encode({b"id": self.nodeId}))
        """(our id, the bencoded reply carrying only it), for ping and announce_peer."""
        admit: Callable[[bytes, Address], bool] | None = self.compliant if enforceNodeId else None
        tableOptions: dict[str, Any] = {
            "k": K,
            "admit": admit,
            "restrictIPs": restrictIPs,
            "relaxLocal": relaxLocal,
            "pingQuestionable": self.pingQuestionable,
            "reactor": self.reactor,
        }
        self.table4 = RoutingTable(self.nodeId, **tableOptions)
        self.table6 = RoutingTable(self.nodeId, **tableOptions)

    def tableFor(self, address: Address) -> RoutingTable:
        """The routing table of C{address}'s family."""
        return self.table6 if ":" in address[0] else self.table4  # krpc.isIPv6, inlined

    @staticmethod
    def compliant(nodeId: bytes, address: Address) -> bool:
        """Whether C{nodeId} is valid for C{address} under BEP 42 (local ranges exempt)."""
        return verifyId(nodeId, address[0])

    def isVerified(self, address: Address) -> bool:
        """Whether C{address} proved it receives our packets: it presented a valid token,
        or it is a routing-table contact that answered one of our queries."""
        if address[0] in self._verified:
            return True
        contact = self.tableFor(address).get(address)
        return contact is not None and contact.lastResponse is not None

    def replyBudget(self, query: Query, address: Address, size: int) -> int:
        """The most bytes a reply of C{size} bytes to C{query} may take (see
        L{AMPLIFICATION})."""
        limit = self.amplification * query.size
        if not limit or size <= limit or limit >= krpc.MAX_REPLY_SIZE:
            return krpc.MAX_REPLY_SIZE
        if isLocal(address[0]) or self.isVerified(address):
            return krpc.MAX_REPLY_SIZE
        return int(limit)

    def pingQuestionable(self, contact: Any) -> None:
        """Ping a questionable contact; the server alone cannot, so this does nothing.

        L{DHTNode} overrides it to send the ping.
        """

    # IKRPCController ---------------------------------------------------------

    def queryReceived(self, query: Query, address: Address) -> None:
        """Offer the querying node to the routing table (see L{offerQuerier})."""
        self.offerQuerier(query, address)

    def offerQuerier(self, query: Query, address: Address) -> Contact | None:
        """Offer the querying node to its routing table, unless it is read-only (BEP 43)
        or it was offered already in this second of the clock from this address with
        this id: a node sends queries in bursts (a lookup, then announces), and a node's
        state only needs its last query to the minute (it stays good for 15).

        @return: its live contact, if it was offered and has one.
        """
        if query.readOnly:
            return None
        second = int(self.reactor.seconds())
        recent = self._recentQueriers
        if second != self._recentSecond or len(recent) >= RECENT_QUERIERS:
            recent.clear()
            self._recentSecond = second
        nodeId = query.nodeId
        if recent.get(address) == nodeId:
            return None
        recent[address] = nodeId
        return self.tableFor(address).nodeQueried(nodeId, address)

    def krpc_ping(self, query: Query, address: Address) -> bytes:
        """ping: our id."""
        return self._onlyId()

    def _onlyId(self) -> bytes:
        """The bencoded reply that carries only our id, encoded again when the id changed."""
        nodeId, encoded = self._idReply
        if nodeId is not self.nodeId:
            nodeId, encoded = self._idReply = (self.nodeId, bencoding.encode({b"id": self.nodeId}))
        return encoded

    def krpc_find_node(self, query: Query, address: Address) -> dict[bytes, Any] | bytes:
        """find_node: the K closest good nodes to C{target}, per BEP 32's C{want}."""
        target = krpc.queryTarget(query)
        if target is None:
            raise _missing("target")
        reply: dict[bytes, Any] = {b"id": self.nodeId}
        self._addNodes(reply, target, query, address)
        if not (query.size and self.amplification):
            return reply
        return self._withinBudget(reply, query, address)[0]

    def krpc_get_peers(self, query: Query, address: Address) -> dict[bytes, Any] | bytes:
        """get_peers: a token, peers we store (within the reply budget) and the closest nodes.

        Returns the reply bencoded: the C{values} list, the last key in sorted order, is
        joined onto the rest by hand from the peer store's bencoded items
        (L{IPeerStore.getEncodedPeers}).
        """
        infoHash = krpc.queryInfoHash(query)
        if infoHash is None:
            raise _missing("info_hash")
        reply: dict[bytes, Any] = {
            b"id": self.nodeId,
            b"token": self.tokenStore.generate(address[0], infoHash),
        }
        self._addNodes(reply, infoHash, query, address)
        # The budget of a full reply: values fill what is left of it.
        encoded, size, budget = self._withinBudget(reply, query, address, krpc.MAX_REPLY_SIZE)
        ipv6 = ":" in address[0]
        limit = (budget - size - _VALUES_KEY_SIZE) // (_VALUE_SIZE_6 if ipv6 else _VALUE_SIZE_4)
        if limit <= 0:
            return encoded
        values = self.peerStore.getEncodedPeers(infoHash, ipv6=ipv6, limit=limit)
        if not values:
            return encoded
        # "values" sorts after every other key (id, nodes, nodes6, token): it goes last.
        return b"".join((encoded[:-1], b"6:valuesl", values, b"ee"))

    def krpc_sample_infohashes(self, query: Query, address: Address) -> dict[bytes, Any] | bytes:
        """sample_infohashes (BEP 51): a random sample of the info_hashes we store, how many
        we store, how long the sample stands, and the closest nodes to C{target}."""
        target = krpc.queryTarget(query)
        if target is None:
            raise _missing("target")
        reply: dict[bytes, Any] = {
            b"id": self.nodeId,
            b"interval": SAMPLE_INTERVAL,
            b"num": self.peerStore.infoHashCount(),
            b"samples": self._currentSample(),
        }
        self._addNodes(reply, target, query, address)
        encoded, size, budget = self._withinBudget(reply, query, address)
        if size <= budget:
            return encoded
        samples = reply[b"samples"]
        drop = -(-(size - budget) // 20)
        reply[b"samples"] = samples[: max(0, len(samples) - drop * 20)]
        return reply

    def _currentSample(self) -> bytes:
        """The concatenated info_hash sample, drawn again every L{SAMPLE_INTERVAL} seconds,
        or sooner while it is short of L{MAX_SAMPLES} and the store has grown past it."""
        now = self.reactor.seconds()
        sample = self._sample
        if (
            sample is None
            or now - sample[0] >= SAMPLE_INTERVAL
            or len(sample[1]) // 20 < min(MAX_SAMPLES, self.peerStore.infoHashCount())
        ):
            sample = self._sample = (
                now,
                b"".join(self.peerStore.sampleInfoHashes(MAX_SAMPLES)),
            )
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
        if not self.tokenStore.validate(address[0], infoHash, token):
            raise KRPCError(ErrorCode.PROTOCOL, "invalid token")
        verified = self._verified
        verified[address[0]] = None
        verified.move_to_end(address[0])
        if len(verified) > MAX_VERIFIED:
            verified.popitem(last=False)
        self.peerStore.addPeer(infoHash, (address[0], port), seed=krpc.querySeed(query))
        return self._onlyId()

    def _addNodes(
        self, reply: dict[bytes, Any], target: bytes, query: Query, address: Address
    ) -> None:
        want = krpc.queryWant(query)
        if not want:
            want = _WANT_6 if krpc.isIPv6(address[0]) else _WANT_4
        if b"n4" in want:
            reply[b"nodes"] = self.table4.closestCompact(target, K)
        if b"n6" in want:
            reply[b"nodes6"] = self.table6.closestCompact(target, K)

    def _withinBudget(
        self, reply: dict[bytes, Any], query: Query, address: Address, wanted: int | None = None
    ) -> tuple[bytes, int, int]:
        """Bencode C{reply}, first trimming its nodes to the reply budget (see
        L{replyBudget}) for a reply of C{wanted} bytes (None: this one's size).

        @return: the bencoded C{reply}, the size of the whole response it makes, and the
            budget.
        """
        encoded = bencoding.encode(reply)
        ipv6 = ":" in address[0]
        size = krpc.responseSize(query.tid, len(encoded), ipv6=ipv6)
        budget = self.replyBudget(query, address, size if wanted is None else wanted)
        if size > budget:
            trimmed = _trimNodes(reply, size - budget, ipv6)
            if trimmed:
                size -= trimmed
                encoded = bencoding.encode(reply)
        return encoded, size, budget


def _trimNodes(reply: dict[bytes, Any], excess: int, ipv6: bool) -> int:
    """Drop compact nodes (the other family's first, for an C{ipv6} requester or not)
    until C{excess} bytes are gone, or none is left; return how many bytes went."""
    order = ((b"nodes", 26), (b"nodes6", 38)) if ipv6 else ((b"nodes6", 38), (b"nodes", 26))
    removed = 0
    for key, width in order:
        nodes = reply.get(key)
        if not nodes or removed >= excess:
            continue
        drop = min(len(nodes) // width, -(-(excess - removed) // width))
        reply[key] = nodes[: len(nodes) - drop * width]
        removed += drop * width
    return removed


_VALUES_KEY_SIZE = len(b"6:values" + b"l" + b"e")
"""The ``values`` key and the ``l``/``e`` of its list."""

_VALUE_SIZE_4 = len(b"6:") + 6
_VALUE_SIZE_6 = len(b"18:") + 18
