"""The one place that bencodes: bencode2 when installed, else bencode.py with strict checks.

Both backends accept exactly the canonical encoding: bencode2 is strict by itself; for
bencode.py, which accepts ``i+3e``, ``i 3e``, ``i1_0e`` and unsorted or duplicate dict keys,
a decoded value is accepted only if it encodes back to the very same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
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


def _decodeBencodePy(data: bytes) -> Any:
    value = _bencodepy.decode(data)
    if _bencodepy.encode(value) != data:
        raise MalformedMessage("non-canonical bencoding")
    return value


_DecodeErrors = tuple[type[Exception], ...]

# Per backend: its decoder (raising one of the errors listed, or MalformedMessage), the
# errors that mean invalid input, and its encoder. ValueError too: int() refuses
# integers longer than sys.get_int_max_str_digits().
_CODECS: dict[str, tuple[Callable[[bytes], Any], _DecodeErrors, Callable[[Any], bytes]]] = {
    "bencode.py": (
        _decodeBencodePy,
        (_bencodepy.BencodeDecodeError, RecursionError, ValueError, TypeError),
        _bencodepy.encode,
    ),
}
if _bencode2 is not None:  # pragma: no branch - depends on the installed extras
    _CODECS["bencode2"] = (
        _bencode2.bdecode,
        (_bencode2.BencodeDecodeError, ValueError, RecursionError),
        _bencode2.bencode,
    )

backend = BACKENDS[0]
_decode, _decodeErrors, encode = _CODECS[backend]
"""C{encode(value)}: bencode a value made of bytes, ints, lists and dicts with bytes keys
(the backend's own function: the hot path calls it for every reply)."""


def useBackend(name: str) -> None:
    """Select the codec backend by name (one of L{BACKENDS}); for tests and benchmarks."""
    global backend, _decode, _decodeErrors, encode
    if name not in BACKENDS:
        raise ValueError(f"bencoding backend {name!r} is not available (have {BACKENDS})")
    backend = name
    _decode, _decodeErrors, encode = _CODECS[name]


def decode(data: bytes) -> Any:
    """Decode canonical bencoding; bytes keys and values.

    @raise MalformedMessage: for anything but one canonical, not too deep value.
    """
    try:
        value = _decode(data)
    except _decodeErrors as e:
        raise MalformedMessage(f"invalid bencoding: {e}") from None
    # Every list or dict opens with an "l" or a "d" byte, so input with at most MAX_DEPTH
    # of them cannot nest deeper: most KRPC queries skip the walk.
    if data.count(b"d") + data.count(b"l") > MAX_DEPTH and not _withinDepth(value, MAX_DEPTH):
        raise MalformedMessage("bencoded value nested too deeply")
    return value
