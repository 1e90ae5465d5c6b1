"""Tests for twisted_dht.closest: closestGood and ClosestCache, by themselves and as
RoutingTable.closest and closestCompact."""

from __future__ import annotations

import random

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht.addresses import Address
from twisted_dht.closest import CLOSEST_CACHE_SIZE, ClosestCache, closestGood
from twisted_dht.contacts import GOOD_INTERVAL, Bucket, Contact, NodeState
from twisted_dht.nodeid import fromInt, toInt
from twisted_dht.routing import RoutingTable

from .routingsupport import FIFTEEN_MINUTES, Harness, addr, bruteForce, checkInvariants, far, near


def good(nodeId: bytes, i: int, seen: float = 0.0) -> Contact:
    """A contact that answered at C{seen}."""
    contact = Contact(nodeId, addr(i))
    contact.lastResponse = seen
    return contact


class ClosestGoodTests(SynchronousTestCase):
    """closestGood() over hand-made buckets."""

    def setUp(self) -> None:
        # The buckets of a table whose own id is 0 and split twice.
        self.buckets = [
            Bucket(0, 2**158, 0.0),
            Bucket(2**158, 2**159, 0.0),
            Bucket(2**159, 2**160, 0.0),
        ]
        rng = random.Random(11)
        n = 0
        for bucket in self.buckets:
            for _ in range(5):
                bucket.contacts.append(good(fromInt(rng.randrange(bucket.low, bucket.high)), n))
                n += 1
        self.contacts = [c for b in self.buckets for c in b.contacts]

    def expected(self, target: int, k: int) -> list[Contact]:
        return sorted(self.contacts, key=lambda c: c.idInt ^ target)[:k]

    def test_nearestFirstAcrossBuckets(self) -> None:
        """The k contacts nearest the target, nearest first, whichever buckets hold them,
        for targets in each bucket."""
        for index, target in [(0, 12345), (1, 2**158 + 99), (2, 2**160 - 1)]:
            for k in (1, 3, 5, 8, 15, 100):
                self.assertEqual(
                    closestGood(self.buckets, index, target, k, 0.0), self.expected(target, k)
                )

    def test_goodOnly(self) -> None:
        """Questionable and bad contacts are skipped."""
        questionable, bad = self.buckets[2].contacts[:2]
        questionable.lastResponse = None
        bad.failures = bad.maxFailures
        found = closestGood(self.buckets, 2, 2**160 - 1, 100, 0.0)
        self.assertEqual(len(found), 13)
        self.assertNotIn(questionable, found)
        self.assertNotIn(bad, found)
        self.assertEqual(closestGood(self.buckets, 2, 2**160 - 1, 100, GOOD_INTERVAL), [])

    def test_nothingWanted(self) -> None:
        """k of zero or less finds nothing."""
        self.assertEqual(closestGood(self.buckets, 0, 0, 0, 0.0), [])
        self.assertEqual(closestGood(self.buckets, 0, 0, -1, 0.0), [])

    def test_oneBucket(self) -> None:
        """A table of one bucket is sorted by distance too."""
        [bucket] = [Bucket(0, 2**160, 0.0)]
        bucket.contacts = list(self.contacts)
        target = 2**159 + 7
        self.assertEqual(closestGood([bucket], 0, target, 4, 0.0), self.expected(target, 4))


class ClosestCacheTests(SynchronousTestCase):
    """ClosestCache by itself."""

    def setUp(self) -> None:
        self.cache = ClosestCache()
        self.found = [good(far(1), 1, seen=10.0), good(far(2), 2, seen=20.0)]
        self.key = (far(0), 8)

    def test_putReturnsCompact(self) -> None:
        """put returns the contacts' compact node infos, concatenated; get returns it
        while the version and the time allow."""
        compact = self.cache.put(self.key, 1, 30.0, self.found)
        self.assertEqual(compact, self.found[0].compact + self.found[1].compact)
        self.assertEqual(self.cache.get(self.key, 1, 30.0), compact)
        self.assertIsNone(self.cache.get((far(0), 7), 1, 30.0))
        self.assertIsNone(self.cache.get((far(1), 8), 1, 30.0))

    def test_version(self) -> None:
        """An answer of another table version is not returned."""
        self.cache.put(self.key, 1, 30.0, self.found)
        self.assertIsNone(self.cache.get(self.key, 2, 30.0))

    def test_oldestContactAgesOut(self) -> None:
        """An answer holds while its least recently seen contact is still good by time."""
        compact = self.cache.put(self.key, 1, 30.0, self.found)
        self.assertEqual(self.cache.get(self.key, 1, 10.0 + GOOD_INTERVAL - 0.001), compact)
        self.assertIsNone(self.cache.get(self.key, 1, 10.0 + GOOD_INTERVAL))

    def test_clockSteppedBack(self) -> None:
        """An answer computed after now (the clock stepped back) is not returned."""
        self.cache.put(self.key, 1, 30.0, self.found)
        self.assertIsNone(self.cache.get(self.key, 1, 29.0))

    def test_emptyAnswer(self) -> None:
        """An empty answer is cached for GOOD_INTERVAL from when it was computed."""
        self.assertEqual(self.cache.put(self.key, 1, 30.0, []), b"")
        self.assertEqual(self.cache.get(self.key, 1, 30.0 + GOOD_INTERVAL - 1), b"")
        self.assertIsNone(self.cache.get(self.key, 1, 30.0 + GOOD_INTERVAL))

    def test_bounded(self) -> None:
        """At most CLOSEST_CACHE_SIZE answers are kept, the least recently used going
        first."""
        for i in range(CLOSEST_CACHE_SIZE + 50):
            self.cache.put((fromInt(i), 8), 1, 0.0, self.found)
            if i >= 1:
                self.assertIsNotNone(self.cache.get((fromInt(1), 8), 1, 0.0))  # kept in use
        self.assertIsNotNone(self.cache.get((fromInt(1), 8), 1, 0.0))
        self.assertIsNone(self.cache.get((fromInt(0), 8), 1, 0.0))
        self.assertIsNone(self.cache.get((fromInt(2), 8), 1, 0.0))
        self.assertIsNotNone(self.cache.get((fromInt(CLOSEST_CACHE_SIZE + 49), 8), 1, 0.0))
        kept = sum(
            self.cache.get((fromInt(i), 8), 1, 0.0) is not None
            for i in range(CLOSEST_CACHE_SIZE + 50)
        )
        self.assertEqual(kept, CLOSEST_CACHE_SIZE)


class ClosestTests(Harness):
    """RoutingTable.closest() is exact, good-only and bounded."""

    def test_matchesBruteForce(self) -> None:
        """On random tables with mixed states, closest() equals a full XOR sort of good nodes."""
        rng = random.Random(20240601)
        bucketCounts: list[int] = []
        states: set[NodeState] = set()
        for _ in range(40):
            clock = Clock()
            own = rng.randbytes(20)
            table = RoutingTable(own, reactor=clock, restrictIPs=rng.random() < 0.5)
            for i in range(rng.randrange(1, 600)):
                if rng.random() < 0.3:
                    # ids near ours, to grow the home buckets
                    nodeId = fromInt(toInt(own) ^ rng.randrange(1 << rng.randrange(1, 160)))
                else:
                    nodeId = rng.randbytes(20)
                address = (f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{i % 256}.1", 6881)
                event = rng.random()
                if event < 0.7:
                    table.nodeResponded(nodeId, address)
                elif event < 0.85:
                    table.nodeQueried(nodeId, address)
                else:
                    table.nodeFailed(
                        rng.choice(table.contacts() or [Contact(nodeId, address)]).address
                    )
                if rng.random() < 0.01:
                    clock.advance(rng.choice([60.0, 600.0, FIFTEEN_MINUTES]))
            checkInvariants(self, table)
            now = clock.seconds()
            contacts = table.contacts()
            bucketCounts.append(len(table.buckets()))
            states.update(c.state(now) for c in contacts)
            targets = [rng.randbytes(20) for _ in range(15)] + [own]
            targets += [c.nodeId for c in rng.sample(contacts, min(3, len(contacts)))]
            for target in targets:
                k = rng.choice([1, 3, 8, 8, 20, 1000])
                self.assertEqual(table.closest(target, k), bruteForce(table, target, k, now))
            self.assertEqual(table.closest(own), bruteForce(table, own, 8, now))
        self.assertGreater(max(bucketCounts), 10)
        self.assertEqual(states, set(NodeState))

    def test_onlyGoodNodes(self) -> None:
        """closest() skips questionable and bad contacts."""
        self.table.nodeResponded(far(1), addr(1))
        self.table.nodeQueried(far(2), addr(2))
        self.table.nodeResponded(far(3), addr(3))
        self.table.nodeFailed(addr(3))
        self.table.nodeFailed(addr(3))
        self.assertEqual([c.nodeId for c in self.table.closest(far(2))], [far(1)])
        self.clock.advance(FIFTEEN_MINUTES)
        self.assertEqual(self.table.closest(far(2)), [])

    def test_respectsK(self) -> None:
        """closest() returns k contacts (default the table's k), nearest first."""
        self.fillFar(count=8)
        for i in range(8):
            self.table.nodeResponded(near(i), addr(100 + i))
        result = self.table.closest(far(0))
        self.assertEqual([c.nodeId for c in result], [far(i) for i in range(8)])
        self.assertEqual([c.nodeId for c in self.table.closest(far(6), 2)], [far(6), far(7)])
        self.assertEqual(self.table.closest(far(6), 0), [])
        self.assertEqual(len(self.table.closest(far(6), 100)), 16)


class ClosestCompactTests(Harness):
    """RoutingTable.closestCompact() caches closest()'s compact string, never stale."""

    def compact(self, target: bytes, k: int = 8) -> bytes:
        return b"".join(c.compact for c in self.table.closest(target, k))

    def test_neverStale(self) -> None:
        """After every random event or clock step, cached answers equal a fresh closest()."""
        rng = random.Random(20261125)
        for _ in range(10):
            self.clock = Clock()
            self.table = self.makeTable(rng.randbytes(20), restrictIPs=rng.random() < 0.5)
            targets = [rng.randbytes(20) for _ in range(6)]
            known: list[tuple[bytes, Address]] = []
            for i in range(400):
                event = rng.random()
                if event < 0.4 or not known:
                    nodeId = rng.randbytes(20)
                    address = (f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{i % 256}.1", 6881)
                    known.append((nodeId, address))
                else:
                    nodeId, address = rng.choice(known)
                if event < 0.55:
                    self.table.nodeResponded(nodeId, address)
                elif event < 0.8:
                    self.table.nodeQueried(nodeId, address)
                elif event < 0.9:
                    self.table.nodeFailed(address)
                elif event < 0.99:
                    self.clock.advance(rng.choice([1.0, 60.0, 600.0, FIFTEEN_MINUTES]))
                else:
                    self.table.setOwnId(rng.randbytes(20))
                for target in rng.sample(targets, 2):
                    k = rng.choice([1, 8])
                    self.assertEqual(self.table.closestCompact(target, k), self.compact(target, k))

    def test_seesInsert(self) -> None:
        """A contact confirmed after a cached answer is in the next one."""
        self.table.nodeResponded(far(1), addr(1))
        self.assertEqual(self.table.closestCompact(far(0), 8), self.compact(far(0)))
        self.table.nodeResponded(far(0), addr(0))
        self.assertEqual(len(self.table.closestCompact(far(0), 8)), 52)
        self.assertEqual(self.table.closestCompact(far(0), 8), self.compact(far(0)))

    def test_seesFailure(self) -> None:
        """A contact that turns bad after a cached answer is left out of the next one."""
        self.fillFar(count=2)
        self.assertEqual(len(self.table.closestCompact(far(0), 8)), 52)
        self.table.nodeFailed(addr(0))
        self.table.nodeFailed(addr(0))
        self.assertEqual(self.table.closestCompact(far(0), 8), self.compact(far(0)))
        self.assertEqual(len(self.table.closestCompact(far(0), 8)), 26)

    def test_seesTime(self) -> None:
        """A contact that stops being good with time is left out, to the second."""
        self.table.nodeResponded(far(0), addr(0))
        self.clock.advance(60.0)
        self.table.nodeResponded(far(1), addr(1))
        self.assertEqual(len(self.table.closestCompact(far(0), 8)), 52)
        self.clock.advance(FIFTEEN_MINUTES - 60.0 - 0.001)
        self.assertEqual(len(self.table.closestCompact(far(0), 8)), 52)
        self.clock.advance(0.001)
        self.assertEqual(self.table.closestCompact(far(0), 8), self.compact(far(0)))
        self.assertEqual(len(self.table.closestCompact(far(0), 8)), 26)

    def test_seesRevival(self) -> None:
        """A questionable contact that answers again is back in the next answer."""
        self.table.nodeResponded(far(0), addr(0))
        self.clock.advance(FIFTEEN_MINUTES)
        self.assertEqual(self.table.closestCompact(far(0), 8), b"")
        self.table.nodeQueried(far(0), addr(0))
        self.assertEqual(self.table.closestCompact(far(0), 8), self.compact(far(0)))
        self.assertEqual(len(self.table.closestCompact(far(0), 8)), 26)

    def test_seesClockSteppingBack(self) -> None:
        """A clock stepped back before a cached answer was made recomputes it."""
        self.clock.advance(FIFTEEN_MINUTES * 2)
        self.table.nodeResponded(far(0), addr(0))
        self.assertEqual(len(self.table.closestCompact(far(0), 8)), 26)
        self.clock.rightNow -= FIFTEEN_MINUTES * 2
        self.table.nodeResponded(far(0), addr(0))
        self.clock.rightNow += FIFTEEN_MINUTES + 1
        self.assertEqual(self.table.closestCompact(far(0), 8), self.compact(far(0)))
