"""Prometheus metrics: a collector that reads L{NodeStats} at scrape time, a private
registry, and the C{/metrics} resource.

Needs C{prometheus_client} (the C{metrics} extra: C{pip install 'twisted_dht[metrics]'}).
Names follow libtorrent's DHT counters (C{dht_messages_in}, C{dht_nodes}, ...) as
C{twisted_dht_*}; every label has a bounded set of values (directions, methods we know,
error codes we know, drop reasons, families, states, bucket depths).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from twisted.web.resource import Resource
from twisted.web.server import Request

from .stats import NodeStats, TableStats

PREFIX = "twisted_dht_"

METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("messages_total", "counter", "direction", "UDP datagrams received (in) and sent (out)"),
    ("bytes_total", "counter", "direction", "UDP payload bytes received and sent"),
    ("queries_total", "counter", "direction, method", "KRPC queries received and sent"),
    ("responses_total", "counter", "direction", "KRPC responses received and sent"),
    ("errors_total", "counter", "direction, code", "KRPC error replies received and sent"),
    ("invalid_queries_total", "counter", "method", "queries answered with error 203"),
    ("dropped_total", "counter", "reason", "datagrams, queries or replies dropped"),
    ("timeouts_total", "counter", "", "our queries that got no reply in time"),
    ("send_errors_total", "counter", "", "datagrams the socket refused to send"),
    ("unknown_transactions_total", "counter", "", "replies that matched none of our queries"),
    ("ips_blocked_total", "counter", "", "times the per-IP flood blocker started ignoring an IP"),
    ("lookups_started_total", "counter", "", "iterative lookups started"),
    ("lookups_succeeded_total", "counter", "", "lookups that heard from at least one node"),
    ("round_trip_seconds", "histogram", "", "seconds from our query to its reply"),
    ("lookups_active", "gauge", "", "lookups running now"),
    ("pending_queries", "gauge", "", "our queries sent and waiting for a reply"),
    ("queued_queries", "gauge", "", "our queries waiting for the outgoing query rate"),
    ("announcing", "gauge", "", "info_hashes kept announced"),
    ("info_hashes", "gauge", "", "info_hashes stored (libtorrent: dht_torrents)"),
    ("peers", "gauge", "", "peers stored, over all info_hashes"),
    ("nodes", "gauge", "family, state", "routing-table contacts (good, questionable, bad)"),
    ("node_cache", "gauge", "family", "replacement-cache entries"),
    ("buckets", "gauge", "family", "routing-table buckets"),
    ("bucket_nodes", "gauge", "family, depth", "contacts in the buckets of this depth"),
    ("bucket_cache", "gauge", "family, depth", "replacement-cache entries at this depth"),
    ("external_ip_info", "gauge", "ip", "1, labelled with the voted external IP (BEP 42)"),
    ("node_id_valid", "gauge", "", "1 if our id is BEP 42-valid for the external IP, else 0"),
    ("uptime_seconds", "gauge", "", "seconds since the node started"),
)
"""(name without the prefix, type, labels, meaning) of every metric; the collector's
documentation strings and the README's table come from here."""

_HELP = {
    name.removesuffix("_total"): meaning[0].upper() + meaning[1:] + "."
    for name, _, _, meaning in METRICS
}

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The classic text format, which C{generate_latest} writes and every Prometheus reads."""

FAMILIES = ("ipv4", "ipv6")


def _counter(name: str, labels: list[str] | None = None) -> CounterMetricFamily:
    return CounterMetricFamily(PREFIX + name, _HELP[name], labels=labels)


def _gauge(
    name: str, labels: list[str] | None = None, value: float | None = None
) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, _HELP[name], value=value, labels=labels)


def _directions(name: str, inbound: int, outbound: int, label: str = "direction") -> Metric:
    metric = _counter(name, [label])
    metric.add_metric(["in"], inbound)
    metric.add_metric(["out"], outbound)
    return metric


def _byKey(name: str, labels: list[str], series: list[tuple[list[str], dict[str, int]]]) -> Metric:
    """One counter with the keys of each mapping as the last label."""
    metric = _counter(name, labels)
    for prefix, counts in series:
        for key in sorted(counts):
            metric.add_metric([*prefix, key], counts[key])
    return metric


def _byDepth(table: TableStats) -> tuple[Counter[int], Counter[int]]:
    """Contacts and cache entries summed per depth (the two deepest buckets share one)."""
    nodes: Counter[int] = Counter()
    cached: Counter[int] = Counter()
    for bucket in table.buckets:
        nodes[bucket.depth] += bucket.good + bucket.questionable + bucket.bad
        cached[bucket.depth] += bucket.cached
    return nodes, cached


class NodeCollector(Collector):
    """Yields the node's metrics from one L{NodeStats} read at each scrape.

    @param stats: gives the stats now, or None while there is no node (nothing is yielded).
    """

    def __init__(self, stats: Callable[[], NodeStats | None]) -> None:
        self.stats = stats

    def describe(self) -> list[Metric]:
        """Nothing: registering must not read the node (and names never clash here)."""
        return []

    def collect(self) -> Iterator[Metric]:
        stats = self.stats()
        if stats is None:
            return
        yield from self._traffic(stats)
        yield self._roundTrips(stats)
        yield from self._readings(stats)
        yield from self._tables(stats)
        yield from self._identity(stats)

    def _traffic(self, s: NodeStats) -> Iterator[Metric]:
        yield _directions("messages", s.datagramsIn, s.datagramsOut)
        yield _directions("bytes", s.bytesIn, s.bytesOut)
        yield _byKey(
            "queries",
            ["direction", "method"],
            [(["in"], dict(s.queriesIn)), (["out"], dict(s.queriesOut))],
        )
        yield _directions("responses", s.responsesReceived, s.responsesSent)
        yield _byKey(
            "errors",
            ["direction", "code"],
            [(["in"], dict(s.errorsReceived)), (["out"], dict(s.errorsSent))],
        )
        yield _byKey("invalid_queries", ["method"], [([], dict(s.invalidQueries))])
        yield _byKey("dropped", ["reason"], [([], dict(s.drops))])
        for name, value in (
            ("timeouts", s.timeouts),
            ("send_errors", s.sendErrors),
            ("unknown_transactions", s.unknownTransactions),
            ("ips_blocked", s.ipsBlocked),
            ("lookups_started", s.lookupsStarted),
            ("lookups_succeeded", s.lookupsSucceeded),
        ):
            metric = _counter(name)
            metric.add_metric([], value)
            yield metric

    def _roundTrips(self, s: NodeStats) -> Metric:
        histogram = s.roundTrips
        buckets: list[tuple[str, float]] = []
        total = 0
        for bound, count in zip(histogram.bounds, histogram.counts, strict=False):
            total += count
            buckets.append((str(bound), total))
        buckets.append(("+Inf", histogram.count))
        metric = HistogramMetricFamily(PREFIX + "round_trip_seconds", _HELP["round_trip_seconds"])
        metric.add_metric([], buckets, histogram.sum)
        return metric

    def _readings(self, s: NodeStats) -> Iterator[Metric]:
        for name, value in (
            ("lookups_active", s.lookupsActive),
            ("pending_queries", s.pendingQueries),
            ("queued_queries", s.queuedQueries),
            ("announcing", s.announcing),
            ("info_hashes", s.infoHashes),
            ("peers", s.peers),
            ("uptime_seconds", s.uptime),
        ):
            yield _gauge(name, value=value)

    def _tables(self, s: NodeStats) -> Iterator[Metric]:
        nodes = _gauge("nodes", ["family", "state"])
        cache = _gauge("node_cache", ["family"])
        buckets = _gauge("buckets", ["family"])
        bucketNodes = _gauge("bucket_nodes", ["family", "depth"])
        bucketCache = _gauge("bucket_cache", ["family", "depth"])
        for family in FAMILIES:
            table: TableStats = getattr(s, family)
            for state in ("good", "questionable", "bad"):
                nodes.add_metric([family, state], getattr(table, state))
            cache.add_metric([family], table.cached)
            buckets.add_metric([family], len(table.buckets))
            byDepth, cachedByDepth = _byDepth(table)
            for depth in sorted(byDepth):
                bucketNodes.add_metric([family, str(depth)], byDepth[depth])
                bucketCache.add_metric([family, str(depth)], cachedByDepth[depth])
        yield from (nodes, cache, buckets, bucketNodes, bucketCache)

    def _identity(self, s: NodeStats) -> Iterator[Metric]:
        if s.externalIP is not None:
            info = _gauge("external_ip_info", ["ip"])
            info.add_metric([s.externalIP], 1)
            yield info
        if s.idValidForIP is not None:
            yield _gauge("node_id_valid", value=int(s.idValidForIP))


def metricsRegistry(
    stats: Callable[[], NodeStats | None], process: bool = True
) -> CollectorRegistry:
    """A private registry with a L{NodeCollector} (and the process's CPU and memory
    metrics, C{process_*}, when C{process} is true and the platform has them)."""
    registry = CollectorRegistry()
    registry.register(NodeCollector(stats))
    if process:
        ProcessCollector(registry=registry)
    return registry


class MetricsResource(Resource):
    """C{/metrics}: C{registry} in the Prometheus text format, rendered on the reactor
    thread (no thread pool, unlike C{prometheus_client.twisted.MetricsResource})."""

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.registry = registry

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", CONTENT_TYPE.encode("ascii"))
        return generate_latest(self.registry)


__all__ = ["METRICS", "MetricsResource", "NodeCollector", "metricsRegistry"]
