"""Two uses of BEP 44 mutable items: Pkarr records and BEP 46 mutable torrents.

Pkarr (signed DNS records for public keys): a mutable item with no salt, ``seq`` the
microseconds since the epoch and ``v`` a DNS packet, decoded here with Twisted's own
``twisted.names.dns``. BEP 46: ``v = {"ih": <info_hash>}`` under a key and a salt, named by
``magnet:?xs=urn:btpk:<public key hex>&s=<salt hex>``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from twisted.internet.defer import Deferred
from twisted.names import dns

from .bep44 import KEY_SIZE, SigningKey
from .itemclient import GetResult, PutResult

if TYPE_CHECKING:
    from .node import DHTNode


def pkarrPacket(records: Sequence[dns.RRHeader]) -> bytes:
    """A DNS response packet of C{records}, compressed, as Pkarr stores it."""
    message = dns.Message(answer=True, auth=True)
    message.answers = list(records)
    return message.toStr()


def publishRecords(
    node: DHTNode,
    key: SigningKey,
    records: Sequence[dns.RRHeader],
    now: float | None = None,
) -> Deferred[PutResult]:
    """Publish C{records} as C{key}'s Pkarr packet (``seq``: microseconds since the epoch).

    @raise ValueError: when the packet is over 1,000 bytes bencoded.
    """
    seq = int((time.time() if now is None else now) * 1_000_000)
    return node.put(pkarrPacket(records), key, seq=seq)


def resolveRecords(node: DHTNode, publicKey: bytes) -> Deferred[dns.Message | None]:
    """The DNS packet published for C{publicKey}, decoded (None: none found or not a
    DNS packet)."""

    def decode(found: GetResult) -> dns.Message | None:
        item = found.item
        if item is None or not isinstance(item.value, bytes):
            return None
        message = dns.Message()
        try:
            message.fromStr(item.value)
        except Exception:
            return None
        return message

    return node.get(publicKey=publicKey).addCallback(decode)


# BEP 46 --------------------------------------------------------------------------


def parseMutableMagnet(uri: str) -> tuple[bytes, bytes]:
    """(public key, salt) of a BEP 46 ``magnet:?xs=urn:btpk:<hex>&s=<hex>`` link.

    @raise ValueError: for anything else.
    """
    parts = urlsplit(uri)
    query = parse_qs(parts.query)
    if parts.scheme != "magnet" or len(query.get("xs", [])) != 1:
        raise ValueError(f"not a BEP 46 magnet link: {uri!r}")
    prefix = "urn:btpk:"
    xs = query["xs"][0]
    if not xs.startswith(prefix):
        raise ValueError(f"the magnet link has no urn:btpk key: {uri!r}")
    try:
        publicKey = bytes.fromhex(xs[len(prefix) :])
        salt = bytes.fromhex(query.get("s", [""])[0])
    except ValueError:
        raise ValueError(f"the key or salt of {uri!r} is not hexadecimal") from None
    if len(publicKey) != KEY_SIZE:
        raise ValueError(f"the key of {uri!r} is not 32 bytes")
    return publicKey, salt


def mutableMagnet(publicKey: bytes, salt: bytes = b"") -> str:
    """The BEP 46 magnet link of C{publicKey} and C{salt}."""
    link = f"magnet:?xs=urn:btpk:{publicKey.hex()}"
    return link + (f"&s={salt.hex()}" if salt else "")


def publishTorrent(
    node: DHTNode, key: SigningKey, infoHash: bytes, salt: bytes = b""
) -> Deferred[PutResult]:
    """Point C{key}'s (and C{salt}'s) mutable torrent at C{infoHash}."""
    if len(infoHash) != 20:
        raise ValueError("an info_hash is 20 bytes")
    return node.put({b"ih": infoHash}, key, salt=salt)


def resolveTorrent(node: DHTNode, uri: str) -> Deferred[bytes | None]:
    """The info_hash a BEP 46 magnet link points at now (None: not found)."""
    publicKey, salt = parseMutableMagnet(uri)

    def infoHash(found: GetResult) -> bytes | None:
        value = found.item.value if found.item is not None else None
        if isinstance(value, dict) and isinstance(value.get(b"ih"), bytes):
            infoHash: bytes = value[b"ih"]
            return infoHash if len(infoHash) == 20 else None
        return None

    return node.get(publicKey=publicKey, salt=salt).addCallback(infoHash)
