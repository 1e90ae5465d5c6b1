"""Tests for the status server: the page and ``/status.json`` (strings, in memory), the
service's ``metrics`` wiring (on the memory reactor), and the page rendered by headless
Chromium from a real node on loopback."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from dataclasses import replace
from html.parser import HTMLParser
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol, Protocol, connectionDone
from twisted.internet.task import Clock, LoopingCall
from twisted.internet.testing import MemoryReactor as TCPMemoryReactor
from twisted.internet.testing import StringTransport
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase
from twisted.web.client import Agent, ResponseDone
from twisted.web.http import PotentialDataLoss

from twisted_dht import bencoding, krpc, tap
from twisted_dht.history import RATES, RateHistory
from twisted_dht.node import DHTNode
from twisted_dht.nodeid import randomId
from twisted_dht.service import DHTService, WebListenError
from twisted_dht.stats import NodeStats
from twisted_dht.testing import MemoryReactor
from twisted_dht.web import renderStatus, statusDocument, statusResource

from .test_cli import temporaryDirectory

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def ciIsSet() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


class _Body(Protocol):
    """Collects a response body."""

    def __init__(self, done: Deferred[bytes]) -> None:
        self.done = done
        self.chunks: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self.chunks))
        else:
            self.done.errback(reason)


def httpGet(url: str) -> Deferred[tuple[int, dict[bytes, bytes], bytes]]:
    """GET C{url} on the real reactor (no persistent connection): status, headers, body."""

    async def get() -> tuple[int, dict[bytes, bytes], bytes]:
        response = await Agent(reactor).request(b"GET", url.encode("ascii"))
        body: Deferred[bytes] = Deferred()
        response.deliverBody(_Body(body))
        headers = {k.lower(): v[0] for k, v in response.headers.getAllRawHeaders()}
        return response.code, headers, await body

    return Deferred.fromCoroutine(get())


def memoryGet(factory: Any, path: str) -> tuple[int, dict[bytes, bytes], bytes]:
    """GET C{path} from an HTTP server factory over an in-memory transport."""
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(f"GET {path} HTTP/1.0\r\nHost: test\r\n\r\n".encode("ascii"))
    head, _, body = transport.value().partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = {k.lower(): v for k, _, v in (line.partition(b": ") for line in lines)}
    protocol.connectionLost(None)
    return int(status.split()[1]), headers, body


def nodeStats(**changes: Any) -> NodeStats:
    """The stats of a fresh node on a Clock, with C{changes}."""
    return replace(DHTNode(b"\x11" * 20, reactor=Clock(), routers=[]).stats(), **changes)


class BucketCounter(HTMLParser):
    """Counts the ``bucket`` elements inside each ``svg.table``, by its data-family."""

    def __init__(self) -> None:
        super().__init__()
        self.family: str | None = None
        self.buckets: dict[str, int] = {}
        self.charts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "svg" and "table" in classes:
            self.family = attributes.get("data-family") or ""
            self.buckets[self.family] = 0
        elif tag == "svg" and "rate-chart" in classes:
            self.charts += 1
        elif "bucket" in classes and self.family is not None:
            self.buckets[self.family] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self.family = None


def countBuckets(document: str) -> BucketCounter:
    counter = BucketCounter()
    counter.feed(document)
    return counter


class RenderTests(SynchronousTestCase):
    """The page shows the node's identity, tables, rates and drops, escaped."""

    def test_identity(self) -> None:
        """Node id, external IP, BEP 42 validity, ports and uptime appear as text."""
        page = renderStatus(
            nodeStats(externalIP="81.5.5.5", idValidForIP=False, uptime=3725, ports={"ipv4": 7})
        )
        self.assertIn("11" * 20, page)
        self.assertIn("81.5.5.5", page)
        self.assertIn("<td>no</td>", page)
        self.assertIn("ipv4 7", page)
        self.assertIn("1 h 2 min", page)
        self.assertNotIn("<script", page)

    def test_oneBarPerBucket(self) -> None:
        """Each routing table is an SVG with one bucket element per bucket."""
        clock = Clock()
        node = DHTNode(b"\x11" * 20, reactor=clock, routers=[], relaxLocal=True)
        for i in range(40):
            node.ipv4.table.nodeResponded(randomId(), (f"93.{i}.0.9", 6881))
        stats = node.stats()
        counted = countBuckets(renderStatus(stats))
        self.assertEqual(
            counted.buckets, {"ipv4": len(stats.ipv4.buckets), "ipv6": len(stats.ipv6.buckets)}
        )
        self.assertGreater(counted.buckets["ipv4"], 1)

    def test_escaped(self) -> None:
        """Text from the node or its peers is escaped (no tag gets through)."""
        page = renderStatus(nodeStats(externalIP="<b>x</b>", drops={"<i>": 3}))
        self.assertIn("&lt;b&gt;x&lt;/b&gt;", page)
        self.assertIn("&lt;i&gt;", page)
        self.assertNotIn("<b>x", page)
        self.assertNotIn("<i>", page)

    def test_charts(self) -> None:
        """One chart per rate, drawn once there are two samples; drops by reason listed."""
        clock = Clock()
        stats = nodeStats(drops={"rateLimit": 4, "malformed": 0})
        history = RateHistory(lambda: stats, clock, interval=10)
        history.start()
        for _ in range(3):
            clock.advance(10)
        page = renderStatus(stats, history, metrics=True)
        history.stop()
        self.assertEqual(countBuckets(page).charts, len(RATES))
        self.assertEqual(page.count("<polyline"), len(RATES))
        self.assertIn("rateLimit", page)
        self.assertIn('href="metrics"', page)

    def test_statusDocument(self) -> None:
        """status.json is NodeStats.toJSON plus the history."""
        stats = nodeStats()
        document = json.loads(json.dumps(statusDocument(stats)))
        self.assertEqual(set(document), {*stats.toJSON(), "history"})
        self.assertIsNone(document["history"])


class ResourceTests(SynchronousTestCase):
    """The resources over an in-memory HTTP connection."""

    def site(self, stats: Any) -> Any:
        from twisted_dht.web import StatusSite

        return StatusSite(statusResource(stats), reactor=Clock())

    def test_pageAndJSON(self) -> None:
        """/ is HTML with a no-script policy, /status.json is JSON, others are 404."""
        site = self.site(nodeStats)
        status, headers, body = memoryGet(site, "/")
        self.assertEqual(status, 200)
        self.assertEqual(headers[b"content-type"], b"text/html; charset=utf-8")
        self.assertIn(b"default-src 'none'", headers[b"content-security-policy"])
        self.assertIn(b"11" * 20, body)
        status, headers, body = memoryGet(site, "/status.json")
        self.assertEqual((status, headers[b"content-type"]), (200, b"application/json"))
        self.assertEqual(json.loads(body)["nodeId"], "11" * 20)
        self.assertEqual(memoryGet(site, "/nothing")[0], 404)

    def test_noNode(self) -> None:
        """Before the node exists both answer 503."""
        site = self.site(lambda: None)
        self.assertEqual(memoryGet(site, "/")[0], 503)
        self.assertEqual(memoryGet(site, "/status.json")[0], 503)


class WebReactor(MemoryReactor):
    """The memory reactor, plus Twisted's fake TCP listening (which refuses on demand)."""

    def __init__(self) -> None:
        super().__init__()
        self.tcp = TCPMemoryReactor()
        self.refuse = False

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        if self.refuse:
            raise CannotListenError(
                interface, port, OSError(errno.EADDRINUSE, "Address already in use")
            )
        return self.tcp.listenTCP(port, factory, backlog, interface)


class ServiceTests(SynchronousTestCase):
    """DHTService(metrics=...) serves the status server on its reactor, and cleans up."""

    def setUp(self) -> None:
        self.reactor = WebReactor()
        directory = temporaryDirectory(self)
        self.statePath = os.path.join(directory, "dht.state")

    def makeService(self, cls: type[DHTService] = DHTService) -> DHTService:
        return cls(
            port=0,
            interface="127.0.0.1",
            ipv6=False,
            bootstrap=False,
            statePath=self.statePath,
            metrics="tcp:9100:interface=127.0.0.1",
            reactor=self.reactor,
        )

    def test_servesAndStopsCleanly(self) -> None:
        """The endpoint listens on the service's reactor; /metrics, / and /status.json
        answer; stopping leaves no DelayedCall."""
        service = self.makeService()
        service.startService()
        [(port, factory, _, interface)] = self.reactor.tcp.tcpServers
        self.assertEqual((port, interface), (9100, "127.0.0.1"))
        self.assertIsNotNone(service.webAddress())
        for _ in range(5):
            self.reactor.advance(5)
        status, _, body = memoryGet(factory, "/metrics")
        self.assertEqual(status, 200)
        self.assertIn(b"twisted_dht_uptime_seconds 25.0", body)
        self.assertEqual(memoryGet(factory, "/")[0], 200)
        document = json.loads(memoryGet(factory, "/status.json")[2])
        self.assertEqual(len(document["history"]["times"]), 2)
        self.successResultOf(service.stopService())
        self.assertIsNone(service.webAddress())
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_portInUse(self) -> None:
        """A status port in use raises WebListenError and closes the UDP socket again."""
        self.reactor.refuse = True
        service = self.makeService()
        error = self.assertRaises(WebListenError, service.startService)
        self.assertEqual(
            str(error),
            "cannot listen on tcp:9100:interface=127.0.0.1 (--metrics): Address already in use",
        )
        assert service.node is not None
        self.assertIsNone(service.node.ipv4.protocol.transport)

    def test_portInUseCommandLine(self) -> None:
        """Under twistd a status port in use is one line and exit status 1."""
        self.reactor.refuse = True
        service = self.makeService(tap.CommandLineService)
        error = self.assertRaises(SystemExit, service.privilegedStartService)
        self.assertEqual(
            error.code,
            "twistd dht: cannot listen on tcp:9100:interface=127.0.0.1 (--metrics): "
            "Address already in use",
        )


class Peer(DatagramProtocol):
    """A loopback DHT peer that pings the node and answers its queries."""

    def __init__(self) -> None:
        self.nodeId = randomId()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        message = krpc.decodeMessage(datagram)
        if isinstance(message, krpc.Query) and self.transport is not None:
            self.transport.write(krpc.encodeResponse(message.tid, {b"id": self.nodeId}), addr)

    def ping(self, address: Any) -> None:
        assert self.transport is not None
        query = {b"t": b"pp", b"y": b"q", b"q": b"ping", b"a": {b"id": self.nodeId}}
        self.transport.write(bencoding.encode(query), address)


class BrowserTests(TestCase):
    """The status page of a real node on loopback, rendered by headless Chromium."""

    timeout = 60

    def setUp(self) -> None:
        if CHROMIUM is None:
            reason = "chromium is not installed (apt-get install chromium; see .ci/run)"
            if ciIsSet():
                self.fail(f"{reason}; CI is set, so this is a failure, not a skip")
            raise SkipTest(reason)

    def startNode(self) -> DHTService:
        service = DHTService(
            port=0,
            interface="127.0.0.1",
            ipv6=False,
            bootstrap=False,
            statePath=os.path.join(temporaryDirectory(self), "dht.state"),
            metrics="tcp:0:interface=127.0.0.1",
            relaxLocal=True,
            statsInterval=0,
            historyInterval=0.25,
        )
        service.startService()
        self.addCleanup(service.stopService)
        node = service.addresses()[0]
        peers = []
        for _ in range(40):
            peer = Peer()
            self.addCleanup(reactor.listenUDP(0, peer, interface="127.0.0.1").stopListening)
            peers.append(peer)
        pinging = LoopingCall(lambda: [peer.ping(node) for peer in peers])
        pinging.clock = reactor
        pinging.start(0.2)
        self.addCleanup(lambda: pinging.stop() if pinging.running else None)
        return service

    def browse(self, url: str, screenshot: str) -> Deferred[tuple[bytes, bytes, int]]:
        assert CHROMIUM is not None
        profile = temporaryDirectory(self)
        arguments = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--screenshot={screenshot}",
            "--window-size=1200,1600",
            "--dump-dom",
            url,
        ]
        running = getProcessOutputAndValue(CHROMIUM, arguments, env=dict(os.environ))
        return running.addTimeout(45, reactor)

    @inlineCallbacks
    def test_pageRendersInChromium(self) -> Any:
        """Chromium shows the node id and one bar per bucket, and takes a screenshot."""
        service = self.startNode()
        yield Deferred.fromCoroutine(_sleep(3.0))
        stats = service.currentStats()
        assert stats is not None
        self.assertGreater(len(stats.ipv4.buckets), 1)
        url = f"http://127.0.0.1:{service.webAddress().port}/"
        directory = os.environ.get("TWISTED_DHT_SCREENSHOTS") or tempfile.mkdtemp(
            prefix="twisted_dht-status-"
        )  # kept, to be looked at
        screenshot = os.path.join(directory, "status.png")
        out, err, code = yield self.browse(url, screenshot)
        self.assertEqual(code, 0, err.decode("utf-8", "replace")[-2000:])
        document = out.decode("utf-8")
        after = service.currentStats()
        assert after is not None
        self.assertIn(stats.nodeId.hex(), document)
        self.assertIn("Routing tables", document)
        self.assertIn("queries received/s", document)
        counted = countBuckets(document)
        self.assertIn(counted.buckets["ipv4"], {len(stats.ipv4.buckets), len(after.ipv4.buckets)})
        self.assertEqual(counted.charts, len(RATES))
        with open(screenshot, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    @inlineCallbacks
    def test_statusJSON(self) -> Any:
        """/status.json parses and has the stats and the history."""
        service = self.startNode()
        yield Deferred.fromCoroutine(_sleep(0.6))
        status, _, body = yield httpGet(
            f"http://127.0.0.1:{service.webAddress().port}/status.json"
        )
        self.assertEqual(status, 200)
        document = json.loads(body)
        for key in ("nodeId", "externalIP", "uptime", "ports", "queriesIn", "drops", "ipv4"):
            self.assertIn(key, document)
        self.assertEqual(set(document["history"]["rates"]), set(RATES))
        self.assertGreater(len(document["history"]["times"]), 0)


async def _sleep(seconds: float) -> None:
    from twisted.internet.task import deferLater

    await deferLater(reactor, seconds, lambda: None)
