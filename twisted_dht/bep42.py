"""BEP 42 node ids: derived from the node's external IP with CRC32C, and checked.

The rule is libtorrent's (C{node_id.cpp}): mask the IPv4 address with C{03 0f 3f ff} (the
high 64 bits of an IPv6 address with C{01 03 07 0f 1f 3f 7f ff}), OR the 3-bit C{r} into
the top bits of the first octet, and CRC32C those 4 (or 8) octets. The first 21 bits of
the id are the top 21 bits of the CRC; the last byte is random with C{r} in its low 3 bits.
Local addresses are exempt: any id is valid for them.
"""

from __future__ import annotations

import os
import socket

from crc32c import crc32c

_V4_MASK = (0x03, 0x0F, 0x3F, 0xFF)
_V6_MASK = (0x01, 0x03, 0x07, 0x0F, 0x1F, 0x3F, 0x7F, 0xFF)

_LOOPBACK6 = bytes(15) + b"\x01"


def _packed(ip: str | bytes) -> bytes:
    """The 4 or 16 raw bytes of an IP literal (or of raw bytes, returned as they are)."""
    if isinstance(ip, bytes):
        if len(ip) not in (4, 16):
            raise ValueError("a raw IP address is 4 or 16 bytes")
        return ip
    try:
        if ":" in ip:
            return socket.inet_pton(socket.AF_INET6, ip.partition("%")[0])
        return socket.inet_pton(socket.AF_INET, ip)
    except OSError:
        raise ValueError(f"not an IP address: {ip!r}") from None


def isLocal(ip: str | bytes) -> bool:
    """Whether C{ip} is in a range BEP 42 exempts: 10/8, 172.16/12, 192.168/16,
    169.254/16, 127/8, and IPv6 loopback, link-local (fe80::/10) and ULA (fc00::/7)."""
    try:
        b = _packed(ip)
    except ValueError:
        return False
    if len(b) == 4:
        first = b[0]
        return (
            first == 10
            or first == 127
            or (first == 172 and 16 <= b[1] < 32)
            or (first == 192 and b[1] == 168)
            or (first == 169 and b[1] == 254)
        )
    return b == _LOOPBACK6 or (b[0] == 0xFE and b[1] & 0xC0 == 0x80) or b[0] & 0xFE == 0xFC


def idPrefix(ip: str | bytes, r: int) -> int:
    """The CRC32C of C{ip}'s masked octets with C{r & 7} in the top 3 bits."""
    packed = _packed(ip)
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
