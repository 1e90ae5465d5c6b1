"""Tests for twisted_dht.itemclient: BEP 44 get and put across an in-memory swarm."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from twisted_dht.bep44 import Item, SigningKey, mutableTarget
from twisted_dht.errors import ErrorCode, PutRefused
from twisted_dht.itemclient import GetResult, PutResult

from .test_node import K, Swarm


class ItemClientTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.swarm = Swarm(40, seed=3)
        self.swarm.join(spacing=0.2)
        self.addCleanup(self.swarm.stop)
        self.key = SigningKey(bytes(range(32)))

    def holders(self, target: bytes) -> int:
        return sum(node.itemStore.get(target) is not None for node in self.swarm.nodes)

    def test_immutablePutThenGet(self) -> None:
        """An immutable put reaches K nodes; a get from another node finds the value."""
        put: PutResult = self.swarm.wait(self.swarm.nodes[3].put({b"hello": b"world"}))
        self.assertEqual(put.accepted, K)
        self.assertEqual(self.holders(put.item.target), K)
        got: GetResult = self.swarm.wait(self.swarm.nodes[30].get(put.item.target))
        assert got.item is not None
        self.assertEqual(got.item.value, {b"hello": b"world"})

    def test_mutableSeqGrows(self) -> None:
        """Mutable puts without a seq take one more than the highest found."""
        first: PutResult = self.swarm.wait(self.swarm.nodes[5].put(b"one", self.key, salt=b"s"))
        self.assertEqual(first.item.seq, 1)
        second: PutResult = self.swarm.wait(self.swarm.nodes[9].put(b"two", self.key, salt=b"s"))
        self.assertEqual(second.item.seq, 2)
        got: GetResult = self.swarm.wait(
            self.swarm.nodes[20].get(publicKey=self.key.publicKey, salt=b"s")
        )
        assert got.item is not None
        self.assertEqual((got.item.value, got.item.seq), (b"two", 2))
        self.assertTrue(got.item.verified())
        self.assertEqual(got.target, mutableTarget(self.key.publicKey, b"s"))

    def test_forgedItemIgnored(self) -> None:
        """A node holding a higher seq with a bad signature does not win the get."""
        put: PutResult = self.swarm.wait(self.swarm.nodes[5].put(b"real", self.key, seq=3))
        target = put.item.target
        holder = next(n for n in self.swarm.nodes if n.itemStore.get(target) is not None)
        forged = Item(b"forged", b"6:forged", self.key.publicKey, b"", 9, b"\x00" * 64)
        holder.itemStore.put(forged, "10.9.9.9")
        got: GetResult = self.swarm.wait(self.swarm.nodes[30].get(publicKey=self.key.publicKey))
        assert got.item is not None
        self.assertEqual((got.item.value, got.item.seq), (b"real", 3))

    def test_staleSeqRefused(self) -> None:
        """A put with an older seq than the network holds fails with PutRefused (302)."""
        self.swarm.wait(self.swarm.nodes[5].put(b"new", self.key, seq=10))
        failure = self.swarm.wait(self.swarm.nodes[6].put(b"old", self.key, seq=4))
        self.assertIsInstance(failure.value, PutRefused)
        self.assertEqual(failure.value.code, ErrorCode.SEQUENCE_TOO_OLD)

    def test_casMismatchRefused(self) -> None:
        self.swarm.wait(self.swarm.nodes[5].put(b"v1", self.key, seq=1))
        failure = self.swarm.wait(self.swarm.nodes[6].put(b"v2", self.key, seq=2, cas=7))
        self.assertIsInstance(failure.value, PutRefused)
        self.assertEqual(failure.value.code, ErrorCode.CAS_MISMATCH)

    def test_getNothing(self) -> None:
        got: GetResult = self.swarm.wait(self.swarm.nodes[1].get(b"\x42" * 20))
        self.assertIsNone(got.item)
        self.assertEqual(len(got.tokens), K)

    def test_badArguments(self) -> None:
        node = self.swarm.nodes[1]
        self.assertRaises(ValueError, node.put, b"x" * 1000)
        self.assertRaises(ValueError, node.put, b"x", self.key, salt=b"s" * 65)
        self.assertRaises(ValueError, node.get)
        self.assertRaises(ValueError, node.get, publicKey=b"short")
