"""Tests for twisted_dht.itemhandlers and twisted_dht.items: BEP 44 get and put through the
wire of a DHTNode, with every error code, and the store's expiry and eviction."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht import krpc
from twisted_dht.addresses import Address
from twisted_dht.bep44 import Item, SigningKey, mutableTarget
from twisted_dht.errors import ErrorCode
from twisted_dht.items import ITEM_LIFETIME, ItemStore
from twisted_dht.node import DHTNode
from twisted_dht.reply import ITEM_REPLY_SIZE
from twisted_dht.testing import FakeDatagramTransport

HERE: Address = ("81.0.0.1", 6881)
PUTTER: Address = ("192.168.1.7", 6881)
OTHER: Address = ("192.168.1.8", 6881)
THEIR_ID = b"\x22" * 20
KEY = SigningKey(bytes(range(32)))


class ItemWireTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.node = DHTNode(
            b"\x11" * 20, reactor=self.clock, routers=[], ipRateLimit=0, queryRateLimit=0
        )
        self.transport = FakeDatagramTransport(HERE)
        self.node.ipv4.protocol.makeConnection(self.transport)  # type: ignore[arg-type]

    def query(self, method: bytes, args: dict[bytes, Any], source: Address = PUTTER) -> Any:
        """Send one query; the decoded reply."""
        before = len(self.transport.written)
        data = krpc.encodeQuery(b"tt", method, {b"id": THEIR_ID, **args})
        self.node.ipv4.protocol.datagramReceived(data, source)
        [(reply, _)] = self.transport.written[before:]
        self.lastSize = len(reply)
        return krpc.decodeMessage(reply)

    def token(self, target: bytes, source: Address = PUTTER) -> bytes:
        reply = self.query(b"get", {b"target": target}, source)
        assert isinstance(reply, krpc.Response), reply
        token = reply.values[b"token"]
        assert isinstance(token, bytes)
        return token

    def putArgs(self, item: Item, source: Address = PUTTER, **extra: Any) -> dict[bytes, Any]:
        args: dict[bytes, Any] = {b"v": item.value, b"token": self.token(item.target, source)}
        if item.publicKey is not None:
            args.update({b"k": item.publicKey, b"seq": item.seq, b"sig": item.signature})
            if item.salt:
                args[b"salt"] = item.salt
        args.update({k.encode(): v for k, v in extra.items()})
        return args

    def put(self, item: Item, source: Address = PUTTER, **extra: Any) -> Any:
        return self.query(b"put", self.putArgs(item, source, **extra), source)

    def assertError(self, reply: Any, code: int) -> None:
        self.assertIsInstance(reply, krpc.Error, reply)
        self.assertEqual(reply.code, code, reply)


class GetPutTests(ItemWireTestCase):
    def test_immutableRoundTrip(self) -> None:
        """A put immutable item comes back from get, with a token and our id."""
        item = Item.immutable({b"a": [1, b"two"]})
        self.assertIsInstance(self.put(item), krpc.Response)
        reply = self.query(b"get", {b"target": item.target}, OTHER)
        self.assertEqual(reply.values[b"v"], {b"a": [1, b"two"]})
        self.assertIn(b"token", reply.values)
        self.assertNotIn(b"k", reply.values)
        self.assertEqual(self.node.itemStore.immutableCount(), 1)

    def test_mutableRoundTrip(self) -> None:
        """A mutable item comes back with k, seq and sig, and verifies."""
        item = Item.signed(b"hello", KEY, 5, b"salty")
        self.assertIsInstance(self.put(item), krpc.Response)
        values = self.query(b"get", {b"target": item.target}, OTHER).values
        self.assertEqual(
            (values[b"k"], values[b"seq"], values[b"v"]), (KEY.publicKey, 5, b"hello")
        )
        self.assertEqual(values[b"sig"], item.signature)
        self.assertNotIn(b"salt", values)

    def test_getWithSeq(self) -> None:
        """get with seq gets only seq when the stored item is not newer."""
        item = Item.signed(b"hello", KEY, 5)
        self.put(item)
        for asked, full in ((5, False), (6, False), (4, True)):
            values = self.query(b"get", {b"target": item.target, b"seq": asked}).values
            self.assertEqual(values[b"seq"], 5)
            self.assertEqual(b"v" in values, full, asked)

    def test_getMissing(self) -> None:
        """get of an unknown target: a token and nodes, no item."""
        values = self.query(b"get", {b"target": b"\x99" * 20}).values
        self.assertIn(b"token", values)
        self.assertNotIn(b"v", values)

    def test_largestItemFitsItsCeiling(self) -> None:
        """A 1,000-byte value with its key and signature goes out, within 1,232 bytes."""
        item = Item.signed(b"x" * 996, KEY, 2**62, b"s" * 64)
        self.assertEqual(len(item.encoded), 1000)
        self.put(item)
        reply = self.query(b"get", {b"target": item.target}, OTHER)
        self.assertEqual(reply.values[b"v"], b"x" * 996)
        self.assertLessEqual(self.lastSize, ITEM_REPLY_SIZE)

    def test_equalSeqRefreshesWithoutReplacing(self) -> None:
        """A put of the stored seq is accepted and keeps the stored value."""
        self.put(Item.signed(b"first", KEY, 3))
        self.assertIsInstance(self.put(Item.signed(b"second", KEY, 3)), krpc.Response)
        self.assertEqual(self.node.itemStore.get(mutableTarget(KEY.publicKey)).value, b"first")  # type: ignore[union-attr]

    def test_newerSeqReplaces(self) -> None:
        self.put(Item.signed(b"first", KEY, 3))
        self.put(Item.signed(b"second", KEY, 4))
        self.assertEqual(self.node.itemStore.get(mutableTarget(KEY.publicKey)).value, b"second")  # type: ignore[union-attr]


class ErrorTests(ItemWireTestCase):
    """Each check, with libtorrent's code."""

    def test_valueTooBig(self) -> None:
        item = Item.immutable(b"x" * 900)
        args = self.putArgs(item)
        args[b"v"] = b"x" * 1000
        self.assertError(self.query(b"put", args), ErrorCode.MESSAGE_TOO_BIG)

    def test_saltTooBig(self) -> None:
        item = Item.signed(b"v", KEY, 1, b"s" * 64)
        args = self.putArgs(item)
        args[b"salt"] = b"s" * 65
        self.assertError(self.query(b"put", args), ErrorCode.SALT_TOO_BIG)

    def test_badToken(self) -> None:
        """A token for another target, or from another IP, is 203."""
        item = Item.immutable(b"value")
        args = self.putArgs(item)
        args[b"token"] = self.token(b"\x01" * 20)
        self.assertError(self.query(b"put", args), ErrorCode.PROTOCOL)
        self.assertError(self.query(b"put", self.putArgs(item), OTHER), ErrorCode.PROTOCOL)

    def test_missingArguments(self) -> None:
        item = Item.signed(b"v", KEY, 1)
        for key in (b"v", b"token", b"seq", b"sig"):
            args = self.putArgs(item)
            del args[key]
            self.assertError(self.query(b"put", args), ErrorCode.PROTOCOL)
        self.assertError(self.query(b"get", {}), ErrorCode.PROTOCOL)

    def test_negativeSeq(self) -> None:
        args = self.putArgs(Item.signed(b"v", KEY, 1))
        args[b"seq"] = -1
        self.assertError(self.query(b"put", args), ErrorCode.PROTOCOL)

    def test_badSignature(self) -> None:
        args = self.putArgs(Item.signed(b"v", KEY, 1))
        args[b"seq"] = 2
        self.assertError(self.query(b"put", args), ErrorCode.INVALID_SIGNATURE)

    def test_casMismatch(self) -> None:
        self.put(Item.signed(b"v1", KEY, 1))
        reply = self.put(Item.signed(b"v2", KEY, 2), cas=5)
        self.assertError(reply, ErrorCode.CAS_MISMATCH)
        self.assertIsInstance(self.put(Item.signed(b"v2", KEY, 2), cas=1), krpc.Response)

    def test_olderSeq(self) -> None:
        self.put(Item.signed(b"v5", KEY, 5))
        self.assertError(self.put(Item.signed(b"v4", KEY, 4)), ErrorCode.SEQUENCE_TOO_OLD)

    def test_casRace(self) -> None:
        """Two putters read seq 1 and put seq 2 with cas 1: the first wins, the second
        gets 301 and the first one's value stays."""
        self.put(Item.signed(b"v1", KEY, 1))
        first = self.putArgs(Item.signed(b"mine", KEY, 2), PUTTER, cas=1)
        second = self.putArgs(Item.signed(b"yours", KEY, 2), OTHER, cas=1)
        self.assertIsInstance(self.query(b"put", first, PUTTER), krpc.Response)
        self.assertError(self.query(b"put", second, OTHER), ErrorCode.CAS_MISMATCH)
        self.assertEqual(self.node.itemStore.get(mutableTarget(KEY.publicKey)).value, b"mine")  # type: ignore[union-attr]

    def test_nonCanonicalValueRefused(self) -> None:
        """A put whose v has unsorted keys is dropped as malformed: nothing stored."""
        item = Item.immutable({b"a": 1, b"b": 2})
        token = self.token(item.target)
        data = (
            b"d1:ad2:id20:" + THEIR_ID + b"5:token" + b"%d:" % len(token) + token
            + b"1:vd1:bi2e1:ai1eee1:q3:put1:t2:tt1:y1:qe"
        )  # fmt: skip
        before = len(self.transport.written)
        self.node.ipv4.protocol.datagramReceived(data, PUTTER)
        self.assertEqual(self.transport.written[before:], [])
        self.assertEqual(self.node.stats().drops["malformed"], 1)
        self.assertEqual(self.node.itemStore.immutableCount(), 0)


class ItemStoreTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.ownId = b"\x00" * 20

    def store(self, maxItems: int = 700) -> ItemStore:
        return ItemStore(lambda: self.ownId, reactor=self.clock, maxItems=maxItems)

    def test_expiresTwoHoursAfterLastPut(self) -> None:
        store = self.store()
        item = Item.immutable(b"v")
        store.put(item, "10.0.0.1")
        self.clock.advance(ITEM_LIFETIME - 10)
        store.put(item, "10.0.0.2")  # a refresh
        self.clock.advance(20)
        self.assertEqual(store.removeExpired(), 0)
        self.clock.advance(ITEM_LIFETIME)
        self.assertEqual(store.removeExpired(), 1)
        self.assertIsNone(store.get(item.target))

    def test_capsEachKindSeparately(self) -> None:
        store = self.store(maxItems=3)
        for i in range(5):
            store.put(Item.immutable(i), "10.0.0.1")
            store.put(Item.signed(i, SigningKey(bytes([i]) * 32), 1), "10.0.0.1")
        self.assertEqual((store.immutableCount(), store.mutableCount()), (3, 3))
        self.assertEqual(store.evictions, 4)

    def test_evictsFarAndUnpopularFirst(self) -> None:
        """When full, the item farthest from our id goes; at the same distance, the one
        put by fewer IPs (five putters are worth one bit of distance)."""
        store = self.store(maxItems=2)
        near, far = Item.immutable(b"near"), Item.immutable(b"far")
        self.ownId = near.target
        store.put(near, "10.0.0.1")
        store.put(far, "10.0.0.1")
        store.put(Item.immutable(b"third"), "10.0.0.1")
        self.assertIsNotNone(store.get(near.target))
        self.assertIsNone(store.get(far.target))

        self.ownId = b"\x00" * 20
        byLength: dict[int, list[Item]] = {}
        for i in range(100):
            item = Item.immutable(i)
            byLength.setdefault(int.from_bytes(item.target, "big").bit_length(), []).append(item)
        popular, unpopular, newcomer = next(v for v in byLength.values() if len(v) >= 3)[:3]
        store = self.store(maxItems=2)
        for i in range(20):
            store.put(popular, f"10.1.{i}.1")
        store.put(unpopular, "10.0.0.1")
        store.put(newcomer, "10.0.0.1")
        self.assertIsNotNone(store.get(popular.target))
        self.assertIsNone(store.get(unpopular.target))

    def test_nodeExpiresItems(self) -> None:
        """The node's periodic job drops expired items."""
        node = DHTNode(reactor=self.clock, routers=[])
        node.itemStore.put(Item.immutable(b"v"), "10.0.0.1")
        node.start(bootstrap=False)
        self.clock.advance(ITEM_LIFETIME + 600)
        self.assertEqual(node.itemStore.immutableCount(), 0)
        node.stop()

    def test_putterCount(self) -> None:
        """Distinct putters are estimated, repeated ones counted once."""
        store = self.store()
        item = Item.immutable(b"v")
        for i in range(20):
            store.put(item, f"10.0.{i}.1")
            store.put(item, f"10.0.{i}.1")
        self.assertLessEqual(abs(store.putterCount(item.target) - 20), 3)
        self.assertEqual(store.putterCount(b"\x00" * 20), 0)
