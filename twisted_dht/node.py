"""DHTNode: a whole DHT node — the server side plus bootstrap, lookups, announce, upkeep."""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred, DeferredList, gatherResults, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorPluggableNameResolver, IReactorTime
from twisted.python.failure import Failure

from . import bep42, krpc, ratelimit
from .errors import MalformedMessage, QueryTimeout
from .ipvoter import IPVoter
from .krpc import Address, Response
from .lookup import Lookup, LookupResult
from .nodeid import distance, toInt
from .pacer import QueryPacer
from .periodic import Periodic
from .protocol import KRPCProtocol
from .ratelimit import DoSBlocker, TokenBucket
from .resolve import resolveHost
from .routing import Contact, NodeState, RoutingTable
from .server import DHTServer, K

DEFAULT_ROUTERS: tuple[Address, ...] = (
    ("router.bittorrent.com", 6881),
    ("router.utorrent.com", 6881),
    ("dht.transmissionbt.com", 6881),
    ("dht.libtorrent.org", 25401),
)
"""Public bootstrap routers: queried to join, never inserted into the routing table."""


@dataclass(frozen=True)
class BootstrapResult:
    """How a bootstrap ended: C{goodNodes} in the tables; C{success} when there are any.

    C{routersResolved} counts the router addresses we could ask (names resolved to one or
    more addresses), C{routersAnswered} those that answered.
    """

    goodNodes: int
    routersAnswered: int
    routersResolved: int = 0

    @property
    def success(self) -> bool:
        """Whether the node joined a DHT (it knows at least one good node)."""
        return self.goodNodes > 0


class DHTNode(DHTServer):
    """A BitTorrent DHT node (BEP 5, BEP 32 dual stack).

    Bind C{protocol4} (and C{protocol6}) with C{reactor.listenUDP}, call L{start}, then use
    the Deferred-returning API: L{bootstrap}, L{ping}, L{findNode}, L{getPeers},
    L{announce}, L{keepAnnounced}. L{stop} cancels every timer and pending query.

    Hardening (all on by default, see L{twisted_dht.ratelimit} for the defaults):

    @param ipRateLimit: datagrams per second one IP may send (averaged over 10 s) before
        it is ignored for 5 minutes; 0 disables the per-IP blocker. With C{relaxLocal},
        local addresses (BEP 42's exempt ranges) are never blocked.
    @param uploadLimit: bytes per second we send (3 s of burst); replies that do not fit
        are dropped. 0 disables it.
    @param queryRateLimit: incoming queries per second handled in all; 0 disables it.
    @param outgoingQueryRate: queries per second we send; more wait (at most
        C{maxQueuedQueries} of them, beyond which they fail with L{QueryDropped}).
    @param restrictSearchSubnets: one contact per /24 (/64) per lookup; default on,
        unless C{relaxLocal} is set.
    @param enforceNodeId: (a server option) keep nodes whose id fails BEP 42 out of the
        routing tables. Whatever it says, such nodes do not count for lookup termination
        and are not announce targets.
    @ivar idChanged: callables called with the new id when the node takes a BEP 42 id for
        a newly voted external IP (e.g. to save the state file).
    """

    def __init__(
        self,
        nodeId: bytes | None = None,
        *,
        reactor: IReactorTime | None = None,
        routers: Sequence[Address] = DEFAULT_ROUTERS,
        alpha: int = 3,
        queryTimeout: float = 5.0,
        shortTimeout: float = 1.0,
        readOnly: bool = False,
        maintenanceInterval: float = 60.0,
        refreshInterval: float = 900.0,
        announceInterval: tuple[float, float] = (900.0, 1800.0),
        restrictSearchSubnets: bool | None = None,
        ipRateLimit: float = ratelimit.DEFAULT_IP_RATE,
        uploadLimit: float = ratelimit.DEFAULT_UPLOAD_LIMIT,
        queryRateLimit: float = ratelimit.DEFAULT_QUERY_RATE,
        outgoingQueryRate: float = ratelimit.DEFAULT_OUTGOING_QUERY_RATE,
        maxQueuedQueries: int = 1000,
        **serverOptions: Any,
    ) -> None:
        super().__init__(nodeId, reactor=reactor, **serverOptions)
        if restrictSearchSubnets is None:
            restrictSearchSubnets = not self.relaxLocal
        self.routers = list(routers)
        self.knownNodes: list[Address] = []
        """Addresses to try before the routers (e.g. from the state file)."""
        self.routerNodes: dict[Address, bytes] = {}
        """Routers that answered, with their ids: lookup seeds, never table entries."""
        self.alpha = alpha
        self.queryTimeout = queryTimeout
        self.shortTimeout = shortTimeout
        self.refreshInterval = refreshInterval
        self.announceInterval = announceInterval
        self.restrictSearchSubnets = restrictSearchSubnets
        self.blocker = DoSBlocker(
            ipRateLimit, exempt=bep42.isLocal if self.relaxLocal else None, reactor=self.reactor
        )
        self.uploadLimiter = TokenBucket(
            uploadLimit, uploadLimit * ratelimit.DEFAULT_UPLOAD_BURST, reactor=self.reactor
        )
        self.queryLimiter = TokenBucket(
            queryRateLimit, queryRateLimit * ratelimit.DEFAULT_QUERY_BURST, reactor=self.reactor
        )
        self.pacer = QueryPacer(
            self._sendNow,
            TokenBucket(
                outgoingQueryRate,
                outgoingQueryRate * ratelimit.DEFAULT_OUTGOING_QUERY_BURST,
                reactor=self.reactor,
            ),
            maxQueuedQueries,
            self.reactor,
        )
        limits: dict[str, Any] = {
            "blocker": self.blocker,
            "uploadLimiter": self.uploadLimiter,
            "queryLimiter": self.queryLimiter,
        }
        self.protocol4 = KRPCProtocol(self, reactor=self.reactor, readOnly=readOnly, **limits)
        self.protocol6 = KRPCProtocol(self, reactor=self.reactor, readOnly=readOnly, **limits)
        self.voter4 = IPVoter(reactor=self.reactor)
        self.voter6 = IPVoter(reactor=self.reactor)
        self.idChanged: list[Callable[[bytes], object]] = []
        self.running = False
        self.lookupsStarted = 0
        self._outstanding: set[Deferred[Any]] = set()
        self._maintenance = Periodic(
            self._maintain, maintenanceInterval, self.reactor, "Routing table maintenance"
        )
        self._announcing: dict[bytes, tuple[int | None, bool, IDelayedCall | None]] = {}
        self._bootstrapRetry: IDelayedCall | None = None
        self._bootstrapDelay = 0.0
        self._bootstrapping = False
        self._refreshing = 0

    # Lifecycle -----------------------------------------------------------------

    def start(self, bootstrap: bool = True) -> None:
        """Start token rotation, peer expiry, table maintenance and (by default) joining."""
        if self.running:
            return
        self.running = True
        self.tokenStore.start()
        self.peerStore.start()
        self._maintenance.start()
        if bootstrap:
            self._bootstrapDelay = 0.0
            self._keepBootstrapping()

    def stop(self) -> None:
        """Stop every loop and timer and cancel every pending lookup and query."""
        if not self.running:
            return
        self.running = False
        self.tokenStore.stop()
        self.peerStore.stop()
        self._maintenance.stop()
        if self._bootstrapRetry is not None and self._bootstrapRetry.active():
            self._bootstrapRetry.cancel()
        self._bootstrapRetry = None
        for infoHash in list(self._announcing):
            self.stopAnnouncing(infoHash)
        while self._outstanding:
            self._outstanding.pop().cancel()
        self.pacer.stop()

    def _track(self, deferred: Deferred[Any]) -> Deferred[Any]:
        """Remember C{deferred} until it fires, so that L{stop} can cancel it."""
        self._outstanding.add(deferred)

        def forget(result: object) -> object:
            self._outstanding.discard(deferred)
            return result

        deferred.addBoth(forget)
        return deferred

    # Sending -------------------------------------------------------------------

    def protocolFor(self, address: Address) -> KRPCProtocol:
        """The socket of C{address}'s family."""
        return self.protocol6 if krpc.isIPv6(address[0]) else self.protocol4

    def families(self) -> list[bool]:
        """The families we have a socket for: False for IPv4, True for IPv6."""
        return [
            ipv6
            for ipv6, protocol in ((False, self.protocol4), (True, self.protocol6))
            if protocol.transport is not None
        ]

    def sendQuery(
        self, address: Address, method: bytes, args: dict[bytes, Any], timeout: float | None = None
    ) -> Deferred[Response]:
        """Send one query with our id from the socket of C{address}'s family.

        Within the outgoing query rate it goes now; over it, it waits in a bounded queue
        (the returned Deferred fails with L{QueryDropped} when the queue is full).
        """
        return self.pacer.submit(address, method, args, timeout)

    def _sendNow(
        self, address: Address, method: bytes, args: dict[bytes, Any], timeout: float | None
    ) -> Deferred[Response]:
        deferred = self.protocolFor(address).query(
            address,
            method,
            {b"id": self.nodeId, **args},
            self.queryTimeout if timeout is None else timeout,
        )
        return deferred.addCallback(self._voteExternalIP, address)

    @property
    def queuedQueries(self) -> int:
        """How many of our queries wait for the outgoing query rate."""
        return len(self.pacer)

    # BEP 42 --------------------------------------------------------------------

    def _voteExternalIP(self, response: Response, address: Address) -> Response:
        """Count the responder's view of our IP; adopt a BEP 42 id when it changes."""
        seen = response.ip
        if seen is not None:
            voter = self.voter6 if krpc.isIPv6(address[0]) else self.voter4
            external = voter.vote(address[0], seen[0])
            if external is not None:
                self.externalIPChanged(external)
        return response

    def externalIPChanged(self, ip: str) -> None:
        """Our external IP is now C{ip}: take a BEP 42 id for it unless ours is valid.

        An IPv6 address only drives the id while no IPv4 address was voted.
        """
        if krpc.isIPv6(ip) and self.voter4.external is not None:
            return
        if bep42.verifyId(self.nodeId, ip):
            return
        self.setNodeId(bep42.generateId(ip))
        self.log.info(
            "External IP {ip}: new BEP 42 node id {nodeId}", ip=ip, nodeId=self.nodeId.hex()
        )

    def setNodeId(self, nodeId: bytes) -> None:
        """Adopt C{nodeId}: rebuild the routing tables around it, then call L{idChanged}."""
        if len(nodeId) != krpc.ID_LENGTH:
            raise ValueError("a node id is 20 bytes")
        self.nodeId = nodeId
        self.table4.setOwnId(nodeId)
        self.table6.setOwnId(nodeId)
        for callback in list(self.idChanged):
            try:
                callback(nodeId)
            except Exception:
                self.log.failure("An idChanged callback failed")

    def queryReceived(self, query: krpc.Query, address: Address) -> None:
        """Offer the querier to the table, and ping it once if it is new there.

        A node that only queried us is not good until it answers one of our queries; the
        ping confirms it, so that it can be given out in our replies.
        """
        contact = self.offerQuerier(query, address)
        if contact is None or not self.running:
            return
        if contact.lastResponse is None and contact.lastPinged is None:
            contact.lastPinged = self.reactor.seconds()
            self.ping(address).addErrback(lambda _: None)

    def pingQuestionable(self, contact: Contact) -> None:
        """Ping a questionable contact; the table learns the outcome."""
        if self.running:
            self.ping(contact.address).addErrback(lambda _: None)

    # Public API ----------------------------------------------------------------

    def ping(self, address: Address) -> Deferred[bytes]:
        """Ping C{address}; fires with its node id. The node enters the routing table."""
        table = self.tableFor(address)

        def answered(response: Response) -> bytes:
            table.nodeResponded(response.nodeId, address)
            return response.nodeId

        def failed(failure: Failure) -> Failure:
            if failure.check(QueryTimeout):
                table.nodeFailed(address)
            return failure

        return self._track(self.sendQuery(address, b"ping", {}).addCallbacks(answered, failed))

    def findNode(self, target: bytes) -> Deferred[list[tuple[bytes, Address]]]:
        """The K closest live nodes to C{target} found by an iterative lookup (both families)."""
        if len(target) != krpc.ID_LENGTH:
            raise ValueError("a target is 20 bytes")

        def merge(results: list[LookupResult]) -> list[tuple[bytes, Address]]:
            found = [node for result in results for node in result.closest]
            return heapq.nsmallest(K, found, key=lambda node: distance(node[0], target))

        return self._lookupAll(target, b"find_node").addCallback(merge)

    def getPeers(
        self, infoHash: bytes, onPeer: Callable[[Address], object] | None = None
    ) -> Deferred[list[Address]]:
        """Peers of C{infoHash}, de-duplicated; C{onPeer} gets each one as it arrives."""
        if len(infoHash) != krpc.ID_LENGTH:
            raise ValueError("an info_hash is 20 bytes")
        seen: set[Address] = set()

        def newPeer(peer: Address) -> None:
            if peer not in seen:
                seen.add(peer)
                if onPeer is not None:
                    onPeer(peer)

        def merge(results: list[LookupResult]) -> list[Address]:
            peers: dict[Address, None] = {}
            for result in results:
                peers.update(dict.fromkeys(result.peers))
            return list(peers)

        return self._lookupAll(infoHash, b"get_peers", newPeer).addCallback(merge)

    def announce(
        self,
        infoHash: bytes,
        port: int | None = None,
        impliedPort: bool = False,
        seed: bool = False,
    ) -> Deferred[int]:
        """Announce that we are a peer of C{infoHash}; fires with how many nodes accepted.

        A get_peers lookup, then announce_peer to the K closest nodes that gave a token.
        With no C{port}, the UDP source port is announced (C{implied_port}).
        """
        if len(infoHash) != krpc.ID_LENGTH:
            raise ValueError("an info_hash is 20 bytes")
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"invalid port: {port}")

        def announceAll(results: list[LookupResult]) -> Deferred[int]:
            sends = []
            for result in results:
                for _, address, token in result.tokens:
                    sends.append(
                        self._announceTo(address, infoHash, token, port, impliedPort, seed)
                    )
            return gatherResults(sends, consumeErrors=True).addCallback(sum)  # type: ignore[arg-type]

        return self._lookupAll(infoHash, b"get_peers").addCallback(announceAll)

    def _announceTo(
        self,
        address: Address,
        infoHash: bytes,
        token: bytes,
        port: int | None,
        impliedPort: bool,
        seed: bool,
    ) -> Deferred[int]:
        transport = self.protocolFor(address).transport
        implied = impliedPort or port is None
        if port is None:
            port = transport.getHost().port if transport is not None else 1
        args: dict[bytes, Any] = {b"info_hash": infoHash, b"port": port, b"token": token}
        if implied:
            args[b"implied_port"] = 1
        if seed:
            args[b"seed"] = 1
        d = self._track(self.sendQuery(address, b"announce_peer", args))
        return d.addCallbacks(lambda _: 1, lambda _: 0)

    def keepAnnounced(
        self, infoHash: bytes, port: int | None = None, seed: bool = False
    ) -> Deferred[int]:
        """Announce now and again every 15-30 minutes until L{stopAnnouncing}."""
        self.stopAnnouncing(infoHash)
        self._announcing[infoHash] = (port, seed, None)
        return self._reannounce(infoHash)

    def stopAnnouncing(self, infoHash: bytes) -> None:
        """Stop re-announcing C{infoHash}."""
        entry = self._announcing.pop(infoHash, None)
        if entry is not None and entry[2] is not None and entry[2].active():
            entry[2].cancel()

    def announcing(self) -> list[bytes]:
        """The info_hashes kept announced."""
        return list(self._announcing)

    def _reannounce(self, infoHash: bytes) -> Deferred[int]:
        entry = self._announcing.get(infoHash)
        if entry is None:
            return succeed(0)
        port, seed, _ = entry

        def reschedule(accepted: int) -> int:
            if infoHash in self._announcing and self.running:
                delay = random.uniform(*self.announceInterval)
                timer = self.reactor.callLater(delay, self._reannounce, infoHash)
                self._announcing[infoHash] = (port, seed, timer)
            self.log.info(
                "Announced {infoHash} to {accepted} nodes",
                infoHash=infoHash.hex(),
                accepted=accepted,
            )
            return accepted

        return self.announce(infoHash, port, seed=seed).addCallback(reschedule)

    # Lookups -------------------------------------------------------------------

    def lookup(
        self,
        target: bytes,
        method: bytes,
        ipv6: bool,
        onPeer: Callable[[Address], object] | None = None,
        seeds: Iterable[tuple[bytes, Address]] = (),
    ) -> Deferred[LookupResult]:
        """One iterative lookup over one family, seeded from the table (and C{seeds})."""
        table = self.table6 if ipv6 else self.table4
        traversal = Lookup(
            target,
            self.nodeId,
            self.sendQuery,
            _RouterFilter(table, self.routerNodes),
            method=method,
            ipv6=ipv6,
            k=K,
            alpha=self.alpha,
            shortTimeout=self.shortTimeout,
            timeout=self.queryTimeout,
            restrictSubnets=self.restrictSearchSubnets,
            relaxLocal=self.relaxLocal,
            eligible=self.compliant,
            onPeer=onPeer,
            reactor=self.reactor,
        )
        self.lookupsStarted += 1
        initial = [*seeds, *self._seedsFor(table, target)]
        return self._track(traversal.start(initial))

    def _seedsFor(self, table: RoutingTable, target: bytes) -> list[tuple[bytes, Address]]:
        contacts = table.closest(target, K)
        if len(contacts) < K:
            targetInt = toInt(target)
            contacts = heapq.nsmallest(2 * K, table.contacts(), key=lambda c: c.idInt ^ targetInt)
        return [(c.nodeId, c.address) for c in contacts]

    def _lookupAll(
        self,
        target: bytes,
        method: bytes,
        onPeer: Callable[[Address], object] | None = None,
    ) -> Deferred[list[LookupResult]]:
        lookups = [self.lookup(target, method, ipv6, onPeer) for ipv6 in self.families()]
        return gatherResults(lookups, consumeErrors=True)

    # Bootstrap -----------------------------------------------------------------

    def bootstrap(self, addresses: Sequence[Address] | None = None) -> Deferred[BootstrapResult]:
        """Join the DHT through C{addresses} (default: known nodes, then the routers).

        Routers are asked for nodes near our id and never enter the routing table; then we
        look up our own id and refresh the buckets. Fires with a L{BootstrapResult}.
        """
        return Deferred.fromCoroutine(self._bootstrap(addresses))

    async def _bootstrap(self, addresses: Sequence[Address] | None) -> BootstrapResult:
        if addresses is None:
            if self.knownNodes:
                await DeferredList(
                    [self.ping(address) for address in self.knownNodes], consumeErrors=True
                )
            addresses = self.routers if self.goodCount() < K else []
        resolved = await self._resolve(addresses)
        answered = await self._askRouters(resolved)
        seeds = [node for reply in answered for node in reply]
        for ipv6 in self.families():
            family = [node for node in seeds if krpc.isIPv6(node[1][0]) == ipv6]
            await self.lookup(self.nodeId, b"find_node", ipv6, seeds=family)
            await self._refreshBuckets(ipv6)
        return BootstrapResult(self.goodCount(), len(answered), len(resolved))

    async def _resolve(self, addresses: Sequence[Address]) -> list[Address]:
        """IP literals as they are; names resolved to all their IPv4 and IPv6 addresses."""
        resolved: list[Address] = []
        for host, port in addresses:
            if isIPAddress(host) or isIPv6Address(host):
                resolved.append((host, port))
                continue
            if not IReactorPluggableNameResolver.providedBy(self.reactor):
                self.log.warn("Cannot resolve {host} with this reactor", host=host)
                continue
            found = await resolveHost(self.reactor, host, port)
            resolved.extend(a for a in found if a not in resolved)
        return resolved

    async def _askRouters(self, routers: list[Address]) -> list[list[tuple[bytes, Address]]]:
        """Ask each router for nodes near our id; remember the routers that answered."""
        args: dict[bytes, Any] = {b"target": self.nodeId}
        if len(self.families()) == 2:
            args[b"want"] = [b"n4", b"n6"]
        asked = [a for a in routers if self.protocolFor(a).transport is not None]
        replies = await DeferredList(
            [self._track(self.sendQuery(address, b"find_node", args)) for address in asked],
            consumeErrors=True,
        )
        answered = []
        for address, (ok, response) in zip(asked, replies, strict=True):
            if not ok:
                continue
            try:
                nodes = krpc.responseNodes(response) + krpc.responseNodes(response, True)
            except MalformedMessage:
                continue
            self.routerNodes[address] = response.nodeId
            answered.append(nodes)
        return answered

    async def _refreshBuckets(self, ipv6: bool) -> None:
        table = self.table6 if ipv6 else self.table4
        buckets = [b for b in table.buckets() if len(b.contacts) < K]
        await DeferredList(
            [self.lookup(b.randomId(), b"find_node", ipv6) for b in buckets], consumeErrors=True
        )

    def _keepBootstrapping(self) -> None:
        """Bootstrap; while no node answers, retry with capped exponential backoff."""
        self._bootstrapRetry = None
        if not self.running or self._bootstrapping:
            return
        self._bootstrapping = True

        def done(result: BootstrapResult) -> None:
            self._bootstrapping = False
            if result.success:
                self.log.info(
                    "Bootstrap done: {good} good nodes ({routers} routers answered)",
                    good=result.goodNodes,
                    routers=result.routersAnswered,
                )
                self._bootstrapDelay = 0.0
                return
            first = self._bootstrapDelay == 0.0
            self._bootstrapDelay = min(max(5.0, self._bootstrapDelay * 2), 300.0)
            if first:  # one line per outage, not one per retry
                self.log.warn(
                    "Bootstrap failed: no DHT node answered ({resolved} router addresses "
                    "resolved); serving queries and retrying with backoff (5 s doubling "
                    "to 5 min)",
                    resolved=result.routersResolved,
                )
            if self.running:
                self._bootstrapRetry = self.reactor.callLater(
                    self._bootstrapDelay, self._keepBootstrapping
                )

        def failed(failure: Failure) -> None:
            self._bootstrapping = False
            if self.running:
                self.log.failure("Bootstrap failed", failure)

        self._track(self.bootstrap()).addCallbacks(done, failed)

    # Maintenance ---------------------------------------------------------------

    def goodCount(self) -> int:
        """Good nodes in both routing tables."""
        return self.table4.goodCount() + self.table6.goodCount()

    def _maintain(self) -> None:
        """Refresh stale buckets, ping questionable nodes, rejoin when no node is left."""
        if self._bootstrapRetry is None and not self._bootstrapping and not self._anyAlive():
            self._keepBootstrapping()
            return
        for ipv6 in self.families():
            table = self.table6 if ipv6 else self.table4
            for contact in table.questionable()[:K]:
                self.pingQuestionable(contact)
            for bucket in table.staleBuckets(self.refreshInterval):
                if self._refreshing >= 2:
                    break
                self._refreshing += 1
                bucket.lastChanged = self.reactor.seconds()
                self.lookup(bucket.randomId(), b"find_node", ipv6).addBoth(self._refreshed)

    def _anyAlive(self) -> bool:
        """Whether a routing table holds a contact that is not bad."""
        now = self.reactor.seconds()
        return any(
            contact.state(now) is not NodeState.BAD
            for table in (self.table4, self.table6)
            for contact in table.contacts()
        )

    def _refreshed(self, result: object) -> None:
        self._refreshing -= 1

    # Statistics ----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Routing-table sizes, peers stored, queries in/out by method, errors, drops."""
        queriesIn: Counter[str] = Counter()
        queriesOut: Counter[str] = Counter()
        counters: Counter[str] = Counter()
        for protocol in (self.protocol4, self.protocol6):
            queriesIn.update({k.decode("latin-1"): v for k, v in protocol.queriesIn.items()})
            queriesOut.update({k.decode("latin-1"): v for k, v in protocol.queriesOut.items()})
            counters.update(protocol.counters)
        return {
            "nodeId": self.nodeId.hex(),
            "externalIP": self.voter4.external or self.voter6.external,
            "blockedIPs": self.blocker.blocks,
            "queuedQueries": len(self.pacer),
            "droppedQueryQueue": self.pacer.dropped,
            "nodes4": len(self.table4),
            "goodNodes4": self.table4.goodCount(),
            "nodes6": len(self.table6),
            "goodNodes6": self.table6.goodCount(),
            "infoHashes": self.peerStore.infoHashCount(),
            "peers": self.peerStore.peerCount(),
            "announcing": len(self._announcing),
            "lookups": self.lookupsStarted,
            "queriesIn": dict(queriesIn),
            "queriesOut": dict(queriesOut),
            **counters,
        }


class _RouterFilter:
    """A lookup's view of a routing table that keeps routers out of it."""

    def __init__(self, table: RoutingTable, routers: dict[Address, bytes]) -> None:
        self.table = table
        self.routers = routers

    def nodeResponded(self, nodeId: bytes, address: Address) -> None:
        if address not in self.routers:
            self.table.nodeResponded(nodeId, address)

    def nodeFailed(self, address: Address) -> None:
        if address not in self.routers:
            self.table.nodeFailed(address)
