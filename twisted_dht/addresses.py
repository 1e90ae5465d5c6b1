"""Addresses: the one home of IP packing, "local" and "global", and the HOST:PORT text users type.

Wire side: L{packIP}, L{packAddress} and L{unpackAddress} (the compact forms of BEP 5),
L{subnetOf} (the /24 or /64 of libtorrent's IP rules), L{isLocal} (BEP 42's exempt
ranges: what C{relaxLocal} relaxes everywhere) and L{isGlobal} (an address worth voting
for as our external IP). An IPv6 zone (C{fe80::1%eth0}) is ignored wherever a host is
packed. Text side, shared by the twistd plugin's options and the command line: parsers
that raise C{ValueError} with a one-line message.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import struct
from typing import TypeAlias

from .errors import MalformedMessage
from .nodeid import parseHex

Address: TypeAlias = tuple[str, int]
"""A UDP address: (host, port), the host an IPv4 or IPv6 literal."""

_PORT = struct.Struct("!H")

_LOOPBACK6 = bytes(15) + b"\x01"


def isIPv6(host: str) -> bool:
    """Whether an address literal is IPv6."""
    return ":" in host


def packIP(host: str) -> bytes:
    """The raw 4- or 16-byte form of an IP literal; an IPv6 zone is ignored.

    @raise ValueError: if C{host} is not an IPv4 or IPv6 literal.
    """
    try:
        if ":" in host:
            return socket.inet_pton(socket.AF_INET6, host.partition("%")[0])
        return socket.inet_pton(socket.AF_INET, host)
    except (OSError, TypeError):
        raise ValueError(f"not an IP address: {host!r}") from None


def packAddress(address: Address) -> bytes:
    """Compact peer info: the 4- or 16-byte IP, then the 2-byte port.

    @raise ValueError: if the host is not an IP literal or the port not 0-65535.
    """
    host, port = address
    try:
        return packIP(host) + _PORT.pack(port)
    except (ValueError, struct.error) as e:
        raise ValueError(f"cannot pack address {address!r}: {e}") from None


def unpackAddress(data: bytes) -> Address:
    """Parse compact peer info of 6 (IPv4) or 18 (IPv6) bytes.

    @raise MalformedMessage: for any other length.
    """
    if len(data) == 6:
        return socket.inet_ntop(socket.AF_INET, data[:4]), _PORT.unpack_from(data, 4)[0]
    if len(data) == 18:
        return socket.inet_ntop(socket.AF_INET6, data[:16]), _PORT.unpack_from(data, 16)[0]
    raise MalformedMessage(f"compact address of invalid length {len(data)}")


def subnetOf(ip: bytes) -> bytes:
    """The /24 (IPv4) or /64 (IPv6) prefix of a packed IP."""
    return ip[:3] if len(ip) == 4 else ip[:8]


def isLocal(ip: str | bytes) -> bool:
    """Whether C{ip} (a literal or packed) is in a range BEP 42 exempts: 10/8, 172.16/12,
    192.168/16, 169.254/16, 127/8, and IPv6 loopback, link-local (fe80::/10) and ULA
    (fc00::/7). False for anything that is not an IP address."""
    if isinstance(ip, str):
        try:
            b = packIP(ip)
        except ValueError:
            return False
    elif len(ip) in (4, 16):
        b = ip
    else:
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


def isGlobal(ip: str) -> bool:
    """Whether C{ip} is a publicly routable unicast address: not L{isLocal}, and not
    private, shared (CGNAT's 100.64/10), multicast, unspecified or reserved (the
    addresses worth voting for)."""
    try:
        address = ipaddress.ip_address(packIP(ip))
    except ValueError:
        return False
    return address.is_global and not (isLocal(address.packed) or address.is_multicast)


_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?$"
)


def parsePort(text: str, allowZero: bool = False) -> int:
    """A UDP port number, 1-65535 (or 0 with C{allowZero})."""
    try:
        port = int(text.strip(), 10)
    except ValueError:
        raise ValueError(f"invalid port {text!r}: not a number") from None
    low = 0 if allowZero else 1
    if not low <= port <= 65535:
        raise ValueError(f"invalid port {port}: not in {low}-65535")
    return port


def isIPLiteral(host: str) -> bool:
    """Whether C{host} is an IPv4 or IPv6 address literal (not a hostname)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parseHostPort(text: str) -> Address:
    """Parse C{HOST:PORT}, C{IPV4:PORT} or C{[IPV6]:PORT}.

    The host is an IP literal or a hostname; the port is 1-65535.
    """
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"invalid address {text!r}: expected [IPV6]:PORT")
        portText = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(
                f"invalid address {text!r}: {host!r} is not an IPv6 address"
            ) from None
    else:
        host, sep, portText = text.rpartition(":")
        if not sep:
            raise ValueError(f"invalid address {text!r}: expected HOST:PORT")
        if ":" in host:
            raise ValueError(f"invalid address {text!r}: write IPv6 addresses as [IPV6]:PORT")
        if not host:
            raise ValueError(f"invalid address {text!r}: missing host")
        if not (isIPLiteral(host) or _HOSTNAME.match(host)):
            raise ValueError(f"invalid address {text!r}: {host!r} is not a host name")
    if not portText:
        raise ValueError(f"invalid address {text!r}: missing port")
    try:
        port = parsePort(portText)
    except ValueError as e:
        raise ValueError(f"invalid address {text!r}: {e}") from None
    return host, port


def formatAddress(address: Address) -> str:
    """C{host:port}, with IPv6 hosts in brackets: the inverse of L{parseHostPort}."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parseInfoHash(text: str) -> bytes:
    """A 20-byte info_hash or node id written as 40 hexadecimal digits."""
    return parseHex(text)


def parseAnnounce(text: str) -> tuple[bytes, int | None]:
    """Parse C{INFOHASH[:PORT]}: the info_hash and the peer port (None: the implied port)."""
    hexText, sep, portText = text.strip().partition(":")
    infoHash = parseInfoHash(hexText)
    if not sep:
        return infoHash, None
    return infoHash, parsePort(portText)
