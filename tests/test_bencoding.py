"""Tests for L{twisted_dht.bencoding}: the same tests run against every codec backend.

Each backend gets one concrete test case class built from L{_CodecTestsMixin}. The bencode2
class is skipped, with a reason, when bencode2 is not installed; but when the environment
variable C{CI} is set, a missing bencode2 fails every test of that class instead, so that
CI really runs the codec tests with each backend.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.reporter import TestResult
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht import bencoding
from twisted_dht.errors import MalformedMessage

KNOWN_BACKENDS = ("bencode2", "bencode.py")
"""Every backend L{bencoding} knows of, installed or not."""

_PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    # The same @given methods run on one class per backend, by design.
    suppress_health_check=[HealthCheck.differing_executors],
)


def _skipReason(backend: str) -> str | None:
    """Why the tests of C{backend} are skipped, or None to run (or, in CI, fail) them."""
    if backend in bencoding.BACKENDS or "CI" in os.environ:
        return None
    return f"bencoding backend {backend!r} is not installed (pip install twisted_dht[speedups])"


def _values(depth: int) -> st.SearchStrategy[Any]:
    """Bencodable values (bytes, ints, lists, dicts with bytes keys) nested at most C{depth}."""
    leaves = st.binary(max_size=20) | st.integers()
    if depth == 0:
        return leaves
    inner = _values(depth - 1)
    return (
        leaves
        | st.lists(inner, max_size=4)
        | st.dictionaries(st.binary(max_size=8), inner, max_size=4)
    )


_BENCODE_ALPHABET = b"ilde0123456789:-+ _x"


@st.composite
def _bencodeLike(draw: st.DrawFn) -> bytes:
    """Byte strings close to bencoding: valid encodings, mutated ones, and token soups."""
    kind = draw(st.sampled_from(["valid", "mutated", "soup", "random"]))
    if kind == "random":
        return draw(st.binary(max_size=64))
    if kind == "soup":
        tokens = st.sampled_from([bytes([b]) for b in _BENCODE_ALPHABET])
        return b"".join(draw(st.lists(tokens, max_size=40)))
    data = bytearray(bencoding.encode(draw(_values(3))))
    if kind == "mutated":
        for _ in range(draw(st.integers(1, 3))):
            position = draw(st.integers(0, len(data)))
            operation = draw(st.sampled_from(["insert", "delete", "replace"]))
            byte = draw(st.sampled_from(list(_BENCODE_ALPHABET)) | st.integers(0, 255))
            if operation == "insert":
                data.insert(position, byte)
            elif position < len(data):
                if operation == "delete":
                    del data[position]
                else:
                    data[position] = byte
    return bytes(data)


def _nestedLists(depth: int) -> bytes:
    return b"l" * depth + b"e" * depth


def _nestedDicts(depth: int) -> bytes:
    return b"d1:a" * depth + b"i0e" + b"e" * depth


class _CodecTestsMixin:
    """Codec tests run against the backend named by C{backend}."""

    backend: str

    # Provided by SynchronousTestCase in the concrete classes.
    assertEqual: Any
    assertRaises: Any
    addCleanup: Any
    fail: Any

    def setUp(self) -> None:
        if self.backend not in bencoding.BACKENDS:
            self.fail(
                f"bencoding backend {self.backend!r} is not importable, but CI is set: "
                "CI must run the codec tests with every backend"
            )
        self.addCleanup(bencoding.useBackend, bencoding.backend)
        bencoding.useBackend(self.backend)

    def assertMalformed(self, data: bytes) -> None:
        """Assert that decoding C{data} raises L{MalformedMessage}."""
        self.assertRaises(MalformedMessage, bencoding.decode, data)

    def test_backendSelected(self) -> None:
        """useBackend makes the named backend the current one."""
        self.assertEqual(bencoding.backend, self.backend)

    # Canonical encoding -------------------------------------------------------

    def test_encodeScalars(self) -> None:
        """Integers and byte strings encode to their one canonical form."""
        self.assertEqual(bencoding.encode(0), b"i0e")
        self.assertEqual(bencoding.encode(-3), b"i-3e")
        self.assertEqual(bencoding.encode(2**70), b"i1180591620717411303424e")
        self.assertEqual(bencoding.encode(b""), b"0:")
        self.assertEqual(bencoding.encode(b"spam"), b"4:spam")
        self.assertEqual(bencoding.encode(b"\x00\xff"), b"2:\x00\xff")

    def test_encodeContainers(self) -> None:
        """Lists keep their order and dicts are encoded with keys sorted as raw bytes."""
        self.assertEqual(bencoding.encode([]), b"le")
        self.assertEqual(bencoding.encode({}), b"de")
        self.assertEqual(bencoding.encode([b"b", 1, [b"a"]]), b"l1:bi1el1:aee")
        value = {b"b": 1, b"ab": 2, b"\xff": 3, b"Z": 4, b"a": {b"y": b"", b"x": []}}
        self.assertEqual(bencoding.encode(value), b"d1:Zi4e1:ad1:xle1:y0:e2:abi2e1:bi1e1:\xffi3ee")

    def test_decodeCanonical(self) -> None:
        """Canonical input decodes to bytes keys and values, ints, lists and dicts."""
        self.assertEqual(bencoding.decode(b"i0e"), 0)
        self.assertEqual(bencoding.decode(b"i-42e"), -42)
        self.assertEqual(bencoding.decode(b"0:"), b"")
        self.assertEqual(bencoding.decode(b"3:abc"), b"abc")
        self.assertEqual(bencoding.decode(b"le"), [])
        self.assertEqual(bencoding.decode(b"de"), {})
        self.assertEqual(
            bencoding.decode(b"d1:ad2:id3:abce1:ll1:xi1ee1:q4:ping1:t2:aae"),
            {b"a": {b"id": b"abc"}, b"q": b"ping", b"t": b"aa", b"l": [b"x", 1]},
        )

    # Non-canonical and invalid input ------------------------------------------

    def test_rejectSignedOrSpacedInteger(self) -> None:
        """Integers with a plus sign, whitespace or underscores are rejected."""
        for data in [b"i+3e", b"i 3e", b"i3 e", b"i1_0e", b"i\t3e", b"i3.0e"]:
            self.assertMalformed(data)

    def test_rejectNegativeZero(self) -> None:
        """C{i-0e} is rejected."""
        self.assertMalformed(b"i-0e")

    def test_rejectLeadingZeros(self) -> None:
        """Integers and string lengths with leading zeros are rejected."""
        for data in [b"i03e", b"i00e", b"i-03e", b"03:abc", b"00:", b"d01:ai1ee"]:
            self.assertMalformed(data)

    def test_rejectEmptyInteger(self) -> None:
        """An integer without digits is rejected."""
        self.assertMalformed(b"ie")
        self.assertMalformed(b"i-e")

    def test_rejectUnsortedKeys(self) -> None:
        """A dict whose keys are not in ascending raw-byte order is rejected."""
        self.assertMalformed(b"d1:bi1e1:ai2ee")
        self.assertMalformed(b"d2:abi1e1:ai2ee")
        self.assertMalformed(b"d1:ad1:yi1e1:xi2eee")

    def test_rejectDuplicateKeys(self) -> None:
        """A dict with the same key twice is rejected."""
        self.assertMalformed(b"d1:ai1e1:ai2ee")
        self.assertMalformed(b"d1:ai1e1:ai1ee")

    def test_rejectNonBytesKeys(self) -> None:
        """A dict key that is not a byte string is rejected."""
        self.assertMalformed(b"di1ei2ee")
        self.assertMalformed(b"dlei2ee")

    def test_rejectTrailingBytes(self) -> None:
        """Bytes after one complete value are rejected."""
        for data in [b"i3ex", b"i3ei4e", b"lee", b"dee", b"3:abcd", b"i3e "]:
            self.assertMalformed(data)

    def test_rejectTruncated(self) -> None:
        """Input that ends inside a value is rejected."""
        for data in [b"", b"i", b"i3", b"l", b"li1e", b"d", b"d1:a", b"d1:ai1e", b"3:", b"3"]:
            self.assertMalformed(data)

    def test_rejectLengthBeyondEnd(self) -> None:
        """A string length that runs past the end of the input is rejected."""
        for data in [b"5:abc", b"1:", b"d1:a9:xe", b"l4:abce", b"d9:ai1ee"]:
            self.assertMalformed(data)

    def test_rejectGarbage(self) -> None:
        """Input not starting with a bencoding type is rejected."""
        for data in [b" i3e", b"x", b"\xff", b"-1:a", b"e", b"s3:abc", b"1.0:a"]:
            self.assertMalformed(data)

    def test_rejectHugeInteger(self) -> None:
        """An integer beyond Python's int/str conversion limit is malformed, not ValueError."""
        getLimit = getattr(sys, "get_int_max_str_digits", None)
        limit = getLimit() if getLimit is not None else 0
        if not limit:
            # No limit: such an integer is a canonical value like any other.
            data = b"i" + b"9" * 5000 + b"e"
            self.assertEqual(bencoding.decode(data), int("9" * 5000))
            return
        data = b"i" + b"9" * (limit + 1) + b"e"
        with self.assertRaises(MalformedMessage):
            bencoding.decode(data)
        self.assertEqual(bencoding.decode(b"i" + b"9" * limit + b"e"), int("9" * limit))

    # Depth limits --------------------------------------------------------------

    def test_maxDepthAccepted(self) -> None:
        """Lists and dicts nested exactly MAX_DEPTH deep decode."""
        depth = bencoding.MAX_DEPTH
        value: Any = []
        for _ in range(depth - 1):
            value = [value]
        self.assertEqual(bencoding.decode(_nestedLists(depth)), value)
        decoded = bencoding.decode(_nestedDicts(depth))
        for _ in range(depth):
            decoded = decoded[b"a"]
        self.assertEqual(decoded, 0)

    def test_tooDeep(self) -> None:
        """Lists or dicts nested deeper than MAX_DEPTH are malformed."""
        depth = bencoding.MAX_DEPTH + 1
        self.assertMalformed(_nestedLists(depth))
        self.assertMalformed(_nestedDicts(depth))
        self.assertMalformed(b"d1:a" + _nestedLists(depth - 1) + b"e")

    def test_veryDeepNoRecursionError(self) -> None:
        """10,000 nested lists or dicts raise MalformedMessage, never RecursionError."""
        self.assertMalformed(_nestedLists(10_000))
        self.assertMalformed(_nestedDicts(10_000))
        self.assertMalformed(b"l" * 10_000)

    # Properties ------------------------------------------------------------------

    @_PROPERTY_SETTINGS
    @given(value=_values(bencoding.MAX_DEPTH))
    def test_roundTrip(self, value: Any) -> None:
        """Any bencodable value within the depth limit survives decode(encode(value))."""
        self.assertEqual(bencoding.decode(bencoding.encode(value)), value)

    @_PROPERTY_SETTINGS
    @given(data=_bencodeLike())
    def test_decodeIsStrict(self, data: bytes) -> None:
        """Any input decodes to a value that encodes back to exactly it, or is malformed."""
        try:
            value = bencoding.decode(data)
        except MalformedMessage:
            return
        self.assertEqual(bencoding.encode(value), data)


class BencodePyTests(_CodecTestsMixin, SynchronousTestCase):
    """The codec tests with bencode.py (C{bencodepy}) and its canonical re-encode check."""

    backend = "bencode.py"
    skip = _skipReason(backend)


class Bencode2Tests(_CodecTestsMixin, SynchronousTestCase):
    """The codec tests with bencode2."""

    backend = "bencode2"
    skip = _skipReason(backend)


class BackendSelectionTests(SynchronousTestCase):
    """Tests for L{bencoding.useBackend} and L{bencoding.BACKENDS}."""

    def test_everyBackendTested(self) -> None:
        """Every available backend has a test case class above."""
        self.assertEqual(set(bencoding.BACKENDS) - {"bencode2", "bencode.py"}, set())
        self.assertEqual(set(KNOWN_BACKENDS), {BencodePyTests.backend, Bencode2Tests.backend})

    def test_bencodePyAlwaysAvailable(self) -> None:
        """bencode.py, a hard dependency, is always an available backend and the fallback."""
        self.assertIn("bencode.py", bencoding.BACKENDS)
        self.assertEqual(bencoding.BACKENDS[-1], "bencode.py")

    def test_defaultPrefersBencode2(self) -> None:
        """The first available backend is the default; bencode2 comes first when installed."""
        self.assertEqual(bencoding.BACKENDS[0], bencoding.backend)
        if "bencode2" in bencoding.BACKENDS:
            self.assertEqual(bencoding.BACKENDS[0], "bencode2")

    def test_unknownBackend(self) -> None:
        """useBackend rejects an unknown name with ValueError and keeps the current backend."""
        before = bencoding.backend
        self.assertRaises(ValueError, bencoding.useBackend, "no-such-backend")
        self.assertEqual(bencoding.backend, before)

    def setCI(self, value: str | None) -> None:
        """Set or unset the C{CI} environment variable until the end of the test."""
        saved = os.environ.get("CI")
        self.addCleanup(_setEnvironment, "CI", saved)
        _setEnvironment("CI", value)

    def test_missingBackendSkippedOutsideCI(self) -> None:
        """Outside CI, a backend that is not installed is skipped with a reason naming it."""
        self.setCI(None)
        reason = _skipReason("not-installed")
        assert reason is not None
        self.assertIn("'not-installed' is not installed", reason)
        self.assertIsNone(_skipReason("bencode.py"))

    def test_missingBackendFailsInCI(self) -> None:
        """In CI, the tests of a backend that is not installed fail instead of skipping."""
        self.setCI("true")

        class MissingBackendTests(_CodecTestsMixin, SynchronousTestCase):
            backend = "not-installed"
            skip = _skipReason(backend)

        self.assertIsNone(MissingBackendTests.skip)
        result = TestResult()
        MissingBackendTests("test_backendSelected").run(result)
        self.assertEqual((result.skips, result.errors, len(result.failures)), ([], [], 1))
        self.assertIn("not importable, but CI is set", str(result.failures[0][1]))
        self.assertIn(bencoding.backend, bencoding.BACKENDS)


def _setEnvironment(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
