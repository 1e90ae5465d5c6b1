"""160-bit node ids: XOR distance, random ids, hex parsing, and our own id (L{Identity})."""

from __future__ import annotations

import os
import random
from collections.abc import Callable

ID_LENGTH = 20
ID_BITS = ID_LENGTH * 8
_ID_SPACE = 1 << ID_BITS


def randomId() -> bytes:
    """A uniformly random 20-byte id."""
    return os.urandom(ID_LENGTH)


def toInt(nodeId: bytes) -> int:
    """The id as a 160-bit unsigned integer."""
    return int.from_bytes(nodeId, "big")


def fromInt(value: int) -> bytes:
    """The 20-byte id of a 160-bit unsigned integer."""
    return value.to_bytes(ID_LENGTH, "big")


def distance(a: bytes, b: bytes) -> int:
    """The XOR distance between two ids, as an integer."""
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def randomIdInRange(low: int, high: int) -> bytes:
    """A random id ``x`` with ``low <= x < high`` (a bucket's range)."""
    if not 0 <= low < high <= _ID_SPACE:
        raise ValueError(f"invalid id range [{low:#x}, {high:#x})")
    return fromInt(random.randrange(low, high))


def parseHex(text: str, length: int = ID_LENGTH) -> bytes:
    """Parse C{length} bytes written in hexadecimal (default: a node id or info_hash).

    @raise ValueError: with a message saying what is wrong.
    """
    text = text.strip()
    if len(text) != length * 2:
        raise ValueError(f"expected {length * 2} hex digits, got {len(text)}: {text!r}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"not hexadecimal: {text!r}") from None


class Identity:
    """Our node id, one object shared by every part that needs it.

    Change it with L{set}, which tells the callables registered with L{onChange} (the
    routing tables rebuild themselves around the new id).
    """

    def __init__(self, nodeId: bytes | None = None) -> None:
        self._nodeId = _checked(nodeId) if nodeId is not None else randomId()
        self._listeners: list[Callable[[bytes], object]] = []

    @property
    def nodeId(self) -> bytes:
        """Our 20-byte node id."""
        return self._nodeId

    def set(self, nodeId: bytes) -> None:
        """Adopt C{nodeId} and tell the listeners."""
        self._nodeId = _checked(nodeId)
        for listener in list(self._listeners):
            listener(self._nodeId)

    def onChange(self, listener: Callable[[bytes], object]) -> None:
        """Call C{listener(newId)} whenever the id changes."""
        self._listeners.append(listener)


def _checked(nodeId: bytes) -> bytes:
    if not isinstance(nodeId, bytes) or len(nodeId) != ID_LENGTH:
        raise ValueError("a node id is 20 bytes")
    return nodeId
