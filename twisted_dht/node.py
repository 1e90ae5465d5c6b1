"""DHTNode: a whole DHT node, wired from its parts.

The parts (each its own module): an L{Identity}; an L{AdmissionPolicy}; per address
family a L{NodeFamily} (socket protocol, routing table, external-IP voter); the
L{QueryHandlers} and the L{Controller} the protocols ask; the L{QuerySender} of our
queries; L{Search} (lookups, announces); L{Joiner} (bootstrap); L{Maintenance}; and the
token rotation and peer expiry loops. The node only builds them and orchestrates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IReactorTime, IReactorUDP
from twisted.logger import Logger

from . import bep42, krpc, ratelimit
from .addresses import Address, isIPv6
from .admission import AMPLIFICATION, AdmissionPolicy
from .bep44 import SigningKey
from .bootstrap import DEFAULT_ROUTERS, BootstrapResult, Joiner
from .controller import Controller
from .family import NodeFamily
from .handlers import K, QueryHandlers
from .interfaces import IItemStore, IPeerStore
from .ipvoter import IPVoter
from .itemclient import GetResult, ItemClient, PutResult
from .itemhandlers import ItemHandlers
from .items import MAX_ITEMS, ItemStore
from .krpc import Response
from .lookup import LookupResult
from .maintenance import Maintenance
from .nodeid import Identity
from .peers import PeerStore
from .periodic import Periodic
from .protocol import KRPCProtocol
from .routing import RoutingTable
from .sampling import Sampler, SampleReply, WalkResult
from .scrape import ScrapeResult, scrape
from .search import Search
from .sender import QuerySender
from .sockets import MAX_PACKET_SIZE, listenUDP6
from .stats import NodeStats
from .tokens import TokenStore

EXPIRY_INTERVAL = 300.0
"""Seconds between two sweeps of expired peers from the peer store."""


class DHTNode:
    """A BitTorrent DHT node (BEP 5, BEP 32 dual stack; BEP 33, 42, 43, 51).

    Bind it with L{listen} (or bind C{node.ipv4.protocol} and C{node.ipv6.protocol}
    yourself), call L{start}, then use the Deferred-returning API: L{bootstrap}, L{ping},
    L{findNode}, L{getPeers}, L{announce}, L{keepAnnounced}, L{scrape},
    L{sampleInfoHashes}, L{walkSamples}. L{stop} cancels every timer
    and pending query. Cancelling any returned Deferred fails it with L{CancelledError}.

    Hardening (all on by default, see L{twisted_dht.ratelimit} for the defaults; change
    them at runtime on C{node.policy}):

    @param ipRateLimit: datagrams per second one IP may send (averaged over 10 s) before
        it is ignored for 5 minutes; 0 disables the per-IP blocker. With C{relaxLocal},
        local addresses (BEP 42's exempt ranges) are never blocked.
    @param uploadLimit: bytes per second we send (3 s of burst); replies that do not fit
        are dropped. 0 disables it.
    @param queryRateLimit: incoming queries per second handled in all; 0 disables it.
    @param amplification: replies to unverified requesters are trimmed to this many times
        their query's size; 0 disables the rule.
    @param outgoingQueryRate: queries per second we send; more wait (at most
        C{maxQueuedQueries} of them, beyond which they fail with L{QueryDropped}).
    @param restrictIPs: one routing-table entry per IP, two per /24 (/64) per bucket.
    @param restrictSearchSubnets: one contact per /24 (/64) per lookup; default on,
        unless C{relaxLocal} is set.
    @param enforceNodeId: keep nodes whose id fails BEP 42 out of the routing tables.
        Whatever it says, such nodes do not count for lookup termination and are not
        announce targets.
    @param itemStore: where BEP 44 items are stored (default: an L{ItemStore} of
        C{maxItems} immutable and C{maxItems} mutable items); L{items} gets and puts.
    @param version: the C{v} of our messages (None: none).
    @ivar idChanged: callables called with the new id when it changes (e.g. to save the
        state file).
    """

    log = Logger()

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
        restrictIPs: bool = True,
        restrictSearchSubnets: bool | None = None,
        relaxLocal: bool = False,
        enforceNodeId: bool = False,
        ipRateLimit: float = ratelimit.DEFAULT_IP_RATE,
        uploadLimit: float = ratelimit.DEFAULT_UPLOAD_LIMIT,
        queryRateLimit: float = ratelimit.DEFAULT_QUERY_RATE,
        amplification: float = AMPLIFICATION,
        outgoingQueryRate: float = ratelimit.DEFAULT_OUTGOING_QUERY_RATE,
        maxQueuedQueries: int = 1000,
        peerStore: IPeerStore | None = None,
        tokenStore: TokenStore | None = None,
        maxPeersPerInfoHash: int = 100,
        maxInfoHashes: int = 10000,
        itemStore: IItemStore | None = None,
        maxItems: int = MAX_ITEMS,
        version: bytes | None = krpc.VERSION,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as globalReactor

            reactor = globalReactor  # type: ignore[assignment]
        assert reactor is not None
        self.reactor = reactor
        self.identity = Identity(nodeId)
        self.relaxLocal = relaxLocal
        self.policy = AdmissionPolicy(
            reactor=reactor,
            ipRateLimit=ipRateLimit,
            queryRateLimit=queryRateLimit,
            uploadLimit=uploadLimit,
            amplification=amplification,
            readOnly=readOnly,
            relaxLocal=relaxLocal,
            isResponder=self._isResponder,
        )
        self.peerStore: IPeerStore = (
            peerStore
            if peerStore is not None
            else PeerStore(
                maxPeersPerInfoHash=maxPeersPerInfoHash,
                maxInfoHashes=maxInfoHashes,
                reactor=reactor,
            )
        )
        self.tokenStore = tokenStore if tokenStore is not None else TokenStore()
        self.controller = Controller(self.policy, [], self.tableFor, reactor=reactor)
        admit = _compliant if enforceNodeId else None

        def family(ipv6: bool) -> NodeFamily:
            table = RoutingTable(
                self.identity.nodeId,
                k=K,
                admit=admit,
                restrictIPs=restrictIPs,
                relaxLocal=relaxLocal,
                reactor=reactor,
            )
            self.identity.onChange(table.setOwnId)
            protocol = KRPCProtocol(self.controller, reactor=reactor, version=version)
            return NodeFamily(ipv6, protocol, table, IPVoter(reactor=reactor))

        self.ipv4 = family(False)
        self.ipv6 = family(True)
        self.handlers = QueryHandlers(
            self.identity,
            self.ipv4.table,
            self.ipv6.table,
            self.tokenStore,
            self.peerStore,
            self.policy,
            reactor=reactor,
        )
        self.itemStore: IItemStore = itemStore or ItemStore(
            lambda: self.identity.nodeId, reactor=reactor, maxItems=maxItems
        )
        self.controller.addHandlers(self.handlers)
        self.controller.addHandlers(
            ItemHandlers(
                self.identity,
                self.tokenStore,
                self.itemStore,
                self.policy,
                self.handlers.withNodes,
            )
        )
        self.sender = QuerySender(
            self.identity,
            self.ipv4,
            self.ipv6,
            reactor=reactor,
            timeout=queryTimeout,
            outgoingQueryRate=outgoingQueryRate,
            maxQueued=maxQueuedQueries,
        )
        self.controller.verify = self._verify
        self.search = Search(
            self.identity,
            self.sender,
            {},
            reactor=reactor,
            alpha=alpha,
            queryTimeout=queryTimeout,
            shortTimeout=shortTimeout,
            restrictSubnets=(
                not relaxLocal if restrictSearchSubnets is None else restrictSearchSubnets
            ),
            relaxLocal=relaxLocal,
            eligible=_compliant,
            announceInterval=announceInterval,
        )
        self.items = ItemClient(self.search)
        """BEP 44 get and put (see L{ItemClient})."""
        self.sampler = Sampler(self.sender.send, self._contacts, reactor=reactor)
        self.joiner = Joiner(self.sender, self.search, reactor=reactor, routers=routers)
        self.maintenance = Maintenance(
            self.sender,
            self.search,
            self.joiner,
            reactor=reactor,
            interval=maintenanceInterval,
            refreshInterval=refreshInterval,
        )
        self._loops = [
            Periodic(self.tokenStore.rotate, self.tokenStore.interval, reactor, "Token rotation"),
            Periodic(self.peerStore.removeExpired, EXPIRY_INTERVAL, reactor, "Peer expiry"),
            Periodic(self.itemStore.removeExpired, EXPIRY_INTERVAL, reactor, "Item expiry"),
        ]
        self.idChanged: list[Callable[[bytes], object]] = []
        self.identity.onChange(self._idChanged)
        self.running = False
        self.startedAt: float | None = None
        """When L{start} was last called (reactor time)."""

    # Wiring ------------------------------------------------------------------

    def tableFor(self, address: Address) -> RoutingTable:
        """The routing table of C{address}'s family."""
        return self.ipv6.table if ":" in address[0] else self.ipv4.table  # isIPv6, inlined

    def familyFor(self, address: Address) -> NodeFamily:
        """The family of C{address}."""
        return self.ipv6 if isIPv6(address[0]) else self.ipv4

    def families(self) -> list[NodeFamily]:
        """The families bound to a socket, IPv4 first."""
        return self.sender.families()

    def _contacts(self) -> list[tuple[bytes, Address]]:
        """Every contact of the bound families' tables."""
        return [(c.nodeId, c.address) for f in self.families() for c in f.table.contacts()]

    def _isResponder(self, address: Address) -> bool:
        contact = self.tableFor(address).get(address)
        return contact is not None and contact.lastResponse is not None

    def _verify(self, address: Address) -> None:
        """Ping a querier that just became a contact, to confirm it (once it was answered)."""
        if self.running:
            self.sender.ping(address).addErrback(lambda _: None)

    def _idChanged(self, nodeId: bytes) -> None:
        for callback in list(self.idChanged):
            try:
                callback(nodeId)
            except Exception:
                self.log.failure("An idChanged callback failed")

    @property
    def nodeId(self) -> bytes:
        """Our node id (change it with L{setNodeId})."""
        return self.identity.nodeId

    def setNodeId(self, nodeId: bytes) -> None:
        """Adopt C{nodeId}: the routing tables rebuild around it, then L{idChanged} runs."""
        self.identity.set(nodeId)

    def listen(
        self,
        port: int = 6881,
        interface: str = "",
        interface6: str | None = "::",
        reactor: IReactorUDP | None = None,
    ) -> list[IListeningPort]:
        """Bind the IPv4 socket, then an IPv6-only socket on the same port (unless
        C{interface6} is None); the IPv6 one is skipped, with a warning, if it cannot be
        bound. C{port} 0 picks a free port (the same for both).

        @raise CannotListenError: when the IPv4 socket cannot be bound.
        """
        udp = reactor if reactor is not None else self.reactor
        ports = [
            IReactorUDP(udp).listenUDP(
                port, self.ipv4.protocol, interface=interface, maxPacketSize=MAX_PACKET_SIZE
            )
        ]
        if interface6 is not None:
            bound = ports[0].getHost().port  # type: ignore[attr-defined]
            try:
                ports.append(listenUDP6(udp, bound, self.ipv6.protocol, interface6))
            except CannotListenError as e:
                self.log.warn(
                    "IPv6 disabled: cannot bind UDP [{interface}]:{port}: {error}",
                    interface=interface6,
                    port=bound,
                    error=e.socketError,
                )
        return ports

    # Lifecycle -----------------------------------------------------------------

    def start(self, bootstrap: bool = True) -> None:
        """Start token rotation, peer expiry, table maintenance and (by default) joining.

        Without C{bootstrap}, the node waits to be contacted; it rejoins through its
        contacts or known nodes only once they all went bad (see L{Joiner}).
        """
        if self.running:
            return
        self.running = True
        self.startedAt = self.reactor.seconds()
        self.sender.start()
        for loop in self._loops:
            loop.start()
        self.joiner.start(joinNow=bootstrap)
        self.maintenance.start()

    def stop(self) -> None:
        """Stop every loop and timer and cancel every pending lookup and query."""
        if not self.running:
            return
        self.running = False
        for loop in self._loops:
            loop.stop()
        self.maintenance.stop()
        self.joiner.stop()
        self.items.stop()
        self.search.stop()
        self.sampler.stop()
        self.sender.stop()

    # Public API ----------------------------------------------------------------

    @property
    def routers(self) -> list[Address]:
        """The bootstrap routers."""
        return self.joiner.routers

    @routers.setter
    def routers(self, routers: Sequence[Address]) -> None:
        self.joiner.routers = list(routers)

    @property
    def knownNodes(self) -> list[Address]:
        """Addresses to try before the routers (e.g. from the state file)."""
        return self.joiner.knownNodes

    @knownNodes.setter
    def knownNodes(self, addresses: Iterable[Address]) -> None:
        self.joiner.knownNodes = list(addresses)

    @property
    def routerNodes(self) -> dict[Address, bytes]:
        """Routers that answered, with their ids: lookup seeds, never table entries."""
        return self.search.routerNodes

    def sendQuery(
        self, address: Address, method: bytes, args: dict[bytes, Any], timeout: float | None = None
    ) -> Deferred[Response]:
        """Send one query with our id (see L{QuerySender.send})."""
        return self.sender.send(address, method, args, timeout)

    def ping(self, address: Address) -> Deferred[bytes]:
        """Ping C{address}; fires with its node id. The node enters the routing table."""
        return self.sender.ping(address)

    def bootstrap(self, addresses: Sequence[Address] | None = None) -> Deferred[BootstrapResult]:
        """Join the DHT through C{addresses} (default: known nodes, then the routers)."""
        return self.joiner.bootstrap(addresses)

    def lookup(
        self,
        target: bytes,
        method: bytes,
        ipv6: bool,
        onPeer: Callable[[Address], object] | None = None,
        seeds: Iterable[tuple[bytes, Address]] = (),
    ) -> Deferred[LookupResult]:
        """One iterative lookup over one family, seeded from the table (and C{seeds})."""
        return self.search.lookup(target, method, self.ipv6 if ipv6 else self.ipv4, onPeer, seeds)

    def findNode(self, target: bytes) -> Deferred[list[tuple[bytes, Address]]]:
        """The K closest live nodes to C{target} found by an iterative lookup (both families)."""
        return self.search.findNode(target)

    def getPeers(
        self, infoHash: bytes, onPeer: Callable[[Address], object] | None = None
    ) -> Deferred[list[Address]]:
        """Peers of C{infoHash}, de-duplicated; C{onPeer} gets each one as it arrives."""
        return self.search.getPeers(infoHash, onPeer)

    def announce(
        self,
        infoHash: bytes,
        port: int | None = None,
        impliedPort: bool = False,
        seed: bool = False,
    ) -> Deferred[int]:
        """Announce that we are a peer of C{infoHash} (see L{Search.announce})."""
        return self.search.announce(infoHash, port, impliedPort, seed)

    def scrape(self, infoHash: bytes) -> Deferred[ScrapeResult]:
        """BEP 33: estimate the seeds and peers of C{infoHash} (see L{twisted_dht.scrape})."""
        return scrape(self.search, infoHash)

    def sampleInfoHashes(
        self, address: Address, target: bytes | None = None
    ) -> Deferred[SampleReply]:
        """BEP 51: one sample_infohashes query to C{address} (a random C{target} if None)."""
        return self.sampler.sample(address, target)

    def walkSamples(
        self, onSample: Callable[[bytes, Address], object] | None = None, **budget: Any
    ) -> Deferred[WalkResult]:
        """BEP 51: collect the info_hashes nodes store with a polite walk of the keyspace,
        from our contacts; C{onSample(infoHash, source)} as each arrives. C{budget}: the
        keyword arguments of L{twisted_dht.sampling.SampleWalk} (C{rate}, C{maxQueries},
        C{duration}, C{maxInfoHashes}, ...)."""
        return self.sampler.walk(onSample, **budget)

    def keepAnnounced(
        self, infoHash: bytes, port: int | None = None, seed: bool = False
    ) -> Deferred[int]:
        """Announce now and again every 15-30 minutes until L{stopAnnouncing}."""
        return self.search.keepAnnounced(infoHash, port, seed)

    def stopAnnouncing(self, infoHash: bytes) -> None:
        """Stop re-announcing C{infoHash}."""
        self.search.stopAnnouncing(infoHash)

    def announcing(self) -> list[bytes]:
        """The info_hashes kept announced."""
        return self.search.announcing()

    def get(self, target: bytes | None = None, **options: Any) -> Deferred[GetResult]:
        """BEP 44 get (see L{ItemClient.get}: C{publicKey}, C{salt}, C{seq})."""
        return self.items.get(target, **options)

    def put(
        self, value: Any, key: SigningKey | None = None, **options: Any
    ) -> Deferred[PutResult]:
        """BEP 44 put (see L{ItemClient.put}: C{salt}, C{seq}, C{cas})."""
        return self.items.put(value, key, **options)

    def goodCount(self) -> int:
        """Good nodes in both routing tables."""
        return self.joiner.goodCount()

    @property
    def queuedQueries(self) -> int:
        """How many of our queries wait for the outgoing query rate."""
        return self.sender.queued

    # Statistics ----------------------------------------------------------------

    def stats(self) -> NodeStats:
        """A snapshot of every counter and reading (see L{NodeStats})."""
        return NodeStats.of(self)


def _compliant(nodeId: bytes, address: Address) -> bool:
    """Whether C{nodeId} is valid for C{address} under BEP 42 (local ranges exempt)."""
    return bep42.verifyId(nodeId, address[0])
