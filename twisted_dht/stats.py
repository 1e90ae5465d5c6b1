"""NodeStats: one snapshot of a node's counters, the source of ``stats()``, the stats log
line, ``/metrics`` and ``/status.json``.

Counters only grow (from the node's start); everything else is a reading at the time of
the snapshot. Every mapping has bounded keys: query methods we know (others count as
``other``), KRPC error codes we know (others as ``other``), drop reasons, bucket depths.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from . import bep42
from .contacts import NodeState
from .errors import ErrorCode
from .routing import RoutingTable

if TYPE_CHECKING:
    from .node import DHTNode

ROUND_TRIP_BOUNDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Upper bounds in seconds of the round-trip histogram's buckets (and +Inf)."""

_KNOWN_CODES = frozenset(int(code) for code in ErrorCode)


def errorCodeLabel(code: int) -> str:
    """The key an error code is counted under: the code, or ``other`` if it is unknown."""
    return str(code) if code in _KNOWN_CODES else "other"


class Histogram:
    """Observations counted in buckets of upper bounds C{bounds} (plus one for the rest)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = ROUND_TRIP_BOUNDS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def snapshot(self) -> HistogramStats:
        return HistogramStats(self.bounds, tuple(self.counts), self.sum)

    @staticmethod
    def merged(histograms: Iterable[Histogram]) -> HistogramStats:
        """The sum of histograms with the same bounds."""
        histograms = list(histograms)
        counts = [sum(column) for column in zip(*(h.counts for h in histograms), strict=True)]
        return HistogramStats(histograms[0].bounds, tuple(counts), sum(h.sum for h in histograms))


@dataclass(frozen=True)
class HistogramStats:
    """A histogram's reading: C{counts[i]} observations were at most C{bounds[i]} (and
    above the previous bound); the last count is above every bound."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float

    @property
    def count(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class BucketStats:
    """One routing-table bucket: its depth (id prefix length) and its contacts by state."""

    depth: int
    good: int
    questionable: int
    bad: int
    cached: int
    """Replacement-cache entries."""


@dataclass(frozen=True)
class TableStats:
    """One family's routing table, bucket by bucket in id order."""

    buckets: tuple[BucketStats, ...]

    @property
    def nodes(self) -> int:
        return sum(b.good + b.questionable + b.bad for b in self.buckets)

    @property
    def good(self) -> int:
        return sum(b.good for b in self.buckets)

    @property
    def questionable(self) -> int:
        return sum(b.questionable for b in self.buckets)

    @property
    def bad(self) -> int:
        return sum(b.bad for b in self.buckets)

    @property
    def cached(self) -> int:
        return sum(b.cached for b in self.buckets)

    @classmethod
    def of(cls, table: RoutingTable, now: float) -> TableStats:
        buckets = []
        for bucket in table.buckets():
            states = [contact.state(now) for contact in bucket.contacts]
            buckets.append(
                BucketStats(
                    depth=bucket.depth,
                    good=states.count(NodeState.GOOD),
                    questionable=states.count(NodeState.QUESTIONABLE),
                    bad=states.count(NodeState.BAD),
                    cached=len(bucket.replacements),
                )
            )
        return cls(tuple(buckets))


@dataclass(frozen=True)
class NodeStats:
    """What a node has done since it started, and what it holds now."""

    nodeId: bytes
    externalIP: str | None
    """The address our peers' votes agree on (BEP 42), IPv4 first; None before a vote."""
    idValidForIP: bool | None
    """Whether our id is BEP 42-valid for C{externalIP} (None: no external IP yet)."""
    uptime: float
    """Seconds since the node started (0 before)."""
    ports: Mapping[str, int]
    """The bound UDP port of each family (``ipv4``, ``ipv6``)."""

    # Traffic: counters.
    datagramsIn: int
    datagramsOut: int
    bytesIn: int
    bytesOut: int
    queriesIn: Mapping[str, int]
    """Queries received, by method (unknown methods as ``other``)."""
    queriesOut: Mapping[str, int]
    """Queries sent, by method."""
    responsesSent: int
    responsesReceived: int
    errorsSent: Mapping[str, int]
    """Error replies sent, by code (see L{errorCodeLabel})."""
    errorsReceived: Mapping[str, int]
    """Error replies received to our queries, by code."""
    invalidQueries: Mapping[str, int]
    """Queries answered with a 203 protocol error, by method."""
    drops: Mapping[str, int]
    """Datagrams, queries or replies dropped, by reason: C{readOnly}, C{rateLimit} (the
    per-IP blocker), C{queryLimit} (the global query budget), C{uploadLimit},
    C{amplification}, C{malformed}, C{queryQueue} (our queries beyond the queue)."""
    timeouts: int
    """Our queries that got no reply in time."""
    sendErrors: int
    """Datagrams the socket refused to send (a local error: no route, a full buffer)."""
    unknownTransactions: int
    """Replies that matched none of our queries."""
    roundTrips: HistogramStats
    """Seconds from our query to its reply (responses and errors)."""
    ipsBlocked: int
    """Times the per-IP blocker started ignoring an IP (for 5 minutes)."""
    sampleRepeats: Mapping[str, int]
    """sample_infohashes queries from an IP answered less than the sample's interval ago
    (BEP 51): C{cached} (its first repeat, answered with the cached sample) and
    C{dropped} (later ones, not answered)."""
    lookupsStarted: int
    lookupsSucceeded: int
    """Lookups that heard from at least one node."""

    # Readings.
    lookupsActive: int
    pendingQueries: int
    """Our queries sent and waiting for a reply."""
    queuedQueries: int
    """Our queries waiting for the outgoing query rate."""
    announcing: int
    """Info_hashes kept announced."""
    infoHashes: int
    peers: int
    ipv4: TableStats
    ipv6: TableStats

    @classmethod
    def of(cls, node: DHTNode) -> NodeStats:
        """A snapshot of C{node} now."""
        now = node.reactor.seconds()
        protocols = [node.ipv4.protocol, node.ipv6.protocol]
        counters: Counter[str] = Counter()
        for protocol in protocols:
            counters.update(protocol.counters)

        def merged(attribute: str) -> dict[str, int]:
            total: Counter[str] = Counter()
            for protocol in protocols:
                for key, count in getattr(protocol, attribute).items():
                    total[key.decode("latin-1") if isinstance(key, bytes) else key] += count
            return dict(total)

        externalIP = node.ipv4.voter.external or node.ipv6.voter.external
        started = node.startedAt
        return cls(
            nodeId=node.nodeId,
            externalIP=externalIP,
            idValidForIP=None if externalIP is None else bep42.verifyId(node.nodeId, externalIP),
            uptime=0.0 if started is None else max(now - started, 0.0),
            ports={
                name: port
                for name, port in (("ipv4", node.ipv4.port), ("ipv6", node.ipv6.port))
                if port is not None
            },
            datagramsIn=counters["datagramsIn"],
            datagramsOut=counters["datagramsOut"],
            bytesIn=counters["bytesIn"],
            bytesOut=counters["bytesOut"],
            queriesIn=merged("queriesIn"),
            queriesOut=merged("queriesOut"),
            responsesSent=counters["responsesSent"],
            responsesReceived=counters["responsesReceived"],
            errorsSent=merged("errorsSent"),
            errorsReceived=merged("errorsReceived"),
            invalidQueries=merged("invalidQueries"),
            drops={
                **node.policy.counters,
                "malformed": counters["malformed"],
                "queryQueue": node.sender.pacer.dropped,
            },
            timeouts=counters["timeouts"],
            sendErrors=counters["sendErrors"],
            unknownTransactions=counters["unknownTransaction"],
            roundTrips=Histogram.merged(protocol.roundTrips for protocol in protocols),
            lookupsStarted=node.search.lookupsStarted,
            lookupsSucceeded=node.search.lookupsSucceeded,
            lookupsActive=node.search.lookupsActive,
            pendingQueries=sum(protocol.pendingCount for protocol in protocols),
            queuedQueries=node.sender.queued,
            ipsBlocked=node.policy.blocker.blocks,
            sampleRepeats=dict(node.handlers.sampleRepeats),
            announcing=len(node.search.announcing()),
            infoHashes=node.peerStore.infoHashCount(),
            peers=node.peerStore.peerCount(),
            ipv4=TableStats.of(node.ipv4.table, now),
            ipv6=TableStats.of(node.ipv6.table, now),
        )

    @property
    def dropped(self) -> int:
        """Every drop, whatever the reason."""
        return sum(self.drops.values())

    def toJSON(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (bytes as hex, nested stats as dicts)."""
        document = asdict(self)
        document["nodeId"] = self.nodeId.hex()
        for family in ("ipv4", "ipv6"):
            table: TableStats = getattr(self, family)
            document[family].update(
                nodes=table.nodes,
                good=table.good,
                questionable=table.questionable,
                bad=table.bad,
                cached=table.cached,
            )
        document["roundTrips"]["count"] = self.roundTrips.count
        for key, value in document.items():
            if isinstance(value, Mapping) and key not in ("ipv4", "ipv6", "roundTrips"):
                document[key] = dict(value)
        document["roundTrips"]["bounds"] = list(self.roundTrips.bounds)
        document["roundTrips"]["counts"] = list(self.roundTrips.counts)
        return document
