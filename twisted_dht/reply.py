"""Replies: the one place that turns a handler's answer into a datagram within its budget.

A handler answers with an L{Answer} (or with bytes, an C{r} dictionary it bencoded once,
or a plain dictionary); L{buildResponse} adds the envelope (C{t}, C{y}, C{ip}, C{v}) and
fits the whole into the budget the admission policy gives (1,024 bytes, or less for an
unverified requester), trimming in this order: the other family's nodes, then the
requester's family's nodes, then the extras (BEP 33's bloom filters: they go, all
together, only when they do not fit even without any node, and then every node stays),
then the tail (C{values} or C{samples}). The C{v} field goes last of all, so that no
version string, whatever its length, makes a reply oversized.
L{buildError} does the same for errors, whose message is cut to the error budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import bencoding, krpc

MAX_REPLY_SIZE = krpc.MAX_REPLY_SIZE

ITEM_REPLY_SIZE = 1232
"""The ceiling of a BEP 44 get reply carrying an item (a 1,000-byte value, its key and
signature do not fit in 1,024 bytes): the largest UDP payload IPv6's minimum MTU carries
unfragmented (1,280 - 40 - 8)."""

ERROR_AMPLIFICATION = 4
"""An error reply is at most this many times the size of the datagram that caused it."""

Tail = Callable[[int], bytes]
"""C{tail(room)}: the reply's last key and its value, bencoded, in at most C{room} bytes
(C{b""} for none). The last key sorts after every other one (C{values}, C{samples})."""


@dataclass(slots=True)
class Answer:
    """What a query handler answers: fixed C{fields}, and parts that may be trimmed.

    C{nodes} and C{nodes6} are compact node infos (26 and 38 bytes each); C{extras} are
    fields that are sent when they fit once the nodes are trimmed, and dropped whole
    otherwise (BEP 33's C{BFsd} and C{BFpe}); C{tail} gives the last key (see L{Tail}).
    C{limit} is the reply's ceiling (L{MAX_REPLY_SIZE}, or L{ITEM_REPLY_SIZE} for a
    BEP 44 item).
    """

    fields: dict[bytes, Any]
    nodes: bytes | None = None
    nodes6: bytes | None = None
    tail: Tail | None = None
    extras: dict[bytes, Any] | None = None
    limit: int = MAX_REPLY_SIZE


_NODE_WIDTHS = {b"nodes": 26, b"nodes6": 38}


def _trimNodes(fields: dict[bytes, Any], excess: int, ipv6: bool) -> bool:
    """Drop whole compact nodes, the other family's first, until C{excess} bytes are gone
    or none is left (a list left empty goes, key and all); whether anything was dropped."""
    order = (b"nodes", b"nodes6") if ipv6 else (b"nodes6", b"nodes")
    removed = 0
    for key in order:
        nodes = fields.get(key)
        if nodes is None or removed >= excess:
            continue
        width = _NODE_WIDTHS[key]
        drop = min(len(nodes) // width, -(-(excess - removed) // width))
        kept = nodes[: len(nodes) - drop * width]
        if kept:
            fields[key] = kept
        else:
            del fields[key]
        removed += _encodedLength(key, nodes) - _encodedLength(key, kept or None)
    return removed > 0


def _encodedLength(key: bytes, value: bytes | None) -> int:
    """The bytes a string-valued key takes in a bencoded dictionary (0 when absent)."""
    if value is None:
        return 0
    return len(key) + len(str(len(key))) + 1 + len(value) + len(str(len(value))) + 1


def buildResponse(
    tid: bytes,
    answer: Answer | dict[bytes, Any] | bytes,
    requester: bytes,
    version: bytes | None,
    budget: int = MAX_REPLY_SIZE,
) -> bytes | None:
    """The response datagram to query C{tid} within C{budget} bytes (at most 1,024, or
    the answer's C{limit}).

    @param requester: the requester's packed address, echoed as C{ip} (BEP 42).
    @return: the datagram, or None when not even the fixed fields fit in 1,024 bytes.
    """
    if type(answer) is bytes or type(answer) is dict:
        data = krpc.encodeResponse(tid, answer, requester=requester, version=version)
        if len(data) <= MAX_REPLY_SIZE:
            return data
        return _withoutVersion(tid, answer, requester)
    assert isinstance(answer, Answer)
    limit = answer.limit
    budget = min(budget, limit)
    fields = answer.fields
    extras = answer.extras
    if extras is not None:
        withExtras = {**fields, **extras}
        if (
            krpc.envelopeSize(len(tid), len(requester), None) + len(bencoding.encode(withExtras))
            <= budget
        ):
            fields = withExtras
    if answer.nodes is not None:
        fields[b"nodes"] = answer.nodes
    if answer.nodes6 is not None:
        fields[b"nodes6"] = answer.nodes6
    envelope = krpc.envelopeSize(len(tid), len(requester), version)
    encoded = bencoding.encode(fields)
    size = envelope + len(encoded)
    if size > budget:
        nodes = _encodedLength(b"nodes", answer.nodes) + _encodedLength(b"nodes6", answer.nodes6)
        if version is not None and size - nodes > budget:
            # Not even the fixed fields fit with the version: it goes before any node does.
            version = None
            envelope = krpc.envelopeSize(len(tid), len(requester), None)
            size = envelope + len(encoded)
        if size > budget and _trimNodes(fields, size - budget, len(requester) == 18):
            encoded = bencoding.encode(fields)
            size = envelope + len(encoded)
    if answer.tail is not None:
        tail = answer.tail(budget - size)
        if tail:
            size += len(tail)
            encoded = b"".join((encoded[:-1], tail, b"e"))
    if size <= limit:
        return krpc.encodeResponse(tid, encoded, requester=requester, version=version)
    return _withoutVersion(tid, encoded, requester, limit)


def _withoutVersion(
    tid: bytes, values: dict[bytes, Any] | bytes, requester: bytes, limit: int = MAX_REPLY_SIZE
) -> bytes | None:
    data = krpc.encodeResponse(tid, values, requester=requester, version=None)
    return data if len(data) <= limit else None


def buildError(
    tid: bytes, code: int, message: str, version: bytes | None, budget: int = MAX_REPLY_SIZE
) -> bytes | None:
    """The error datagram within C{budget} bytes (at most 1,024): the message is cut, then
    the C{v} field dropped (and the message cut only as much as the budget then needs);
    None when not even an empty message fits."""
    budget = min(budget, MAX_REPLY_SIZE)
    text = message[:200].encode("utf-8", "replace")
    for field in (version, None) if version is not None else (None,):
        data = krpc.encodeError(tid, code, text, version=field)
        excess = len(data) - budget
        if excess <= 0:
            return data
        if excess <= len(text):
            return krpc.encodeError(tid, code, text[: len(text) - excess], version=field)
    data = krpc.encodeError(tid, code, b"", version=None)
    return data if len(data) <= budget else None


def valuesTail(items: bytes) -> bytes:
    """The C{values} key and list around already-bencoded compact peers."""
    return b"".join((b"6:valuesl", items, b"e")) if items else b""


VALUES_OVERHEAD = len(valuesTail(b"x")) - 1
"""The bytes of the C{values} key and its list's C{l} and C{e}."""


def bytesTail(key: bytes, data: bytes, width: int, room: int) -> bytes:
    """A string-valued last key holding as many whole C{width}-byte records of C{data}
    as fit in C{room} bytes (C{samples})."""
    keyPart = b"%d:%s" % (len(key), key)
    count = len(data) // width
    while count >= 0:
        value = data[: count * width]
        encoded = b"%s%d:%s" % (keyPart, len(value), value)
        if len(encoded) <= room:
            return encoded
        count -= max(1, (len(encoded) - room) // width)
    return b""
