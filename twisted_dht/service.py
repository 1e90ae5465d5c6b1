"""DHTService: a DHT node as a Twisted service — sockets, state file, announces, stats."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

from twisted.application import service
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger

from . import ratelimit
from .addresses import Address, formatAddress
from .admission import AMPLIFICATION
from .bootstrap import DEFAULT_ROUTERS
from .history import HISTORY_INTERVAL, RateHistory
from .items import MAX_ITEMS
from .node import DHTNode
from .periodic import Periodic
from .state import SavedState, applyState, loadState, saveState, stateOf
from .stats import NodeStats

if TYPE_CHECKING:
    from .web import ConnectionTracker

SAVE_INTERVAL = 300.0
"""Seconds between two saves of the state file."""

STATS_INTERVAL = 300.0
"""Seconds between two stats log lines."""

ANNOUNCE_CHECK_INTERVAL = 2.0
"""Seconds between two checks whether the node joined, before the first announces."""

METRICS_EXTRA = "pip install 'twisted_dht[metrics]'"
"""How to install what C{--metrics} needs."""


def metricsAvailable() -> bool:
    """Whether C{prometheus_client} (the C{metrics} extra) is installed."""
    return find_spec("prometheus_client") is not None


class WebListenError(CannotListenError):
    """The status server's endpoint (C{--metrics}) cannot listen."""

    def __init__(self, description: str, reason: object) -> None:
        super().__init__(None, description, reason)  # type: ignore[no-untyped-call]
        self.description = description
        self.reason = reason

    def __str__(self) -> str:
        reason = getattr(self.reason, "strerror", None) or self.reason
        return f"cannot listen on {self.description} (--metrics): {reason}"


class DHTService(service.MultiService):
    """A DHT node bound to UDP (IPv4, and IPv6 when possible), with its state file.

    L{startService} loads the state file, builds the node (C{self.node}), binds the
    sockets, starts the node (which bootstraps), keeps the C{announces} announced, and
    starts saving the state and logging stats periodically. L{stopService} stops the
    node, saves the state and fires once every socket is closed.
    """

    log = Logger()

    def __init__(
        self,
        *,
        port: int = 6881,
        interface: str = "",
        interface6: str = "::",
        ipv6: bool = True,
        routers: Sequence[Address] = DEFAULT_ROUTERS,
        nodes: Sequence[Address] = (),
        bootstrap: bool = True,
        statePath: str | None = None,
        nodeId: bytes | None = None,
        announces: Sequence[tuple[bytes, int | None]] = (),
        statsInterval: float = STATS_INTERVAL,
        saveInterval: float = SAVE_INTERVAL,
        readOnly: bool = False,
        relaxLocal: bool = False,
        enforceNodeId: bool = False,
        maxPeersPerInfoHash: int = 100,
        maxInfoHashes: int = 10000,
        maxItems: int = MAX_ITEMS,
        ipRateLimit: float = ratelimit.DEFAULT_IP_RATE,
        uploadLimit: float = ratelimit.DEFAULT_UPLOAD_LIMIT,
        queryRateLimit: float = ratelimit.DEFAULT_QUERY_RATE,
        outgoingQueryRate: float = ratelimit.DEFAULT_OUTGOING_QUERY_RATE,
        amplification: float = AMPLIFICATION,
        metrics: str | None = None,
        historyInterval: float = HISTORY_INTERVAL,
        reactor: Any = None,
    ) -> None:
        """
        @param port: the UDP port of both sockets (0: any free port, the same for both).
        @param interface: the IPv4 address to bind ("" for all).
        @param interface6: the IPv6 address to bind.
        @param ipv6: whether to try binding an IPv6 socket as well.
        @param routers: bootstrap routers, asked for nodes but never put in the table.
        @param nodes: addresses of DHT nodes to ping when joining, like saved nodes.
        @param bootstrap: whether to join the DHT at start.
        @param statePath: the state file, or None for no persistence.
        @param nodeId: our node id; default: the state file's, else a random one.
        @param announces: (info_hash, port or None for the implied port) to keep announced.
        @param statsInterval: seconds between stats log lines (0: none).
        @param saveInterval: seconds between state saves (0: only on stop).
        @param readOnly: BEP 43 read-only mode.
        @param relaxLocal: let many nodes share a loopback or private IP (test networks).
        @param enforceNodeId: keep nodes whose id fails BEP 42 out of the routing tables.
        @param maxPeersPerInfoHash: peers stored per info_hash (and family).
        @param maxInfoHashes: info_hashes stored.
        @param maxItems: BEP 44 items stored of each kind (immutable, mutable).
        @param ipRateLimit: see L{DHTNode}; so are C{uploadLimit}, C{queryRateLimit},
            C{outgoingQueryRate} and C{amplification}.
        @param metrics: a Twisted server endpoint description (C{tcp:9100:interface=...})
            to serve C{/metrics}, C{/} and C{/status.json} on (needs C{prometheus_client});
            None: no status server.
        @param historyInterval: seconds between two samples of the status page's rates
            (it keeps 360 of them).
        """
        super().__init__()  # type: ignore[no-untyped-call]
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self._reactor = reactor
        self.port = port
        self.interface = interface
        self.interface6 = interface6
        self.ipv6 = ipv6
        self.routers = list(routers)
        self.nodes = list(nodes)
        self.bootstrap = bootstrap
        self.statePath = statePath
        self.nodeId = nodeId
        self.announces = list(announces)
        self.statsInterval = statsInterval
        self.saveInterval = saveInterval
        self.metrics = metrics
        self.nodeOptions: dict[str, Any] = {
            "readOnly": readOnly,
            "relaxLocal": relaxLocal,
            "enforceNodeId": enforceNodeId,
            "maxPeersPerInfoHash": maxPeersPerInfoHash,
            "maxInfoHashes": maxInfoHashes,
            "maxItems": maxItems,
            "ipRateLimit": ipRateLimit,
            "uploadLimit": uploadLimit,
            "queryRateLimit": queryRateLimit,
            "outgoingQueryRate": outgoingQueryRate,
            "amplification": amplification,
        }
        """The options the node is built with (see L{DHTNode})."""
        self.node: DHTNode | None = None
        """The running node: built by L{startService}, kept after L{stopService}."""
        self._loaded: SavedState | None = None
        self._ports: list[IListeningPort] = []
        self._loops: list[Periodic] = []
        self._lastStats: tuple[float, int, int] | None = None
        self.history = (
            RateHistory(self.currentStats, reactor, historyInterval)
            if metrics is not None
            else None
        )
        """The rates of the last hour shown on the status page (None without C{metrics})."""
        self._web: ConnectionTracker | None = None
        self._webPort: IListeningPort | None = None

    # Starting ----------------------------------------------------------------

    def privilegedStartService(self) -> None:
        """Load the state, build the node and bind its sockets (before privileges drop)."""
        self._prepare()
        super().privilegedStartService()  # type: ignore[no-untyped-call]

    def startService(self) -> None:
        """Bind (unless already bound), start the node, the announces and the loops.

        @raise CannotListenError: when the IPv4 socket cannot be bound.
        """
        self._prepare()
        super().startService()  # type: ignore[no-untyped-call]
        node = self.node
        assert node is not None
        node.start(bootstrap=self.bootstrap)
        self.log.info(
            "DHT node {nodeId} listening on UDP {addresses}; state file: {state}; "
            "routers: {routers}",
            nodeId=node.nodeId.hex(),
            addresses=", ".join(formatAddress(a) for a in self.addresses()),
            state=self.statePath or "(none)",
            routers=(
                ", ".join(formatAddress(r) for r in self.routers)
                if self.bootstrap and self.routers
                else "(none)"
            ),
        )
        if self.announces:
            self._startLoop(self._announceWhenJoined, ANNOUNCE_CHECK_INTERVAL, "announce")
        if self.statePath is not None and self.saveInterval > 0:
            self._startLoop(self.saveState, self.saveInterval, "state saving")
        if self.statsInterval > 0:
            self._lastStats = self._statsSample()
            self._startLoop(self.logStats, self.statsInterval, "stats")
        if self.history is not None:
            self.history.start()

    def _prepare(self) -> None:
        """Build the node from the state file and bind its sockets, once per start."""
        if self.node is not None and self._ports:
            return
        self._loaded = loadState(self.statePath) if self.statePath is not None else None
        nodeId = self.nodeId
        if nodeId is None and self._loaded is not None:
            nodeId = self._loaded.nodeId
        node = DHTNode(
            nodeId,
            reactor=self._reactor,
            routers=self.routers if self.bootstrap else [],
            **self.nodeOptions,
        )
        if self._loaded is not None:
            applyState(node, self._loaded)
        node.knownNodes = list(dict.fromkeys([*node.knownNodes, *self.nodes]))
        node.idChanged.append(lambda newId: self.saveState())
        self.node = node
        self._bind(node)
        if self.metrics is not None and self._web is None:
            try:
                self._listenWeb(self.metrics)
            except BaseException:
                self._closePorts()
                raise

    def _bind(self, node: DHTNode) -> None:
        try:
            self._ports = node.listen(
                self.port,
                self.interface,
                self.interface6 if self.ipv6 else None,
                reactor=self._reactor,
            )
        except CannotListenError as e:
            self.log.error(
                "Cannot bind UDP port {port} on {interface}: {error}",
                port=self.port,
                interface=self.interface or "0.0.0.0",
                error=e.socketError,
            )
            raise

    def _listenWeb(self, description: str) -> None:
        """Serve the status server on C{description}, or raise L{WebListenError}."""
        from .web import listenStatus

        try:
            from .metrics import MetricsResource, metricsRegistry
        except ImportError as e:
            raise ImportError(f"--metrics needs prometheus_client: {METRICS_EXTRA}") from e
        metrics = MetricsResource(metricsRegistry(self.currentStats))
        try:
            tracker, listening = listenStatus(
                self._reactor, description, self.currentStats, self.history, metrics
            )
        except Exception as e:  # endpoints that bind at once fail at once (tcp, unix, ssl)
            reason = getattr(e, "socketError", None) or e
            self.log.error(
                "Cannot listen on {endpoint} (--metrics): {error}",
                endpoint=description,
                error=reason,
            )
            raise WebListenError(description, reason) from None
        listening.addCallbacks(
            self._webListening,
            lambda f: self.log.failure("Cannot listen on {endpoint}", f, endpoint=description),
        )
        self._web = tracker

    def _webListening(self, port: IListeningPort) -> None:
        self._webPort = port
        host = port.getHost()
        self.log.info(
            "Status page, /status.json and /metrics on http://{host}:{port}/",
            host=getattr(host, "host", host),
            port=getattr(host, "port", ""),
        )

    def webAddress(self) -> Any:
        """The address the status server listens on (C{getHost()}), or None."""
        return None if self._webPort is None else self._webPort.getHost()

    def currentStats(self) -> NodeStats | None:
        """The node's stats now, or None before the node is built."""
        return None if self.node is None else self.node.stats()

    def _closePorts(self) -> list[Deferred[Any]]:
        """Close the UDP sockets and the status server (ending its connections)."""
        ports, self._ports = self._ports, []
        if self._webPort is not None:
            ports.append(self._webPort)
            self._webPort = None
        closing = []
        for port in ports:
            closed = port.stopListening()
            if closed is not None:
                closing.append(closed)
        web, self._web = self._web, None
        if web is not None:
            closing.append(web.closeAll())
        return closing

    def _startLoop(self, function: Any, interval: float, name: str) -> None:
        loop = Periodic(function, interval, self._reactor, f"The {name} loop")
        self._loops.append(loop)
        loop.start()

    def addresses(self) -> list[Address]:
        """The addresses our sockets are bound to (IPv4 first)."""
        if self.node is None:
            return []
        bound = []
        for family in self.node.families():
            host = family.protocol.transport.getHost()  # type: ignore[union-attr]
            bound.append((host.host, host.port))
        return bound

    # Running -----------------------------------------------------------------

    def _announceWhenJoined(self) -> None:
        """Start keeping the announces announced once the node knows a good node."""
        node = self.node
        if node is None or node.goodCount() == 0:
            return
        for infoHash, port in self.announces:
            node.keepAnnounced(infoHash, port).addErrback(
                lambda f, h: self.log.failure("Announcing {infoHash} failed", f, infoHash=h),
                infoHash.hex(),
            )
        for loop in self._loops:
            if loop.function == self._announceWhenJoined:
                loop.stop()

    def currentState(self) -> SavedState | None:
        """The state to save now; a family whose table is empty keeps its loaded nodes,
        so that a start without network does not forget them."""
        if self.node is None:
            return None
        current = stateOf(self.node)
        loaded = self._loaded
        if loaded is None:
            return current
        return SavedState(
            nodeId=current.nodeId,
            nodes=current.nodes or loaded.nodes,
            nodes6=current.nodes6 or loaded.nodes6,
        )

    def saveState(self) -> bool:
        """Write the state file now; a failure is logged, not raised.

        @return: whether the state file was written.
        """
        state = self.currentState()
        if self.statePath is None or state is None:
            return False
        try:
            saveState(self.statePath, state)
        except OSError as e:
            self.log.error(
                "Cannot save the state file {path}: {error}", path=self.statePath, error=e
            )
            return False
        return True

    def _statsSample(self) -> tuple[float, int, int]:
        assert self.node is not None
        stats = self.node.stats()
        return (
            self._reactor.seconds(),
            sum(stats.queriesIn.values()),
            sum(stats.queriesOut.values()),
        )

    def logStats(self) -> None:
        """Log one line: table sizes, peers stored, queries per second in and out, drops."""
        node = self.node
        if node is None:
            return
        stats = node.stats()
        now, queriesIn, queriesOut = sample = self._statsSample()
        last = self._lastStats or sample
        self._lastStats = sample
        elapsed = max(now - last[0], 1e-9)
        self.log.info(
            "DHT stats: {nodes4} IPv4 nodes ({good4} good), {nodes6} IPv6 nodes "
            "({good6} good); {peers} peers of {infoHashes} torrents stored; "
            "{rateIn:.1f} queries/s in, {rateOut:.1f} queries/s out; {drops} dropped",
            nodes4=stats.ipv4.nodes,
            good4=stats.ipv4.good,
            nodes6=stats.ipv6.nodes,
            good6=stats.ipv6.good,
            peers=stats.peers,
            infoHashes=stats.infoHashes,
            rateIn=(queriesIn - last[1]) / elapsed,
            rateOut=(queriesOut - last[2]) / elapsed,
            drops=stats.dropped,
            stats=stats.toJSON(),
        )

    # Stopping ----------------------------------------------------------------

    def stopService(self) -> Deferred[None]:
        """Stop the loops and the node, save the state, close the sockets.

        @return: a Deferred that fires once every child service stopped.
        """
        for loop in self._loops:
            loop.stop()
        self._loops = []
        if self.history is not None:
            self.history.stop()
        node = self.node
        if node is not None:
            node.stop()
            saved = self.saveState()
            self.log.info(
                "DHT node {nodeId} stopping{saved}",
                nodeId=node.nodeId.hex(),
                saved=f"; state saved to {self.statePath}" if saved else "",
            )
        stopping: Deferred[Any] = super().stopService()  # type: ignore[no-untyped-call]
        closing = [stopping, *self._closePorts()]
        return gatherResults(closing).addCallback(lambda _: None)
