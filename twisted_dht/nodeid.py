"""160-bit node ids: XOR distance, bucket arithmetic, random ids, hex parsing."""

from __future__ import annotations

import os
import random

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


def commonPrefixLength(a: bytes, b: bytes) -> int:
    """How many leading bits two ids share (160 when they are equal)."""
    return ID_BITS - distance(a, b).bit_length()


def randomIdInRange(low: int, high: int) -> bytes:
    """A random id ``x`` with ``low <= x < high`` (a bucket's range)."""
    if not 0 <= low < high <= _ID_SPACE:
        raise ValueError(f"invalid id range [{low:#x}, {high:#x})")
    return fromInt(random.randrange(low, high))


def parseHex(text: str) -> bytes:
    """Parse a 40-digit hexadecimal node id or info_hash.

    @raise ValueError: with a message saying what is wrong.
    """
    text = text.strip()
    if len(text) != ID_LENGTH * 2:
        raise ValueError(f"expected {ID_LENGTH * 2} hex digits, got {len(text)}: {text!r}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"not a hexadecimal id: {text!r}") from None
