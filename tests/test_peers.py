"""Tests for twisted_dht.peers: storage, expiry, caps and sampling of announced peers."""

from __future__ import annotations

import random

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_dht import bencoding
from twisted_dht.interfaces import IPeerStore
from twisted_dht.krpc import Address, packAddress, unpackAddress
from twisted_dht.peers import PeerStore

HASH1 = b"\x11" * 20
HASH2 = b"\x22" * 20
MINUTE = 60.0


def peer(i: int) -> Address:
    """The i-th distinct IPv4 peer."""
    return (f"192.168.{i // 256}.{i % 256}", 6881 + i % 1000)


class PeerStoreTests(SynchronousTestCase):
    """PeerStore with a fake clock, 5 peers per info_hash and 10 info_hashes."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.store = PeerStore(
            peerTTL=30 * MINUTE, maxPeersPerInfoHash=5, maxInfoHashes=10, reactor=self.clock
        )
        self.addCleanup(self.store.stop)

    def test_interface(self) -> None:
        """PeerStore provides IPeerStore."""
        self.assertTrue(verifyObject(IPeerStore, self.store))

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
        """Same port, different IP, and same IP, different port, are different peers."""
        self.store.addPeer(HASH1, ("192.168.1.1", 6881))
        self.store.addPeer(HASH1, ("192.168.1.2", 6881))
        self.store.addPeer(HASH1, ("192.168.1.1", 6882))
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

    # the cached compact list ---------------------------------------------------

    def test_cachedListSeesAdd(self) -> None:
        """A peer announced after a read is in the next read."""
        self.store.addPeer(HASH1, peer(1))
        self.assertEqual(self.store.getPeers(HASH1), [peer(1)])
        self.store.addPeer(HASH1, peer(2))
        self.assertEqual(self.store.getPeers(HASH1), [peer(1), peer(2)])

    def test_cachedListSeesRefresh(self) -> None:
        """A re-announce after a read moves the peer to the end of the next read."""
        self.store.addPeer(HASH1, peer(1))
        self.store.addPeer(HASH1, peer(2))
        self.assertEqual(self.store.getPeers(HASH1), [peer(1), peer(2)])
        self.store.addPeer(HASH1, peer(1))
        self.assertEqual(self.store.getPeers(HASH1), [peer(2), peer(1)])

    def test_cachedListSeesExpiry(self) -> None:
        """A peer that expires after a read is gone from the next read, cleanup or not."""
        self.store.addPeer(HASH1, peer(1))
        self.clock.advance(10 * MINUTE)
        self.store.addPeer(HASH1, peer(2))
        self.assertEqual(self.store.getPeers(HASH1), [peer(1), peer(2)])
        self.clock.advance(25 * MINUTE)
        self.assertEqual(self.store.getPeers(HASH1), [peer(2)])
        self.store.cleanup()
        self.assertEqual(self.store.getPeers(HASH1), [peer(2)])
        self.clock.advance(10 * MINUTE)
        self.assertEqual(self.store.getPeers(HASH1), [])

    def test_cachedListSeesCapEviction(self) -> None:
        """A peer pushed out by the cap after a read is gone from the next read."""
        for i in range(5):
            self.store.addPeer(HASH1, peer(i))
        self.assertEqual(self.store.getPeers(HASH1), [peer(i) for i in range(5)])
        self.store.addPeer(HASH1, peer(5))
        self.assertEqual(self.store.getPeers(HASH1), [peer(i) for i in range(1, 6)])

    def test_cachedListNotShared(self) -> None:
        """Mutating a returned list does not change what the next read returns."""
        self.store.addPeer(HASH1, peer(1))
        self.store.getCompactPeers(HASH1).append(b"garbage")
        self.assertEqual(self.store.getCompactPeers(HASH1), [packAddress(peer(1))])

    def test_sampleMatchesSlotSample(self) -> None:
        """With a seeded random, a limited read draws the same peers as sampling slots."""
        store = PeerStore(maxPeersPerInfoHash=100, reactor=self.clock)
        for i in range(100):
            store.addPeer(HASH1, peer(i))
        random.seed(3)
        sample = store.getPeers(HASH1, limit=10)
        random.seed(3)
        self.assertEqual(sample, [peer(i) for i in random.sample(range(100), 10)])

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
        self.assertTrue(self.store.hasPeers(HASH1))
        self.assertEqual(self.store.getPeers(HASH1), [])

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

    # hasPeers ------------------------------------------------------------------

    def test_hasPeersUnknown(self) -> None:
        """An unknown info_hash has no peers."""
        self.assertFalse(self.store.hasPeers(HASH1))

    def test_hasPeersStored(self) -> None:
        """An info_hash with a stored peer has peers."""
        self.store.addPeer(HASH1, ("192.168.1.1", 6881))
        self.assertTrue(self.store.hasPeers(HASH1))

    def test_hasPeersAllExpired(self) -> None:
        """An info_hash whose peers all expired has no peers."""
        self.store.addPeer(HASH1, ("192.168.1.1", 6881))
        self.clock.advance(31 * MINUTE)
        self.assertFalse(self.store.hasPeers(HASH1))

    # cleanup -------------------------------------------------------------------

    def test_cleanupRemovesExpired(self) -> None:
        """Cleanup drops expired peers from the count."""
        self.store.addPeer(HASH1, ("192.168.1.1", 6881))
        self.clock.advance(31 * MINUTE)
        self.store.cleanup()
        self.assertEqual(self.store.peerCount(), 0)

    def test_cleanupRemovesEmptyInfoHashes(self) -> None:
        """Cleanup drops info_hashes left without peers."""
        self.store.addPeer(HASH1, ("192.168.1.1", 6881))
        self.clock.advance(31 * MINUTE)
        self.store.cleanup()
        self.assertEqual(self.store.infoHashCount(), 0)

    def test_cleanupPreservesValid(self) -> None:
        """Cleanup keeps peers that have not expired."""
        self.store.addPeer(HASH1, ("192.168.1.1", 6881))
        self.store.addPeer(HASH1, ("192.168.1.2", 6882))
        self.clock.advance(10 * MINUTE)
        self.store.cleanup()
        self.assertEqual(len(self.store.getPeers(HASH1)), 2)

    def test_cleanupPartial(self) -> None:
        """Cleanup drops the expired peers of a family and keeps the rest of the swarm."""
        self.store.addPeer(HASH1, ("192.168.1.1", 6881))
        self.store.addPeer(HASH1, ("2001:db8::1", 6881))
        self.clock.advance(20 * MINUTE)
        self.store.addPeer(HASH1, ("192.168.1.2", 6882))
        self.clock.advance(15 * MINUTE)
        self.store.cleanup()
        self.assertEqual(self.store.peerCount(), 1)
        self.assertEqual(self.store.infoHashCount(), 1)
        self.assertEqual(self.store.getPeers(HASH1), [("192.168.1.2", 6882)])
        self.store.addPeer(HASH1, ("2001:db8::1", 6881))
        self.assertEqual(self.store.getPeers(HASH1, ipv6=True), [("2001:db8::1", 6881)])

    def test_periodicCleanup(self) -> None:
        """Once started, cleanup runs every cleanupInterval on the injected clock."""
        self.store.start()
        self.store.start()
        self.assertTrue(self.store.running)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.store.addPeer(HASH1, ("192.168.1.1", 6881))
        self.clock.advance(25 * MINUTE)
        self.assertEqual(self.store.peerCount(), 1)
        self.clock.advance(5 * MINUTE)
        self.assertEqual(self.store.peerCount(), 0)
        self.assertEqual(self.store.infoHashCount(), 0)

    def test_stopLeavesNoDelayedCall(self) -> None:
        """Stopping cancels the cleanup timer, and stopping again is harmless."""
        self.store.start()
        self.store.stop()
        self.store.stop()
        self.assertFalse(self.store.running)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_failedCleanupLogged(self) -> None:
        """A failing cleanup is logged and stops the loop instead of going unnoticed."""

        class BrokenStore(PeerStore):
            def cleanup(self) -> None:
                raise RuntimeError("bug")

        store = BrokenStore(reactor=self.clock)
        store.start()
        self.clock.advance(5 * MINUTE)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertFalse(store.running)

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
        self.assertTrue(self.store.hasPeers(hashes[0]))
        self.assertFalse(self.store.hasPeers(hashes[1]))
        self.assertTrue(self.store.hasPeers(hashes[2]))
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

    def test_seedCount(self) -> None:
        """seedCount counts non-expired seeds, and a re-announce updates the seed flag."""
        self.store.addPeer(HASH1, ("192.168.1.1", 6881), seed=True)
        self.store.addPeer(HASH1, ("192.168.1.2", 6882))
        self.store.addPeer(HASH1, ("2001:db8::1", 6881), seed=True)
        self.assertEqual(self.store.seedCount(HASH1), 2)
        self.assertEqual(self.store.seedCount(HASH2), 0)
        self.store.addPeer(HASH1, ("192.168.1.1", 6881), seed=False)
        self.store.addPeer(HASH1, ("192.168.1.2", 6882), seed=True)
        self.assertEqual(self.store.seedCount(HASH1), 2)
        self.clock.advance(20 * MINUTE)
        self.store.addPeer(HASH1, ("192.168.1.3", 6883), seed=True)
        self.clock.advance(15 * MINUTE)
        self.assertEqual(self.store.seedCount(HASH1), 1)

    def test_clear(self) -> None:
        """clear forgets every peer and info_hash."""
        self.store.addPeer(HASH1, ("192.168.1.1", 6881))
        self.store.addPeer(HASH2, ("192.168.1.2", 6882))
        self.store.clear()
        self.assertEqual(self.store.infoHashCount(), 0)
        self.assertEqual(self.store.peerCount(), 0)
        self.assertFalse(self.store.hasPeers(HASH1))

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
