"""Tests for L{twisted_dht.addresses}: IP packing, compact addresses, "local" and "global",
subnets, and the HOST:PORT text parsers."""

from __future__ import annotations

import socket
from ipaddress import ip_address

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht.addresses import (
    formatAddress,
    isGlobal,
    isIPLiteral,
    isIPv6,
    isLocal,
    packAddress,
    packIP,
    parseAnnounce,
    parseHostPort,
    parseInfoHash,
    parsePort,
    subnetOf,
    unpackAddress,
)
from twisted_dht.errors import MalformedMessage

IPV4_VECTOR = (("1.2.3.4", 0x1AE1), b"\x01\x02\x03\x04\x1a\xe1")
IPV6_VECTOR = (
    ("2001:db8::1", 6881),
    bytes.fromhex("20010db8000000000000000000000001") + b"\x1a\xe1",
)

LOCAL = (
    "10.0.0.0",
    "10.1.2.3",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.0.0",
    "192.168.1.1",
    "169.254.3.4",
    "127.0.0.1",
    "127.255.255.254",
    "::1",
    "fe80::1",
    "febf:ffff::1",
    "fc00::1",
    "fc12::1",
    "fd00::1",
)
"""Addresses in BEP 42's exempt ranges, at and inside their edges."""

NEAR_LOCAL = (
    "9.255.255.255",
    "11.0.0.1",
    "172.15.255.255",
    "172.32.0.1",
    "192.167.255.255",
    "192.169.0.1",
    "169.253.0.1",
    "169.255.0.1",
    "126.255.255.255",
    "128.0.0.1",
    "8.8.8.8",
    "::2",
    "fec0::1",
    "fe7f::1",
    "fb00::1",
    "fe00::1",
    "2001::1",
)
"""Addresses just outside those ranges."""


class PackIPTests(SynchronousTestCase):
    """packIP: the raw bytes of an IP literal."""

    def test_ipv4(self) -> None:
        """An IPv4 literal packs into its 4 bytes."""
        self.assertEqual(packIP("1.2.3.4"), b"\x01\x02\x03\x04")
        self.assertEqual(packIP("255.255.255.255"), b"\xff" * 4)

    def test_ipv6(self) -> None:
        """An IPv6 literal packs into its 16 bytes, any spelling."""
        self.assertEqual(packIP("::1"), b"\x00" * 15 + b"\x01")
        self.assertEqual(packIP("2001:db8::1"), IPV6_VECTOR[1][:16])
        self.assertEqual(packIP("2001:0DB8:0:0:0:0:0:1"), IPV6_VECTOR[1][:16])

    def test_zoneStripped(self) -> None:
        """An IPv6 zone (fe80::1%eth0, or a numeric one) is ignored."""
        self.assertEqual(packIP("fe80::1%eth0"), packIP("fe80::1"))
        self.assertEqual(packIP("fe80::1%2"), packIP("fe80::1"))
        self.assertEqual(len(packIP("fe80::1%eth0")), 16)

    def test_rejectsNonLiterals(self) -> None:
        """Hostnames, malformed literals and an IPv4 literal with a zone are refused with
        ValueError naming the text."""
        for text in ("example.com", "localhost", "", "1.2.3", "1.2.3.256", "::g", "1.2.3.4%0"):
            error = self.assertRaises(ValueError, packIP, text)
            self.assertIn(repr(text), str(error))

    def test_rejectsNonStrings(self) -> None:
        """A value that is not a string at all is refused with ValueError."""
        self.assertRaises(ValueError, packIP, b"1.2.3.4")  # type: ignore[arg-type]

    def test_isIPv6(self) -> None:
        """isIPv6 tells IPv6 literals, zoned or not, from IPv4 ones."""
        self.assertTrue(isIPv6("::1"))
        self.assertTrue(isIPv6("fe80::1%eth0"))
        self.assertFalse(isIPv6("1.2.3.4"))


class CompactAddressTests(SynchronousTestCase):
    """packAddress and unpackAddress."""

    def test_packIPv4(self) -> None:
        """An IPv4 address packs into 4 address bytes then the big-endian port."""
        self.assertEqual(packAddress(IPV4_VECTOR[0]), IPV4_VECTOR[1])

    def test_unpackIPv4(self) -> None:
        """6 bytes unpack into an IPv4 literal and port."""
        self.assertEqual(unpackAddress(IPV4_VECTOR[1]), IPV4_VECTOR[0])
        self.assertEqual(unpackAddress(b"\xff" * 6), ("255.255.255.255", 65535))

    def test_packIPv6(self) -> None:
        """An IPv6 address packs into 16 address bytes then the big-endian port."""
        self.assertEqual(packAddress(IPV6_VECTOR[0]), IPV6_VECTOR[1])
        self.assertEqual(packAddress(("::1", 1)), b"\x00" * 15 + b"\x01\x00\x01")

    def test_packZonedIPv6(self) -> None:
        """A zoned IPv6 source (as recvfrom gives for link-local peers) packs like the
        bare address: the zone is not part of the compact form."""
        self.assertEqual(packAddress(("fe80::1%eth0", 6881)), packAddress(("fe80::1", 6881)))

    def test_unpackIPv6(self) -> None:
        """18 bytes unpack into a compressed IPv6 literal and port."""
        self.assertEqual(unpackAddress(IPV6_VECTOR[1]), IPV6_VECTOR[0])

    def test_unpackWrongLength(self) -> None:
        """Compact addresses of any length but 6 or 18 are malformed."""
        for size in [0, 4, 5, 7, 16, 17, 19, 26]:
            self.assertRaises(MalformedMessage, unpackAddress, b"\x01" * size)

    def test_packInvalid(self) -> None:
        """An invalid host or out-of-range port cannot be packed (ValueError)."""
        for address in [("1.2.3", 1), ("example.com", 1), ("::g", 1), ("1.2.3.4", 65536)]:
            self.assertRaises(ValueError, packAddress, address)
        self.assertRaises(ValueError, packAddress, ("1.2.3.4", -1))

    @settings(max_examples=100, deadline=None, database=None)
    @given(
        host=st.ip_addresses().map(str),
        port=st.integers(min_value=0, max_value=65535),
    )
    def test_roundTrip(self, host: str, port: int) -> None:
        """Every IPv4 or IPv6 address and port round-trips through the compact form."""
        data = packAddress((host, port))
        self.assertEqual(len(data), 18 if isIPv6(host) else 6)
        unpackedHost, unpackedPort = unpackAddress(data)
        # The same address, though not always the same spelling: inet_ntop, like the
        # socket layer, writes IPv4-mapped IPv6 addresses as ::ffff:1.2.3.4.
        self.assertEqual((ip_address(unpackedHost), unpackedPort), (ip_address(host), port))

    @settings(max_examples=100, deadline=None, database=None)
    @given(data=st.binary(min_size=6, max_size=6) | st.binary(min_size=18, max_size=18))
    def test_bytesRoundTrip(self, data: bytes) -> None:
        """Any 6 or 18 bytes unpack to an address that packs back to exactly those bytes."""
        self.assertEqual(packAddress(unpackAddress(data)), data)

    def test_mappedAddressSpelling(self) -> None:
        """An IPv4-mapped IPv6 address unpacks in inet_ntop's dotted spelling."""
        data = b"\x00" * 10 + b"\xff\xff" + b"\x01\x02\x03\x04" + b"\x00\x50"
        self.assertEqual(unpackAddress(data), ("::ffff:1.2.3.4", 80))


class SubnetTests(SynchronousTestCase):
    """subnetOf: the /24 or /64 of a packed IP."""

    def test_ipv4Slash24(self) -> None:
        """An IPv4 address's subnet is its first 3 bytes, shared across the /24 only."""
        self.assertEqual(subnetOf(packIP("1.2.3.4")), b"\x01\x02\x03")
        self.assertEqual(subnetOf(packIP("1.2.3.4")), subnetOf(packIP("1.2.3.200")))
        self.assertNotEqual(subnetOf(packIP("1.2.3.4")), subnetOf(packIP("1.2.4.4")))

    def test_ipv6Slash64(self) -> None:
        """An IPv6 address's subnet is its first 8 bytes, shared across the /64 only."""
        self.assertEqual(subnetOf(packIP("2001:db8:1:2::1")), packIP("2001:db8:1:2::")[:8])
        self.assertEqual(
            subnetOf(packIP("2001:db8:1:2::1")), subnetOf(packIP("2001:db8:1:2:ffff::9"))
        )
        self.assertNotEqual(
            subnetOf(packIP("2001:db8:1:2::1")), subnetOf(packIP("2001:db8:1:3::1"))
        )

    def test_zoneDoesNotMatter(self) -> None:
        """A zoned and a bare link-local address are in the same subnet."""
        self.assertEqual(subnetOf(packIP("fe80::1%eth0")), subnetOf(packIP("fe80::2")))


class LocalTests(SynchronousTestCase):
    """isLocal: BEP 42's exempt ranges, the one meaning of relaxLocal."""

    def test_localRanges(self) -> None:
        """10/8, 172.16/12, 192.168/16, 169.254/16, 127/8, ::1, fe80::/10 and fc00::/7
        are local, given as literals."""
        for ip in LOCAL:
            self.assertTrue(isLocal(ip), ip)

    def test_localRangesPacked(self) -> None:
        """The same ranges are local given as packed 4- or 16-byte addresses."""
        for ip in LOCAL:
            self.assertTrue(isLocal(packIP(ip)), ip)

    def test_nearbyAddressesNotLocal(self) -> None:
        """Addresses just outside the ranges are not local, as literals or packed."""
        for ip in NEAR_LOCAL:
            self.assertFalse(isLocal(ip), ip)
            self.assertFalse(isLocal(packIP(ip)), ip)

    def test_zonedLinkLocal(self) -> None:
        """A zoned link-local address is local."""
        self.assertTrue(isLocal("fe80::1%eth0"))

    def test_notAnAddress(self) -> None:
        """Text that is not an IP literal, and bytes of any length but 4 or 16, are not
        local (never an exception)."""
        for value in (
            "example.com",
            "",
            "10.0.0",
            b"",
            b"\x0a\x00\x00",
            b"\x0a" * 5,
            b"\x7f" * 17,
        ):
            self.assertFalse(isLocal(value), value)

    def test_sameAnswerAsSocketPacking(self) -> None:
        """isLocal of a literal and of its inet_pton bytes agree on random addresses."""
        import random

        rng = random.Random(42)
        for _ in range(500):
            raw = rng.randbytes(4)
            self.assertEqual(isLocal(socket.inet_ntop(socket.AF_INET, raw)), isLocal(raw))
            raw6 = bytes([rng.choice([0x00, 0xFC, 0xFD, 0xFE, 0x20])]) + rng.randbytes(15)
            self.assertEqual(isLocal(socket.inet_ntop(socket.AF_INET6, raw6)), isLocal(raw6))


class GlobalTests(SynchronousTestCase):
    """isGlobal: the addresses worth voting for as our external IP."""

    def test_globalUnicast(self) -> None:
        """Public unicast addresses of both families are global."""
        for ip in ("8.8.8.8", "81.1.1.1", "93.184.216.34", "2a00:1450::1", "2600::1"):
            self.assertTrue(isGlobal(ip), ip)

    def test_localNotGlobal(self) -> None:
        """Every local address (isLocal) is not global, zoned or not."""
        for ip in (*LOCAL, "fe80::1%eth0"):
            self.assertFalse(isGlobal(ip), ip)

    def test_specialRangesNotGlobal(self) -> None:
        """Private, documentation, shared, multicast, unspecified and reserved addresses,
        which isLocal does not cover, are not global."""
        for ip in (
            "192.0.2.1",  # documentation
            "198.51.100.1",
            "203.0.113.1",
            "2001:db8::1",
            "224.0.0.1",  # multicast
            "ff02::1",
            "0.0.0.0",  # unspecified
            "::",
            "240.0.0.1",  # reserved
            "255.255.255.255",
            "100.64.0.1",  # shared (CGNAT): never a node's public address
            "100.127.255.254",
            "224.0.1.1",  # global-scope multicast
        ):
            self.assertFalse(isGlobal(ip), ip)

    def test_notAnAddress(self) -> None:
        """Text that is not an IP literal is not global (never an exception)."""
        for text in ("example.com", "", "1.2.3"):
            self.assertFalse(isGlobal(text), text)


class TextTests(SynchronousTestCase):
    """The HOST:PORT parsers shared by the command line and the twistd plugin."""

    def test_parsePort(self) -> None:
        """A port is 1-65535, or 0-65535 with allowZero; spaces around it are ignored."""
        self.assertEqual(parsePort("6881"), 6881)
        self.assertEqual(parsePort(" 1 "), 1)
        self.assertEqual(parsePort("65535"), 65535)
        self.assertEqual(parsePort("0", allowZero=True), 0)
        for text in ("0", "65536", "-1", "http", ""):
            self.assertRaises(ValueError, parsePort, text)

    def test_isIPLiteral(self) -> None:
        """IP literals of both families are literals; hostnames are not."""
        self.assertTrue(isIPLiteral("1.2.3.4"))
        self.assertTrue(isIPLiteral("::1"))
        self.assertFalse(isIPLiteral("router.bittorrent.com"))

    def test_parseHostPort(self) -> None:
        """HOST:PORT, IPV4:PORT and [IPV6]:PORT parse into (host, port)."""
        self.assertEqual(
            parseHostPort("router.bittorrent.com:6881"), ("router.bittorrent.com", 6881)
        )
        self.assertEqual(parseHostPort("1.2.3.4:1"), ("1.2.3.4", 1))
        self.assertEqual(parseHostPort(" [2001:db8::1]:6881 "), ("2001:db8::1", 6881))

    def test_parseHostPortErrors(self) -> None:
        """Missing parts, bare IPv6, bad hosts and bad ports are refused in one line
        that quotes the text."""
        for text in (
            "1.2.3.4",
            "2001:db8::1:6881",
            "[2001:db8::1]",
            "[example.com]:1",
            ":6881",
            "bad host:1",
            "1.2.3.4:",
            "1.2.3.4:0",
            "1.2.3.4:65536",
        ):
            error = self.assertRaises(ValueError, parseHostPort, text)
            self.assertIn(repr(text.strip()), str(error))
            self.assertNotIn("\n", str(error))

    def test_formatAddressInvertsParse(self) -> None:
        """formatAddress brackets IPv6 hosts, and parseHostPort reads its output back."""
        for address in (("1.2.3.4", 6881), ("2001:db8::1", 1), ("example.com", 80)):
            self.assertEqual(parseHostPort(formatAddress(address)), address)
        self.assertEqual(formatAddress(("::1", 6881)), "[::1]:6881")

    def test_parseInfoHash(self) -> None:
        """An info_hash is 40 hex digits; anything else is refused."""
        self.assertEqual(parseInfoHash("ab" * 20), b"\xab" * 20)
        self.assertRaises(ValueError, parseInfoHash, "ab" * 19)

    def test_parseAnnounce(self) -> None:
        """INFOHASH[:PORT] gives the info_hash and the port, or None for the implied one."""
        self.assertEqual(parseAnnounce("ab" * 20), (b"\xab" * 20, None))
        self.assertEqual(parseAnnounce("ab" * 20 + ":6881"), (b"\xab" * 20, 6881))
        self.assertRaises(ValueError, parseAnnounce, "ab" * 20 + ":0")
