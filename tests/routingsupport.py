"""Shared helpers of the routing table tests (test_routing, test_contacts, test_closest,
test_iprules): ids on either side of OWN, distinct addresses, a table harness on a Clock
and the table's structural invariants."""

from __future__ import annotations

import itertools
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht.addresses import Address
from twisted_dht.contacts import Bucket, Contact, NodeState
from twisted_dht.nodeid import fromInt, toInt
from twisted_dht.routing import RoutingTable

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


def covers(bucket: Bucket, idInt: int) -> bool:
    """Whether an id (as an integer) falls in the bucket's range."""
    return bucket.low <= idInt < bucket.high


class Harness(SynchronousTestCase):
    """A table on a Clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.table = self.makeTable()

    def makeTable(self, ownId: bytes = OWN, **kwargs: Any) -> RoutingTable:
        return RoutingTable(ownId, reactor=self.clock, **kwargs)

    def fillFar(self, table: RoutingTable | None = None, count: int = 8) -> list[Contact | None]:
        """Confirm C{count} far nodes far(0)..far(count - 1) at addr(0)..addr(count - 1);
        return what each nodeResponded returned (the contacts to ping)."""
        table = self.table if table is None else table
        return [table.nodeResponded(far(i), addr(i)) for i in range(count)]

    def liveIds(self, table: RoutingTable | None = None) -> set[bytes]:
        table = self.table if table is None else table
        return {c.nodeId for c in table.contacts()}

    def cachedIds(self, table: RoutingTable | None = None) -> list[bytes]:
        table = self.table if table is None else table
        return [c.nodeId for b in table.buckets() for c in b.replacements]

    def bucketOf(self, nodeId: bytes) -> Bucket:
        value = toInt(nodeId)
        [bucket] = [b for b in self.table.buckets() if covers(b, value)]
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
            test.assertTrue(covers(bucket, contact.idInt))
            test.assertNotEqual(contact.nodeId, table.ownId)
            test.assertNotIn(contact.address, seenAddresses)
            test.assertNotIn(contact.nodeId, seenIds)
            seenAddresses.add(contact.address)
            seenIds.add(contact.nodeId)
    test.assertEqual(len(table), sum(len(b.contacts) for b in buckets))


def bruteForce(table: RoutingTable, target: bytes, k: int, now: float) -> list[Contact]:
    """The k closest good contacts by sorting the whole table."""
    t = toInt(target)
    good = [c for c in table.contacts() if c.state(now) is NodeState.GOOD]
    return sorted(good, key=lambda c: c.idInt ^ t)[:k]
