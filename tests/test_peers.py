"""Tests for twisted_dht.peers: storage, expiry, caps and sampling of announced peers."""

from __future__ import annotations

import random

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_dht import bencoding
from twisted_dht.addresses import Address, packAddress, unpackAddress
from twisted_dht.interfaces import IEncodedPeerSource, IPeerStore
from twisted_dht.peers import PeerStore, encodeStrings
from twisted_dht.periodic import Periodic

HASH1 = b"\x11" * 20
HASH2 = b"\x22" * 20
MINUTE = 60.0


def peer(i: int) -> Address:
    """The i-th distinct IPv4 peer."""
    return (f"192.168.{i // 256}.{i % 256}", 6881 + i % 1000)


class EncodeStringsTests(SynchronousTestCase):
    """encodeStrings, which the handlers use to bencode a plain store's peers."""

    def test_itemsOfAList(self) -> None:
        """Compact strings of one width encode to the items of a bencoded list."""
        strings = [packAddress(peer(i)) for i in range(3)]
        self.assertEqual(bencoding.decode(b"l" + encodeStrings(strings) + b"e"), strings)
        six = [packAddress(("2001:db8::1", 1)), packAddress(("2001:db8::2", 2))]
        self.assertEqual(encodeStrings(six), b"18:" + six[0] + b"18:" + six[1])

    def test_empty(self) -> None:
        """No strings encode to nothing."""
        self.assertEqual(encodeStrings([]), b"")


class PeerStoreTests(SynchronousTestCase):
    """PeerStore with a fake clock, 5 peers per info_hash and 10 info_hashes."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.store = PeerStore(
            peerTTL=30 * MINUTE, maxPeersPerInfoHash=5, maxInfoHashes=10, reactor=self.clock
        )

    def test_interface(self) -> None:
        """PeerStore provides IPeerStore and its optional fast path IEncodedPeerSource."""
        self.assertTrue(verifyObject(IPeerStore, self.store))
        self.assertTrue(verifyObject(IEncodedPeerSource, self.store))
        self.assertTrue(IEncodedPeerSource.providedBy(self.store))

    def test_interfaceSignatures(self) -> None:
        """The interface's positional calls work: getCompactPeers(infoHash, ipv6, limit)
        and getEncodedPeers(infoHash, ipv6, limit)."""
        self.store.addPeer(HASH1, peer(1), False)
        self.assertEqual(self.store.getCompactPeers(HASH1, False, 10), [packAddress(peer(1))])
        self.assertEqual(
            self.store.getEncodedPeers(HASH1, False, 10), b"6:" + packAddress(peer(1))
        )
        self.assertEqual(self.store.getCompactPeers(HASH1, True, 10), [])

    def test_reactorRequired(self) -> None:
        """The reactor is a required keyword: no global reactor is picked up."""
        self.assertRaises(TypeError, PeerStore)

    def test_invalidSettings(self) -> None:
        """Caps below 1 and a time to live that is not positive are refused."""
        for settings in (
            {"maxPeersPerInfoHash": 0},
            {"maxInfoHashes": 0},
            {"peerTTL": 0.0},
            {"peerTTL": -1.0},
        ):
            self.assertRaises(ValueError, PeerStore, reactor=self.clock, **settings)

    def test_noTimers(self) -> None:
        """The store schedules nothing: after announces, reads and expiry the clock has
        no pending call."""
        self.store.addPeer(HASH1, peer(1))
        self.store.getCompactPeers(HASH1, False, 10)
        self.clock.advance(31 * MINUTE)
        self.store.removeExpired()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    # addPeer -------------------------------------------------------------------

    def test_storesByInfoHash(self) -> None:
        """A stored peer is returned for its info_hash."""
        self.store.addPeer(HASH1, ("192.168.1.1", 6881))
        self.assertEqual(self.store.getPeers(HASH1), [("192.168.1.1", 6881)])

    def test_multiplePeers(self) -> None:
        """Several peers are stored under one info_hash."""
        self.store.addPeer(HASH1, ("192.168.1.1", 6881))
        self.store.addPeer(HASH1, ("192.168.1.2", 6882))
        self.assertEqual(len(self.store.getPeers(HASH1)), 2)

    def test_separatesByInfoHash(self) -> None:
        """Peers of different info_hashes are kept apart."""
        self.store.addPeer(HASH1, ("192.168.1.1", 6881))
        self.store.addPeer(HASH2, ("192.168.1.2", 6882))
        self.assertEqual(self.store.getPeers(HASH1), [("192.168.1.1", 6881)])
        self.assertEqual(self.store.getPeers(HASH2), [("192.168.1.2", 6882)])

    def test_deduplicates(self) -> None:
        """Announcing the same IP and port three times stores one peer."""
        for _ in range(3):
            self.store.addPeer(HASH1, ("192.168.1.1", 6881))
        self.assertEqual(len(self.store.getPeers(HASH1)), 1)
        self.assertEqual(self.store.peerCount(), 1)

    def test_samePortOtherIP(self) -> None:
        """Two IPs on the same port are different peers."""
        self.store.addPeer(HASH1, ("192.168.1.1", 6881))
        self.store.addPeer(HASH1, ("192.168.1.2", 6881))
        self.assertEqual(len(self.store.getPeers(HASH1)), 2)

    def test_oneEntryPerIP(self) -> None:
        """BEP 33: an IP announcing another port replaces its entry, of either family."""
        for host in ("192.168.1.1", "2001:db8::1"):
            ipv6 = ":" in host
            self.store.addPeer(HASH1, ("192.168.1.9", 7000))
            self.store.addPeer(HASH1, (host, 6881))
            self.store.addPeer(HASH1, (host, 6882))
            self.assertEqual(self.store.getPeers(HASH1, ipv6)[-1], (host, 6882))
            self.assertNotIn((host, 6881), self.store.getPeers(HASH1, ipv6))
        self.assertEqual(self.store.peerCount(), 3)

    def test_ipMatchOnlyAtSlotStart(self) -> None:
        """An IP whose bytes occur across a stored port and the next IP is a new peer."""
        # Slots 01 02 03 04 | 05 06 and 07 08 09 0a | 0b 0c: bytes 4..7 are 05 06 07 08.
        self.store.addPeer(HASH1, ("1.2.3.4", 0x0506))
        self.store.addPeer(HASH1, ("7.8.9.10", 0x0B0C))
        self.store.addPeer(HASH1, ("5.6.7.8", 1))
        self.assertEqual(len(self.store.getPeers(HASH1)), 3)

    def test_dedupeIgnoresMisalignedMatch(self) -> None:
        """A new peer whose bytes occur across two stored slots is not taken for a duplicate."""
        # Slots 01 02 03 04 | 05 06 and 07 08 09 0a | 0b 0c: bytes 3..8 are 04 05 06 07 08 09.
        self.store.addPeer(HASH1, ("1.2.3.4", 0x0506))
        self.store.addPeer(HASH1, ("7.8.9.10", 0x0B0C))
        self.store.addPeer(HASH1, ("4.5.6.7", 0x0809))
        self.assertEqual(len(self.store.getPeers(HASH1)), 3)

    def test_refreshUpdatesTimestamp(self) -> None:
        """Re-announcing a peer restarts its time to live."""
        self.store.addPeer(HASH1, ("192.168.1.1", 6881))
        self.clock.advance(29 * MINUTE)
        self.store.addPeer(HASH1, ("192.168.1.1", 6881))
        self.clock.advance(5 * MINUTE)
        self.assertEqual(self.store.getPeers(HASH1), [("192.168.1.1", 6881)])

    def test_capsPerInfoHash(self) -> None:
        """No more than maxPeersPerInfoHash peers are kept for an info_hash."""
        for i in range(10):
            self.store.addPeer(HASH1, peer(i))
        self.assertEqual(len(self.store.getPeers(HASH1)), 5)
        self.assertEqual(self.store.peerCount(), 5)

    def test_evictsOldestAtCapacity(self) -> None:
        """A new peer for a full info_hash replaces the oldest-announced peer."""
        self.store.addPeer(HASH1, ("192.168.1.0", 6880))
        for i in range(1, 6):
            self.store.addPeer(HASH1, (f"192.168.1.{i}", 6881 + i))
        peers = self.store.getPeers(HASH1)
        self.assertEqual(len(peers), 5)
        self.assertNotIn(("192.168.1.0", 6880), peers)

    def test_evictsOldestAnnounceNotOldestInsert(self) -> None:
        """A refreshed peer is no longer the oldest, so a newcomer evicts the next one."""
        for i in range(5):
            self.store.addPeer(HASH1, peer(i))
        self.store.addPeer(HASH1, peer(0))
        self.store.addPeer(HASH1, peer(5))
        self.store.addPeer(HASH1, peer(6))
        self.assertEqual(
            sorted(self.store.getPeers(HASH1)), sorted(peer(i) for i in (0, 3, 4, 5, 6))
        )

    def test_invalidAddress(self) -> None:
        """An address that is not an IP literal is refused with ValueError."""
        self.assertRaises(ValueError, self.store.addPeer, HASH1, ("example.com", 6881))
        self.assertEqual(self.store.peerCount(), 0)

    # getPeers ------------------------------------------------------------------

    def test_unknownInfoHash(self) -> None:
        """An unknown info_hash has no peers."""
        self.assertEqual(self.store.getPeers(b"\xff" * 20), [])
        self.assertEqual(self.store.getCompactPeers(b"\xff" * 20), [])
        self.assertEqual(self.store.getEncodedPeers(b"\xff" * 20), b"")

    def test_expiredFiltered(self) -> None:
        """A peer is not returned once its time to live has passed."""
        self.store.addPeer(HASH1, ("192.168.1.1", 6881))
        self.clock.advance(31 * MINUTE)
        self.assertEqual(self.store.getPeers(HASH1), [])

    def test_expiresExactlyAtTTL(self) -> None:
        """A peer is valid just before its time to live ends and expired at the end."""
        self.store.addPeer(HASH1, ("192.168.1.1", 6881))
        self.clock.advance(30 * MINUTE - 0.5)
        self.assertEqual(len(self.store.getPeers(HASH1)), 1)
        self.clock.advance(0.5)
        self.assertEqual(self.store.getPeers(HASH1), [])

    def test_mixValidAndExpired(self) -> None:
        """Only the non-expired peers of an info_hash are returned."""
        self.store.addPeer(HASH1, ("192.168.1.1", 6881))
        self.clock.advance(20 * MINUTE)
        self.store.addPeer(HASH1, ("192.168.1.2", 6882))
        self.clock.advance(15 * MINUTE)
        self.assertEqual(self.store.getPeers(HASH1), [("192.168.1.2", 6882)])

    def test_limitSamples(self) -> None:
        """With a limit, getPeers returns that many distinct stored peers, chosen at random."""
        store = PeerStore(maxPeersPerInfoHash=100, reactor=self.clock)
        stored = {peer(i) for i in range(100)}
        for address in stored:
            store.addPeer(HASH1, address)
        samples = set()
        for _ in range(20):
            sample = store.getPeers(HASH1, limit=10)
            self.assertEqual(len(sample), 10)
            self.assertEqual(len(set(sample)), 10)
            self.assertTrue(set(sample) <= stored)
            samples.add(frozenset(sample))
        self.assertGreater(len(samples), 1)
        self.assertEqual(store.getPeers(HASH1, limit=0), [])
        self.assertEqual(set(store.getPeers(HASH1, limit=1000)), stored)

    def test_limitSamplesOnlyValid(self) -> None:
        """A limited sample never includes expired peers."""
        store = PeerStore(maxPeersPerInfoHash=100, reactor=self.clock)
        for i in range(50):
            store.addPeer(HASH1, peer(i))
        self.clock.advance(20 * MINUTE)
        for i in range(50, 60):
            store.addPeer(HASH1, peer(i))
        self.clock.advance(15 * MINUTE)
        fresh = {peer(i) for i in range(50, 60)}
        for _ in range(10):
            self.assertTrue(set(store.getPeers(HASH1, limit=5)) <= fresh)
        self.assertEqual(set(store.getPeers(HASH1, limit=50)), fresh)

    def test_compactPeers(self) -> None:
        """getCompactPeers gives 6- and 18-byte compact strings of the stored peers."""
        self.store.addPeer(HASH1, ("10.0.0.1", 6881))
        self.store.addPeer(HASH1, ("2001:db8::1", 51413))
        [compact4] = self.store.getCompactPeers(HASH1)
        [compact6] = self.store.getCompactPeers(HASH1, ipv6=True)
        self.assertIsInstance(compact4, bytes)
        self.assertEqual(compact4, packAddress(("10.0.0.1", 6881)))
        self.assertEqual(len(compact6), 18)
        self.assertEqual(unpackAddress(compact6), ("2001:db8::1", 51413))

    def test_encodedPeers(self) -> None:
        """getEncodedPeers gives the bencoded items of a values list of the stored peers,
        per family; nothing for an unknown info_hash or an empty family."""
        self.store.addPeer(HASH1, ("10.0.0.1", 6881))
        self.store.addPeer(HASH1, ("10.0.0.2", 6882))
        self.store.addPeer(HASH1, ("2001:db8::1", 51413))
        self.assertEqual(
            bencoding.decode(b"l" + self.store.getEncodedPeers(HASH1) + b"e"),
            self.store.getCompactPeers(HASH1),
        )
        self.assertEqual(
            self.store.getEncodedPeers(HASH1, ipv6=True),
            b"18:" + packAddress(("2001:db8::1", 51413)),
        )
        self.assertEqual(self.store.getEncodedPeers(HASH2), b"")
        self.store.addPeer(HASH2, ("10.0.0.1", 6881))
        self.assertEqual(self.store.getEncodedPeers(HASH2, ipv6=True), b"")

    def test_encodedPeersSampledAndKeptCurrent(self) -> None:
        """With a limit below the count, a sample of that many distinct stored peers; the
        kept string follows adds and expiry."""
        for i in range(5):
            self.store.addPeer(HASH1, peer(i))
        sample = bencoding.decode(b"l" + self.store.getEncodedPeers(HASH1, limit=3) + b"e")
        self.assertEqual(len(set(sample)), 3)
        self.assertLessEqual({unpackAddress(c) for c in sample}, {peer(i) for i in range(5)})

        def stored() -> set[Address]:
            items = bencoding.decode(b"l" + self.store.getEncodedPeers(HASH1) + b"e")
            return {unpackAddress(c) for c in items}

        self.assertEqual(stored(), {peer(i) for i in range(5)})
        self.clock.advance(20 * MINUTE)
        self.store.addPeer(HASH1, peer(0))  # refreshed, and the oldest by far now
        self.store.addPeer(HASH1, peer(9))  # evicts peer(1), the oldest announce
        self.assertEqual(stored(), {peer(i) for i in (0, 2, 3, 4, 9)})
        self.clock.advance(11 * MINUTE)
        self.assertEqual(stored(), {peer(0), peer(9)})

    # reads follow changes -------------------------------------------------------

    def test_readSeesAdd(self) -> None:
        """A peer announced after a read is in the next read."""
        self.store.addPeer(HASH1, peer(1))
        self.assertEqual(self.store.getPeers(HASH1), [peer(1)])
        self.store.addPeer(HASH1, peer(2))
        self.assertEqual(self.store.getPeers(HASH1), [peer(1), peer(2)])

    def test_readSeesRefresh(self) -> None:
        """A re-announce after a read moves the peer to the end of the next read."""
        self.store.addPeer(HASH1, peer(1))
        self.store.addPeer(HASH1, peer(2))
        self.assertEqual(self.store.getPeers(HASH1), [peer(1), peer(2)])
        self.store.addPeer(HASH1, peer(1))
        self.assertEqual(self.store.getPeers(HASH1), [peer(2), peer(1)])

    def test_readSeesExpiry(self) -> None:
        """A peer that expires after a read is gone from the next read, whether or not
        removeExpired ran."""
        self.store.addPeer(HASH1, peer(1))
        self.clock.advance(10 * MINUTE)
        self.store.addPeer(HASH1, peer(2))
        self.assertEqual(self.store.getPeers(HASH1), [peer(1), peer(2)])
        self.clock.advance(25 * MINUTE)
        self.assertEqual(self.store.getPeers(HASH1), [peer(2)])
        self.store.removeExpired()
        self.assertEqual(self.store.getPeers(HASH1), [peer(2)])
        self.clock.advance(10 * MINUTE)
        self.assertEqual(self.store.getPeers(HASH1), [])

    def test_readSeesCapEviction(self) -> None:
        """A peer pushed out by the cap after a read is gone from the next read."""
        for i in range(5):
            self.store.addPeer(HASH1, peer(i))
        self.assertEqual(self.store.getPeers(HASH1), [peer(i) for i in range(5)])
        self.store.addPeer(HASH1, peer(5))
        self.assertEqual(self.store.getPeers(HASH1), [peer(i) for i in range(1, 6)])

    def test_returnedListNotShared(self) -> None:
        """Mutating a returned list does not change what the next read returns."""
        self.store.addPeer(HASH1, peer(1))
        self.store.getCompactPeers(HASH1).append(b"garbage")
        self.assertEqual(self.store.getCompactPeers(HASH1), [packAddress(peer(1))])

    def test_encodedReadSeesEveryChange(self) -> None:
        """Repeated getEncodedPeers reads follow adds, refreshes, cap evictions and expiry,
        each read equal to the bencoded getCompactPeers."""

        def check(expected: list[Address]) -> None:
            self.assertEqual(
                self.store.getEncodedPeers(HASH1),
                encodeStrings([packAddress(address) for address in expected]),
            )
            self.assertEqual(
                self.store.getEncodedPeers(HASH1),
                encodeStrings(self.store.getCompactPeers(HASH1)),
            )

        self.store.addPeer(HASH1, peer(1))
        check([peer(1)])
        self.store.addPeer(HASH1, peer(2))
        check([peer(1), peer(2)])
        self.store.addPeer(HASH1, peer(1))
        check([peer(2), peer(1)])
        for i in range(3, 7):
            self.store.addPeer(HASH1, peer(i))
        check([peer(1), peer(3), peer(4), peer(5), peer(6)])  # peer(2) evicted by the cap
        self.clock.advance(31 * MINUTE)
        check([])

    def test_sampleIsUniform(self) -> None:
        """Limited reads draw every stored peer, none much more often than the others: a
        sample of 10 of 100 peers, 400 times, draws each about 40 times."""
        store = PeerStore(maxPeersPerInfoHash=100, reactor=self.clock)
        for i in range(100):
            store.addPeer(HASH1, peer(i))
        counts = dict.fromkeys((peer(i) for i in range(100)), 0)
        for _ in range(400):
            for address in store.getPeers(HASH1, limit=10):
                counts[address] += 1
        self.assertEqual(len(counts), 100)
        # Binomial(400, 0.1): mean 40, standard deviation 6; 10 and 80 are 5 and 6.7
        # deviations away, a chance below 1e-5 over all 100 peers.
        self.assertGreater(min(counts.values()), 10)
        self.assertLess(max(counts.values()), 80)

    # families ------------------------------------------------------------------

    def test_IPv6KeptApart(self) -> None:
        """IPv6 peers are returned only with ipv6=True, and IPv4 peers only without it."""
        self.store.addPeer(HASH1, ("10.0.0.1", 6881))
        self.store.addPeer(HASH1, ("2001:db8::1", 6881))
        self.store.addPeer(HASH1, ("2001:db8::2", 6882))
        self.assertEqual(self.store.getPeers(HASH1), [("10.0.0.1", 6881)])
        self.assertEqual(
            self.store.getPeers(HASH1, ipv6=True), [("2001:db8::1", 6881), ("2001:db8::2", 6882)]
        )
        self.assertEqual(self.store.peerCount(), 3)

    def test_IPv6Only(self) -> None:
        """An info_hash with only IPv6 peers has peers but none for IPv4."""
        self.store.addPeer(HASH1, ("2001:db8::1", 6881))
        self.assertEqual(self.store.getPeers(HASH1, ipv6=True), [("2001:db8::1", 6881)])
        self.assertEqual(self.store.getPeers(HASH1), [])
        self.assertEqual(self.store.getEncodedPeers(HASH1), b"")
        self.assertEqual(self.store.infoHashCount(), 1)

    def test_zonedIPv6(self) -> None:
        """A zoned IPv6 address is stored as the bare address: the zone is not part of
        the compact form, so both spellings are one peer."""
        self.store.addPeer(HASH1, ("fe80::1%eth0", 6881))
        self.store.addPeer(HASH1, ("fe80::1", 6881))
        self.assertEqual(self.store.getPeers(HASH1, ipv6=True), [("fe80::1", 6881)])
        self.assertEqual(self.store.peerCount(), 1)

    def test_IPv6DedupeAndCap(self) -> None:
        """IPv6 peers are deduplicated and capped like IPv4 peers, separately from them."""
        self.store.addPeer(HASH1, ("10.0.0.1", 6881))
        for i in range(8):
            self.store.addPeer(HASH1, (f"2001:db8::{i}", 6881))
            self.store.addPeer(HASH1, (f"2001:db8::{i}", 6881))
        self.assertEqual(
            self.store.getPeers(HASH1, ipv6=True), [(f"2001:db8::{i}", 6881) for i in range(3, 8)]
        )
        self.assertEqual(self.store.getPeers(HASH1), [("10.0.0.1", 6881)])

    # removeExpired -------------------------------------------------------------

    def test_removeExpiredDropsExpired(self) -> None:
        """removeExpired drops expired peers from the count."""
        self.store.addPeer(HASH1, ("192.168.1.1", 6881))
        self.clock.advance(31 * MINUTE)
        self.store.removeExpired()
        self.assertEqual(self.store.peerCount(), 0)

    def test_removeExpiredDropsEmptyInfoHashes(self) -> None:
        """removeExpired drops info_hashes left without peers."""
        self.store.addPeer(HASH1, ("192.168.1.1", 6881))
        self.clock.advance(31 * MINUTE)
        self.store.removeExpired()
        self.assertEqual(self.store.infoHashCount(), 0)

    def test_removeExpiredKeepsValid(self) -> None:
        """removeExpired keeps peers that have not expired."""
        self.store.addPeer(HASH1, ("192.168.1.1", 6881))
        self.store.addPeer(HASH1, ("192.168.1.2", 6882))
        self.clock.advance(10 * MINUTE)
        self.store.removeExpired()
        self.assertEqual(len(self.store.getPeers(HASH1)), 2)

    def test_removeExpiredPartial(self) -> None:
        """removeExpired drops the expired peers of a family and keeps the rest of the
        swarm."""
        self.store.addPeer(HASH1, ("192.168.1.1", 6881))
        self.store.addPeer(HASH1, ("2001:db8::1", 6881))
        self.clock.advance(20 * MINUTE)
        self.store.addPeer(HASH1, ("192.168.1.2", 6882))
        self.clock.advance(15 * MINUTE)
        self.store.removeExpired()
        self.assertEqual(self.store.peerCount(), 1)
        self.assertEqual(self.store.infoHashCount(), 1)
        self.assertEqual(self.store.getPeers(HASH1), [("192.168.1.2", 6882)])
        self.store.addPeer(HASH1, ("2001:db8::1", 6881))
        self.assertEqual(self.store.getPeers(HASH1, ipv6=True), [("2001:db8::1", 6881)])

    def test_countsAreUntilRemoveExpired(self) -> None:
        """The counts include expired peers until removeExpired runs, then drop them."""
        self.store.addPeer(HASH1, peer(1))
        self.store.addPeer(HASH2, peer(2))
        self.clock.advance(31 * MINUTE)
        self.assertEqual((self.store.peerCount(), self.store.infoHashCount()), (2, 2))
        self.assertEqual(self.store.getPeers(HASH1), [])
        self.store.removeExpired()
        self.assertEqual((self.store.peerCount(), self.store.infoHashCount()), (0, 0))

    def test_removeExpiredWithNothingStored(self) -> None:
        """removeExpired on an empty store, or twice in a row, changes nothing."""
        self.store.removeExpired()
        self.store.addPeer(HASH1, peer(1))
        self.store.removeExpired()
        self.store.removeExpired()
        self.assertEqual(self.store.getPeers(HASH1), [peer(1)])
        self.assertEqual(self.store.peerCount(), 1)

    def test_expiryDrivenPeriodically(self) -> None:
        """removeExpired run as the node runs it, by a Periodic on the same Clock, frees
        each peer at the first run after its time to live."""
        job = Periodic(self.store.removeExpired, 5 * MINUTE, self.clock, "Peer expiry")
        job.start()
        self.addCleanup(job.stop)
        self.store.addPeer(HASH1, peer(1))
        self.clock.advance(12 * MINUTE)
        self.store.addPeer(HASH2, peer(2))
        for _ in range(5):
            self.clock.advance(5 * MINUTE)  # 37 min: peer(1) expired at 30, freed at 35
        self.assertEqual(self.store.peerCount(), 1)
        self.assertEqual(self.store.infoHashCount(), 1)
        self.assertEqual(self.store.getPeers(HASH2), [peer(2)])
        for _ in range(2):
            self.clock.advance(5 * MINUTE)  # 47 min: peer(2) expired at 42, freed at 45
        self.assertEqual((self.store.peerCount(), self.store.infoHashCount()), (0, 0))
        self.assertEqual(job.failures, 0)

    # counts and caps -----------------------------------------------------------

    def test_infoHashCount(self) -> None:
        """infoHashCount counts the info_hashes with stored peers."""
        self.assertEqual(self.store.infoHashCount(), 0)
        self.store.addPeer(HASH1, ("192.168.1.1", 6881))
        self.assertEqual(self.store.infoHashCount(), 1)
        self.store.addPeer(HASH2, ("192.168.1.2", 6882))
        self.assertEqual(self.store.infoHashCount(), 2)

    def test_capsInfoHashes(self) -> None:
        """No more than maxInfoHashes info_hashes are kept."""
        for i in range(15):
            self.store.addPeer(bytes([i]) * 20, ("192.168.1.1", 6881))
        self.assertEqual(self.store.infoHashCount(), 10)
        self.assertEqual(self.store.peerCount(), 10)

    def test_evictsLeastRecentlyAnnouncedInfoHash(self) -> None:
        """A new info_hash evicts the least recently announced one; re-announcing protects."""
        hashes = [bytes([i]) * 20 for i in range(11)]
        for infoHash in hashes[:10]:
            self.store.addPeer(infoHash, ("192.168.1.1", 6881))
        self.store.addPeer(hashes[0], ("192.168.1.2", 6881))
        self.store.addPeer(hashes[10], ("192.168.1.1", 6881))
        self.assertEqual(len(self.store.getPeers(hashes[0])), 2)
        self.assertEqual(self.store.getPeers(hashes[1]), [])
        self.assertEqual(self.store.getPeers(hashes[2]), [("192.168.1.1", 6881)])
        self.assertEqual(self.store.infoHashCount(), 10)
        self.assertEqual(self.store.peerCount(), 11)

    def test_capsUnderFlood(self) -> None:
        """100,000 random announces keep the store within both caps, with exact counts."""
        rng = random.Random(33)
        store = PeerStore(maxPeersPerInfoHash=20, maxInfoHashes=50, reactor=self.clock)
        hashes = [rng.randbytes(20) for _ in range(200)]
        for n in range(100_000):
            address = (f"10.{rng.randrange(4)}.{rng.randrange(256)}.1", rng.randrange(1, 4))
            store.addPeer(rng.choice(hashes), address, seed=rng.random() < 0.3)
            if n % 1000 == 0:
                self.clock.advance(1)
        self.assertEqual(store.infoHashCount(), 50)
        total = 0
        for infoHash in hashes:
            peers = store.getPeers(infoHash)
            self.assertLessEqual(len(peers), 20)
            self.assertEqual(len(set(peers)), len(peers))
            total += len(peers)
        self.assertEqual(store.peerCount(), total)
        self.assertLessEqual(total, 50 * 20)

    def test_peerCountTotals(self) -> None:
        """peerCount sums the peers of all info_hashes."""
        self.store.addPeer(HASH1, ("192.168.1.1", 6881))
        self.store.addPeer(HASH1, ("192.168.1.2", 6882))
        self.store.addPeer(HASH2, ("192.168.1.3", 6883))
        self.assertEqual(self.store.peerCount(), 3)

    def test_sampleInfoHashes(self) -> None:
        """sampleInfoHashes gives up to count distinct stored info_hashes, all of them when
        fewer are stored, and over repeated calls every one of them."""
        self.assertEqual(self.store.sampleInfoHashes(5), [])
        hashes = {bytes([i]) * 20 for i in range(8)}
        for infoHash in hashes:
            self.store.addPeer(infoHash, peer(1))
        seen: set[bytes] = set()
        for _ in range(50):
            sample = self.store.sampleInfoHashes(3)
            self.assertEqual(len(sample), 3)
            self.assertEqual(len(set(sample)), 3)
            self.assertLessEqual(set(sample), hashes)
            seen.update(sample)
        self.assertEqual(seen, hashes)
        self.assertEqual(set(self.store.sampleInfoHashes(100)), hashes)
        self.assertEqual(self.store.sampleInfoHashes(0), [])

    def test_seedsAndPeers(self) -> None:
        """getSeedsAndPeers splits one family's non-expired peers by their seed flag,
        which a re-announce updates (with the port)."""
        compact = packAddress
        self.store.addPeer(HASH1, ("192.168.1.1", 6881), seed=True)
        self.store.addPeer(HASH1, ("192.168.1.2", 6882))
        self.store.addPeer(HASH1, ("2001:db8::1", 6881), seed=True)
        self.assertEqual(
            self.store.getSeedsAndPeers(HASH1, False),
            ([compact(("192.168.1.1", 6881))], [compact(("192.168.1.2", 6882))]),
        )
        self.assertEqual(
            self.store.getSeedsAndPeers(HASH1, True), ([compact(("2001:db8::1", 6881))], [])
        )
        self.assertEqual(self.store.getSeedsAndPeers(HASH2, False), ([], []))
        self.store.addPeer(HASH1, ("192.168.1.1", 6881), seed=False)
        self.store.addPeer(HASH1, ("192.168.1.2", 7000), seed=True)
        self.assertEqual(
            self.store.getSeedsAndPeers(HASH1, False),
            ([compact(("192.168.1.2", 7000))], [compact(("192.168.1.1", 6881))]),
        )
        self.clock.advance(20 * MINUTE)
        self.store.addPeer(HASH1, ("192.168.1.3", 6883), seed=True)
        self.clock.advance(15 * MINUTE)
        self.assertEqual(
            self.store.getSeedsAndPeers(HASH1, False), ([compact(("192.168.1.3", 6883))], [])
        )

    def test_clockSteppingBack(self) -> None:
        """A reactor clock that steps back neither unsorts nor resurrects peers."""
        clock = Clock()
        clock.advance(10_000)
        store = PeerStore(peerTTL=30 * MINUTE, maxPeersPerInfoHash=2, reactor=clock)
        store.addPeer(HASH1, peer(1))
        clock.rightNow -= 5_000
        store.addPeer(HASH1, peer(2))
        store.addPeer(HASH1, peer(3))
        self.assertEqual(store.getPeers(HASH1), [peer(2), peer(3)])
