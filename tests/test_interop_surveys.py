"""Interoperability of the surveys on the wire: BEP 33 scrapes and BEP 51 samples between
our DHTNode and libtorrent (which serves both), on loopback.

The same rules as tests/test_interop.py (whose test case starts and stops every node):
each peer on its own 127.0.N.1, every looker joined before the announces.
"""

from __future__ import annotations

from twisted.internet.defer import gatherResults

from tests.interop.peers import LibtorrentPeer
from twisted_dht.addresses import Address, packIP
from twisted_dht.node import DHTNode
from twisted_dht.nodeid import randomId
from twisted_dht.sampling import MAX_INTERVAL

from .test_interop import _InteropTestCase, bounded, hostPort, infoHash

SEED_FLAG = 1
"""libtorrent's C{announce_flags_t.seed}."""


async def caughtUp(lt: LibtorrentPeer, node: DHTNode, address: Address) -> None:
    """Once this fires, libtorrent's packet log and alerts hold everything C{node} (at
    C{address}) exchanged with it so far: a ping, whose packet comes after them."""
    seen = len(lt.packets)
    await node.ping(lt.address)

    def pinged() -> bool:
        return any(
            p.direction == "in" and p.query == b"ping" and (p.host, p.port) == address
            for p in lt.packets[seen:]
        )

    await lt.waitUntil(pinged, 5.0, "libtorrent's log of our ping")


class ScrapeInteropTests(_InteropTestCase):
    """Our BEP 33 client against libtorrent's BEP 33 server."""

    async def test_scrapeCountsTheAnnouncers(self) -> None:
        """Two libtorrent seeds, two libtorrent peers, one seed and one peer of ours
        announce; our scrape, answered by libtorrent's filters and ours, estimates 3
        seeds and 3 peers, and its filters hold each announcer's IP where it belongs."""
        hub = self.ourNode()
        hubAddress = self.addressOf(hub)
        member = await self.joinedNode(hubAddress)
        lts = [await self.libtorrent([hubAddress], [self.addressOf(member)]) for _ in range(4)]
        ours = [await self.joinedNode(hubAddress) for _ in range(2)]
        scraper = await self.joinedNode(hubAddress)
        target = infoHash("scrape")

        for i, lt in enumerate(lts):
            count = await lt.announce(target, 6881, SEED_FLAG if i < 2 else 0)
            await self.announcesSettled(lt, target, count)
        for i, node in enumerate(ours):
            self.assertGreater(
                await bounded(node.announce(target, 6881, seed=i == 0), 15, "ours"), 0
            )
        seeds = [lts[0].host, lts[1].host, self.addressOf(ours[0])[0]]
        peers = [lts[2].host, lts[3].host, self.addressOf(ours[1])[0]]

        result = await bounded(scraper.scrape(target), 15, "our scrape")
        # Exact but for a collision of two IPs' bits (one in twenty): then 0.5 less.
        self.assertLess(abs(result.seeds - 3), 1, result)
        self.assertLess(abs(result.peers - 3), 1, result)
        for host in seeds:
            self.assertIn(packIP(host), result.seedFilter)
        for host in peers:
            self.assertIn(packIP(host), result.peerFilter)
        scraperAddress = self.addressOf(scraper)
        for lt in lts:
            await caughtUp(lt, scraper, scraperAddress)
        withFilters = [
            lt
            for lt in lts
            if any(
                p.direction == "out"
                and (p.host, p.port) == scraperAddress
                and p.message is not None
                and b"BFsd" in p.message.get(b"r", {})
                for p in lt.packets
            )
        ]
        self.assertGreaterEqual(len(withFilters), 2)
        self.assertNoErrorsSent(hub, member, scraper, *ours)
        for lt in lts:
            await self.assertCleanExchanges(lt, [hubAddress, scraperAddress])

        # Last: libtorrent may yet ask our command-line node, which exits when done.
        document = await self.runCLI("scrape", target.hex(), "--bootstrap", hostPort(hubAddress))
        self.assertEqual((document["seeds"], document["peers"]), (3, 3))
        self.assertGreaterEqual(document["nodes"], 4)


class SampleInteropTests(_InteropTestCase):
    """BEP 51 both ways: our walker samples libtorrent, libtorrent samples us."""

    async def network(self) -> tuple[DHTNode, list[LibtorrentPeer]]:
        """Our hub and member, and three libtorrent nodes that joined through them."""
        hub = self.ourNode()
        hubAddress = self.addressOf(hub)
        member = await self.joinedNode(hubAddress)
        lts = [await self.libtorrent([hubAddress], [self.addressOf(member)]) for _ in range(3)]
        return hub, lts

    async def test_ourWalkCollectsWhatLibtorrentStores(self) -> None:
        """Our walk collects every info_hash the libtorrent nodes store, asking each of
        them once: they ask for 6 hours between samples."""
        hub, lts = await self.network()
        hubAddress = self.addressOf(hub)
        announcer = await self.joinedNode(hubAddress)
        targets = [infoHash(f"sampled {i}") for i in range(6)]
        accepted = await gatherResults(
            [announcer.announce(t, 7000 + i) for i, t in enumerate(targets)]
        )
        self.assertTrue(all(accepted))
        for lt in lts:
            await caughtUp(lt, announcer, self.addressOf(announcer))
        stored = {ih for lt in lts for ih, _, _ in lt.announcesReceived}
        self.assertTrue(stored)

        walker = await self.joinedNode(hubAddress)
        found: dict[bytes, Address] = {}
        result = await bounded(walker.walkSamples(found.setdefault, rate=20), 20, "our walk")
        self.assertLessEqual(stored, set(found))
        self.assertLessEqual(set(found), set(targets))
        walkerAddress = self.addressOf(walker)
        for lt in lts:
            await caughtUp(lt, walker, walkerAddress)
            asked = [
                p
                for p in lt.packets
                if p.direction == "in"
                and p.query == b"sample_infohashes"
                and (p.host, p.port) == walkerAddress
            ]
            self.assertEqual(len(asked), 1)
        self.assertEqual(result.reason, "exhausted")
        self.assertNoErrorsSent(hub, walker)
        for lt in lts:
            await self.assertCleanExchanges(lt, [walkerAddress])

        document = await self.runCLI("sample", "--rate", "20", "--bootstrap", hostPort(hubAddress))
        self.assertEqual(
            {bytes.fromhex(e["infoHash"]) for e in document["infoHashes"]}, set(found)
        )
        self.assertEqual(document["reason"], "exhausted")

    async def test_libtorrentSamplesUs(self) -> None:
        """libtorrent's dht_sample_infohashes against our node gets what we store, how
        many, and our 6-hour interval."""
        node = self.ourNode()
        stored = {infoHash(f"ours to sample {i}") for i in range(5)}
        for i, target in enumerate(sorted(stored)):
            node.peerStore.addPeer(target, (f"127.0.99.{i + 1}", 6881))
        lt = await self.libtorrent()
        answer = await lt.sampleInfoHashes(self.addressOf(node), randomId())
        self.assertEqual(set(answer.samples), stored)
        self.assertEqual((answer.num, answer.interval), (5, MAX_INTERVAL))
        self.assertNoErrorsSent(node)
        await self.assertCleanExchanges(lt, [self.addressOf(node)])
