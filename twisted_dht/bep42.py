"""BEP 42 node ids: derived from the node's external IP with CRC32C, and checked.

The rule is libtorrent's (C{node_id.cpp}): mask the IPv4 address with C{03 0f 3f ff} (the
high 64 bits of an IPv6 address with C{01 03 07 0f 1f 3f 7f ff}), OR the 3-bit C{r} into
the top bits of the first octet, and CRC32C those 4 (or 8) octets. The first 21 bits of
the id are the top 21 bits of the CRC; the last byte is random with C{r} in its low 3 bits.
Local addresses (L{twisted_dht.addresses.isLocal}) are exempt: any id is valid for them.
"""

from __future__ import annotations

import os

from crc32c import crc32c

from .addresses import isLocal, packIP

_V4_MASK = (0x03, 0x0F, 0x3F, 0xFF)
_V6_MASK = (0x01, 0x03, 0x07, 0x0F, 0x1F, 0x3F, 0x7F, 0xFF)


def idPrefix(ip: str | bytes, r: int) -> int:
    """The CRC32C of C{ip}'s masked octets with C{r & 7} in the top 3 bits.

    @param ip: an IP literal, or its 4 or 16 raw bytes (L{packIP}).
    @raise ValueError: if C{ip} is neither.
    """
    packed = packIP(ip) if isinstance(ip, str) else ip
    if len(packed) not in (4, 16):
        raise ValueError("a raw IP address is 4 or 16 bytes")
    mask = _V4_MASK if len(packed) == 4 else _V6_MASK
    octets = bytearray(b & m for b, m in zip(packed, mask, strict=False))
    octets[0] |= (r & 7) << 5
    return crc32c(bytes(octets))


def generateId(ip: str | bytes, r: int | None = None) -> bytes:
    """A BEP 42 node id for C{ip}; C{r} (0-255, random by default) is its last byte."""
    if r is None:
        r = os.urandom(1)[0]
    if not 0 <= r <= 255:
        raise ValueError("r is one byte")
    crc = idPrefix(ip, r)
    rest = os.urandom(17)
    return (
        bytes([(crc >> 24) & 0xFF, (crc >> 16) & 0xFF, ((crc >> 8) & 0xF8) | (rest[0] & 7)])
        + rest[1:]
        + bytes([r])
    )


def verifyId(nodeId: bytes, ip: str | bytes) -> bool:
    """Whether C{nodeId} is valid for C{ip} under BEP 42 (always, for a local C{ip})."""
    if isLocal(ip):
        return True
    if len(nodeId) != 20:
        return False
    try:
        crc = idPrefix(ip, nodeId[19])
    except ValueError:
        return False
    return (
        nodeId[0] == (crc >> 24) & 0xFF
        and nodeId[1] == (crc >> 16) & 0xFF
        and nodeId[2] & 0xF8 == (crc >> 8) & 0xF8
    )
