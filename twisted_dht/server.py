"""DHTServer: the controller that answers ping, find_node, get_peers and announce_peer."""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from . import bencoding, krpc
from .errors import ErrorCode, KRPCError
from .interfaces import IKRPCController, IPeerStore
from .krpc import Address, Query
from .nodeid import randomId
from .peers import PeerStore
from .routing import RoutingTable
from .tokens import TokenStore

K = 8
"""Bucket size, and how many nodes a reply carries."""

_WANT_4 = frozenset({b"n4"})
_WANT_6 = frozenset({b"n6"})


def _missing(name: str) -> KRPCError:
    return KRPCError(ErrorCode.PROTOCOL, f"missing argument: {name}")


@implementer(IKRPCController)
class DHTServer:
    """The server side of a DHT node: routing tables, tokens, peers and the query handlers.

    Handlers are called by L{KRPCProtocol} as C{krpc_<method>(query, address)} and return
    the reply's C{r} dictionary; invalid arguments raise L{KRPCError} 203.
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
        tableOptions: dict[str, Any] = {
            "k": K,
            "restrictIPs": restrictIPs,
            "relaxLocal": relaxLocal,
            "pingQuestionable": self.pingQuestionable,
            "reactor": self.reactor,
        }
        self.table4 = RoutingTable(self.nodeId, **tableOptions)
        self.table6 = RoutingTable(self.nodeId, **tableOptions)

    def tableFor(self, address: Address) -> RoutingTable:
        """The routing table of C{address}'s family."""
        return self.table6 if krpc.isIPv6(address[0]) else self.table4

    def pingQuestionable(self, contact: Any) -> None:
        """Ping a questionable contact; the server alone cannot, so this does nothing.

        L{DHTNode} overrides it to send the ping.
        """

    # IKRPCController ---------------------------------------------------------

    def queryReceived(self, query: Query, address: Address) -> None:
        """Offer the querying node to the routing table, unless it is read-only (BEP 43)."""
        if not query.readOnly:
            self.tableFor(address).nodeQueried(query.nodeId, address)

    def krpc_ping(self, query: Query, address: Address) -> dict[bytes, Any]:
        """ping: our id."""
        return {b"id": self.nodeId}

    def krpc_find_node(self, query: Query, address: Address) -> dict[bytes, Any]:
        """find_node: the K closest good nodes to C{target}, per BEP 32's C{want}."""
        target = krpc.queryTarget(query)
        if target is None:
            raise _missing("target")
        reply: dict[bytes, Any] = {b"id": self.nodeId}
        self._addNodes(reply, target, query, address)
        return reply

    def krpc_get_peers(self, query: Query, address: Address) -> dict[bytes, Any]:
        """get_peers: a token, peers we store (within the reply budget) and the closest nodes."""
        infoHash = krpc.queryInfoHash(query)
        if infoHash is None:
            raise _missing("info_hash")
        reply: dict[bytes, Any] = {
            b"id": self.nodeId,
            b"token": self.tokenStore.generate(address[0], infoHash),
        }
        self._addNodes(reply, infoHash, query, address)
        ipv6 = krpc.isIPv6(address[0])
        if self.peerStore.hasPeers(infoHash):
            budget = krpc.MAX_REPLY_SIZE - _sizeWithoutValues(reply, query.tid, address)
            limit = budget // (21 if ipv6 else 8)
            values = self.peerStore.getCompactPeers(infoHash, ipv6=ipv6, limit=limit)
            if values:
                reply[b"values"] = values
        return reply

    def krpc_announce_peer(self, query: Query, address: Address) -> dict[bytes, Any]:
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
        self.peerStore.addPeer(infoHash, (address[0], port), seed=krpc.querySeed(query))
        return {b"id": self.nodeId}

    def _addNodes(
        self, reply: dict[bytes, Any], target: bytes, query: Query, address: Address
    ) -> None:
        want = krpc.queryWant(query)
        if not want:
            want = _WANT_6 if krpc.isIPv6(address[0]) else _WANT_4
        if b"n4" in want:
            reply[b"nodes"] = b"".join(c.compact for c in self.table4.closest(target, K))
        if b"n6" in want:
            reply[b"nodes6"] = b"".join(c.compact for c in self.table6.closest(target, K))


def _sizeWithoutValues(reply: dict[bytes, Any], tid: bytes, address: Address) -> int:
    """The encoded size of a reply before C{values} is added, plus the empty list's key."""
    envelope: dict[bytes, Any] = {
        b"t": tid,
        b"y": b"r",
        b"r": reply,
        b"ip": krpc.packAddress(address),
        b"v": krpc.VERSION,
    }
    return bencoding.encodedSize(envelope) + bencoding.encodedSize(b"values") + 2
