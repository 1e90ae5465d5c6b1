"""Tests for twisted_dht.bep42: BEP 42 node ids from IPs, their verification, and the
exemption of local addresses."""

from __future__ import annotations

import random

from twisted.trial.unittest import SynchronousTestCase

from twisted_dht.addresses import isLocal, packIP
from twisted_dht.bep42 import generateId, idPrefix, verifyId

# BEP 42's table: IP, r, example node id.
VECTORS = [
    ("124.31.75.21", 1, "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"),
    ("21.75.31.124", 86, "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256"),
    ("65.23.51.170", 22, "a5d43220bc8f112a3d426c84764f8c2a1150e616"),
    ("84.124.73.14", 65, "1b0321dd1bb1fe518101ceef99462b947a01ff41"),
    ("43.213.53.83", 90, "e56f6cbf5b7c4be0237986d5243b87aa6d51305a"),
]

# From libtorrent (iss bittorrent/bittorrent.org#76).
V6_VECTOR = ("2001:b829:2123:be84:e16c:d6ae:5290:49f1", "0a8ad123be84e16cd6ae529049f1f1bbe9ebb304")


class VectorTests(SynchronousTestCase):
    """BEP 42's and libtorrent's example ids, and generated ones."""

    def test_ipv4VectorsVerify(self) -> None:
        """Every IPv4 example id of BEP 42 verifies for its IP."""
        for ip, r, hexId in VECTORS:
            nodeId = bytes.fromhex(hexId)
            self.assertEqual(nodeId[19], r)
            self.assertTrue(verifyId(nodeId, ip), ip)

    def test_ipv4VectorsGenerated(self) -> None:
        """generateId(ip, r) reproduces the first 21 bits and the last byte of each vector."""
        for ip, r, hexId in VECTORS:
            expected = bytes.fromhex(hexId)
            nodeId = generateId(ip, r)
            self.assertEqual(nodeId[:2], expected[:2], ip)
            self.assertEqual(nodeId[2] & 0xF8, expected[2] & 0xF8, ip)
            self.assertEqual(nodeId[19], r)

    def test_ipv4VectorsFailForOtherIPs(self) -> None:
        """A vector id does not verify for another vector's IP."""
        for index, (_, _, hexId) in enumerate(VECTORS):
            other = VECTORS[(index + 1) % len(VECTORS)][0]
            self.assertFalse(verifyId(bytes.fromhex(hexId), other))

    def test_ipv6Vector(self) -> None:
        """libtorrent's IPv6 example id verifies, and generation matches its prefix."""
        ip, hexId = V6_VECTOR
        nodeId = bytes.fromhex(hexId)
        self.assertTrue(verifyId(nodeId, ip))
        generated = generateId(ip, nodeId[19])
        self.assertEqual(generated[:2], nodeId[:2])
        self.assertEqual(generated[2] & 0xF8, nodeId[2] & 0xF8)

    def test_changedPrefixFails(self) -> None:
        """Flipping any of the first 21 bits, or r's bits in the last byte, breaks the id."""
        ip, _, hexId = VECTORS[0]
        nodeId = bytearray(bytes.fromhex(hexId))
        for bit in range(21):
            broken = bytearray(nodeId)
            broken[bit // 8] ^= 0x80 >> (bit % 8)
            self.assertFalse(verifyId(bytes(broken), ip), bit)
        broken = bytearray(nodeId)
        broken[19] ^= 0x04
        self.assertFalse(verifyId(bytes(broken), ip))

    def test_generatedIdsVerify(self) -> None:
        """Random ids generated for random global IPs (both families) verify."""
        rng = random.Random(42)
        for _ in range(200):
            ip = ".".join(str(rng.randrange(1, 224)) for _ in range(4))
            if not isLocal(ip):
                self.assertTrue(verifyId(generateId(ip), ip), ip)
            ip6 = "2a00:" + ":".join(f"{rng.randrange(65536):x}" for _ in range(7))
            self.assertTrue(verifyId(generateId(ip6), ip6), ip6)

    def test_randomIdsUsuallyFail(self) -> None:
        """A random id verifies for a global IP only by chance (about 1 in 2**21)."""
        rng = random.Random(1)
        self.assertFalse(any(verifyId(rng.randbytes(20), "81.2.3.4") for _ in range(1000)))

    def test_wrongLengthFails(self) -> None:
        """An id that is not 20 bytes never verifies for a global IP."""
        self.assertFalse(verifyId(b"\x00" * 19, "81.2.3.4"))


class InputTests(SynchronousTestCase):
    """The forms of IP that generateId, verifyId and idPrefix take."""

    def test_packedSameAsLiteral(self) -> None:
        """A packed 4- or 16-byte IP gives the same prefix as its literal, and ids for one
        verify for the other."""
        for ip in (VECTORS[0][0], V6_VECTOR[0]):
            self.assertEqual(idPrefix(packIP(ip), 5), idPrefix(ip, 5))
            self.assertTrue(verifyId(generateId(packIP(ip)), ip), ip)
            self.assertTrue(verifyId(generateId(ip), packIP(ip)), ip)

    def test_zoneIgnored(self) -> None:
        """An IPv6 zone does not change the prefix (addresses.packIP strips it)."""
        ip = V6_VECTOR[0]
        self.assertEqual(idPrefix(ip + "%eth0", 3), idPrefix(ip, 3))
        self.assertTrue(verifyId(bytes.fromhex(V6_VECTOR[1]), ip + "%eth0"))

    def test_badPackedLength(self) -> None:
        """Raw bytes that are not 4 or 16 long are refused by generateId and never verify."""
        for raw in (b"", b"\x51\x02\x03", b"\x51" * 5, b"\x51" * 17):
            self.assertRaises(ValueError, generateId, raw)
            self.assertFalse(verifyId(b"\x00" * 20, raw), raw)

    def test_rOutOfRange(self) -> None:
        """r must be one byte."""
        self.assertRaises(ValueError, generateId, "81.2.3.4", 256)
        self.assertRaises(ValueError, generateId, "81.2.3.4", -1)

    def test_exemptionIsAddressesIsLocal(self) -> None:
        """An arbitrary id verifies exactly for the addresses addresses.isLocal calls local,
        over random IPv4 and IPv6 addresses (literal and packed)."""
        rng = random.Random(7)
        nodeId = bytes(20)
        for _ in range(2000):
            raw = bytes([rng.choice([10, 127, 169, 172, 192, 81])]) + rng.randbytes(3)
            raw6 = bytes([rng.choice([0x00, 0xFC, 0xFD, 0xFE, 0x2A])]) + rng.randbytes(15)
            for packed in (raw, raw6):
                self.assertEqual(verifyId(nodeId, packed), isLocal(packed), packed)


class LocalTests(SynchronousTestCase):
    """Local addresses (addresses.isLocal) are exempt from BEP 42."""

    def test_localRangesExempt(self) -> None:
        """Any id verifies for 10/8, 172.16/12, 192.168/16, 169.254/16, 127/8 and IPv6
        loopback, link-local and ULA addresses."""
        for ip in (
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.3.4",
            "127.0.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "fc12::1",
            "fe80::1%eth0",
        ):
            self.assertTrue(verifyId(b"\x00" * 20, ip), ip)
            self.assertTrue(verifyId(b"\x00" * 20, packIP(ip)), ip)

    def test_globalNotExempt(self) -> None:
        """For addresses next to the local ranges, an arbitrary id does not verify."""
        for ip in ("11.0.0.1", "172.15.0.1", "172.32.0.1", "192.169.0.1", "8.8.8.8", "2001::1"):
            nodeId = bytes(19) + bytes([7])
            self.assertFalse(verifyId(nodeId, ip), ip)
            self.assertTrue(verifyId(generateId(ip), ip), ip)

    def test_invalidAddress(self) -> None:
        """Text that is not an IP is not exempt: generateId raises ValueError and no id
        verifies."""
        self.assertRaises(ValueError, generateId, "example.com")
        self.assertFalse(verifyId(b"\x00" * 20, "example.com"))
