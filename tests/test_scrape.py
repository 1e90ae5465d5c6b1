"""Tests for twisted_dht.scrape: BEP 33's merging rules on a simulated network, and the
estimate of a swarm of known size on an in-memory DHT."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht.addresses import Address, packIP
from twisted_dht.bloom import BloomFilter
from twisted_dht.lookup import Lookup, LookupResult
from twisted_dht.scrape import ScrapeResult, scrape

from .test_lookup import Network, runUntilDone
from .test_node import addressOf, joinedSwarm

TARGET = b"\x5a" * 20


def ips(prefix: str, count: int) -> list[bytes]:
    """C{count} packed IPv4 addresses of C{prefix}.0/24."""
    return [packIP(f"{prefix}.{i}") for i in range(count)]


class FakeSearch:
    """The part of L{twisted_dht.search.Search} a scrape uses: one lookup on a simulated
    network, seeded with C{seeds}."""

    def __init__(self, network: Network, seeds: list[tuple[bytes, Address]]) -> None:
        self.network = network
        self.seeds = seeds

    def lookupAll(
        self, target: bytes, method: bytes, **options: Any
    ) -> Deferred[list[LookupResult]]:
        lookup = Lookup(
            target, b"\x00" * 20, self.network.send, None, reactor=self.network.clock,
            method=method, **options,
        )  # fmt: skip
        return lookup.start(self.seeds).addCallback(lambda result: [result])


class MergeTests(SynchronousTestCase):
    """What a scrape counts: the K closest nodes' filters ORed, and legacy values."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.network = Network(self.clock, 60, seed=3)
        self.ranked = self.network.ranked(TARGET)
        self.far = self.ranked[-1]

    def scrapeResult(self) -> ScrapeResult:
        search = FakeSearch(self.network, [(self.far.nodeId, self.far.address)])
        deferred = scrape(search, TARGET)  # type: ignore[arg-type]
        runUntilDone(self.clock, deferred)
        return self.successResultOf(deferred)

    def serve(self, rank: int, seeds: list[bytes], peers: list[bytes]) -> None:
        """The node of C{rank} answers with the filters of C{seeds} and C{peers}."""
        self.ranked[rank].extraValues = {
            b"BFsd": BloomFilter.ofIPs(seeds).toBytes(),
            b"BFpe": BloomFilter.ofIPs(peers).toBytes(),
        }

    def test_scrapeFlagSent(self) -> None:
        """Every get_peers query of a scrape carries scrape=1."""
        self.scrapeResult()
        self.assertTrue(self.network.sent)
        for _, method, args, _ in self.network.sent:
            self.assertEqual((method, args), (b"get_peers", {b"info_hash": TARGET, b"scrape": 1}))

    def test_closestFiltersORed(self) -> None:
        """The filters of the closest nodes are ORed: overlapping sets count once."""
        seeds, peers = ips("10.1.0", 40), ips("10.2.0", 80)
        self.serve(0, seeds[:30], peers[:50])
        self.serve(3, seeds[10:], peers[30:])
        self.serve(7, [], peers[:10])
        result = self.scrapeResult()
        self.assertEqual(result.seedFilter, BloomFilter.ofIPs(seeds))
        self.assertEqual(result.peerFilter, BloomFilter.ofIPs(peers))
        self.assertEqual(result.seeds, BloomFilter.ofIPs(seeds).estimate())
        self.assertEqual(result.peers, BloomFilter.ofIPs(peers).estimate())
        self.assertEqual(result.responders, 3)
        self.assertEqual(result.infoHash, TARGET)

    def test_fartherNodesIgnored(self) -> None:
        """A node outside the K closest counts for nothing, even if it was asked."""
        self.serve(1, ips("10.1.0", 5), ips("10.2.0", 5))
        self.far.extraValues = {
            b"BFsd": BloomFilter.ofIPs(ips("10.3.0", 200)).toBytes(),
            b"BFpe": BloomFilter.ofIPs(ips("10.4.0", 200)).toBytes(),
        }
        result = self.scrapeResult()
        self.assertIn(self.far.address, self.network.queried)
        self.assertEqual(result.seedFilter, BloomFilter.ofIPs(ips("10.1.0", 5)))
        self.assertEqual(result.responders, 1)

    def test_legacyValues(self) -> None:
        """Values of a node without BEP 33 count as peers, but for IPs that another
        node's seed filter holds."""
        seeds = ips("10.1.0", 10)
        self.serve(0, seeds, [])
        self.ranked[2].peers = [(f"10.1.0.{i}", 6881) for i in range(5)] + [
            (f"10.5.0.{i}", 6881) for i in range(20)
        ]
        result = self.scrapeResult()
        self.assertEqual(result.seedFilter, BloomFilter.ofIPs(seeds))
        self.assertEqual(result.peerFilter, BloomFilter.ofIPs(ips("10.5.0", 20)))
        self.assertEqual(result.responders, 2)

    def test_badFilterIsLegacy(self) -> None:
        """A filter that is not 256 bytes is ignored: the reply counts by its values."""
        node = self.ranked[0]
        node.extraValues = {b"BFsd": b"\xff" * 255, b"BFpe": b"\xff" * 256}
        node.peers = [("10.6.0.1", 6881)]
        result = self.scrapeResult()
        self.assertEqual(result.seedFilter, BloomFilter())
        self.assertEqual(result.peerFilter, BloomFilter.ofIPs([packIP("10.6.0.1")]))

    def test_nothingKnown(self) -> None:
        """With nothing stored anywhere the estimates are those of empty filters."""
        result = self.scrapeResult()
        self.assertEqual((round(result.seeds), round(result.peers), result.responders), (0, 0, 0))

    def test_badInfoHash(self) -> None:
        """An info_hash that is not 20 bytes is refused at once."""
        self.assertRaises(ValueError, scrape, FakeSearch(self.network, []), b"short")  # type: ignore[arg-type]


class SwarmEstimateTests(SynchronousTestCase):
    def test_knownSwarmWithin10Percent(self) -> None:
        """30 seeds and 60 peers announced on a 200-node DHT are estimated within 10% by
        a node that scraped, and found as they are by plain lookups."""
        swarm = joinedSwarm()
        infoHash = random.Random(33).randbytes(20)
        announcers = random.Random(34).sample(range(1, 180), 90)
        announces = [
            swarm.nodes[index].announce(infoHash, 6881, seed=i < 30)
            for i, index in enumerate(announcers)
        ]
        accepted = swarm.wait(gatherResults(announces))
        self.assertGreater(min(accepted), 0)
        result: ScrapeResult = swarm.wait(swarm.nodes[190].scrape(infoHash))
        self.assertLess(abs(result.seeds - 30), 3, result)
        self.assertLess(abs(result.peers - 60), 6, result)
        self.assertGreater(result.responders, 4)
        stored = {packIP(addressOf(index)[0]) for index in announcers}
        self.assertTrue(all(ip in result.seedFilter or ip in result.peerFilter for ip in stored))
