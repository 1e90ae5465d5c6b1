"""Tests for twisted_dht.records (Pkarr, BEP 46) and for keeping items alive."""

from __future__ import annotations

from twisted.names import dns
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht.bep44 import SigningKey, mutableTarget
from twisted_dht.itemclient import REPUBLISH_INTERVAL
from twisted_dht.items import ITEM_LIFETIME
from twisted_dht.records import (
    mutableMagnet,
    parseMutableMagnet,
    pkarrPacket,
    publishRecords,
    publishTorrent,
    resolveRecords,
    resolveTorrent,
)

from .test_node import Swarm

BEP46_KEY = bytes.fromhex("8543d3e6115f0f98c944077a4493dcd543e49c739fd998550a1f614ab36ed63e")


class MagnetTests(SynchronousTestCase):
    def test_bep46Vectors(self) -> None:
        """BEP 46's targets, with and without salt, from the magnet links."""
        key, salt = parseMutableMagnet(f"magnet:?xs=urn:btpk:{BEP46_KEY.hex()}")
        self.assertEqual(
            mutableTarget(key, salt).hex(), "cc3f9d90b572172053626f9980ce261a850d050b"
        )
        key, salt = parseMutableMagnet(f"magnet:?xs=urn:btpk:{BEP46_KEY.hex()}&s=6e")
        self.assertEqual(
            mutableTarget(key, salt).hex(), "59ee7c2cb9b4f7eb1986ee2d18fd2fdb8a56554f"
        )

    def test_roundTrip(self) -> None:
        self.assertEqual(parseMutableMagnet(mutableMagnet(BEP46_KEY, b"n")), (BEP46_KEY, b"n"))

    def test_badLinks(self) -> None:
        for link in ("http://x", "magnet:?xt=urn:btih:00", "magnet:?xs=urn:btpk:zz",
                     "magnet:?xs=urn:btpk:0011"):  # fmt: skip
            self.assertRaises(ValueError, parseMutableMagnet, link)


class PublishTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.swarm = Swarm(30, seed=5)
        self.swarm.join(spacing=0.2)
        self.addCleanup(self.swarm.stop)
        self.key = SigningKey(bytes(range(32)))

    def test_pkarrRecords(self) -> None:
        """A TXT record published as a Pkarr packet resolves from another node."""
        record = dns.RRHeader(b"_hello", dns.TXT, payload=dns.Record_TXT(b"world"), ttl=300)
        put = self.swarm.wait(publishRecords(self.swarm.nodes[2], self.key, [record], now=1.5))
        self.assertEqual(put.item.seq, 1_500_000)
        self.assertEqual(put.item.salt, b"")
        message = self.swarm.wait(resolveRecords(self.swarm.nodes[20], self.key.publicKey))
        [answer] = message.answers
        self.assertEqual((answer.name.name, answer.payload.data), (b"_hello", [b"world"]))
        self.assertEqual(pkarrPacket([record]), put.item.value)

    def test_mutableTorrent(self) -> None:
        """A BEP 46 torrent published under a key and salt resolves from its magnet link."""
        self.swarm.wait(publishTorrent(self.swarm.nodes[2], self.key, b"\x42" * 20, b"n"))
        link = mutableMagnet(self.key.publicKey, b"n")
        self.assertEqual(self.swarm.wait(resolveTorrent(self.swarm.nodes[9], link)), b"\x42" * 20)
        other = mutableMagnet(self.key.publicKey, b"other")
        self.assertIsNone(self.swarm.wait(resolveTorrent(self.swarm.nodes[9], other)))

    def holders(self, target: bytes) -> int:
        return sum(node.itemStore.get(target) is not None for node in self.swarm.nodes)

    def test_keptAliveBeyondItsLifetime(self) -> None:
        """An item kept alive is still stored long after two hours; stopped, it expires."""
        node = self.swarm.nodes[4]
        put = self.swarm.wait(node.items.keepPut(b"stay", self.key, salt=b"k"))
        target = put.item.target
        self.assertEqual(node.items.kept(), [target])
        self.swarm.run(ITEM_LIFETIME * 2, step=1.0)
        self.assertGreater(self.holders(target), 0)
        node.items.stopPutting(target)
        self.swarm.run(ITEM_LIFETIME + 600, step=1.0)
        self.assertEqual(self.holders(target), 0)

    def test_newerItemEndsRepublishing(self) -> None:
        """When someone puts a newer seq, our republishing stops (302) with a warning."""
        node = self.swarm.nodes[4]
        self.swarm.wait(node.items.keepPut(b"old", self.key, seq=1))
        self.swarm.wait(self.swarm.nodes[11].put(b"new", self.key, seq=2))
        self.swarm.run(REPUBLISH_INTERVAL + 60, step=1.0)
        self.assertEqual(node.items.kept(), [])
