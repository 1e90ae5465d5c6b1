"""BEP 51 sampling, the client side: one C{sample_infohashes} query, and a polite walk of
the keyspace that collects the info_hashes nodes store.

Indexers and crawlers are known to ignore the C{interval} a node asks for (bitmagnet
re-asks after 60 s where nodes ask for 6 hours). L{SampleWalk} is the polite reference:

  - it never asks a node (an IP: every port of it counts as one node) again before the
    C{interval} that node gave, nor before C{minInterval}; a node that timed out, gave an
    error or answered without C{samples} (no BEP 51) is not asked again in the walk;
  - it sends at most C{rate} queries per second, and stops at its budgets: C{maxQueries}
    queries, C{duration} seconds, C{maxInfoHashes} distinct info_hashes found;
  - it spreads its queries over the keyspace: the targets go through the 256 id prefixes
    in bit-reversed order (0x00, 0x80, 0x40, 0xc0, ...), each query going to a known node
    next to its target (of the two around it in id order, the XOR-nearer) that may be
    asked, and the nodes of each reply joining the nodes known (at most C{maxNodes}).

The walk reports every distinct info_hash once, as it arrives, with the node that
sampled it. It takes the send function and the seed contacts it is given, and owns
nothing else; L{Sampler} is what a node keeps to run its walks.
"""

from __future__ import annotations

import heapq
import random
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from . import krpc
from .addresses import Address, isIPv6
from .errors import MalformedMessage
from .interfaces import SendQuery
from .krpc import Response
from .nodeid import ID_LENGTH, randomId

MAX_INTERVAL = 21600
"""BEP 51: the largest C{interval} a node may ask for (6 hours)."""

MIN_INTERVAL = 60.0
"""The least time a walk waits before asking a node again, whatever it asked for."""

DEFAULT_RATE = 5.0
"""Queries per second a walk sends by default."""

MAX_NODES = 10000
"""Nodes a walk remembers by default (asked, waiting or not yet asked)."""

_PREFIXES = [int(f"{i:08b}"[::-1], 2) for i in range(256)]
"""The 256 id prefixes in bit-reversed order: each next target is far from the last ones."""

_log = Logger()


@dataclass(frozen=True)
class SampleReply:
    """A node's answer to C{sample_infohashes} (BEP 51)."""

    nodeId: bytes
    address: Address
    interval: int
    """Seconds before the node may be asked again (0 to 21,600)."""
    num: int | None
    """How many info_hashes the node stores, when it said."""
    samples: list[bytes]
    """Some of the info_hashes it stores, 20 bytes each."""
    nodes: list[tuple[bytes, Address]]
    """The nodes it knows closest to the target, of its own address family."""


def parseSampleReply(address: Address, response: Response) -> SampleReply:
    """Read a C{sample_infohashes} reply from C{address}.

    @raise MalformedMessage: when C{samples} is missing (the node has no BEP 51) or any
        field is malformed.
    """
    values = response.values
    samples = values.get(b"samples")
    if not isinstance(samples, bytes) or len(samples) % ID_LENGTH:
        raise MalformedMessage("samples is missing or not a string of 20-byte info_hashes")
    interval = values.get(b"interval", 0)
    num = values.get(b"num")
    if not isinstance(interval, int) or (num is not None and not isinstance(num, int)):
        raise MalformedMessage("interval and num must be integers")
    return SampleReply(
        nodeId=response.nodeId,
        address=address,
        interval=min(max(interval, 0), MAX_INTERVAL),
        num=num,
        samples=[samples[i : i + ID_LENGTH] for i in range(0, len(samples), ID_LENGTH)],
        nodes=krpc.responseNodes(response, isIPv6(address[0])),
    )


def sampleInfoHashes(
    send: SendQuery, address: Address, target: bytes | None = None
) -> Deferred[SampleReply]:
    """Send one C{sample_infohashes} query (to a random C{target} by default)."""
    target = randomId() if target is None else target
    if len(target) != ID_LENGTH:
        raise ValueError("a target is 20 bytes")
    query = send(address, b"sample_infohashes", {b"target": target}, None)
    return query.addCallback(lambda response: parseSampleReply(address, response))


@dataclass(frozen=True)
class WalkResult:
    """How a walk went."""

    queries: int
    """sample_infohashes queries sent."""
    replies: int
    """Valid BEP 51 replies received."""
    infoHashes: int
    """Distinct info_hashes found."""
    nodes: int
    """Nodes known when it ended."""
    reason: str
    """Why it ended: C{count}, C{queries}, C{time} (a budget reached) or C{exhausted}
    (nobody left to ask within the time budget)."""


class _Known:
    """A node of the walk, keyed by its IP."""

    __slots__ = ("address", "idInt", "nodeId")

    def __init__(self, nodeId: bytes, address: Address) -> None:
        self.nodeId = nodeId
        self.address = address
        self.idInt = int.from_bytes(nodeId, "big")


class SampleWalk:
    """One polite walk of the keyspace (see the module docstring); run it with L{start}.

    @param send: how queries are sent (see L{SendQuery}).
    @param seeds: the contacts to start from (the routing tables').
    @param onSample: C{onSample(infoHash, address)} for each distinct info_hash, with the
        node that sampled it first.
    @param rate: queries per second.
    @param maxQueries: stop after this many queries (None: no limit).
    @param duration: stop after this many seconds. Within it the walk waits for nodes
        whose interval ends before it; None: no limit, and the walk ends once every node
        it knows was asked (it never waits for an interval).
    @param maxInfoHashes: stop once this many distinct info_hashes were found.
    @param minInterval: the least seconds before a node is asked again.
    @param maxNodes: nodes remembered; nodes learned beyond it are ignored.
    @param rng: the source of the targets' random bits.
    """

    def __init__(
        self,
        send: SendQuery,
        seeds: Iterable[tuple[bytes, Address]],
        *,
        reactor: IReactorTime,
        onSample: Callable[[bytes, Address], object] | None = None,
        rate: float = DEFAULT_RATE,
        maxQueries: int | None = None,
        duration: float | None = None,
        maxInfoHashes: int | None = None,
        minInterval: float = MIN_INTERVAL,
        maxNodes: int = MAX_NODES,
        rng: random.Random | None = None,
    ) -> None:
        if not rate > 0:
            raise ValueError("the rate must be positive")
        self.clock = reactor
        self._send = send
        self._onSample = onSample
        self.rate = rate
        self.maxQueries = maxQueries
        self.duration = duration
        self.maxInfoHashes = maxInfoHashes
        self.minInterval = minInterval
        self.maxNodes = maxNodes
        self._rng = rng if rng is not None else random.Random()
        self._seeds = list(seeds)
        self._known: dict[str, _Known] = {}
        """Every node of the walk by IP, whatever its state."""
        self._ready: list[tuple[int, str]] = []
        """(id as an integer, IP) of the nodes that may be asked now, sorted."""
        self._waiting: list[tuple[float, str]] = []
        """A heap of (time it may be asked again, IP)."""
        self._inFlight: dict[str, Deferred[SampleReply]] = {}
        self._found: set[bytes] = set()
        self._queries = 0
        self._replies = 0
        self._prefix = self._rng.randrange(256)
        self._deadline: float | None = None
        self._timer: IDelayedCall | None = None
        self._deferred: Deferred[WalkResult] | None = None

    def start(self) -> Deferred[WalkResult]:
        """Start walking; the Deferred fires with the L{WalkResult} when a budget is
        reached or nobody is left to ask; cancelling it stops the walk (L{CancelledError})."""
        if self._deferred is not None:
            raise RuntimeError("a SampleWalk can only be started once")
        self._deferred = Deferred(lambda _: self._stop())
        if self.duration is not None:
            self._deadline = self.clock.seconds() + self.duration
        for nodeId, address in self._seeds:
            self._learn(nodeId, address)
        self._tick()
        return self._deferred

    # Nodes ----------------------------------------------------------------------

    def _learn(self, nodeId: bytes, address: Address) -> None:
        ip = address[0]
        if ip in self._known or len(self._known) >= self.maxNodes or not 0 < address[1] < 65536:
            return
        known = self._known[ip] = _Known(nodeId, address)
        insort(self._ready, (known.idInt, ip))

    def _nearestReady(self, target: int) -> str | None:
        """The IP of a node that may be asked now next to C{target}: of the two around it
        in id order, the XOR-nearer; taken out of the ready list. None when there is none."""
        self._wake()
        ready = self._ready
        if not ready:
            return None
        index = bisect_left(ready, (target, ""))
        candidates = [i for i in (index - 1, index) if 0 <= i < len(ready)]
        best = min(candidates, key=lambda i: ready[i][0] ^ target)
        return ready.pop(best)[1]

    def _wake(self) -> None:
        """Move the nodes whose wait is over back to the ready list."""
        now = self.clock.seconds()
        waiting = self._waiting
        while waiting and waiting[0][0] <= now:
            _, ip = heapq.heappop(waiting)
            insort(self._ready, (self._known[ip].idInt, ip))

    # Sending --------------------------------------------------------------------

    def _tick(self) -> None:
        """Send one query if a node may be asked, then come back in 1/rate seconds (or
        when the next node may be asked); finish at a budget or when nobody is left."""
        self._timer = None
        reason = self._budgetReached()
        if reason is not None:
            self._finish(reason)
            return
        ip = None
        mayQuery = self.maxQueries is None or self._queries < self.maxQueries
        if mayQuery:
            target = self._nextTarget()
            ip = self._nearestReady(int.from_bytes(target, "big"))
        if ip is not None:
            self._query(ip, target)
            if self._deferred is None or self._deferred.called:
                return
            delay = 1.0 / self.rate
        elif self._inFlight:
            delay = 1.0 / self.rate
        elif self._waiting and self._deadline is not None and self._waiting[0][0] < self._deadline:
            delay = max(self._waiting[0][0] - self.clock.seconds(), 1.0 / self.rate)
        else:
            self._finish("exhausted")
            return
        if self._deadline is not None:
            delay = min(delay, max(self._deadline - self.clock.seconds(), 0.0))
        self._timer = self.clock.callLater(delay, self._tick)

    def _budgetReached(self) -> str | None:
        if self.maxInfoHashes is not None and len(self._found) >= self.maxInfoHashes:
            return "count"
        if self._deadline is not None and self.clock.seconds() >= self._deadline:
            return "time"
        if self.maxQueries is not None and self._queries >= self.maxQueries and not self._inFlight:
            return "queries"
        return None

    def _nextTarget(self) -> bytes:
        self._prefix = (self._prefix + 1) % 256
        return bytes([_PREFIXES[self._prefix]]) + self._rng.randbytes(ID_LENGTH - 1)

    def _query(self, ip: str, target: bytes) -> None:
        known = self._known[ip]
        self._queries += 1
        try:
            deferred = sampleInfoHashes(self._send, known.address, target)
        except Exception:
            _log.failure("Cannot send sample_infohashes to {address}", address=known.address)
            return
        self._inFlight[ip] = deferred
        deferred.addCallbacks(
            self._gotReply, self._gotFailure, callbackArgs=(ip,), errbackArgs=(ip,)
        )

    def _gotReply(self, reply: SampleReply, ip: str) -> None:
        self._inFlight.pop(ip, None)
        self._replies += 1
        again = self.clock.seconds() + max(reply.interval, self.minInterval)
        heapq.heappush(self._waiting, (again, ip))
        for nodeId, address in reply.nodes:
            self._learn(nodeId, address)
        for infoHash in reply.samples:
            if infoHash in self._found:
                continue
            self._found.add(infoHash)
            if self._onSample is not None:
                try:
                    self._onSample(infoHash, reply.address)
                except Exception:
                    _log.failure("onSample failed on {infoHash}", infoHash=infoHash.hex())
            if self.maxInfoHashes is not None and len(self._found) >= self.maxInfoHashes:
                self._finish("count")
                return

    def _gotFailure(self, failure: Failure, ip: str) -> None:
        """A timeout, an error or a reply without samples: the node is not asked again."""
        self._inFlight.pop(ip, None)
        if not failure.check(CancelledError):
            _log.debug(
                "sample_infohashes to {ip} failed: {error}", ip=ip, error=failure.getErrorMessage()
            )

    # Ending ---------------------------------------------------------------------

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        inFlight, self._inFlight = self._inFlight, {}
        for deferred in inFlight.values():
            deferred.cancel()

    def _finish(self, reason: str) -> None:
        assert self._deferred is not None
        if self._deferred.called:
            return
        self._stop()
        self._deferred.callback(
            WalkResult(self._queries, self._replies, len(self._found), len(self._known), reason)
        )


class Sampler:
    """A node's BEP 51 client: single queries and the walks it runs, stopped with it.

    @param send: how queries are sent.
    @param contacts: the contacts a walk starts from.
    """

    def __init__(
        self,
        send: SendQuery,
        contacts: Callable[[], Iterable[tuple[bytes, Address]]],
        *,
        reactor: IReactorTime,
    ) -> None:
        self._send = send
        self._contacts = contacts
        self.clock = reactor
        self._walks: set[Deferred[WalkResult]] = set()

    def sample(self, address: Address, target: bytes | None = None) -> Deferred[SampleReply]:
        """One C{sample_infohashes} query (see L{sampleInfoHashes})."""
        return sampleInfoHashes(self._send, address, target)

    def walk(
        self, onSample: Callable[[bytes, Address], object] | None = None, **budget: Any
    ) -> Deferred[WalkResult]:
        """Start a L{SampleWalk} from the contacts (C{budget}: its keyword arguments)."""
        walk = SampleWalk(
            self._send, self._contacts(), reactor=self.clock, onSample=onSample, **budget
        )
        deferred = walk.start()
        if not deferred.called:
            self._walks.add(deferred)
            deferred.addBoth(self._forget, deferred)
        return deferred

    def _forget(self, result: object, deferred: Deferred[WalkResult]) -> object:
        self._walks.discard(deferred)
        return result

    def stop(self) -> None:
        """Cancel every walk."""
        while self._walks:
            self._walks.pop().cancel()
