"""Tests for twisted_dht.routing: node states, buckets, eviction rules, IP hygiene, closest."""

from __future__ import annotations

import itertools
import random
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht.krpc import Address
from twisted_dht.nodeid import fromInt, toInt
from twisted_dht.routing import Bucket, Contact, NodeState, RoutingTable

OWN = b"\x00" * 20
FIFTEEN_MINUTES = 15 * 60.0


def far(i: int) -> bytes:
    """An id in the half of the space away from OWN (top bit set)."""
    return fromInt((1 << 159) | i)


def near(i: int) -> bytes:
    """An id in the half of the space holding OWN (top bit clear), never OWN itself."""
    return fromInt((1 << 158) | i)


def addr(i: int, port: int = 6881) -> Address:
    """A distinct public IPv4 address per i, each in its own /24."""
    return (f"1.{i // 256 % 256}.{i % 256}.1", port)


class Harness(SynchronousTestCase):
    """A table on a Clock that records its ping requests."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.pinged: list[Contact] = []
        self.table = self.makeTable()

    def makeTable(self, ownId: bytes = OWN, **kwargs: Any) -> RoutingTable:
        kwargs.setdefault("pingQuestionable", self.pinged.append)
        return RoutingTable(ownId, reactor=self.clock, **kwargs)

    def fillFar(self, table: RoutingTable | None = None, count: int = 8) -> None:
        """Confirm C{count} far nodes far(0)..far(count - 1) at addr(0)..addr(count - 1)."""
        table = self.table if table is None else table
        for i in range(count):
            table.nodeResponded(far(i), addr(i))

    def liveIds(self, table: RoutingTable | None = None) -> set[bytes]:
        table = self.table if table is None else table
        return {c.nodeId for c in table.contacts()}

    def cachedIds(self, table: RoutingTable | None = None) -> list[bytes]:
        table = self.table if table is None else table
        return [c.nodeId for b in table.buckets() for c in b.replacements]

    def bucketOf(self, nodeId: bytes) -> Bucket:
        value = toInt(nodeId)
        [bucket] = [b for b in self.table.buckets() if b.covers(value)]
        return bucket


def checkInvariants(test: SynchronousTestCase, table: RoutingTable) -> None:
    """Assert the structural invariants of a table."""
    buckets = table.buckets()
    test.assertEqual(buckets[0].low, 0)
    test.assertEqual(buckets[-1].high, 2**160)
    seenAddresses: set[Address] = set()
    seenIds: set[bytes] = set()
    for before, after in itertools.pairwise(buckets):
        test.assertEqual(before.high, after.low)
    for bucket in buckets:
        size = bucket.high - bucket.low
        test.assertEqual(size & (size - 1), 0)
        test.assertEqual(bucket.low % size, 0)
        test.assertLessEqual(len(bucket.contacts), table.k)
        test.assertLessEqual(len(bucket.replacements), table.replacements)
        for contact in bucket.contacts + bucket.replacements:
            test.assertTrue(bucket.covers(contact.idInt))
            test.assertNotEqual(contact.nodeId, table.ownId)
            test.assertNotIn(contact.address, seenAddresses)
            test.assertNotIn(contact.nodeId, seenIds)
            seenAddresses.add(contact.address)
            seenIds.add(contact.nodeId)
    test.assertEqual(len(table), sum(len(b.contacts) for b in buckets))


class ContactStateTests(Harness):
    """Node states over time."""

    def test_confirmedIsGoodThenQuestionable(self) -> None:
        """A node that answered is good for 15 minutes, then questionable."""
        self.table.nodeResponded(far(1), addr(1))
        contact = self.table.get(addr(1))
        assert contact is not None
        self.assertIs(contact.state(self.clock.seconds()), NodeState.GOOD)
        self.clock.advance(FIFTEEN_MINUTES - 1)
        self.assertIs(contact.state(self.clock.seconds()), NodeState.GOOD)
        self.clock.advance(1)
        self.assertIs(contact.state(self.clock.seconds()), NodeState.QUESTIONABLE)
        self.assertEqual(self.table.goodCount(), 0)

    def test_lastSeen(self) -> None:
        """lastSeen is the later of the last answer and the last query; -inf if neither."""
        contact = Contact(far(1), addr(1))
        self.assertEqual(contact.lastSeen(), float("-inf"))
        for response, query, expected in [
            (5.0, None, 5.0),
            (None, 7.0, 7.0),
            (5.0, 7.0, 7.0),
            (9.0, 7.0, 9.0),
        ]:
            contact.lastResponse, contact.lastQuery = response, query
            self.assertEqual(contact.lastSeen(), expected)

    def test_answeredEverAndQueriedRecentlyStaysGood(self) -> None:
        """A node that once answered and queried us within 15 minutes is still good."""
        self.table.nodeResponded(far(1), addr(1))
        self.clock.advance(FIFTEEN_MINUTES + 100)
        self.table.nodeQueried(far(1), addr(1))
        self.clock.advance(FIFTEEN_MINUTES - 1)
        contact = self.table.get(addr(1))
        assert contact is not None
        self.assertIs(contact.state(self.clock.seconds()), NodeState.GOOD)
        self.clock.advance(1)
        self.assertIs(contact.state(self.clock.seconds()), NodeState.QUESTIONABLE)

    def test_neverAnsweredIsQuestionable(self) -> None:
        """A node that only queried us is questionable, however recent the query."""
        self.table.nodeQueried(far(1), addr(1))
        contact = self.table.get(addr(1))
        assert contact is not None
        self.assertIs(contact.state(self.clock.seconds()), NodeState.QUESTIONABLE)
        self.assertEqual(self.table.closest(far(1)), [])

    def test_badAfterMaxFailures(self) -> None:
        """A node is bad after maxFailures consecutive failures, good before that."""
        self.table.nodeResponded(far(1), addr(1))
        contact = self.table.get(addr(1))
        assert contact is not None
        self.table.nodeFailed(addr(1))
        self.assertEqual(contact.failures, 1)
        self.assertIs(contact.state(self.clock.seconds()), NodeState.GOOD)
        self.table.nodeFailed(addr(1))
        self.assertIs(contact.state(self.clock.seconds()), NodeState.BAD)

    def test_maxFailuresOption(self) -> None:
        """The maxFailures option sets how many failures make a node bad."""
        table = self.makeTable(maxFailures=3)
        table.nodeResponded(far(1), addr(1))
        for _ in range(2):
            table.nodeFailed(addr(1))
        contact = table.get(addr(1))
        assert contact is not None
        self.assertIs(contact.state(self.clock.seconds()), NodeState.GOOD)
        table.nodeFailed(addr(1))
        self.assertIs(contact.state(self.clock.seconds()), NodeState.BAD)

    def test_responseResetsFailures(self) -> None:
        """An answer resets the failure count and makes a bad node good again."""
        self.table.nodeResponded(far(1), addr(1))
        self.table.nodeFailed(addr(1))
        self.table.nodeFailed(addr(1))
        self.table.nodeResponded(far(1), addr(1))
        contact = self.table.get(addr(1))
        assert contact is not None
        self.assertEqual(contact.failures, 0)
        self.assertIs(contact.state(self.clock.seconds()), NodeState.GOOD)

    def test_contactFields(self) -> None:
        """A contact keeps its id as bytes and int, and its compact node info."""
        contact = Contact(far(5), ("1.2.3.4", 0x1AE1))
        self.assertEqual(contact.idInt, toInt(far(5)))
        self.assertEqual(contact.compact, far(5) + b"\x01\x02\x03\x04\x1a\xe1")
        self.assertEqual(
            (contact.lastResponse, contact.lastQuery, contact.failures), (None,) * 2 + (0,)
        )
        self.assertFalse(hasattr(contact, "__dict__"))

    def test_contactValidation(self) -> None:
        """A contact needs a 20-byte id and an IP literal."""
        self.assertRaises(ValueError, Contact, b"short", ("1.2.3.4", 1))
        self.assertRaises(ValueError, Contact, far(1), ("example.com", 1))


class BucketTests(Harness):
    """Bucket splitting and ranges."""

    def test_startsWithOneBucket(self) -> None:
        """An empty table is one bucket covering the whole id space."""
        [bucket] = self.table.buckets()
        self.assertEqual((bucket.low, bucket.high, bucket.depth), (0, 2**160, 0))
        self.assertEqual(len(self.table), 0)

    def test_randomIdInBucket(self) -> None:
        """A bucket's random id lies in its range."""
        self.fillFar()
        self.table.nodeResponded(near(1), addr(100))
        random.seed(4)
        for bucket in self.table.buckets():
            for _ in range(20):
                self.assertTrue(bucket.covers(toInt(bucket.randomId())))

    def test_splitsOnlyOwnBucket(self) -> None:
        """A full bucket splits only when it holds our own id; a far full bucket does not."""
        self.fillFar(count=8)
        self.assertEqual(len(self.table.buckets()), 1)
        self.table.nodeResponded(far(8), addr(8))
        # The whole space split into [0, 2^159) (ours) and [2^159, 2^160) (far, still full).
        self.assertEqual([b.depth for b in self.table.buckets()], [1, 1])
        self.assertEqual(len(self.table), 8)
        self.assertEqual(self.cachedIds(), [far(8)])
        for i in range(9, 20):
            self.table.nodeResponded(far(i), addr(i))
        self.assertEqual(len(self.table.buckets()), 2)
        for i in range(9):
            self.table.nodeResponded(near(i), addr(100 + i))
        # [0, 2^159) split once more; [2^158, 2^159) holds the near ids and is full.
        self.assertEqual([b.depth for b in self.table.buckets()], [2, 2, 1])
        self.assertEqual(len(self.table), 16)
        self.assertIn(near(8), self.cachedIds())
        checkInvariants(self, self.table)

    def test_splitStopsAtDepth159(self) -> None:
        """The own bucket stops splitting at depth 159 (a block of two ids)."""
        table = self.makeTable(k=1)
        for j in range(160):
            table.nodeResponded(fromInt(1 << j), addr(j))
        buckets = table.buckets()
        self.assertEqual(len(buckets), 160)
        self.assertEqual(len(table), 160)
        self.assertEqual((buckets[0].low, buckets[0].high, buckets[0].depth), (0, 2, 159))
        checkInvariants(self, table)

    def test_neverOwnId(self) -> None:
        """Our own id is never inserted, whether it answered or queried."""
        self.table.nodeResponded(OWN, addr(1))
        self.table.nodeQueried(OWN, addr(2))
        self.assertEqual(len(self.table), 0)
        self.assertEqual(self.cachedIds(), [])


class InsertionTests(Harness):
    """Replacement caches, eviction and pings."""

    def test_fullGoodBucketCachesNewcomer(self) -> None:
        """A bucket full of good nodes keeps them; newcomers go to a bounded cache, newest kept."""
        self.fillFar(count=20)
        self.assertEqual(self.liveIds(), {far(i) for i in range(8)})
        self.assertEqual(self.cachedIds(), [far(i) for i in range(12, 20)])
        self.assertEqual(self.pinged, [])
        checkInvariants(self, self.table)

    def test_cachedNodeQueryingAgainIsRefreshed(self) -> None:
        """A cached node that queries again has its query time moved, stays cached (not
        live), and now outranks the others: it is the last to be evicted."""
        table = self.makeTable(replacements=4)
        self.table = table
        self.fillFar(table, count=12)
        self.clock.advance(5.0)
        table.nodeQueried(far(9), addr(9))
        [contact] = [c for c in self.bucketOf(far(9)).replacements if c.nodeId == far(9)]
        self.assertEqual(contact.lastQuery, 5.0)
        self.assertEqual(self.liveIds(), {far(i) for i in range(8)})
        for i in range(12, 15):
            table.nodeResponded(far(i), addr(i))
        self.assertEqual(set(self.cachedIds()), {far(9), far(12), far(13), far(14)})
        checkInvariants(self, table)

    def test_mostRecentlySeenCachedNodeIsPromoted(self) -> None:
        """When a live slot frees, the most recently seen confirmed cache entry takes it,
        whatever its position in the cache."""
        self.fillFar(count=12)
        self.clock.advance(5.0)
        self.table.nodeQueried(far(9), addr(9))
        self.table.nodeFailed(addr(0))
        self.table.nodeFailed(addr(0))
        self.assertIn(far(9), self.liveIds())
        self.assertNotIn(far(0), self.liveIds())
        checkInvariants(self, self.table)

    def test_cachedNodeQueryingAgainDroppedWhenItsIPWentLive(self) -> None:
        """A cached node whose IP went live meanwhile is dropped when it queries again."""
        self.fillFar(count=12)
        self.table.nodeResponded(near(1), (addr(9)[0], 7000))
        self.table.nodeQueried(far(9), addr(9))
        self.assertEqual(self.cachedIds(), [far(8), far(10), far(11)])
        checkInvariants(self, self.table)

    def test_newestCachedNodeDroppedWhenItsIPWentLive(self) -> None:
        """The newest cached node too is dropped when it queries again after its IP went
        live."""
        self.fillFar(count=12)
        self.table.nodeResponded(near(1), (addr(11)[0], 7000))
        self.table.nodeQueried(far(11), addr(11))
        self.assertEqual(self.cachedIds(), [far(8), far(9), far(10)])
        checkInvariants(self, self.table)

    def test_replacementCacheSize(self) -> None:
        """The replacements option bounds the cache, and zero disables it."""
        table = self.makeTable(replacements=3)
        self.fillFar(table, count=20)
        self.assertEqual(self.cachedIds(table), [far(17), far(18), far(19)])
        table = self.makeTable(replacements=0)
        self.fillFar(table, count=20)
        self.assertEqual(self.cachedIds(table), [])
        self.assertEqual(len(table), 8)

    def test_badNodeReplacedByNewcomer(self) -> None:
        """A confirmed newcomer takes the slot of a bad node in a full bucket."""
        self.fillFar()
        self.table.nodeFailed(addr(3))
        self.table.nodeFailed(addr(3))
        self.assertIsNotNone(self.table.get(addr(3)))
        self.table.nodeResponded(far(50), addr(50))
        self.assertIsNone(self.table.get(addr(3)))
        self.assertIn(far(50), self.liveIds())
        self.assertEqual(len(self.table), 8)

    def test_badNodeStaysWithoutReplacement(self) -> None:
        """A bad node with nobody to replace it stays in the table, marked bad."""
        self.table.nodeResponded(far(1), addr(1))
        for _ in range(5):
            self.table.nodeFailed(addr(1))
        contact = self.table.get(addr(1))
        assert contact is not None
        self.assertIs(contact.state(self.clock.seconds()), NodeState.BAD)
        self.assertEqual(self.table.questionable(), [contact])

    def test_questionablePingedThenReplaced(self) -> None:
        """A newcomer pings the least recently seen questionable node once per minute, and
        that node's failures promote the newest confirmed replacement."""
        self.fillFar()
        self.clock.advance(FIFTEEN_MINUTES + 1)
        for i in range(1, 8):
            self.table.nodeResponded(far(i), addr(i))  # all but far(0) are fresh again
        self.table.nodeResponded(far(50), addr(50))
        self.assertEqual([c.nodeId for c in self.pinged], [far(0)])
        self.assertEqual(self.cachedIds(), [far(50)])
        self.table.nodeResponded(far(51), addr(51))
        self.table.nodeQueried(far(52), addr(52))
        self.assertEqual(len(self.pinged), 1)
        self.clock.advance(61)
        self.table.nodeResponded(far(53), addr(53))
        self.assertEqual([c.nodeId for c in self.pinged], [far(0), far(0)])
        self.table.nodeQueried(far(54), addr(54))
        self.table.nodeFailed(addr(0))
        self.assertIsNotNone(self.table.get(addr(0)))
        self.table.nodeFailed(addr(0))
        self.assertIsNone(self.table.get(addr(0)))
        self.assertIn(far(53), self.liveIds())
        self.assertEqual(self.cachedIds(), [far(50), far(51), far(52), far(54)])
        checkInvariants(self, self.table)

    def test_answeringQuestionableNodeStays(self) -> None:
        """A pinged questionable node that answers stays and the next one is pinged next."""
        self.fillFar()
        self.clock.advance(FIFTEEN_MINUTES + 1)
        self.table.nodeResponded(far(50), addr(50))
        self.table.nodeResponded(far(0), addr(0))
        self.table.nodeResponded(far(51), addr(51))
        self.assertEqual([c.nodeId for c in self.pinged], [far(0), far(1)])
        self.assertIn(far(0), self.liveIds())

    def test_pingCallbackErrorLogged(self) -> None:
        """An exception from pingQuestionable is logged, not raised into the caller."""

        def broken(contact: Contact) -> None:
            raise RuntimeError("boom")

        table = self.makeTable(pingQuestionable=broken)
        self.fillFar(table)
        self.clock.advance(FIFTEEN_MINUTES + 1)
        table.nodeResponded(far(50), addr(50))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.cachedIds(table), [far(50)])

    def test_heardFromEntersRoom(self) -> None:
        """A node that only queried us enters a bucket with room."""
        self.table.nodeQueried(far(1), addr(1))
        self.assertEqual(self.liveIds(), {far(1)})

    def test_heardFromNeverEvicts(self) -> None:
        """A node that only queried us never replaces a bad node nor triggers a ping."""
        self.fillFar()
        self.table.nodeFailed(addr(2))
        self.table.nodeFailed(addr(2))
        self.table.nodeQueried(far(50), addr(50))
        self.assertIsNotNone(self.table.get(addr(2)))
        self.assertNotIn(far(50), self.liveIds())
        self.assertEqual(self.cachedIds(), [far(50)])
        self.clock.advance(FIFTEEN_MINUTES + 1)
        self.table.nodeQueried(far(51), addr(51))
        self.assertEqual(self.pinged, [])

    def test_heardFromConfirmedLaterMoves(self) -> None:
        """A cached heard-from node that then answers is promoted into a bad node's slot."""
        self.fillFar()
        self.table.nodeQueried(far(50), addr(50))
        self.table.nodeFailed(addr(2))
        self.table.nodeFailed(addr(2))
        # far(50) is the only replacement but unconfirmed: it still takes the bad slot.
        self.assertIn(far(50), self.liveIds())
        self.assertIsNone(self.table.get(addr(2)))
        self.table.nodeResponded(far(51), addr(51))
        self.table.nodeResponded(far(51), addr(51))
        self.assertEqual(self.cachedIds(), [far(51)])

    def test_neverAnsweredRemovedAtFirstFailure(self) -> None:
        """A never-answered contact is removed at its first failure, promoting a cache entry."""
        for i in range(7):
            self.table.nodeResponded(far(i), addr(i))
        self.table.nodeQueried(far(7), addr(7))
        self.table.nodeResponded(far(8), addr(8))
        self.assertEqual(self.cachedIds(), [far(8)])
        self.table.nodeFailed(addr(7))
        self.assertIsNone(self.table.get(addr(7)))
        self.assertIn(far(8), self.liveIds())
        self.assertEqual(self.cachedIds(), [])

    def test_failedReplacementDropped(self) -> None:
        """A failure of an address in the replacement cache removes it from there."""
        self.fillFar(count=10)
        self.assertEqual(self.cachedIds(), [far(8), far(9)])
        self.table.nodeFailed(addr(8))
        self.assertEqual(self.cachedIds(), [far(9)])
        self.table.nodeFailed(addr(99))  # unknown: nothing happens
        self.assertEqual(len(self.table), 8)

    def test_knownContactRefreshed(self) -> None:
        """A known contact moves to most recently seen and its bucket's lastChanged updates."""
        self.fillFar()
        self.clock.advance(10)
        self.table.nodeQueried(far(0), addr(0))
        bucket = self.bucketOf(far(0))
        self.assertEqual(bucket.contacts[-1].nodeId, far(0))
        self.assertEqual(bucket.lastChanged, 10)
        self.assertEqual(bucket.contacts[-1].lastQuery, 10)
        self.assertEqual(bucket.contacts[-1].lastResponse, 0)

    def test_knownAddressNewIdEvicts(self) -> None:
        """A known address answering with a new id evicts the old entry for the new one."""
        self.fillFar()
        self.table.nodeResponded(far(50), addr(3))
        self.assertNotIn(far(3), self.liveIds())
        contact = self.table.get(addr(3))
        assert contact is not None
        self.assertEqual(contact.nodeId, far(50))
        self.assertEqual(len(self.table), 8)

    def test_knownAddressNewIdQueryIgnored(self) -> None:
        """A query from a known address with a new id (maybe spoofed) evicts nobody."""
        self.fillFar()
        self.table.nodeQueried(far(50), addr(3))
        contact = self.table.get(addr(3))
        assert contact is not None
        self.assertEqual(contact.nodeId, far(3))
        self.assertNotIn(far(50), self.cachedIds())

    def test_knownIdNewAddressIgnored(self) -> None:
        """A known id at a new address is ignored, so a new IP cannot hijack it."""
        self.table.nodeResponded(far(1), addr(1))
        self.table.nodeResponded(far(1), addr(2))
        self.table.nodeQueried(far(1), addr(3))
        self.assertIsNone(self.table.get(addr(2)))
        self.assertIsNone(self.table.get(addr(3)))
        contact = self.table.get(addr(1))
        assert contact is not None
        self.assertEqual(contact.nodeId, far(1))

    def test_knownIdInCacheNewAddressIgnored(self) -> None:
        """A cached id at a new address is ignored too."""
        self.fillFar(count=9)
        self.table.nodeResponded(far(8), addr(60))
        self.assertEqual(
            [c.address for b in self.table.buckets() for c in b.replacements], [addr(8)]
        )


class IPRuleTests(Harness):
    """One entry per IP and a few per /24 or /64."""

    def test_onePerIP(self) -> None:
        """Only one live entry per IP address, whatever the port."""
        self.table.nodeResponded(far(1), ("1.2.3.4", 1000))
        self.table.nodeResponded(far(2), ("1.2.3.4", 1001))
        self.table.nodeQueried(far(3), ("1.2.3.4", 1002))
        self.assertEqual(self.liveIds(), {far(1)})
        self.assertEqual(self.cachedIds(), [])

    def test_twoPerSubnetPerBucket(self) -> None:
        """At most two entries of one /24 per bucket; a third waits for another bucket."""
        for i in range(3):
            self.table.nodeResponded(far(i), (f"1.2.3.{i + 1}", 6881))
        self.assertEqual(self.liveIds(), {far(0), far(1)})
        for i in range(3, 11):
            self.table.nodeResponded(far(i), addr(i))
        self.table.nodeResponded(near(1), ("1.2.3.9", 6881))
        self.assertIn(near(1), self.liveIds())
        self.assertEqual(self.table.buckets()[0].contacts[0].nodeId, near(1))

    def test_fullBucketCacheRefusesHeardFromNewcomersByIP(self) -> None:
        """Heard-from newcomers that only a full bucket's cache could take are refused
        there by the IP rules (live IP, same IP, third of a /24 or /64), the others
        cached; with relaxLocal, local addresses are exempt."""
        for ipv6, hosts in (
            (False, ["5.6.7.1", "5.6.7.2", "5.6.7.3", "5.6.8.1"]),
            (True, ["2001:db8:a::1", "2001:db8:a::2", "2001:db8:a::3", "2001:db8:b::1"]),
        ):
            table = self.makeTable()
            for i in range(8):
                table.nodeResponded(far(i), (f"2001:db8:{i + 1}::1", 6881) if ipv6 else addr(i))
            for i, host in enumerate(hosts):
                table.nodeQueried(far(20 + i), (host, 6881))
            table.nodeQueried(far(30), (hosts[0], 6882))  # the same IP
            table.nodeQueried(far(31), (table.contacts()[0].address[0], 7000))  # a live IP
            self.assertEqual(self.cachedIds(table), [far(20), far(21), far(23)])
            checkInvariants(self, table)
        table = self.makeTable(relaxLocal=True)
        self.fillFar(table)
        for i in range(4):
            table.nodeQueried(far(20 + i), ("127.0.0.1", 7000 + i))
        self.assertEqual(self.cachedIds(table), [far(20 + i) for i in range(4)])

    def test_ipv6Slash64(self) -> None:
        """IPv6 addresses are limited per /64 and per address."""
        for i in range(3):
            self.table.nodeResponded(far(i), (f"2001:db8:1:2::{i + 1}", 6881))
        self.table.nodeResponded(far(5), ("2001:db8:1:3::1", 6881))
        self.table.nodeResponded(far(6), ("2001:db8:1:3:0::1", 6882))
        self.assertEqual(self.liveIds(), {far(0), far(1), far(5)})

    def test_restrictIPsOff(self) -> None:
        """With restrictIPs off, one IP may hold many entries, one per port."""
        table = self.makeTable(restrictIPs=False)
        for i in range(5):
            table.nodeResponded(far(i), ("1.2.3.4", 1000 + i))
        self.assertEqual(len(table), 5)

    def test_relaxLocalExemptsLocalAddresses(self) -> None:
        """relaxLocal exempts loopback, private and link-local addresses, but not public ones."""
        strict = self.makeTable(k=32)
        relaxed = self.makeTable(k=32, relaxLocal=True)
        hosts = ["127.0.0.1", "10.0.0.1", "192.168.1.1", "169.254.1.1", "::1", "fe80::1"]
        for table in (strict, relaxed):
            n = 0
            for host in hosts:
                for port in range(3):
                    table.nodeResponded(far(n), (host, 7000 + port))
                    n += 1
            for port in range(3):
                table.nodeResponded(far(n), ("1.2.3.4", 7000 + port))
                n += 1
        self.assertEqual(len(strict), len(hosts) + 1)
        self.assertEqual(len(relaxed), 3 * len(hosts) + 1)
        self.assertEqual(sum(c.address[0] == "1.2.3.4" for c in relaxed.contacts()), 1)
        self.assertEqual(sum(c.address[0] == "127.0.0.1" for c in relaxed.contacts()), 3)
        self.assertEqual(sum(c.address[0] == "fe80::1" for c in relaxed.contacts()), 3)

    def test_onePerAddressAlways(self) -> None:
        """Even without IP restrictions one ip:port holds only one entry."""
        table = self.makeTable(restrictIPs=False)
        table.nodeResponded(far(1), ("127.0.0.1", 7000))
        table.nodeResponded(far(2), ("127.0.0.1", 7000))
        self.assertEqual(self.liveIds(table), {far(2)})


def bruteForce(table: RoutingTable, target: bytes, k: int, now: float) -> list[Contact]:
    """The k closest good contacts by sorting the whole table."""
    t = toInt(target)
    good = [c for c in table.contacts() if c.state(now) is NodeState.GOOD]
    return sorted(good, key=lambda c: c.idInt ^ t)[:k]


class ClosestTests(Harness):
    """closest() is exact, good-only and bounded."""

    def test_matchesBruteForce(self) -> None:
        """On random tables with mixed states, closest() equals a full XOR sort of good nodes."""
        rng = random.Random(20240601)
        bucketCounts, states = [], set()
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
    """closestCompact() caches closest()'s compact string and is never stale."""

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

    def test_bounded(self) -> None:
        """At most CLOSEST_CACHE_SIZE answers are kept, the least recently used going first."""
        from twisted_dht.routing import CLOSEST_CACHE_SIZE

        self.fillFar(count=2)
        for i in range(CLOSEST_CACHE_SIZE + 50):
            self.table.closestCompact(fromInt(i), 8)
        cache = self.table._closestCache
        self.assertEqual(len(cache), CLOSEST_CACHE_SIZE)
        self.assertNotIn((fromInt(0), 8), cache)
        self.assertIn((fromInt(CLOSEST_CACHE_SIZE + 49), 8), cache)


class MaintenanceTests(Harness):
    """Accessors used by maintenance: stale buckets, questionable contacts, own id."""

    def test_staleBuckets(self) -> None:
        """A bucket is stale once unchanged for the interval; activity freshens it."""
        self.fillFar(count=9)
        self.assertEqual(self.table.staleBuckets(), [])
        self.clock.advance(FIFTEEN_MINUTES)
        self.assertEqual(len(self.table.staleBuckets()), 2)
        self.table.nodeResponded(far(1), addr(1))
        self.assertEqual(self.table.staleBuckets(), [self.table.buckets()[0]])
        self.assertEqual(self.table.staleBuckets(interval=1000.0), [])

    def test_questionableLeastRecentlySeenFirst(self) -> None:
        """questionable() lists non-good contacts, least recently seen first."""
        self.table.nodeResponded(far(1), addr(1))
        self.clock.advance(10)
        self.table.nodeResponded(far(2), addr(2))
        self.table.nodeResponded(far(3), addr(3))
        self.assertEqual(self.table.questionable(), [])
        self.clock.advance(FIFTEEN_MINUTES)
        self.table.nodeResponded(far(3), addr(3))
        self.assertEqual([c.nodeId for c in self.table.questionable()], [far(1), far(2)])

    def test_accessors(self) -> None:
        """len, contacts, get and goodCount report the live buckets only."""
        self.fillFar(count=10)
        self.table.nodeQueried(near(1), addr(100))
        self.assertEqual(len(self.table), 9)
        self.assertEqual(len(self.table.contacts()), 9)
        self.assertEqual(self.table.goodCount(), 8)
        self.assertIsNone(self.table.get(addr(9)))
        contact = self.table.get(addr(100))
        assert contact is not None
        self.assertEqual(contact.nodeId, near(1))

    def test_setOwnIdKeepsContacts(self) -> None:
        """setOwnId rebuilds the buckets around the new id and keeps every contact."""
        rng = random.Random(7)
        for i in range(30):
            self.table.nodeResponded(rng.randbytes(20), addr(i))
        before = self.liveIds() | set(self.cachedIds())
        newId = b"\xff" * 20
        self.table.setOwnId(newId)
        self.assertEqual(self.table.ownId, newId)
        self.assertEqual(self.liveIds() | set(self.cachedIds()), before)
        self.assertGreater(len(self.table), 8)
        self.assertTrue(self.table.buckets()[-1].covers(toInt(newId)))
        checkInvariants(self, self.table)
        self.assertEqual(self.table.closest(newId), bruteForce(self.table, newId, 8, 0))

    def test_setOwnIdDropsNewOwnId(self) -> None:
        """setOwnId drops a contact that has the new id."""
        self.fillFar(count=3)
        self.table.setOwnId(far(1))
        self.assertEqual(self.liveIds(), {far(0), far(2)})
        self.table.nodeResponded(far(1), addr(1))
        self.assertEqual(len(self.table), 2)

    def test_badOptions(self) -> None:
        """Nonsense sizes and a wrong-length id are refused."""
        self.assertRaises(ValueError, RoutingTable, b"short", reactor=self.clock)
        self.assertRaises(ValueError, RoutingTable, OWN, k=0, reactor=self.clock)
        self.assertRaises(ValueError, self.table.setOwnId, b"short")
