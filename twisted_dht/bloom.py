"""BEP 33 bloom filters: the 256-byte sets of IP addresses that DHT scrapes count.

A filter has m = 2,048 bits and k = 2 hash functions, both taken from the SHA-1 of the
raw IP address (4 bytes for IPv4, 16 for IPv6; never a port): the first two bytes of
the digest, little-endian, give the first bit index, the next two the second, each
modulo m. A node answering a scrape builds one filter of its seeds (C{BFsd}) and one of
its other peers (C{BFpe}); a scraper ORs the filters of several nodes and estimates how
many distinct addresses the union holds from its zero bits.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Iterable

SIZE = 256
"""Bytes in a filter."""

BITS = SIZE * 8
"""m: bits in a filter."""

HASHES = 2
"""k: bits set per inserted address."""

_EMPTY = bytes(SIZE)


@functools.lru_cache(maxsize=4096)
def _bits(ip: bytes) -> tuple[int, int, int, int]:
    """(byte, mask, byte, mask) of the two bits of C{ip}. Cached: a swarm's addresses are
    inserted again for every scrape of it."""
    digest = hashlib.sha1(ip).digest()
    first = (digest[0] | digest[1] << 8) % BITS
    second = (digest[2] | digest[3] << 8) % BITS
    return first >> 3, 1 << (first & 7), second >> 3, 1 << (second & 7)


class BloomFilter:
    """A BEP 33 bloom filter of IP addresses (packed: 4 or 16 bytes)."""

    __slots__ = ("_bits",)

    def __init__(self, data: bytes = _EMPTY) -> None:
        """
        @param data: the filter's 256 bytes, as sent in C{BFsd} or C{BFpe}.
        @raise ValueError: if C{data} is not 256 bytes long.
        """
        if len(data) != SIZE:
            raise ValueError(f"a BEP 33 bloom filter is {SIZE} bytes, not {len(data)}")
        self._bits = bytearray(data)

    @classmethod
    def ofIPs(cls, ips: Iterable[bytes]) -> BloomFilter:
        """A filter holding every packed address of C{ips}."""
        bloom = cls()
        bits = bloom._bits
        for ip in ips:
            byte1, mask1, byte2, mask2 = _bits(ip)
            bits[byte1] |= mask1
            bits[byte2] |= mask2
        return bloom

    def insertIP(self, ip: bytes) -> None:
        """Add a packed address (4 or 16 bytes)."""
        byte1, mask1, byte2, mask2 = _bits(ip)
        self._bits[byte1] |= mask1
        self._bits[byte2] |= mask2

    def __contains__(self, ip: bytes) -> bool:
        """Whether C{ip} may be in the set (false positives are possible, misses not)."""
        byte1, mask1, byte2, mask2 = _bits(ip)
        return bool(self._bits[byte1] & mask1 and self._bits[byte2] & mask2)

    def update(self, other: BloomFilter) -> None:
        """Make this filter the union of itself and C{other} (a bitwise OR)."""
        union = int.from_bytes(self._bits, "little") | int.from_bytes(other._bits, "little")
        self._bits[:] = union.to_bytes(SIZE, "little")

    def zeroBits(self) -> int:
        """How many of the 2,048 bits are not set."""
        return BITS - int.from_bytes(self._bits, "little").bit_count()

    def estimate(self) -> float:
        """BEP 33's estimate of how many distinct addresses were inserted:
        C{log(c / m) / (k * log(1 - 1/m))} with C{c = min(m - 1, zero bits)}. It is 0.5
        for an empty filter (c is capped at m - 1), and breaks down past some 6,000; a
        full filter, where the BEP's formula has no value, gives its ceiling of about
        7,806 (c taken as 1)."""
        zeros = max(1, min(BITS - 1, self.zeroBits()))
        return math.log(zeros / BITS) / (HASHES * math.log(1 - 1 / BITS))

    def toBytes(self) -> bytes:
        """The 256 bytes sent on the wire."""
        return bytes(self._bits)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BloomFilter) and self._bits == other._bits

    def __repr__(self) -> str:
        return f"<BloomFilter of about {self.estimate():.1f} addresses>"

    __hash__ = None  # type: ignore[assignment]
