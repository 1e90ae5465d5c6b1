"""BEP 44 interop on the wire: our DHTNode.get/put against libtorrent's and bittorrent-dht's.

Real reactor, loopback only, every wait bounded: each test starts a small network of our
nodes and the peers (tests/interop/peers.py) and stops them in cleanup. Without the peers
the tests skip, or fail when ``CI`` is set (as in tests/test_interop.py, whose
L{_InteropTestCase} they reuse).

Facts these tests lean on: libtorrent's private key is the 64-byte expanded form
(L{SigningKey.expandedKey}), its mutable put stores a byte string and picks one more than
the highest seq its get found; a libtorrent bootstrap router never enters its table, so it
never puts to our hub; bittorrent-dht handles mutable items only with a C{verify} function
(the driver's, from tweetnacl) and signs C{bencode({salt, seq, v})} without its outer
C{d...e}, which is BEP 44's signed buffer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from twisted.internet.defer import Deferred, gatherResults

from tests.interop.peers import (
    BittorrentDHTPeer,
    DHTPacket,
    FoundItem,
    LibtorrentPeer,
    PutOutcome,
    ed25519Available,
    nextLoopbackInterface,
    requirePeer,
)
from tests.test_interop import _InteropTestCase, bounded, waitFor
from twisted_dht import bencoding
from twisted_dht.addresses import Address
from twisted_dht.bep44 import Item, SigningKey, immutableTarget, mutableTarget, signedBuffer
from twisted_dht.errors import PutRefused
from twisted_dht.itemclient import GetResult, PutResult
from twisted_dht.node import DHTNode

SECONDS = 15
"""The bound on each of our gets and puts."""

REJECTED = ("dht_invalid_get", "dht_invalid_put")
"""libtorrent's counters of the get and put queries it rejected (a bad token, signature,
value or argument): ours must leave both at 0."""


def signingKey(name: str) -> SigningKey:
    """A distinct, reproducible key per test purpose."""
    return SigningKey(hashlib.sha256(b"twisted_dht bep44 interop " + name.encode()).digest())


def queriesNamed(lt: LibtorrentPeer, method: bytes, direction: str) -> list[DHTPacket]:
    """libtorrent's queries of one method, sent (``"out"``) or received (``"in"``)."""
    return [p for p in lt.packets if p.direction == direction and p.query == method]


class _BEP44TestCase(_InteropTestCase):
    """A network of our nodes and the peers, and get/put helpers for each implementation."""

    timeout = 120

    def setUp(self) -> None:
        super().setUp()
        requirePeer("tweetnacl (npm install in tests/interop)", ed25519Available())

    # The network -------------------------------------------------------------------

    async def ourNetwork(self, count: int = 3) -> list[DHTNode]:
        """Our hub on 127.0.0.1 and C{count - 1} nodes joined through it."""
        hub = self.ourNode()
        hubAddress = self.addressOf(hub)
        return [hub, *[await self.joinedNode(hubAddress) for _ in range(count - 1)]]

    def addresses(self, nodes: Iterable[DHTNode]) -> list[Address]:
        return [self.addressOf(node) for node in nodes]

    async def libtorrents(self, ours: list[DHTNode], count: int) -> list[LibtorrentPeer]:
        """C{count} libtorrent sessions bootstrapped from our hub, our other nodes added."""
        hubAddress, *members = self.addresses(ours)
        return [await self.libtorrent([hubAddress], members) for _ in range(count)]

    async def verifyingBtdht(self, bootstrap: Iterable[Address]) -> BittorrentDHTPeer:
        """A bittorrent-dht node with tweetnacl's verify, on its own 127.0.M.1, joined."""
        peer = BittorrentDHTPeer(timeout=float(SECONDS), maxLifetime=110.0)
        self.addCleanup(peer.stop)
        await peer.start(nextLoopbackInterface(), 0, list(bootstrap), verify=True)
        await peer.whenReady()
        return peer

    async def btdhts(self, ours: list[DHTNode], count: int) -> list[BittorrentDHTPeer]:
        hubAddress = self.addressOf(ours[0])
        return list(
            await gatherResults(
                [Deferred.fromCoroutine(self.verifyingBtdht([hubAddress])) for _ in range(count)]
            )
        )

    # Our side ------------------------------------------------------------------------

    async def ourPut(
        self,
        node: DHTNode,
        value: Any,
        key: SigningKey | None = None,
        *,
        accepted: int = 1,
        **options: Any,
    ) -> Item:
        """C{node} puts C{value}; at least C{accepted} nodes accepted it, none refused it."""
        result: PutResult = await bounded(node.put(value, key, **options), SECONDS, "our put")
        self.assertEqual(result.refused, {}, f"our put was refused: {result}")
        self.assertGreaterEqual(result.accepted, accepted, f"too few took our put: {result}")
        return result.item

    async def ourGet(
        self,
        node: DHTNode,
        target: bytes | None = None,
        *,
        key: bytes | None = None,
        salt: bytes = b"",
        seq: int | None = None,
    ) -> Item | None:
        """C{node}'s get of an immutable item, or of the mutable item of C{key} and C{salt}
        (with C{seq}: only if a node holds a newer one)."""
        d = node.get(target) if key is None else node.get(publicKey=key, salt=salt, seq=seq)
        result: GetResult = await bounded(d, SECONDS, "our get")
        return result.item

    def assertOurImmutable(self, item: Item | None, value: Any, what: str) -> None:
        self.assertIsNotNone(item, f"{what}: our get found nothing")
        assert item is not None
        self.assertEqual(item.value, value, what)
        self.assertEqual(item.target, immutableTarget(bencoding.encode(value)), what)

    def assertOurMutable(self, item: Item | None, put: PutOutcome, value: Any, what: str) -> None:
        """Our get found exactly what the peer put, and its signature verifies."""
        self.assertIsNotNone(item, f"{what}: our get found nothing")
        assert item is not None
        self.assertEqual(
            (item.value, item.seq, item.publicKey, item.salt, item.signature),
            (value, put.seq, put.publicKey, put.salt, put.signature),
            what,
        )
        self.assertTrue(item.verified(), what)
        self.assertEqual(item.target, put.target, what)

    def assertTheirMutable(self, found: FoundItem | None, item: Item, what: str) -> None:
        """A peer's get found exactly the item we put."""
        self.assertIsNotNone(found, f"{what}: the peer's get found nothing")
        assert found is not None
        self.assertEqual(
            (found.value, found.encoded, found.seq, found.publicKey, found.signature),
            (item.value, item.encoded, item.seq, item.publicKey, item.signature),
            what,
        )

    # Checks ------------------------------------------------------------------------

    async def assertCleanBEP44(self, lts: Iterable[LibtorrentPeer], ours: list[DHTNode]) -> None:
        """No error either way between libtorrent and our nodes, every query answered with
        C{y: r}, libtorrent rejected no get or put, and none of our nodes sent an error or
        dropped a datagram as malformed."""
        addresses = self.addresses(ours)
        self.assertNoErrorsSent(*ours)
        for lt in lts:
            await self.assertCleanExchanges(lt, addresses)
            counters = await lt.counters()
            rejected = {name: counters[f"dht.{name}"] for name in REJECTED}
            self.assertEqual(rejected, dict.fromkeys(REJECTED, 0), lt.address)

    async def libtorrentStores(self, lt: LibtorrentPeer, immutable: int, mutable: int) -> None:
        """libtorrent's gauges say it stores this many immutable and mutable items."""
        counters = await lt.counters()
        self.assertEqual(
            (counters["dht.dht_immutable_data"], counters["dht.dht_mutable_data"]),
            (immutable, mutable),
            f"libtorrent {lt.address}: items stored (immutable, mutable)",
        )

    def putsFrom(self, lt: LibtorrentPeer, ours: Iterable[DHTNode]) -> list[DHTPacket]:
        """The put queries libtorrent received from our nodes."""
        addresses = set(self.addresses(ours))
        return [p for p in queriesNamed(lt, b"put", "in") if (p.host, p.port) in addresses]

    async def putReached(self, lts: list[LibtorrentPeer], ours: list[DHTNode]) -> None:
        """Every libtorrent session received a put from our nodes (its packet log, which
        the alert poll fills within 50 ms, says so)."""
        for lt in lts:

            def reached(lt: LibtorrentPeer = lt) -> bool:
                return bool(self.putsFrom(lt, ours))

            await lt.waitUntil(reached, 3.0, "our put to libtorrent")

    def putsTo(self, lt: LibtorrentPeer, ours: Iterable[DHTNode]) -> list[DHTPacket]:
        """The put queries libtorrent sent our nodes."""
        addresses = set(self.addresses(ours))
        return [p for p in queriesNamed(lt, b"put", "out") if (p.host, p.port) in addresses]

    def storedBy(
        self, ours: Iterable[DHTNode], target: bytes, seq: int | None = None
    ) -> list[DHTNode]:
        """Those of C{ours} that store the item at C{target} (at C{seq}, if given)."""
        stored = [(node, node.itemStore.get(target)) for node in ours]
        return [
            node for node, item in stored if item is not None and (seq is None or item.seq == seq)
        ]


class LibtorrentImmutableTests(_BEP44TestCase):
    """Immutable items between our nodes and libtorrent."""

    async def test_ourGetFindsLibtorrentPut(self) -> None:
        """libtorrent's dht_put_immutable_item reaches our nodes, which store it, and a get
        by our node that joined later finds it."""
        ours = await self.ourNetwork(3)
        lts = await self.libtorrents(ours, 2)
        value = {b"from": b"libtorrent", b"list": [1, b"two", {b"three": 3}]}
        put = await lts[0].putImmutable(value)
        target = immutableTarget(bencoding.encode(value))
        self.assertEqual(put.target, target)
        self.assertGreaterEqual(put.nodes, 2)
        self.assertTrue(self.putsTo(lts[0], ours), "libtorrent put nothing to our nodes")
        # libtorrent never puts to its bootstrap router, our hub: to the other two.
        self.assertEqual(self.storedBy(ours[1:], target), ours[1:])

        looker = await self.joinedNode(self.addressOf(ours[0]))
        self.assertOurImmutable(await self.ourGet(looker, target), value, "libtorrent -> ours")
        await self.assertCleanBEP44(lts, [*ours, looker])

    async def test_libtorrentGetFindsOurPut(self) -> None:
        """An item our nodes alone hold is found by libtorrent's dht_get_immutable_item
        (its only sources: our get replies); our put to libtorrent is stored by it, and
        found by a libtorrent that joined later."""
        ours = await self.ourNetwork(3)
        value = [b"from twisted_dht", 44, {b"k": b"v"}]
        item = await self.ourPut(ours[1], value, accepted=2)
        (lt,) = await self.libtorrents(ours, 1)
        found = await lt.getImmutable(item.target)
        self.assertIsNotNone(found, "libtorrent's get found nothing in our get replies")
        assert found is not None
        self.assertEqual((found.value, found.encoded), (value, item.encoded))

        later = {b"put": b"after libtorrent joined"}
        laterItem = await self.ourPut(ours[2], later, accepted=3)  # 2 of ours, libtorrent
        await self.putReached([lt], ours)
        await self.libtorrentStores(lt, immutable=1, mutable=0)
        (other,) = await self.libtorrents(ours, 1)
        found = await other.getImmutable(laterItem.target)
        self.assertIsNotNone(found, "the later libtorrent's get found nothing")
        assert found is not None
        self.assertEqual((found.value, found.encoded), (later, laterItem.encoded))
        await self.assertCleanBEP44([lt, other], ours)


class LibtorrentMutableTests(_BEP44TestCase):
    """Mutable items between our nodes and libtorrent, keys from SigningKey.expandedKey."""

    async def test_ourGetFindsLibtorrentPut(self) -> None:
        """libtorrent's dht_put_mutable_item (expandedKey, publicKey, salt) reaches our
        nodes: our get finds its value, seq 1 and a signature that verifies; libtorrent's
        next put, after its own get through our nodes, is seq 2, and our get finds that."""
        key = signingKey("libtorrent puts")
        salt = b"libtorrent salt"
        ours = await self.ourNetwork(3)
        lts = await self.libtorrents(ours, 2)

        put = await lts[0].putMutable(key.expandedKey(), key.publicKey, b"first", salt)
        self.assertEqual((put.publicKey, put.salt, put.seq), (key.publicKey, salt, 1))
        self.assertEqual(put.target, mutableTarget(key.publicKey, salt))
        # libtorrent's signature is ours for the same item: the expanded key is the seed's.
        self.assertEqual(put.signature, key.sign(signedBuffer(b"5:first", 1, salt)))
        self.assertTrue(self.putsTo(lts[0], ours), "libtorrent put nothing to our nodes")
        self.assertEqual(self.storedBy(ours[1:], put.target, seq=1), ours[1:])
        item = await self.ourGet(ours[0], key=key.publicKey, salt=salt)
        self.assertOurMutable(item, put, b"first", "libtorrent -> ours, seq 1")

        again = await lts[1].putMutable(key.expandedKey(), key.publicKey, b"second", salt)
        self.assertEqual(again.seq, 2)
        self.assertEqual(self.storedBy(ours[1:], put.target, seq=2), ours[1:])
        item = await self.ourGet(ours[2], key=key.publicKey, salt=salt)
        self.assertOurMutable(item, again, b"second", "libtorrent -> ours, seq 2")
        await self.assertCleanBEP44(lts, ours)

    async def test_libtorrentGetFindsOurPut(self) -> None:
        """A mutable item our nodes alone hold (a byte string at seq 7) is found by
        libtorrent's dht_get_mutable_item with its seq, value and signature; libtorrent
        puts seq 8 over it, which our nodes store; our next put is seq 9, which libtorrent
        stores and gets."""
        key = signingKey("we put")
        salt = b"our salt"
        ours = await self.ourNetwork(3)
        item = await self.ourPut(ours[1], b"ours at seven", key, salt=salt, seq=7, accepted=2)
        lts = await self.libtorrents(ours, 2)
        for lt in lts:
            found = await lt.getMutable(key.publicKey, salt)
            self.assertTheirMutable(found, item, "ours -> libtorrent")
            assert found is not None
            self.assertEqual(found.salt, salt)

        put = await lts[0].putMutable(key.expandedKey(), key.publicKey, b"libtorrent's", salt)
        self.assertEqual(put.seq, 8)
        self.assertEqual(self.storedBy(ours[1:], put.target, seq=8), ours[1:])
        ourFound = await self.ourGet(ours[2], key=key.publicKey, salt=salt)
        self.assertOurMutable(ourFound, put, b"libtorrent's", "libtorrent over ours")

        newer = await self.ourPut(ours[0], b"ours again", key, salt=salt, accepted=4)
        self.assertEqual(newer.seq, 9)
        await self.putReached(lts, ours)
        for lt in lts:
            await self.libtorrentStores(lt, immutable=0, mutable=1)
        self.assertTheirMutable(await lts[1].getMutable(key.publicKey, salt), newer, "seq 9")

        # A get with seq: libtorrent answers seq alone unless it holds a newer item.
        self.assertIsNone(await self.ourGet(ours[2], key=key.publicKey, salt=salt, seq=9))
        older = await self.ourGet(ours[2], key=key.publicKey, salt=salt, seq=8)
        self.assertEqual((older and older.seq, older and older.value), (9, b"ours again"))

        def withSeq() -> list[DHTPacket]:
            gets = queriesNamed(lts[0], b"get", "in")
            return [p for p in gets if p.message and p.message[b"a"].get(b"seq") == 9]

        await lts[0].waitUntil(lambda: bool(withSeq()), 3.0, "our get with seq 9")
        await self.assertCleanBEP44(lts, ours)

    async def test_noSalt(self) -> None:
        """Without a salt (Pkarr's case: the target is SHA-1 of the key alone) both ways."""
        key = signingKey("no salt")
        ours = await self.ourNetwork(3)
        (lt,) = await self.libtorrents(ours, 1)

        put = await lt.putMutable(key.expandedKey(), key.publicKey, b"saltless", b"")
        self.assertEqual(put.target, hashlib.sha1(key.publicKey).digest())
        self.assertOurMutable(
            await self.ourGet(ours[0], key=key.publicKey), put, b"saltless", "libtorrent -> ours"
        )
        item = await self.ourPut(ours[1], b"ours, saltless", key, accepted=3)
        self.assertEqual(item.seq, 2)
        self.assertTheirMutable(await lt.getMutable(key.publicKey, b""), item, "ours -> lt")
        await self.assertCleanBEP44([lt], ours)


class BittorrentDHTTests(_BEP44TestCase):
    """Immutable and mutable items between our nodes and bittorrent-dht's put and get."""

    def putsReceived(self, bt: BittorrentDHTPeer, ours: Iterable[DHTNode]) -> list[Any]:
        """The put queries bittorrent-dht received from our nodes."""
        addresses = {f"{host}:{port}" for host, port in self.addresses(ours)}
        return [q for q in bt.queriesNamed("put") if q["from"] in addresses]

    async def putReachedBtdht(self, bts: list[BittorrentDHTPeer], ours: list[DHTNode]) -> None:
        """Every bittorrent-dht node received a put from our nodes (its driver's query
        events, printed after it replied, say so)."""
        for bt in bts:

            def reached(bt: BittorrentDHTPeer = bt) -> bool:
                return bool(self.putsReceived(bt, ours))

            await waitFor(reached, 3.0, "our put to bittorrent-dht")

    async def test_immutable(self) -> None:
        """An item our nodes alone hold is found by bittorrent-dht's get; its put is stored
        by our nodes and found by our get; our put after it joined is taken by it."""
        ours = await self.ourNetwork(3)
        value = {b"from": b"twisted_dht", b"n": [1, 2, 3]}
        item = await self.ourPut(ours[2], value, accepted=2)
        bts = await self.btdhts(ours, 2)
        for bt in bts:
            found = await bt.get(item.target)
            self.assertIsNotNone(found, "bittorrent-dht's get found nothing in our replies")
            assert found is not None
            self.assertEqual((found.value, found.encoded), (value, item.encoded))

        theirs = b"an immutable item from bittorrent-dht"
        put = await bts[0].put(theirs)
        self.assertEqual(put.target, immutableTarget(bencoding.encode(theirs)))
        self.assertGreaterEqual(put.nodes, 4)  # our three and the other bittorrent-dht
        self.assertEqual(self.storedBy(ours, put.target), ours)
        self.assertOurImmutable(await self.ourGet(ours[1], put.target), theirs, "bt -> ours")

        later = await self.ourPut(ours[0], b"after bittorrent-dht joined", accepted=4)
        await self.putReachedBtdht(bts, ours)
        self.assertIsNotNone(await bts[1].get(later.target))
        self.assertNoErrorsSent(*ours)
        self.assertEqual([w for bt in bts for w in bt.warnings], [])

    async def test_mutable(self) -> None:
        """A mutable item our nodes alone hold (seq 5) is found by bittorrent-dht's get with
        that seq, value and signature; its put of seq 6 over ours (signed with tweetnacl) is
        stored by our nodes and found by our get, as is its put under another salt."""
        key = signingKey("bittorrent-dht")
        salt = b"bt salt"
        ours = await self.ourNetwork(3)
        ourItem = await self.ourPut(ours[2], b"ours at five", key, salt=salt, seq=5, accepted=2)
        bts = await self.btdhts(ours, 2)
        for bt in bts:
            self.assertTheirMutable(
                await bt.get(publicKey=key.publicKey, salt=salt), ourItem, "ours -> bt"
            )

        over = await bts[1].put(b"bt at six", key.seed, seq=6, salt=salt)
        self.assertEqual((over.publicKey, over.seq), (key.publicKey, 6))
        self.assertEqual(over.signature, key.sign(signedBuffer(b"9:bt at six", 6, salt)))
        self.assertGreaterEqual(over.nodes, 4)
        self.assertEqual(self.storedBy(ours, over.target, seq=6), ours)
        self.assertOurMutable(
            await self.ourGet(ours[0], key=key.publicKey, salt=salt), over, b"bt at six", "seq 6"
        )

        other = b"another salt"
        put = await bts[0].put(b"bittorrent-dht's", key.seed, seq=3, salt=other)
        self.assertEqual(put.target, mutableTarget(key.publicKey, other))
        self.assertEqual(self.storedBy(ours, put.target, seq=3), ours)
        item = await self.ourGet(ours[1], key=key.publicKey, salt=other)
        self.assertOurMutable(item, put, b"bittorrent-dht's", "bt -> ours")

        # Our put after they joined: both bittorrent-dht nodes take it (they answer a put
        # they cannot verify with error 400, and drop one whose signature fails).
        newer = await self.ourPut(ours[1], b"ours at seven", key, salt=salt, accepted=4)
        self.assertEqual(newer.seq, 7)
        await self.putReachedBtdht(bts, ours)
        self.assertTheirMutable(await bts[0].get(publicKey=key.publicKey, salt=salt), newer, "7")
        self.assertNoErrorsSent(*ours)
        self.assertEqual([w for bt in bts for w in bt.warnings], [])


class LimitTests(_BEP44TestCase):
    """The largest items BEP 44 allows: a 1,000-byte bencoded value, a 64-byte salt."""

    async def test_largestItems(self) -> None:
        """Our largest immutable and mutable items, held by our nodes alone, are found by
        libtorrent's and bittorrent-dht's gets (our replies carry them whole); libtorrent's
        largest mutable item is stored by our nodes and found by our get."""
        data = bytes(range(256)) * 3 + b"z" * 228  # 996 bytes: 1,000 bencoded
        self.assertEqual(len(bencoding.encode(data)), 1000)
        key, salt = signingKey("largest"), b"s" * 64
        ours = await self.ourNetwork(3)
        immutable = await self.ourPut(ours[1], data, accepted=2)
        mutable = await self.ourPut(ours[1], data, key, salt=salt, seq=1, accepted=2)
        (lt,) = await self.libtorrents(ours, 1)
        (bt,) = await self.btdhts(ours, 1)

        found = await lt.getImmutable(immutable.target)
        self.assertEqual(found and found.encoded, immutable.encoded, "libtorrent, immutable")
        self.assertTheirMutable(await lt.getMutable(key.publicKey, salt), mutable, "lt")
        found = await bt.get(immutable.target)
        self.assertEqual(found and found.encoded, immutable.encoded, "bittorrent-dht")
        self.assertTheirMutable(
            await bt.get(publicKey=key.publicKey, salt=salt), mutable, "bittorrent-dht"
        )

        theirs = signingKey("largest, libtorrent's")
        put = await lt.putMutable(theirs.expandedKey(), theirs.publicKey, data[::-1], salt)
        self.assertEqual(self.storedBy(ours[1:], put.target, seq=1), ours[1:])
        item = await self.ourGet(ours[0], key=theirs.publicKey, salt=salt)
        self.assertOurMutable(item, put, data[::-1], "libtorrent -> ours")
        await self.assertCleanBEP44([lt], ours)


class RefusalTests(_BEP44TestCase):
    """What every implementation answers an outdated put of ours: 302, or 301 for a CAS."""

    async def test_staleSeqAndCAS(self) -> None:
        """Once our two other nodes, libtorrent and bittorrent-dht store seq 5, our put of
        seq 3 is refused by all four with 302, and one with cas 4 with 301 (PutRefused);
        with cas 5 it is accepted by all four."""
        key, salt = signingKey("refusals"), b"cas"
        ours = await self.ourNetwork(3)
        (lt,) = await self.libtorrents(ours, 1)
        (bt,) = await self.btdhts(ours, 1)
        await self.ourPut(ours[0], b"five", key, salt=salt, seq=5, accepted=4)

        for seq, cas, code in ((3, None, 302), (6, 4, 301)):
            put = bounded(ours[0].put(b"stale", key, salt=salt, seq=seq, cas=cas), SECONDS, "put")
            refusal = await self.assertFailure(put, PutRefused)
            self.assertEqual(
                (refusal.code, refusal.refusals, refusal.accepted), (code, 4, 0), (seq, cas)
            )

        def errorsSent() -> list[int]:
            sent = [p.message for p in lt.errorPackets() if p.direction == "out" and p.message]
            return [message[b"e"][0] for message in sent]

        await lt.waitUntil(lambda: len(errorsSent()) >= 2, 3.0, "libtorrent's errors")
        self.assertEqual(errorsSent(), [302, 301])

        result = await bounded(
            ours[0].put(b"six", key, salt=salt, seq=6, cas=5), SECONDS, "our put with cas"
        )
        self.assertEqual((result.accepted, result.refused), (4, {}))
        self.assertTheirMutable(await lt.getMutable(key.publicKey, salt), result.item, "six")
        self.assertTheirMutable(
            await bt.get(publicKey=key.publicKey, salt=salt), result.item, "six"
        )


class MixedNetworkTests(_BEP44TestCase):
    """Every implementation gets every implementation's items in one network."""

    async def test_everyoneGetsEveryonesItems(self) -> None:
        """In a network of 3 twisted_dht, 2 libtorrent and 2 bittorrent-dht nodes, each
        implementation puts an immutable and a mutable item, and each implementation's get
        (from a node other than the putter) finds all six."""
        ours = await self.ourNetwork(3)
        bts = await self.btdhts(ours, 2)
        lts = await self.libtorrents(ours, 2)
        members: dict[str, list[Any]] = {
            "twisted_dht": ours[1:],
            "libtorrent": lts,
            "bittorrent-dht": bts,
        }

        # Each implementation's first member puts; the second gets (ours: the hub gets).
        expected: dict[tuple[str, str], tuple[bytes, Any, PutOutcome | Item]] = {}
        for kind in members:
            value = f"immutable from {kind}".encode()
            data = f"mutable from {kind}".encode()
            key, salt = signingKey(f"mixed {kind}"), f"{kind} salt".encode()
            putter = members[kind][0]
            if kind == "twisted_dht":
                immutable: PutOutcome | Item = await self.ourPut(putter, value)
                mutable: PutOutcome | Item = await self.ourPut(
                    putter, data, key, salt=salt, seq=11
                )
            elif kind == "libtorrent":
                immutable = await putter.putImmutable(value)
                mutable = await putter.putMutable(key.expandedKey(), key.publicKey, data, salt)
            else:
                immutable = await putter.put(value)
                mutable = await putter.put(data, key.seed, seq=21, salt=salt)
            self.assertEqual(immutable.target, immutableTarget(bencoding.encode(value)), kind)
            self.assertEqual(mutable.target, mutableTarget(key.publicKey, salt), kind)
            expected[kind, "immutable"] = (immutable.target, value, immutable)
            expected[kind, "mutable"] = (mutable.target, data, mutable)

        getters = {"twisted_dht": ours[0], "libtorrent": lts[1], "bittorrent-dht": bts[1]}
        missed = []
        for getterKind, getter in getters.items():
            for (putterKind, form), (target, value, put) in expected.items():
                pair = f"{form} {putterKind} -> {getterKind}"
                found = await self.getBy(getter, target, put)
                got = None if found is None else (found.value, found.seq if put.seq else None)
                want = (value, put.seq if put.seq else None)
                if got != want:
                    missed.append(f"{pair}: got {got!r}, wanted {want!r}")
        self.assertEqual(missed, [])
        await self.assertCleanBEP44(lts, ours)
        self.assertEqual([w for bt in bts for w in bt.warnings], [])

    async def getBy(self, getter: Any, target: bytes, put: PutOutcome | Item) -> Any:
        """Get the item at C{target} with whichever API C{getter} has."""
        if put.publicKey is None:
            if isinstance(getter, DHTNode):
                return await self.ourGet(getter, target)
            if isinstance(getter, LibtorrentPeer):
                return await getter.getImmutable(target)
            return await getter.get(target)
        if isinstance(getter, DHTNode):
            item = await self.ourGet(getter, key=put.publicKey, salt=put.salt)
            self.assertTrue(item is None or item.verified())
            return item
        if isinstance(getter, LibtorrentPeer):
            return await getter.getMutable(put.publicKey, put.salt)
        return await getter.get(publicKey=put.publicKey, salt=put.salt)
