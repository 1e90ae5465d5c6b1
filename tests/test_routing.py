"""Tests for twisted_dht.routing: node states in a table, buckets, eviction rules, the
questionable contacts the table asks to have pinged, admission, maintenance accessors.

IP hygiene is tested in test_iprules, closest() and closestCompact() in test_closest,
contacts and buckets by themselves in test_contacts.
"""

from __future__ import annotations

import random

from twisted_dht.contacts import NodeState
from twisted_dht.nodeid import fromInt, toInt
from twisted_dht.routing import PING_THROTTLE, REFRESH_INTERVAL, RoutingTable

from .routingsupport import (
    FIFTEEN_MINUTES,
    OWN,
    Harness,
    addr,
    bruteForce,
    checkInvariants,
    covers,
    far,
    near,
)


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


class BucketTests(Harness):
    """Bucket splitting and ranges."""

    def test_startsWithOneBucket(self) -> None:
        """An empty table is one bucket covering the whole id space."""
        [bucket] = self.table.buckets()
        self.assertEqual((bucket.low, bucket.high, bucket.depth), (0, 2**160, 0))
        self.assertEqual(len(self.table), 0)

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
        self.assertIsNone(self.table.nodeResponded(OWN, addr(1)))
        self.assertIsNone(self.table.nodeQueried(OWN, addr(2)))
        self.assertEqual(len(self.table), 0)
        self.assertEqual(self.cachedIds(), [])


class InsertionTests(Harness):
    """Replacement caches, eviction and the contacts to ping."""

    def test_fullGoodBucketCachesNewcomer(self) -> None:
        """A bucket full of good nodes keeps them; newcomers go to a bounded cache, newest
        kept, and no contact needs a ping."""
        toPing = self.fillFar(count=20)
        self.assertEqual(self.liveIds(), {far(i) for i in range(8)})
        self.assertEqual(self.cachedIds(), [far(i) for i in range(12, 20)])
        self.assertEqual(toPing, [None] * 20)
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
        self.assertIsNone(self.table.nodeResponded(far(50), addr(50)))  # no ping needed
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
        """A confirmed newcomer asks for the least recently seen questionable node to be
        pinged, once per minute, and that node's failures promote the newest confirmed
        replacement."""
        self.fillFar()
        self.clock.advance(FIFTEEN_MINUTES + 1)
        for i in range(1, 8):
            self.table.nodeResponded(far(i), addr(i))  # all but far(0) are fresh again
        toPing = self.table.nodeResponded(far(50), addr(50))
        self.assertIs(toPing, self.table.get(addr(0)))
        self.assertEqual(self.cachedIds(), [far(50)])
        self.assertIsNone(self.table.nodeResponded(far(51), addr(51)))
        self.assertIsNone(self.table.nodeQueried(far(52), addr(52)))
        self.clock.advance(61)
        toPing = self.table.nodeResponded(far(53), addr(53))
        self.assertIs(toPing, self.table.get(addr(0)))
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
        toPing = [self.table.nodeResponded(far(50), addr(50))]
        self.assertIsNone(self.table.nodeResponded(far(0), addr(0)))  # the ping's answer
        toPing.append(self.table.nodeResponded(far(51), addr(51)))
        self.assertEqual([c.nodeId for c in toPing if c is not None], [far(0), far(1)])
        self.assertIn(far(0), self.liveIds())

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
        self.assertIsNone(self.table.nodeQueried(far(51), addr(51)))
        self.assertEqual([c for c in self.table.contacts() if c.lastPinged is not None], [])

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
        self.assertIsNone(self.table.nodeQueried(far(50), addr(3)))
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


class QuestionableTests(Harness):
    """The questionable contact nodeResponded returns, for the caller to ping."""

    def agedTable(self) -> None:
        """far(0)..far(7) confirmed a second apart, all questionable now."""
        for i in range(8):
            self.table.nodeResponded(far(i), addr(i))
            self.clock.advance(1)
        self.clock.advance(FIFTEEN_MINUTES)
        self.assertEqual(len(self.table.questionable()), 8)

    def test_leastRecentlySeenReturnedAndMarked(self) -> None:
        """The least recently seen questionable contact is returned, its lastPinged set to
        now; the table itself changes nothing else about it."""
        self.agedTable()
        toPing = self.table.nodeResponded(far(50), addr(50))
        assert toPing is not None
        self.assertEqual(toPing.nodeId, far(0))
        self.assertIs(toPing, self.table.get(addr(0)))
        self.assertEqual(toPing.lastPinged, self.clock.seconds())
        self.assertEqual((toPing.failures, toPing.lastResponse), (0, 0.0))
        self.assertEqual(self.cachedIds(), [far(50)])

    def test_throttled(self) -> None:
        """The same contact is returned again only PING_THROTTLE seconds later; in between
        no contact is."""
        self.agedTable()
        first = self.table.nodeResponded(far(50), addr(50))
        self.clock.advance(PING_THROTTLE - 1)
        self.assertIsNone(self.table.nodeResponded(far(51), addr(51)))
        self.clock.advance(1)
        self.assertIs(self.table.nodeResponded(far(52), addr(52)), first)

    def test_goodSkipped(self) -> None:
        """Good contacts are never returned: the questionable one is, wherever it is."""
        for i in range(7):
            self.table.nodeResponded(far(i), addr(i))
        self.clock.advance(1)
        self.table.nodeQueried(far(7), addr(7))  # never answered: questionable
        toPing = self.table.nodeResponded(far(50), addr(50))
        assert toPing is not None
        self.assertEqual(toPing.nodeId, far(7))

    def test_noneWithoutPressure(self) -> None:
        """No contact is returned for a node inserted where there is room, a known node
        refreshed, or a newcomer to a bucket of good contacts."""
        self.assertEqual(self.fillFar(), [None] * 8)
        self.assertIsNone(self.table.nodeResponded(far(3), addr(3)))
        self.assertIsNone(self.table.nodeResponded(far(50), addr(50)))

    def test_noneWhenNewcomerCannotWait(self) -> None:
        """A newcomer that the replacement cache cannot take (no cache, or the IP rules
        refuse it) asks for no ping: nobody would take the freed slot."""
        table = self.makeTable(replacements=0)
        self.table = table
        self.agedTable()
        self.assertIsNone(table.nodeResponded(far(50), addr(50)))
        self.table = self.makeTable()
        self.agedTable()
        self.assertIsNone(self.table.nodeResponded(far(50), (addr(3)[0], 7000)))  # live IP
        self.assertEqual(self.cachedIds(), [])
        self.assertEqual([c for c in self.table.contacts() if c.lastPinged is not None], [])


class NodeQueriedTests(Harness):
    """nodeQueried returns the querier's live contact, if it has one."""

    def test_newContact(self) -> None:
        """A querier inserted where there is room: its new, never-answered contact."""
        contact = self.table.nodeQueried(far(1), addr(1))
        assert contact is not None
        self.assertIs(contact, self.table.get(addr(1)))
        self.assertEqual(
            (contact.nodeId, contact.lastQuery, contact.lastResponse), (far(1), 0, None)
        )

    def test_knownContact(self) -> None:
        """A live querier: its contact, refreshed."""
        self.table.nodeResponded(far(1), addr(1))
        self.clock.advance(5)
        contact = self.table.nodeQueried(far(1), addr(1))
        assert contact is not None
        self.assertIs(contact, self.table.get(addr(1)))
        self.assertEqual((contact.lastQuery, contact.lastResponse), (5, 0))

    def test_cachedOrRefused(self) -> None:
        """A querier only cached, or kept out, has no live contact."""
        self.fillFar()
        self.assertIsNone(self.table.nodeQueried(far(50), addr(50)))
        self.assertIsNone(self.table.nodeQueried(far(50), addr(50)))  # queried again
        self.assertEqual(self.cachedIds(), [far(50)])
        self.assertIsNone(self.table.nodeQueried(far(51), (addr(2)[0], 7000)))  # live IP

    def test_otherIdAtItsAddress(self) -> None:
        """A querier whose address is another id's contact: not that contact."""
        self.table.nodeQueried(far(1), addr(1))
        self.assertIsNone(self.table.nodeQueried(far(2), addr(1)))
        contact = self.table.get(addr(1))
        assert contact is not None
        self.assertEqual(contact.nodeId, far(1))


class AdmitTests(Harness):
    """The admit option keeps nodes out of the table."""

    def setUp(self) -> None:
        super().setUp()
        self.asked: list[tuple[bytes, tuple[str, int]]] = []

        def admit(nodeId: bytes, address: tuple[str, int]) -> bool:
            self.asked.append((nodeId, address))
            return nodeId != far(66)

        self.table = self.makeTable(admit=admit)

    def test_refusedNeverEnters(self) -> None:
        """A refused node enters neither a bucket nor a cache, answering or querying; the
        others do."""
        self.assertIsNone(self.table.nodeResponded(far(66), addr(66)))
        self.assertIsNone(self.table.nodeQueried(far(66), addr(67)))
        self.assertEqual(len(self.table), 0)
        self.fillFar()
        self.assertIsNone(self.table.nodeResponded(far(66), addr(66)))
        self.assertEqual(self.liveIds(), {far(i) for i in range(8)})
        self.assertEqual(self.cachedIds(), [])
        self.assertIn((far(66), addr(66)), self.asked)
        self.assertIn((far(0), addr(0)), self.asked)

    def test_refusedDoesNotEvict(self) -> None:
        """A refused id answering from a contact's address does not evict it."""
        self.table.nodeResponded(far(1), addr(1))
        self.table.nodeResponded(far(66), addr(1))
        contact = self.table.get(addr(1))
        assert contact is not None
        self.assertEqual(contact.nodeId, far(1))

    def test_knownNotAskedAgain(self) -> None:
        """A live contact heard from again is not asked about again."""
        self.table.nodeResponded(far(1), addr(1))
        del self.asked[:]
        self.table.nodeResponded(far(1), addr(1))
        self.table.nodeQueried(far(1), addr(1))
        self.assertEqual(self.asked, [])


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
        self.assertTrue(covers(self.table.buckets()[-1], toInt(newId)))
        checkInvariants(self, self.table)
        self.assertEqual(self.table.closest(newId), bruteForce(self.table, newId, 8, 0))

    def test_setOwnIdKeepsSubnetNeighbours(self) -> None:
        """A contact that the subnet rule keeps out of its new bucket, merged from
        buckets that held its /24 apart, is cached, not lost, though the bucket has room."""
        self.fillFar()
        for i in range(6):
            self.table.nodeQueried(near(i), addr(100 + i))
        self.table.nodeResponded(near(50), ("5.5.5.1", 6881))
        self.table.nodeResponded(near(51), ("5.5.5.2", 6881))
        self.table.nodeResponded(fromInt(5), ("5.5.5.3", 6881))  # [0, 2^158) after a split
        for i in range(6):
            self.table.nodeFailed(addr(100 + i))  # never answered: gone, room made
        self.assertEqual([b.depth for b in self.table.buckets()], [2, 2, 1])
        before = self.liveIds()
        self.table.setOwnId(far(1000))  # [0, 2^159) is one bucket now, with room
        self.assertEqual(len(self.bucketOf(near(50)).contacts), 2)
        self.assertEqual(self.liveIds() | set(self.cachedIds()), before)
        self.assertEqual(len(self.cachedIds()), 1)
        checkInvariants(self, self.table)

    def test_refreshInterval(self) -> None:
        """staleBuckets' default interval is BEP 5's 15 minutes."""
        self.assertEqual(REFRESH_INTERVAL, FIFTEEN_MINUTES)

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
