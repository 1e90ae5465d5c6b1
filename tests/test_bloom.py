"""Tests for twisted_dht.bloom: BEP 33's filters, against the BEP's own test vector."""

from __future__ import annotations

import ipaddress
import random

from twisted.trial.unittest import SynchronousTestCase

from twisted_dht.bloom import BITS, SIZE, BloomFilter

VECTOR = bytes.fromhex(
    """
    F6C3F5EA A07FFD91 BDE89F77 7F26FB2B FF37BDB8 FB2BBAA2 FD3DDDE7 BACFFF75 EE7CCBAE
    FE5EEDB1 FBFAFF67 F6ABFF5E 43DDBCA3 FD9B9FFD F4FFD3E9 DFF12D1B DF59DB53 DBE9FA5B
    7FF3B8FD FCDE1AFB 8BEDD7BE 2F3EE71E BBBFE93B CDEEFE14 8246C2BC 5DBFF7E7 EFDCF24F
    D8DC7ADF FD8FFFDF DDFFF7A4 BBEEDF5C B95CE81F C7FCFF1F F4FFFFDF E5F7FDCB B7FD79B3
    FA1FC77B FE07FFF9 05B7B7FF C7FEFEFF E0B8370B B0CD3F5B 7F2BD93F EB4386CF DD6F7FD5
    BFAF2E9E BFFFFEEC D67ADBF7 C67F17EF D5D75EBA 6FFEBA7F FF47A91E B1BFBB53 E8ABFB57
    62ABE8FF 237279BF EFBFEEF5 FFC5FEBF DFE5ADFF ADFEE1FB 737FFFFB FD9F6AEF FEEE76B6
    FD8F72EF
    """.replace(" ", "").replace("\n", "")
)
"""BEP 33's test vector: 192.0.2.0-255 and 2001:DB8::-2001:DB8::3E7 inserted."""


def vectorAddresses() -> list[bytes]:
    """The 1,256 packed addresses of the BEP's test vector."""
    v4 = [ipaddress.IPv4Address("192.0.2.0") + i for i in range(256)]
    v6 = [ipaddress.IPv6Address("2001:db8::") + i for i in range(0x3E8)]
    return [address.packed for address in (*v4, *v6)]


class VectorTests(SynchronousTestCase):
    def test_bytes(self) -> None:
        """The BEP's 1,256 addresses give exactly the BEP's 256 bytes."""
        self.assertEqual(len(VECTOR), SIZE)
        self.assertEqual(BloomFilter.ofIPs(vectorAddresses()).toBytes(), VECTOR)

    def test_insertOneByOne(self) -> None:
        """insertIP, one address at a time, builds the same filter as ofIPs."""
        bloom = BloomFilter()
        for ip in vectorAddresses():
            bloom.insertIP(ip)
        self.assertEqual(bloom, BloomFilter(VECTOR))

    def test_estimate(self) -> None:
        """The BEP's filter (619 zero bits) estimates 1224.9308 addresses (the BEP's
        figure, truncated: 1224.93089)."""
        bloom = BloomFilter(VECTOR)
        self.assertEqual(bloom.zeroBits(), 619)
        self.assertEqual(int(bloom.estimate() * 10**4), 12249308)


class FilterTests(SynchronousTestCase):
    def test_empty(self) -> None:
        """An empty filter has every bit zero and, by the BEP's formula, estimates 0.5."""
        bloom = BloomFilter()
        self.assertEqual(bloom.zeroBits(), BITS)
        self.assertAlmostEqual(bloom.estimate(), 0.5)

    def test_full(self) -> None:
        """A full filter estimates the ceiling, about 7,806, instead of failing."""
        self.assertEqual(BloomFilter(b"\xff" * SIZE).zeroBits(), 0)
        self.assertEqual(round(BloomFilter(b"\xff" * SIZE).estimate()), 7806)

    def test_wrongSize(self) -> None:
        """Only 256 bytes make a filter."""
        self.assertRaises(ValueError, BloomFilter, bytes(255))
        self.assertRaises(ValueError, BloomFilter, bytes(257))

    def test_membership(self) -> None:
        """Every inserted address is in the filter; one never inserted (mostly) is not."""
        addresses = vectorAddresses()[:50]
        bloom = BloomFilter.ofIPs(addresses)
        self.assertTrue(all(ip in bloom for ip in addresses))
        self.assertNotIn(bytes([10, 0, 0, 1]), bloom)

    def test_unionIsOr(self) -> None:
        """update ORs another filter in: the union of two halves is the whole."""
        addresses = vectorAddresses()
        first = BloomFilter.ofIPs(addresses[:600])
        first.update(BloomFilter.ofIPs(addresses[600:]))
        self.assertEqual(first.toBytes(), VECTOR)

    def test_unionCountsDistinctAddresses(self) -> None:
        """Overlapping sets ORed together estimate their union, not the sum of sizes."""
        rng = random.Random(3)
        ips = [rng.randbytes(4) for _ in range(300)]
        union = BloomFilter.ofIPs(ips[:200])
        union.update(BloomFilter.ofIPs(ips[100:]))
        self.assertLess(abs(union.estimate() - 300), 30)

    def test_estimateAccuracy(self) -> None:
        """Up to a few thousand addresses the estimate is within 5%."""
        rng = random.Random(5)
        for count in (20, 100, 1000, 3000):
            bloom = BloomFilter.ofIPs(rng.randbytes(16) for _ in range(count))
            self.assertLess(abs(bloom.estimate() - count), 0.05 * count, count)
