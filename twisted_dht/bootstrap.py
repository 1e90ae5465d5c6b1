"""Joiner: joining the DHT through known nodes and routers, and rejoining after an outage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorPluggableNameResolver, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from . import krpc
from .addresses import Address, isIPLiteral, isIPv6
from .contacts import NodeState
from .deferreds import settle
from .errors import MalformedMessage
from .family import NodeFamily
from .handlers import K
from .lookup import FIND_NODE
from .resolve import resolveHost
from .search import Search
from .sender import QuerySender

DEFAULT_ROUTERS: tuple[Address, ...] = (
    ("router.bittorrent.com", 6881),
    ("router.utorrent.com", 6881),
    ("dht.transmissionbt.com", 6881),
    ("dht.libtorrent.org", 25401),
)
"""Public bootstrap routers: queried to join, never inserted into the routing table."""

FIRST_RETRY = 5.0
"""Seconds before the first retry of a join that found no node; doubled on each retry."""

MAX_RETRY = 300.0
"""The longest wait between two joins that find no node."""


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


class Joiner:
    """Joins the DHT: pings the known nodes, asks the routers for nodes near our id, looks
    up our own id, and refreshes the buckets that are not full.

    L{keepJoining} retries with capped exponential backoff while no node answers, but
    only while there is something to join through: routers, known nodes, or a contact
    (a node that queried us). With none of them (C{--no-bootstrap} and no saved state),
    it waits quietly.

    @ivar knownNodes: addresses to ping before asking the routers (e.g. saved nodes).
    @ivar routerNodes: the routers that answered, with their ids (lookup seeds only).
    """

    log = Logger()

    def __init__(
        self,
        sender: QuerySender,
        search: Search,
        *,
        reactor: IReactorTime,
        routers: Sequence[Address] = DEFAULT_ROUTERS,
    ) -> None:
        self.sender = sender
        self.search = search
        self.clock = reactor
        self.routers = list(routers)
        self.knownNodes: list[Address] = []
        self.routerNodes = search.routerNodes
        self.joining = False
        self._running = False
        self._retry: IDelayedCall | None = None
        self._delay = 0.0
        self._current: Deferred[BootstrapResult] | None = None

    # One join ------------------------------------------------------------------

    def bootstrap(self, addresses: Sequence[Address] | None = None) -> Deferred[BootstrapResult]:
        """Join through C{addresses} (default: the known nodes, then the routers).

        Routers are asked for nodes near our id and never enter the routing table.
        Cancelling the Deferred stops the join and fails it with L{CancelledError}.
        """
        return Deferred.fromCoroutine(self._bootstrap(addresses))

    async def _bootstrap(self, addresses: Sequence[Address] | None) -> BootstrapResult:
        if addresses is None:
            if self.knownNodes:
                await settle([self.sender.ping(address) for address in self.knownNodes])
            addresses = self.routers if self.goodCount() < K else []
        resolved = await self._resolve(addresses)
        answered = await self._askRouters(resolved)
        seeds = [node for reply in answered for node in reply]
        for family in self.sender.families():
            ours = [node for node in seeds if isIPv6(node[1][0]) == family.ipv6]
            await self.search.lookup(self.sender.identity.nodeId, FIND_NODE, family, seeds=ours)
            await self._refreshBuckets(family)
        return BootstrapResult(self.goodCount(), len(answered), len(resolved))

    async def _resolve(self, addresses: Sequence[Address]) -> list[Address]:
        """IP literals as they are; names resolved to all their IPv4 and IPv6 addresses."""
        resolved: list[Address] = []
        for host, port in addresses:
            if isIPLiteral(host):
                resolved.append((host, port))
                continue
            if not IReactorPluggableNameResolver.providedBy(self.clock):
                self.log.warn("Cannot resolve {host} with this reactor", host=host)
                continue
            found = await resolveHost(self.clock, host, port)  # type: ignore[arg-type]
            resolved.extend(a for a in found if a not in resolved)
        return resolved

    async def _askRouters(self, routers: list[Address]) -> list[list[tuple[bytes, Address]]]:
        """Ask each router for nodes near our id; remember the routers that answered."""
        args: dict[bytes, Any] = {b"target": self.sender.identity.nodeId}
        if len(self.sender.families()) == 2:
            args[b"want"] = [b"n4", b"n6"]
        asked = [a for a in routers if self.sender.familyFor(a).listening]
        outcomes = await settle(
            [self.sender.send(address, b"find_node", args) for address in asked]
        )
        answered = []
        for address, (ok, response) in zip(asked, outcomes, strict=True):
            if not ok:
                continue
            try:
                nodes = krpc.responseNodes(response) + krpc.responseNodes(response, True)
            except MalformedMessage:
                continue
            self.routerNodes[address] = response.nodeId
            answered.append(nodes)
        return answered

    async def _refreshBuckets(self, family: NodeFamily) -> None:
        buckets = [b for b in family.table.buckets() if len(b.contacts) < K]
        await settle([self.search.lookup(b.randomId(), FIND_NODE, family) for b in buckets])

    def goodCount(self) -> int:
        """Good nodes in both routing tables."""
        return self.sender.ipv4.table.goodCount() + self.sender.ipv6.table.goodCount()

    # Keeping joined ------------------------------------------------------------

    def start(self, joinNow: bool = True) -> None:
        """Join now (unless C{joinNow} is false: then only L{rejoinIfLost} joins), and
        again with backoff while no node answers (see the class)."""
        self._running = True
        self._delay = 0.0
        if joinNow:
            self.keepJoining()

    def stop(self) -> None:
        """Cancel the join in progress and any retry."""
        self._running = False
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self._current is not None:
            self._current.cancel()

    def canJoin(self) -> bool:
        """Whether there is anything to join through: routers, known nodes or contacts."""
        return bool(
            self.routers
            or self.knownNodes
            or len(self.sender.ipv4.table)
            or len(self.sender.ipv6.table)
        )

    def rejoinIfLost(self) -> None:
        """Join again when no contact is left alive, unless a join is under way."""
        if self._running and self._retry is None and not self.joining and not self._anyAlive():
            self._delay = 0.0
            self.keepJoining()

    def _anyAlive(self) -> bool:
        now = self.clock.seconds()
        return any(
            contact.state(now) is not NodeState.BAD
            for family in (self.sender.ipv4, self.sender.ipv6)
            for contact in family.table.contacts()
        )

    def keepJoining(self) -> None:
        """Join; while no node answers, retry with capped exponential backoff."""
        self._retry = None
        if not self._running or self.joining or not self.canJoin():
            return
        self.joining = True
        self._current = self.bootstrap()
        self._current.addCallbacks(self._joined, self._failed)

    def _joined(self, result: BootstrapResult) -> None:
        self.joining = False
        self._current = None
        if result.success:
            self.log.info(
                "Bootstrap done: {good} good nodes ({routers} routers answered)",
                good=result.goodNodes,
                routers=result.routersAnswered,
            )
            self._delay = 0.0
            return
        if self._delay == 0.0:  # one line per outage, not one per retry
            self.log.warn(
                "Bootstrap failed: no DHT node answered ({resolved} router addresses "
                "resolved); serving queries and retrying with backoff (5 s doubling "
                "to 5 min)",
                resolved=result.routersResolved,
            )
        self._retryLater()

    def _failed(self, failure: Failure) -> None:
        self.joining = False
        self._current = None
        if self._running:
            self.log.failure("Bootstrap failed", failure)
            self._retryLater()

    def _retryLater(self) -> None:
        self._delay = min(max(FIRST_RETRY, self._delay * 2), MAX_RETRY)
        if self._running:
            self._retry = self.clock.callLater(self._delay, self.keepJoining)
