"""Tests for twisted_dht.iprules: libtorrent's IP hygiene, by itself and in a table."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from twisted_dht.addresses import packIP, subnetOf
from twisted_dht.contacts import Bucket, Contact
from twisted_dht.iprules import SUBNET_LIMIT, IPRules

from .routingsupport import Harness, addr, checkInvariants, far, near


def contact(i: int, host: str, port: int = 6881) -> Contact:
    return Contact(far(i), (host, port))


def live(rules: IPRules, bucket: Bucket, *contacts: Contact) -> None:
    """Make C{contacts} live in C{bucket}, as the table does."""
    for c in contacts:
        bucket.contacts.append(c)
        rules.added(c)


class IPRulesTests(SynchronousTestCase):
    """IPRules without a table."""

    def setUp(self) -> None:
        self.rules = IPRules(restrictIPs=True, relaxLocal=False)
        self.bucket = Bucket(2**159, 2**160, 0.0)

    def test_subnetLimit(self) -> None:
        """Two entries of one /24 or /64 per bucket list, as libtorrent."""
        self.assertEqual(SUBNET_LIMIT, 2)

    def test_liveIPsCounted(self) -> None:
        """added and removed count the live contacts per packed IP; an IP whose count
        falls to zero is forgotten."""
        a, b = contact(1, "1.2.3.4", 1), contact(2, "1.2.3.4", 2)
        self.rules.added(a)
        self.rules.added(b)
        self.assertEqual(self.rules.liveIPs, {packIP("1.2.3.4"): 2})
        self.rules.removed(a)
        self.assertEqual(self.rules.liveIPs, {packIP("1.2.3.4"): 1})
        self.rules.removed(b)
        self.assertNotIn(packIP("1.2.3.4"), self.rules.liveIPs)
        self.assertEqual(len(self.rules.liveIPs), 0)

    def test_exempt(self) -> None:
        """Without restrictIPs everyone is exempt; with relaxLocal, local addresses only."""
        public, local = contact(1, "1.2.3.4"), contact(2, "192.168.1.1")
        self.assertFalse(self.rules.exempt(public))
        self.assertFalse(self.rules.exempt(local))
        relaxed = IPRules(restrictIPs=True, relaxLocal=True)
        self.assertFalse(relaxed.exempt(public))
        self.assertTrue(relaxed.exempt(local))
        off = IPRules(restrictIPs=False, relaxLocal=False)
        self.assertTrue(off.exempt(public))

    def test_allowedLiveOnePerIP(self) -> None:
        """A live IP keeps out another contact of that IP, in any bucket, unless it
        replaces the contact holding that IP."""
        old = contact(1, "1.2.3.4", 1)
        live(self.rules, Bucket(0, 2**159, 0.0), old)
        newcomer = contact(2, "1.2.3.4", 2)
        self.assertFalse(self.rules.allowedLive(self.bucket, newcomer))
        self.assertTrue(self.rules.allowedLive(self.bucket, newcomer, old))
        self.assertTrue(self.rules.allowedLive(self.bucket, contact(3, "5.6.7.8")))

    def test_allowedLiveSubnet(self) -> None:
        """A bucket takes SUBNET_LIMIT live contacts of one /24 (or /64), then another in
        place of one of them only."""
        first, second = contact(1, "1.2.3.1"), contact(2, "1.2.3.2")
        live(self.rules, self.bucket, first, second)
        third = contact(3, "1.2.3.3")
        self.assertFalse(self.rules.allowedLive(self.bucket, third))
        self.assertTrue(self.rules.allowedLive(self.bucket, third, first))
        self.assertTrue(self.rules.allowedLive(Bucket(0, 2**159, 0.0), third))
        self.assertTrue(self.rules.allowedLive(self.bucket, contact(4, "1.2.4.1")))
        live(self.rules, self.bucket, contact(5, "2001:db8:1:2::1"), contact(6, "2001:db8:1:2::2"))
        self.assertFalse(self.rules.allowedLive(self.bucket, contact(7, "2001:db8:1:2::3")))
        self.assertTrue(self.rules.allowedLive(self.bucket, contact(8, "2001:db8:1:3::1")))

    def test_allowedCached(self) -> None:
        """A replacement cache refuses a live IP, an IP it holds, and a third entry of a
        /24; an exempt contact is always allowed."""
        live(self.rules, Bucket(0, 2**159, 0.0), contact(1, "9.9.9.9"))
        self.bucket.replacements += [contact(2, "1.2.3.1"), contact(3, "1.2.3.2")]
        self.assertFalse(self.rules.allowedCached(self.bucket, contact(4, "9.9.9.9", 2)))
        self.assertFalse(self.rules.allowedCached(self.bucket, contact(5, "1.2.3.1", 2)))
        self.assertFalse(self.rules.allowedCached(self.bucket, contact(6, "1.2.3.3")))
        self.assertTrue(self.rules.allowedCached(self.bucket, contact(7, "1.2.4.1")))
        off = IPRules(restrictIPs=False, relaxLocal=False)
        self.assertTrue(off.allowedCached(self.bucket, contact(8, "1.2.3.1", 2)))

    def test_cacheAdmits(self) -> None:
        """cacheAdmits decides from a packed IP and subnet, as allowedCached does."""
        self.bucket.replacements += [contact(2, "1.2.3.1"), contact(3, "1.2.3.2")]
        for host, expected in [("1.2.3.1", False), ("1.2.3.3", False), ("1.2.4.1", True)]:
            ip = packIP(host)
            self.assertEqual(self.rules.cacheAdmits(self.bucket, ip, subnetOf(ip)), expected)


class TableIPRuleTests(Harness):
    """A table keeps one entry per IP and a few per /24 or /64."""

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
