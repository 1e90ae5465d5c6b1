"""DHTService: a DHT node as a Twisted service — sockets, state file, announces, stats."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

from twisted.application import internet, service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IReactorSocket, IReactorUDP
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from .addresses import formatAddress
from .krpc import Address
from .node import DEFAULT_ROUTERS, DHTNode
from .periodic import Periodic
from .state import NodeState, applyState, loadState, saveState, stateOf

SAVE_INTERVAL = 300.0
"""Seconds between two saves of the state file."""

STATS_INTERVAL = 300.0
"""Seconds between two stats log lines."""

ANNOUNCE_CHECK_INTERVAL = 2.0
"""Seconds between two checks whether the node joined, before the first announces."""

_DROP_COUNTERS = ("malformed", "unknownTransaction", "droppedReadOnly", "sendErrors")


class IPv6UDPServer(service.Service):
    """Like L{internet.UDPServer}, for an IPv6 socket with C{IPV6_V6ONLY} set.

    Linux binds C{[::]} dual-stack by default, so a plain C{listenUDP(port,
    interface="::")} fails with "address in use" next to an IPv4 socket on the same port.
    With a reactor that can adopt sockets (L{IReactorSocket}) this binds an IPv6-only
    socket instead; otherwise it falls back to C{listenUDP}.
    """

    def __init__(
        self, port: int, protocol: DatagramProtocol, interface: str, reactor: Any
    ) -> None:
        self.port = port
        self.protocol = protocol
        self.interface = interface
        self._reactor = reactor
        self._listening: IListeningPort | None = None

    def privilegedStartService(self) -> None:
        """Bind the socket (raising L{CannotListenError} when it cannot be bound)."""
        service.Service.privilegedStartService(self)
        self._listen()

    def startService(self) -> None:
        """Bind the socket unless L{privilegedStartService} did."""
        service.Service.startService(self)
        self._listen()

    def _listen(self) -> None:
        if self._listening is not None:
            return
        if not IReactorSocket.providedBy(self._reactor):
            self._listening = IReactorUDP(self._reactor).listenUDP(
                self.port, self.protocol, interface=self.interface, maxPacketSize=8192
            )
            return
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((self.interface, self.port))
            sock.setblocking(False)
            self._listening = self._reactor.adoptDatagramPort(
                sock.fileno(), socket.AF_INET6, self.protocol, 8192
            )
        except OSError as e:
            raise CannotListenError(self.interface, self.port, e) from e
        finally:
            sock.close()

    def stopService(self) -> Deferred[None]:
        """Close the socket; fires once it is closed."""
        service.Service.stopService(self)
        listening, self._listening = self._listening, None
        stopping = listening.stopListening() if listening is not None else None
        return stopping if stopping is not None else succeed(None)


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
        reactor: Any = None,
        **nodeOptions: Any,
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
        @param nodeOptions: more keyword arguments for L{DHTNode}.
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
        self.nodeOptions = nodeOptions
        self.node: DHTNode | None = None
        """The running node: built by L{startService}, kept after L{stopService}."""
        self._loaded: NodeState | None = None
        self._sockets: list[service.Service] = []
        self._loops: list[Periodic] = []
        self._lastStats: tuple[float, int, int] | None = None

    # Starting ----------------------------------------------------------------

    def privilegedStartService(self) -> None:
        """Load the state, build the node and bind its sockets (before privileges drop)."""
        self._prepare()
        service.Service.privilegedStartService(self)
        for child in self:
            if child not in self._sockets:
                child.privilegedStartService()

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

    def _prepare(self) -> None:
        """Build the node from the state file and bind its sockets, once per start."""
        if self.node is not None and self._sockets:
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

    def _bind(self, node: DHTNode) -> None:
        udp4 = internet.UDPServer(
            self.port, node.protocol4, interface=self.interface, reactor=self._reactor
        )
        try:
            udp4.privilegedStartService()
        except CannotListenError as e:
            self.log.error(
                "Cannot bind UDP port {port} on {interface}: {error}",
                port=self.port,
                interface=self.interface or "0.0.0.0",
                error=e.socketError,
            )
            raise
        self._adopt(udp4)
        if not self.ipv6:
            return
        boundPort = node.protocol4.transport.getHost().port  # type: ignore[union-attr]
        udp6 = IPv6UDPServer(boundPort, node.protocol6, self.interface6, self._reactor)
        try:
            udp6.privilegedStartService()
        except (CannotListenError, OSError) as e:
            self.log.warn(
                "IPv6 disabled: cannot bind UDP [{interface}]:{port}: {error}",
                interface=self.interface6,
                port=boundPort,
                error=getattr(e, "socketError", e),
            )
            return
        self._adopt(udp6)

    def _adopt(self, child: service.Service) -> None:
        self._sockets.append(child)
        child.setServiceParent(self)

    def _startLoop(self, function: Any, interval: float, name: str) -> None:
        loop = Periodic(function, interval, self._reactor, f"The {name} loop")
        self._loops.append(loop)
        loop.start()

    def addresses(self) -> list[Address]:
        """The addresses our sockets are bound to (IPv4 first)."""
        if self.node is None:
            return []
        bound = []
        for protocol in (self.node.protocol4, self.node.protocol6):
            if protocol.transport is not None:
                host = protocol.transport.getHost()
                bound.append((host.host, host.port))  # type: ignore[attr-defined]
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

    def currentState(self) -> NodeState | None:
        """The state to save now; a family whose table is empty keeps its loaded nodes,
        so that a start without network does not forget them."""
        if self.node is None:
            return None
        current = stateOf(self.node)
        loaded = self._loaded
        if loaded is None:
            return current
        return NodeState(
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
            sum(stats["queriesIn"].values()),
            sum(stats["queriesOut"].values()),
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
            nodes4=stats["nodes4"],
            good4=stats["goodNodes4"],
            nodes6=stats["nodes6"],
            good6=stats["goodNodes6"],
            peers=stats["peers"],
            infoHashes=stats["infoHashes"],
            rateIn=(queriesIn - last[1]) / elapsed,
            rateOut=(queriesOut - last[2]) / elapsed,
            drops=sum(stats.get(name, 0) for name in _DROP_COUNTERS),
            stats=stats,
        )

    # Stopping ----------------------------------------------------------------

    def stopService(self) -> Deferred[None]:
        """Stop the loops and the node, save the state, close the sockets.

        @return: a Deferred that fires once every child service stopped.
        """
        for loop in self._loops:
            loop.stop()
        self._loops = []
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

        def stopped(_: object) -> None:
            for child in self._sockets:
                self.removeService(child)  # type: ignore[no-untyped-call]
            self._sockets = []

        return stopping.addCallback(stopped)
