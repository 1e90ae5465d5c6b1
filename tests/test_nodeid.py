"""Tests for twisted_dht.nodeid: XOR distance, prefixes, random ids and hex parsing."""

from __future__ import annotations

import random

from twisted.trial.unittest import SynchronousTestCase

from twisted_dht import nodeid

ZERO = b"\x00" * 20
ONES = b"\xff" * 20


class DistanceTests(SynchronousTestCase):
    """XOR distance and common prefix length."""

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

    def test_commonPrefixLength(self) -> None:
        """The common prefix counts leading equal bits: 160 for equal ids, 0 for opposites."""
        self.assertEqual(nodeid.commonPrefixLength(ZERO, ZERO), 160)
        self.assertEqual(nodeid.commonPrefixLength(ZERO, ONES), 0)
        self.assertEqual(nodeid.commonPrefixLength(ZERO, nodeid.fromInt(1)), 159)
        self.assertEqual(nodeid.commonPrefixLength(ZERO, b"\x00\x10" + b"\x00" * 18), 11)


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
        random.seed(3)
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
        self.assertIn("not a hexadecimal id", str(error))
        self.assertIn("zz", str(error))
