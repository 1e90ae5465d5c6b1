"""The one place that bencodes: bencode2 when installed, else bencode.py with strict checks.

Both backends accept exactly the canonical encoding: bencode2 is strict by itself; for
bencode.py, which accepts ``i+3e``, ``i 3e``, ``i1_0e`` and unsorted or duplicate dict keys,
a decoded value is accepted only if it encodes back to the very same bytes.
"""

from __future__ import annotations

from typing import Any

import bencodepy as _bencodepy

from .errors import MalformedMessage

MAX_DEPTH = 8
"""Deepest nesting of lists and dicts accepted (KRPC needs 3)."""

try:
    import bencode2 as _bencode2
except ImportError:  # pragma: no cover - depends on the installed extras
    _bencode2 = None  # type: ignore[assignment]

BACKENDS = ("bencode2", "bencode.py") if _bencode2 is not None else ("bencode.py",)


def _withinDepth(value: Any, limit: int) -> bool:
    if isinstance(value, bytes | int):
        return True
    if limit == 0:
        return False
    if isinstance(value, dict):
        value = value.values()
    return all(_withinDepth(item, limit - 1) for item in value)


def _decodeBencode2(data: bytes) -> Any:
    try:
        return _bencode2.bdecode(data)  # type: ignore[union-attr]
    # ValueError too: int() refuses integers longer than sys.get_int_max_str_digits().
    except (_bencode2.BencodeDecodeError, ValueError, RecursionError) as e:  # type: ignore[union-attr]
        raise MalformedMessage(f"invalid bencoding: {e}") from None


def _encodeBencode2(value: Any) -> bytes:
    return _bencode2.bencode(value)  # type: ignore[no-any-return,union-attr]


def _decodeBencodePy(data: bytes) -> Any:
    try:
        value = _bencodepy.decode(data)
        canonical = _bencodepy.encode(value)
    except (_bencodepy.BencodeDecodeError, RecursionError, ValueError, TypeError) as e:
        raise MalformedMessage(f"invalid bencoding: {e}") from None
    if canonical != data:
        raise MalformedMessage("non-canonical bencoding")
    return value


def _encodeBencodePy(value: Any) -> bytes:
    return _bencodepy.encode(value)  # type: ignore[no-any-return]


_CODECS = {
    "bencode2": (_decodeBencode2, _encodeBencode2),
    "bencode.py": (_decodeBencodePy, _encodeBencodePy),
}

backend = BACKENDS[0]
_decode, _encode = _CODECS[backend]


def useBackend(name: str) -> None:
    """Select the codec backend by name (one of L{BACKENDS}); for tests and benchmarks."""
    global backend, _decode, _encode
    if name not in BACKENDS:
        raise ValueError(f"bencoding backend {name!r} is not available (have {BACKENDS})")
    backend = name
    _decode, _encode = _CODECS[name]


def decode(data: bytes) -> Any:
    """Decode canonical bencoding; bytes keys and values.

    @raise MalformedMessage: for anything but one canonical, not too deep value.
    """
    value = _decode(data)
    # Every list or dict opens with an "l" or a "d" byte, so input with at most MAX_DEPTH
    # of them cannot nest deeper: most KRPC queries skip the walk.
    if data.count(b"d") + data.count(b"l") > MAX_DEPTH and not _withinDepth(value, MAX_DEPTH):
        raise MalformedMessage("bencoded value nested too deeply")
    return value


def encode(value: Any) -> bytes:
    """Encode a value made of bytes, ints, lists and dicts with bytes keys."""
    return _encode(value)


def encodedSize(value: Any) -> int:
    """The length of C{encode(value)}, computed without encoding."""
    if isinstance(value, bytes):
        size = len(value)
        return size + len(str(size)) + 1
    if isinstance(value, int):
        return len(str(value)) + 2
    if isinstance(value, dict):
        return 2 + sum(encodedSize(key) + encodedSize(item) for key, item in value.items())
    return 2 + sum(encodedSize(item) for item in value)
