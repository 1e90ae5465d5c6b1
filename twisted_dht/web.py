"""The status server: a page for people at C{/}, C{/status.json} for scripts and, when
C{prometheus_client} is installed, C{/metrics} (see L{twisted_dht.metrics}).

The page is plain HTML with inline SVG (one bar per routing-table bucket, one small chart
per rate of the last hour), refreshed by a meta tag: no script, nothing loaded from
elsewhere (its Content-Security-Policy forbids it). Everything shown is escaped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.protocols.policies import WrappingFactory
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

from .history import RATES, RateHistory
from .stats import BucketStats, NodeStats, TableStats

REFRESH = 10
"""Seconds between two reloads of the page (the history's sampling interval)."""

_CSP = b"default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:"

_COLOURS = {"good": "#2e9d4a", "questionable": "#e5a50a", "bad": "#c01c28", "cached": "#9aa0a6"}

_STYLE = """
body{font-family:sans-serif;margin:1.5em;color:#222;max-width:1150px}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.4em;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{padding:2px 10px 2px 0;text-align:left;
vertical-align:top}td.n{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:.95em}.legend span{display:inline-block;width:.9em;height:.9em;
margin:0 .3em 0 1em;vertical-align:middle}.charts{display:flex;flex-wrap:wrap;gap:1em}
.chart{border:1px solid #ddd;padding:.4em}.muted{color:#777}footer{margin-top:2em}
.cols{display:flex;flex-wrap:wrap;gap:0 3em}.cols>div{min-width:250px}
"""


# Formatting ---------------------------------------------------------------------------


def formatDuration(seconds: float) -> str:
    """C{3725} -> C{1 h 2 min 5 s}: the two largest units (down to seconds)."""
    seconds = int(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size} {unit}")
            seconds %= size
    return " ".join(parts[:2])


def formatRate(value: float) -> str:
    """A rate with a precision that suits its size."""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _rows(rows: Sequence[tuple[str, Any]]) -> str:
    cells = []
    for name, value in rows:
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        text = f"{value:,}" if isinstance(value, int) and numeric else str(value)
        cls = ' class="n"' if numeric else ""
        cells.append(f"<tr><th>{escape(name)}</th><td{cls}>{escape(text)}</td></tr>")
    return "<table>" + "".join(cells) + "</table>"


def _counts(title: str, counts: Mapping[str, int], empty: str = "none") -> str:
    if not any(counts.values()):
        return f"<h3>{escape(title)}</h3><p class=muted>{escape(empty)}</p>"
    return f"<h3>{escape(title)}</h3>" + _rows(sorted(counts.items()))


# SVG ----------------------------------------------------------------------------------


def _bucketBar(index: int, bucket: BucketStats, x: float, width: float, scale: float) -> str:
    """One bucket: a stack of good, questionable and bad contacts, the cache above."""
    height = 150.0
    parts = [
        f'<g class="bucket" data-depth="{bucket.depth}"><title>'
        + escape(
            f"bucket {index} (depth {bucket.depth}): {bucket.good} good, "
            f"{bucket.questionable} questionable, {bucket.bad} bad, {bucket.cached} cached"
        )
        + "</title>"
    ]
    y = height
    for state in ("good", "questionable", "bad", "cached"):
        count: int = getattr(bucket, state)
        if count == 0:
            continue
        h = count * scale
        y -= h
        parts.append(
            f'<rect class="{state}" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
            f'height="{h:.1f}" fill="{_COLOURS[state]}"/>'
        )
    parts.append(
        f'<rect class="slot" x="{x:.1f}" y="0" width="{width:.1f}" height="{height}" '
        'fill="none" stroke="#eee"/>'
    )
    parts.append(
        f'<text x="{x + width / 2:.1f}" y="{height + 12}" font-size="9" '
        f'text-anchor="middle" fill="#555">{bucket.depth}</text></g>'
    )
    return "".join(parts)


def tableSVG(table: TableStats, family: str) -> str:
    """One bar per bucket (in id order), labelled with its depth."""
    buckets = table.buckets
    most = max([8, *(b.good + b.questionable + b.bad + b.cached for b in buckets)])
    scale = 150.0 / most
    slot = min(40.0, 1100.0 / max(len(buckets), 1))
    width = max(slot - 3, 1.0)
    bars = "".join(_bucketBar(i, b, i * slot, width, scale) for i, b in enumerate(buckets))
    total = len(buckets) * slot
    return (
        f'<svg class="table" data-family="{escape(family)}" xmlns="http://www.w3.org/2000/svg"'
        f' width="{max(total, 100):.0f}" height="166" role="img"'
        f' aria-label="{escape(family)} routing table, {len(buckets)} buckets">{bars}</svg>'
    )


def rateSVG(name: str, values: Sequence[float]) -> str:
    """A small line chart of C{values} (oldest first), scaled to their maximum."""
    width, height = 340, 64
    most = max(values, default=0.0) or 1.0
    step = width / max(len(values) - 1, 1)
    points = " ".join(
        f"{i * step:.1f},{height - value / most * (height - 4):.1f}"
        for i, value in enumerate(values)
    )
    line = (
        f'<polyline fill="none" stroke="#1c71d8" stroke-width="1.5" points="{points}"/>'
        if len(values) > 1
        else ""
    )
    return (
        f'<svg class="rate-chart" data-rate="{escape(name)}" xmlns="http://www.w3.org/2000/svg"'
        f' width="{width}" height="{height}" role="img" aria-label="{escape(name)}">'
        f'<rect width="{width}" height="{height}" fill="#f8f9fa"/>{line}</svg>'
    )


# The page -----------------------------------------------------------------------------


def _identity(stats: NodeStats) -> str:
    valid = {None: "unknown (no external IP yet)", True: "yes", False: "no"}
    ports = ", ".join(f"{family} {port}" for family, port in sorted(stats.ports.items()))
    return _rows(
        [
            ("Node id", stats.nodeId.hex()),
            ("External IP", stats.externalIP or "not voted yet"),
            ("Id valid for that IP (BEP 42)", valid[stats.idValidForIP]),
            ("UDP ports", ports or "none bound"),
            ("Uptime", formatDuration(stats.uptime)),
        ]
    )


def _tables(stats: NodeStats) -> str:
    legend = "".join(
        f'<span style="background:{colour}"></span>{escape(state)}'
        for state, colour in _COLOURS.items()
    )
    parts = [f'<p class="legend">Each bar is a bucket (depth below it):{legend}</p>']
    for family in ("ipv4", "ipv6"):
        table: TableStats = getattr(stats, family)
        bound = family in stats.ports
        summary = (
            f"{table.nodes} nodes ({table.good} good, {table.questionable} questionable, "
            f"{table.bad} bad), {table.cached} cached, {_plural(len(table.buckets), 'bucket')}"
        )
        if not bound:
            summary += "; no socket for this family"
        parts.append(
            f"<div><h3>{escape(family.replace('ip', 'IP'))}</h3><p>{escape(summary)}</p>"
            + tableSVG(table, family)
            + "</div>"
        )
    return parts[0] + "<div class=cols>" + "".join(parts[1:]) + "</div>"


def _charts(history: RateHistory | None) -> str:
    if history is None:
        return "<p class=muted>No history kept.</p>"
    minutes = history.interval * history.samples.size / 60
    parts = [
        f"<p>Averages over {history.interval:g} s, the last {minutes:g} minutes "
        f"({len(history.samples)} samples so far).</p><div class=charts>"
    ]
    for name, meaning in RATES.items():
        values = history.series(name)
        now = formatRate(values[-1]) if values else "-"
        most = formatRate(max(values)) if values else "-"
        parts.append(
            f"<div class=chart><div>{escape(meaning)}: <b>{escape(now)}</b> now, "
            f"{escape(most)} max</div>{rateSVG(name, values)}</div>"
        )
    parts.append("</div>")
    return "".join(parts)


def _traffic(stats: NodeStats) -> str:
    rt = stats.roundTrips
    average = f"{rt.sum / rt.count * 1000:.0f} ms" if rt.count else "-"
    lookups = f"{stats.lookupsStarted:,} / {stats.lookupsActive} / {stats.lookupsSucceeded:,}"
    rows = [
        ("Datagrams in / out", f"{stats.datagramsIn:,} / {stats.datagramsOut:,}"),
        ("Bytes in / out", f"{stats.bytesIn:,} / {stats.bytesOut:,}"),
        ("Responses sent / received", f"{stats.responsesSent:,} / {stats.responsesReceived:,}"),
        ("Timeouts", f"{stats.timeouts:,}"),
        ("Average round trip", f"{average} over {rt.count:,} replies"),
        ("Pending / queued queries", f"{stats.pendingQueries} / {stats.queuedQueries}"),
        ("Lookups started / active / succeeded", lookups),
    ]
    return (
        _rows(rows)
        + _counts("Queries received", stats.queriesIn)
        + _counts("Queries sent", stats.queriesOut)
        + _counts("Errors sent", stats.errorsSent)
        + _counts("Errors received", stats.errorsReceived)
        + _counts("Invalid queries (203)", stats.invalidQueries)
    )


def renderStatus(
    stats: NodeStats, history: RateHistory | None = None, metrics: bool = False
) -> str:
    """The status page of a node whose stats are C{stats}, as an HTML document."""
    store = _rows(
        [
            ("Info_hashes stored", stats.infoHashes),
            ("Peers stored", stats.peers),
            ("Info_hashes we announce", stats.announcing),
        ]
    )
    drops = _counts("By reason", stats.drops) + _rows(
        [("IPs blocked (floods)", stats.ipsBlocked), ("Send errors", stats.sendErrors)]
    )
    links = '<a href="status.json">status.json</a>'
    if metrics:
        links += ' &middot; <a href="metrics">metrics</a> (Prometheus)'
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="refresh" content="{REFRESH}">'
        f"<title>DHT node {escape(stats.nodeId.hex()[:8])}</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>twisted_dht node</h1>" + _identity(stats) + "<h2>Routing tables</h2>"
        f"{_tables(stats)}<h2>Rates, last hour</h2>{_charts(history)}"
        f"<div class=cols><div><h2>Storage</h2>{store}<h2>Drops</h2>{drops}</div>"
        f"<div><h2>Traffic</h2>{_traffic(stats)}</div></div>"
        f"<footer class=muted>{links}</footer></body></html>"
    )


def statusDocument(stats: NodeStats, history: RateHistory | None = None) -> dict[str, Any]:
    """C{/status.json}: L{NodeStats.toJSON} plus C{history} (see L{RateHistory.toJSON})."""
    document = stats.toJSON()
    document["history"] = None if history is None else history.toJSON()
    return document


# Resources ----------------------------------------------------------------------------


class _NodeResource(Resource):
    isLeaf = True

    def __init__(self, stats: Callable[[], NodeStats | None], history: RateHistory | None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.stats = stats
        self.history = history

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        stats = self.stats()
        if stats is None:
            request.setResponseCode(503)
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return b"The DHT node is not running.\n"
        return self.renderStats(request, stats)

    def renderStats(self, request: Request, stats: NodeStats) -> bytes:
        raise NotImplementedError()


class StatusPage(_NodeResource):
    """C{/}: L{renderStatus}."""

    def __init__(
        self,
        stats: Callable[[], NodeStats | None],
        history: RateHistory | None,
        metrics: bool = False,
    ) -> None:
        super().__init__(stats, history)
        self.metrics = metrics

    def renderStats(self, request: Request, stats: NodeStats) -> bytes:
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Content-Security-Policy", _CSP)
        return renderStatus(stats, self.history, self.metrics).encode("utf-8")


class StatusJSON(_NodeResource):
    """C{/status.json}: L{statusDocument}."""

    def renderStats(self, request: Request, stats: NodeStats) -> bytes:
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(statusDocument(stats, self.history), indent=1).encode("utf-8")


class _Root(Resource):
    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def getChild(self, path: bytes, request: Request) -> IResource:  # type: ignore[override]
        return notFound()


def statusResource(
    stats: Callable[[], NodeStats | None],
    history: RateHistory | None = None,
    metrics: Resource | None = None,
) -> Resource:
    """The root: C{/} the page, C{/status.json}, and C{metrics} as C{/metrics} if given."""
    root = _Root()
    root.putChild(b"", StatusPage(stats, history, metrics is not None))
    root.putChild(b"status.json", StatusJSON(stats, history))
    if metrics is not None:
        root.putChild(b"metrics", metrics)
    return root


class StatusSite(Site):
    """A L{Site} that logs no request (a scrape every 15 s would flood the log) and shows
    no traceback."""

    noisy = False
    displayTracebacks = False

    def log(self, request: http.Request) -> None:
        """Log nothing."""


class ConnectionTracker(WrappingFactory):
    """Wraps a factory and knows its open connections, so that L{closeAll} can end them
    when the service stops (an HTTP/1.1 client keeps its connection open)."""

    noisy = False

    def __init__(self, wrappedFactory: Any) -> None:
        super().__init__(wrappedFactory)  # type: ignore[no-untyped-call]
        self._closed: list[Deferred[None]] = []

    def unregisterProtocol(self, p: Any) -> None:
        super().unregisterProtocol(p)  # type: ignore[no-untyped-call]
        if not self.protocols:
            closed, self._closed = self._closed, []
            for d in closed:
                d.callback(None)

    def closeAll(self) -> Deferred[None]:
        """Abort every open connection; fires once all of them are closed."""
        if not self.protocols:
            return succeed(None)
        closed: Deferred[None] = Deferred()
        self._closed.append(closed)
        for p in list(self.protocols):
            p.transport.abortConnection()
        return closed


def listenStatus(
    reactor: Any,
    description: str,
    stats: Callable[[], NodeStats | None],
    history: RateHistory | None = None,
    metrics: Resource | None = None,
) -> tuple[ConnectionTracker, Deferred[IListeningPort]]:
    """Serve L{statusResource} on the server endpoint C{description} of C{reactor}.

    @return: the connection tracker, and a Deferred that fires with the listening port.
    @raise Exception: the endpoint's failure, when it fails at once (as C{tcp:}, C{unix:}
        and C{ssl:} do: they bind before returning).
    """
    site = StatusSite(statusResource(stats, history, metrics), reactor=reactor)  # type: ignore[no-untyped-call]
    tracker = ConnectionTracker(site)
    listening = serverFromString(reactor, description).listen(tracker)
    failed: list[Failure] = []
    synchronous = [True]

    def early(failure: Failure) -> Failure | None:
        if not synchronous[0]:
            return failure
        failed.append(failure)
        return None

    listening.addErrback(early)
    synchronous[0] = False
    if failed:
        failed[0].raiseException()
    return tracker, listening


__all__ = [
    "ConnectionTracker",
    "StatusJSON",
    "StatusPage",
    "StatusSite",
    "listenStatus",
    "renderStatus",
    "statusDocument",
    "statusResource",
]
