"""Tests for twisted_dht.nodeid: XOR distance, random ids, hex parsing and Identity."""

from __future__ import annotations

import random

from twisted.trial.unittest import SynchronousTestCase

from twisted_dht import nodeid

ZERO = b"\x00" * 20
ONES = b"\xff" * 20


class DistanceTests(SynchronousTestCase):
    """XOR distance."""

    def test_distanceIsXor(self) -> None:
        """The distance is the XOR of the ids read as big-endian integers."""
        a = bytes(range(20))
        b = bytes(range(100, 120))
        self.assertEqual(nodeid.distance(a, b), nodeid.toInt(a) ^ nodeid.toInt(b))
        self.assertEqual(nodeid.distance(ZERO, ONES), 2**160 - 1)

    def test_distanceSymmetricAndZeroToSelf(self) -> None:
        """The distance is symmetric and zero exactly between equal ids."""
        rng = random.Random(1)
        for _ in range(50):
            a, b = rng.randbytes(20), rng.randbytes(20)
            self.assertEqual(nodeid.distance(a, b), nodeid.distance(b, a))
            self.assertEqual(nodeid.distance(a, a), 0)
            self.assertEqual(nodeid.distance(a, b) == 0, a == b)

    def test_distanceBitLengthIsFirstDifferingBit(self) -> None:
        """160 minus the distance's bit length is the common prefix: 160 for equal ids,
        0 for opposites, 159 and 11 for ids first differing at those bits."""

        def prefix(a: bytes, b: bytes) -> int:
            return nodeid.ID_BITS - nodeid.distance(a, b).bit_length()

        self.assertEqual(prefix(ZERO, ZERO), 160)
        self.assertEqual(prefix(ZERO, ONES), 0)
        self.assertEqual(prefix(ZERO, nodeid.fromInt(1)), 159)
        self.assertEqual(prefix(ZERO, b"\x00\x10" + b"\x00" * 18), 11)


class ConversionTests(SynchronousTestCase):
    """Integer conversions and random ids."""

    def test_toIntFromIntRoundTrip(self) -> None:
        """toInt reads big-endian and fromInt is its inverse on 20-byte ids."""
        self.assertEqual(nodeid.toInt(b"\x00" * 19 + b"\x01"), 1)
        self.assertEqual(nodeid.toInt(b"\x80" + b"\x00" * 19), 2**159)
        self.assertEqual(nodeid.fromInt(2**160 - 1), ONES)
        rng = random.Random(2)
        for _ in range(50):
            value = rng.randrange(2**160)
            self.assertEqual(nodeid.toInt(nodeid.fromInt(value)), value)

    def test_fromIntOutOfRange(self) -> None:
        """fromInt refuses integers that do not fit in 160 bits."""
        self.assertRaises(OverflowError, nodeid.fromInt, 2**160)
        self.assertRaises(OverflowError, nodeid.fromInt, -1)

    def test_randomIdLength(self) -> None:
        """randomId returns 20 bytes, different each time."""
        ids = {nodeid.randomId() for _ in range(10)}
        self.assertEqual({len(i) for i in ids}, {20})
        self.assertEqual(len(ids), 10)

    def test_randomIdInRangeBounds(self) -> None:
        """randomIdInRange stays in [low, high), including one-id and whole-space ranges."""
        for low, high in [(0, 1), (5, 6), (2**159, 2**160), (0, 2**160), (1000, 1016)]:
            for _ in range(100):
                value = nodeid.toInt(nodeid.randomIdInRange(low, high))
                self.assertTrue(low <= value < high, (low, high, value))
        self.assertEqual(nodeid.randomIdInRange(7, 8), nodeid.fromInt(7))

    def test_randomIdInRangeErrors(self) -> None:
        """randomIdInRange rejects empty, negative and oversized ranges with the range."""
        for low, high in [(5, 5), (6, 5), (-1, 5), (0, 2**160 + 1)]:
            error = self.assertRaises(ValueError, nodeid.randomIdInRange, low, high)
            self.assertIn("invalid id range", str(error))


class ParseHexTests(SynchronousTestCase):
    """Parsing 40-digit hexadecimal ids."""

    def test_parseHexGood(self) -> None:
        """Forty hex digits, any case, surrounding whitespace ignored, parse to 20 bytes."""
        self.assertEqual(nodeid.parseHex("00" * 20), ZERO)
        self.assertEqual(nodeid.parseHex("  " + "Ff" * 20 + "\n"), ONES)
        text = "0123456789abcdef0123456789ABCDEF01234567"
        self.assertEqual(nodeid.parseHex(text), bytes.fromhex(text))

    def test_parseHexWrongLength(self) -> None:
        """A wrong length is reported with the expected and actual digit counts."""
        error = self.assertRaises(ValueError, nodeid.parseHex, "abc")
        self.assertIn("expected 40 hex digits, got 3", str(error))
        error = self.assertRaises(ValueError, nodeid.parseHex, "0" * 42)
        self.assertIn("got 42", str(error))

    def test_parseHexNotHex(self) -> None:
        """Forty characters that are not all hex digits are reported as such."""
        error = self.assertRaises(ValueError, nodeid.parseHex, "zz" * 20)
        self.assertIn("not hexadecimal", str(error))
        self.assertIn("zz", str(error))


class IdentityTests(SynchronousTestCase):
    """Identity: our node id, shared, changed only through set."""

    def test_randomByDefault(self) -> None:
        """Without an id, an Identity gets a random 20-byte one, different each time."""
        ids = {nodeid.Identity().nodeId for _ in range(10)}
        self.assertEqual({len(i) for i in ids}, {20})
        self.assertEqual(len(ids), 10)

    def test_givenId(self) -> None:
        """An Identity made with an id has that id."""
        self.assertEqual(nodeid.Identity(ONES).nodeId, ONES)

    def test_constructorValidates(self) -> None:
        """An id that is not 20 bytes is refused at construction."""
        for bad in (ONES[:19], ONES + b"\x00", b"", "a" * 20):
            self.assertRaises(ValueError, nodeid.Identity, bad)  # type: ignore[arg-type]

    def test_setChangesId(self) -> None:
        """set adopts the new id."""
        identity = nodeid.Identity(ZERO)
        identity.set(ONES)
        self.assertEqual(identity.nodeId, ONES)

    def test_setValidatesLength(self) -> None:
        """set refuses an id that is not 20 bytes, keeps the old id and tells no listener."""
        identity = nodeid.Identity(ZERO)
        seen: list[bytes] = []
        identity.onChange(seen.append)
        for bad in (ONES[:19], ONES + b"\x00", b"", "a" * 20):
            self.assertRaises(ValueError, identity.set, bad)  # type: ignore[arg-type]
        self.assertEqual(identity.nodeId, ZERO)
        self.assertEqual(seen, [])

    def test_nodeIdReadOnly(self) -> None:
        """nodeId cannot be assigned: only set changes the id (and tells the listeners)."""
        identity = nodeid.Identity(ZERO)
        self.assertRaises(AttributeError, setattr, identity, "nodeId", ONES)
        self.assertEqual(identity.nodeId, ZERO)

    def test_onChangeListenersCalled(self) -> None:
        """Every listener is called with the new id on every set, in the order they were
        registered, after the id has changed."""
        identity = nodeid.Identity(ZERO)
        calls: list[tuple[str, bytes, bytes]] = []
        identity.onChange(lambda new: calls.append(("first", new, identity.nodeId)))
        identity.onChange(lambda new: calls.append(("second", new, identity.nodeId)))
        other = nodeid.fromInt(7)
        identity.set(ONES)
        identity.set(other)
        self.assertEqual(
            calls,
            [
                ("first", ONES, ONES),
                ("second", ONES, ONES),
                ("first", other, other),
                ("second", other, other),
            ],
        )

    def test_listenerAddedDuringChange(self) -> None:
        """A listener registered by a listener is called from the next change on."""
        identity = nodeid.Identity(ZERO)
        late: list[bytes] = []

        def register(new: bytes) -> None:
            if not late and new == ONES:
                identity.onChange(late.append)

        identity.onChange(register)
        identity.set(ONES)
        self.assertEqual(late, [])
        identity.set(ZERO)
        self.assertEqual(late, [ZERO])
