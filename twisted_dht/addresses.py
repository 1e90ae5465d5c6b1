"""Parsing and formatting of the addresses and hashes users type: HOST:PORT, info_hashes.

Shared by the twistd plugin's options (L{twisted_dht.tap}) and the command line
(L{twisted_dht.cli}). Every parser raises C{ValueError} with a one-line message.
"""

from __future__ import annotations

import ipaddress
import re

from .krpc import Address
from .nodeid import parseHex

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
