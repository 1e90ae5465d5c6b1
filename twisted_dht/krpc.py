"""KRPC wire codec: bytes <-> typed messages, compact node formats, typed argument accessors."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, TypeAlias

from . import bencoding
from .addresses import Address, packAddress, unpackAddress
from .errors import MalformedMessage

VERSION = b"TD\x00\x01"
"""Our client version, sent as ``v``: "TD" (twisted_dht) and two version bytes."""

MAX_DATAGRAM = 65536
MAX_TID_LENGTH = 32
ID_LENGTH = 20
MAX_REPLY_SIZE = 1024
"""BEP 32: never send a UDP payload larger than this."""


@dataclass(slots=True)
class Query:
    """An incoming or outgoing query (``y`` = ``q``)."""

    tid: bytes
    method: bytes
    args: dict[bytes, Any]
    version: bytes | None = None
    readOnly: bool = False
    size: int = 0
    """The size of the datagram it came in (set by the protocol; 0 when unknown)."""

    @property
    def nodeId(self) -> bytes:
        """The querying node's id (validated to be 20 bytes by L{decodeMessage})."""
        return self.args[b"id"]  # type: ignore[no-any-return]


@dataclass(slots=True)
class Response:
    """A reply (``y`` = ``r``)."""

    tid: bytes
    values: dict[bytes, Any]
    version: bytes | None = None
    ip: Address | None = None
    """The requester's address as the responder saw it (BEP 42), when given and valid."""

    @property
    def nodeId(self) -> bytes:
        """The responding node's id (validated to be 20 bytes by L{decodeMessage})."""
        return self.values[b"id"]  # type: ignore[no-any-return]


@dataclass(slots=True)
class Error:
    """An error reply (``y`` = ``e``)."""

    tid: bytes
    code: int
    message: bytes
    version: bytes | None = None


Message: TypeAlias = Query | Response | Error


def decodeMessage(data: bytes) -> Message:
    """Decode and validate one KRPC datagram.

    Unknown keys are ignored; missing or wrongly typed known keys are errors.

    @raise MalformedMessage: for anything invalid; its C{queryTid} is set when the input
        is a query whose transaction id could be read, so that a 203 can be sent.
    """
    if len(data) > MAX_DATAGRAM:
        raise MalformedMessage("datagram too large")
    message = bencoding.decode(data)
    if not isinstance(message, dict):
        raise MalformedMessage("not a dictionary")
    tid = message.get(b"t")
    if not isinstance(tid, bytes) or len(tid) > MAX_TID_LENGTH:
        raise MalformedMessage("missing or invalid transaction id")
    version = message.get(b"v")
    if version is not None and not isinstance(version, bytes):
        version = None
    kind = message.get(b"y")
    if kind == b"q":
        return _decodeQuery(message, tid, version)
    if kind == b"r":
        values = message.get(b"r")
        if not isinstance(values, dict):
            raise MalformedMessage("response without an r dictionary")
        nodeId = values.get(b"id")
        if not isinstance(nodeId, bytes) or len(nodeId) != ID_LENGTH:
            raise MalformedMessage("response without a valid id")
        ip = message.get(b"ip")
        requester = None
        if isinstance(ip, bytes) and len(ip) in (6, 18):
            requester = unpackAddress(ip)
        return Response(tid, values, version, requester)
    if kind == b"e":
        error = message.get(b"e")
        if (
            not isinstance(error, list)
            or len(error) < 2
            or not isinstance(error[0], int)
            or not isinstance(error[1], bytes)
        ):
            raise MalformedMessage("error without [code, message]")
        return Error(tid, error[0], error[1], version)
    raise MalformedMessage("missing or unknown message type")


def _decodeQuery(message: dict[bytes, Any], tid: bytes, version: bytes | None) -> Query:
    method = message.get(b"q")
    if not isinstance(method, bytes):
        raise MalformedMessage("query without a method name", tid)
    args = message.get(b"a")
    if not isinstance(args, dict):
        raise MalformedMessage("query without an argument dictionary", tid)
    nodeId = args.get(b"id")
    if nodeId is None:
        raise MalformedMessage("missing argument: id", tid)
    if not isinstance(nodeId, bytes) or len(nodeId) != ID_LENGTH:
        raise MalformedMessage("invalid argument: id must be 20 bytes", tid)
    readOnly = message.get(b"ro")
    if readOnly is not None and not isinstance(readOnly, int):
        raise MalformedMessage("invalid ro flag", tid)
    return Query(tid, method, args, version, bool(readOnly))


def _finish(message: dict[bytes, Any], version: bytes | None) -> bytes:
    if version is not None:
        message[b"v"] = version
    return bencoding.encode(message)


def encodeQuery(
    tid: bytes,
    method: bytes,
    args: dict[bytes, Any],
    *,
    version: bytes | None = VERSION,
    readOnly: bool = False,
) -> bytes:
    """Encode a query; C{args} must hold our C{id}."""
    message: dict[bytes, Any] = {b"t": tid, b"y": b"q", b"q": method, b"a": args}
    if readOnly:
        message[b"ro"] = 1
    return _finish(message, version)


def encodeResponse(
    tid: bytes,
    values: dict[bytes, Any] | bytes,
    *,
    requester: bytes | None = None,
    version: bytes | None = VERSION,
) -> bytes:
    """Encode a response: C{values} is its C{r} dictionary, or that dictionary already
    bencoded; C{requester} (an address packed by L{packAddress}), when given, is echoed
    as the top-level ``ip``.

    The envelope is joined by hand around the bencoded C{values}: its keys (ip, r, t,
    v, y) are in bencoding's sorted order, so the result is byte-identical to bencoding
    the whole message.
    """
    ip = b"d" if requester is None else _IP_KEY[len(requester)] + requester
    return b"".join(
        (
            ip,
            b"1:r",
            values if isinstance(values, bytes) else bencoding.encode(values),
            b"1:t",
            _lengthPrefix(tid),
            tid,
            _VERSION_FIELDS.get(version) or _versionField(version),
            b"1:y1:re",
        )
    )


@functools.lru_cache(maxsize=64)
def envelopeSize(tidLength: int, requesterLength: int, version: bytes | None) -> int:
    """How many bytes L{encodeResponse} adds around the bencoded C{r} dictionary for a
    C{tidLength}-byte tid, a packed requester of C{requesterLength} bytes (0: none) and
    C{version}. Speed: only these vary, a handful of combinations repeat for every reply,
    and each is worked out once."""
    ip = len(_IP_KEY[requesterLength]) - 1 + requesterLength if requesterLength else 0
    tidPrefix = _LENGTH_PREFIXES[tidLength] if tidLength <= MAX_TID_LENGTH else b"%d:" % tidLength
    field = _VERSION_FIELDS.get(version) or _versionField(version)
    return _ENVELOPE_SIZE + ip + len(tidPrefix) + tidLength + len(field)


_IP_KEY = {6: b"d2:ip6:", 18: b"d2:ip18:"}

_LENGTH_PREFIXES = [b"%d:" % n for n in range(MAX_TID_LENGTH + 1)]


def _lengthPrefix(value: bytes) -> bytes:
    """The bencoded length prefix of a byte string (``"2:"`` for two bytes)."""
    length = len(value)
    return _LENGTH_PREFIXES[length] if length <= MAX_TID_LENGTH else b"%d:" % length


def _versionField(version: bytes | None) -> bytes:
    """The ``v`` key and value of a message, or nothing without a version."""
    return b"" if version is None else b"1:v" + _lengthPrefix(version) + version


_VERSION_FIELDS: dict[bytes | None, bytes] = {VERSION: _versionField(VERSION)}

_ENVELOPE_SIZE = len(b"d" + b"1:r" + b"1:t" + b"1:y1:re")
"""The envelope's bytes that do not depend on the tid, values, requester or version."""


def encodeError(
    tid: bytes, code: int, message: str | bytes, *, version: bytes | None = VERSION
) -> bytes:
    """Encode an error reply."""
    text = message.encode("utf-8", "replace") if isinstance(message, str) else message
    return _finish({b"t": tid, b"y": b"e", b"e": [int(code), text]}, version)


# Compact formats -------------------------------------------------------------


def packNode(nodeId: bytes, address: Address) -> bytes:
    """Compact node info: the 20-byte id then the compact address (26 or 38 bytes)."""
    return nodeId + packAddress(address)


def unpackNodes(data: bytes, ipv6: bool = False) -> list[tuple[bytes, Address]]:
    """Parse a ``nodes`` (IPv4, 26-byte entries) or ``nodes6`` (38-byte) string.

    Entries with port 0 are skipped: nobody can be reached there.

    @raise MalformedMessage: when the length is not a multiple of the entry size.
    """
    size = 38 if ipv6 else 26
    if len(data) % size:
        raise MalformedMessage(
            f"compact node list of length {len(data)}, not a multiple of {size}"
        )
    nodes = []
    for offset in range(0, len(data), size):
        address = unpackAddress(data[offset + ID_LENGTH : offset + size])
        if address[1]:
            nodes.append((data[offset : offset + ID_LENGTH], address))
    return nodes


def unpackValues(values: Any) -> list[Address]:
    """Parse a ``values`` list of compact peers (6 or 18 bytes each), skipping port 0.

    @raise MalformedMessage: when it is not a list of compact peers.
    """
    if not isinstance(values, list):
        raise MalformedMessage("values must be a list")
    peers = []
    for value in values:
        if not isinstance(value, bytes) or len(value) not in (6, 18):
            raise MalformedMessage("values must hold 6- or 18-byte compact peers")
        address = unpackAddress(value)
        if address[1]:
            peers.append(address)
    return peers


# Typed argument accessors ----------------------------------------------------


def bytesArg(query: Query, key: bytes, length: int | None = None) -> bytes | None:
    """Argument C{key}: a byte string (of C{length} bytes when given), or None if absent.

    @raise MalformedMessage: when it is anything else (answered with 203).
    """
    value = query.args.get(key)
    if value is None:
        return None
    if not isinstance(value, bytes) or (length is not None and len(value) != length):
        size = f" of {length} bytes" if length is not None else ""
        raise MalformedMessage(f"invalid argument: {key.decode()} must be a byte string{size}")
    return value


def intArg(query: Query, key: bytes) -> int | None:
    """Argument C{key}: an integer, or None if absent (see L{bytesArg})."""
    value = query.args.get(key)
    if value is None:
        return None
    if not isinstance(value, int):
        raise MalformedMessage(f"invalid argument: {key.decode()} must be an integer")
    return value


def queryTarget(query: Query) -> bytes | None:
    """``target`` (find_node, get, sample_infohashes): 20 bytes, or None."""
    return bytesArg(query, b"target", ID_LENGTH)


def queryInfoHash(query: Query) -> bytes | None:
    """``info_hash`` (get_peers, announce_peer): 20 bytes, or None."""
    return bytesArg(query, b"info_hash", ID_LENGTH)


def queryToken(query: Query) -> bytes | None:
    """``token`` (announce_peer), or None."""
    return bytesArg(query, b"token")


def queryPort(query: Query) -> int | None:
    """``port`` (announce_peer), or None; range checks are the handler's."""
    return intArg(query, b"port")


def queryImpliedPort(query: Query) -> bool:
    """``implied_port``: use the UDP source port instead of ``port``."""
    return bool(intArg(query, b"implied_port"))


def querySeed(query: Query) -> bool:
    """BEP 33 ``seed`` flag of an announce."""
    return bool(intArg(query, b"seed"))


def queryNoSeed(query: Query) -> bool:
    """BEP 33 ``noseed`` flag of a get_peers."""
    return bool(intArg(query, b"noseed"))


def queryScrape(query: Query) -> bool:
    """BEP 33 ``scrape`` flag of a get_peers."""
    return bool(intArg(query, b"scrape"))


def queryWant(query: Query) -> frozenset[bytes] | None:
    """BEP 32 ``want``: the subset of {n4, n6} asked for, or None when absent."""
    value = query.args.get(b"want")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, bytes) for item in value):
        raise MalformedMessage("invalid argument: want must be a list of byte strings")
    return frozenset(value) & {b"n4", b"n6"}


# Response accessors ----------------------------------------------------------


def responseNodes(response: Response, ipv6: bool = False) -> list[tuple[bytes, Address]]:
    """The ``nodes`` (or ``nodes6``) of a response; empty when absent."""
    value = response.values.get(b"nodes6" if ipv6 else b"nodes")
    if value is None:
        return []
    if not isinstance(value, bytes):
        raise MalformedMessage("nodes must be a byte string")
    return unpackNodes(value, ipv6)


def responseValues(response: Response) -> list[Address]:
    """The peers in a get_peers response's ``values``; empty when absent."""
    value = response.values.get(b"values")
    return [] if value is None else unpackValues(value)


def responseToken(response: Response) -> bytes | None:
    """The write token of a get_peers response, or None."""
    token = response.values.get(b"token")
    if token is None:
        return None
    if not isinstance(token, bytes):
        raise MalformedMessage("token must be a byte string")
    return token
