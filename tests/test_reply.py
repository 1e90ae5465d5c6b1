"""Tests for twisted_dht.reply: the envelope, the budgets and the trimming order of replies."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from twisted_dht import bencoding, krpc
from twisted_dht.addresses import Address, packAddress
from twisted_dht.reply import (
    MAX_REPLY_SIZE,
    VALUES_OVERHEAD,
    Answer,
    buildError,
    buildResponse,
    bytesTail,
    valuesTail,
)

TID = b"\xaa\xbb"
OUR_ID = b"\x11" * 20
REQUESTER: Address = ("203.0.113.5", 6881)
REQUESTER6: Address = ("2001:db8::5", 6881)
PACKED = packAddress(REQUESTER)
PACKED6 = packAddress(REQUESTER6)


def nodes(count: int, ipv6: bool = False) -> bytes:
    """C{count} distinct compact node infos of one family."""
    return b"".join(
        krpc.packNode(
            bytes([0x30 + i]) * 20,
            (f"2001:db8::{i + 1:x}", 7000) if ipv6 else (f"10.0.{i}.1", 7000),
        )
        for i in range(count)
    )


def peers(count: int) -> bytes:
    """C{count} IPv4 compact peers, bencoded and joined as a peer store's fast path gives."""
    return b"".join(b"6:" + packAddress((f"10.1.{i}.1", 6881)) for i in range(count))


def decode(data: bytes | None) -> krpc.Response:
    """The response C{data} holds (failing the test on anything else)."""
    assert data is not None
    message = krpc.decodeMessage(data)
    assert isinstance(message, krpc.Response), message
    return message


def decodeError(data: bytes | None) -> krpc.Error:
    """The error C{data} holds (failing the test on anything else)."""
    assert data is not None
    message = krpc.decodeMessage(data)
    assert isinstance(message, krpc.Error), message
    return message


class Tail:
    """A tail recording the room it was offered, answering with C{values} of 8-byte peers."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.rooms: list[int] = []

    def __call__(self, room: int) -> bytes:
        self.rooms.append(room)
        limit = max(0, min(self.count, (room - VALUES_OVERHEAD) // 8))
        return valuesTail(peers(limit))


class EnvelopeTests(SynchronousTestCase):
    """What every response carries around the handler's answer."""

    def test_answerEnvelope(self) -> None:
        """An Answer that fits is sent whole, byte for byte what bencoding the message gives,
        with the tid, the requester's address as ip (BEP 42) and our version."""
        fields: dict[bytes, Any] = {b"id": OUR_ID, b"token": b"t" * 8}
        data = buildResponse(TID, Answer(dict(fields), nodes=nodes(3)), PACKED, krpc.VERSION)
        expected = {
            b"ip": PACKED,
            b"r": {**fields, b"nodes": nodes(3)},
            b"t": TID,
            b"v": krpc.VERSION,
            b"y": b"r",
        }
        self.assertEqual(data, bencoding.encode(expected))
        reply = decode(data)
        self.assertEqual((reply.tid, reply.ip, reply.version), (TID, REQUESTER, krpc.VERSION))

    def test_bytesAndDictAnswers(self) -> None:
        """A bencoded r dictionary and a plain one give the same datagram."""
        values = {b"id": OUR_ID}
        encoded = buildResponse(TID, bencoding.encode(values), PACKED6, krpc.VERSION)
        plain = buildResponse(TID, dict(values), PACKED6, krpc.VERSION)
        self.assertEqual(encoded, plain)
        self.assertEqual(decode(encoded).ip, REQUESTER6)

    def test_noVersion(self) -> None:
        """A version of None sends no v field."""
        self.assertIsNone(
            decode(buildResponse(TID, Answer({b"id": OUR_ID}), PACKED, None)).version
        )

    def test_emptyTailAddsNothing(self) -> None:
        """A tail with nothing to say adds no key."""
        answer = Answer({b"id": OUR_ID}, tail=lambda room: b"")
        self.assertEqual(decode(buildResponse(TID, answer, PACKED, None)).values, {b"id": OUR_ID})


class BudgetTests(SynchronousTestCase):
    """Replies fit their budget, trimming in the documented order."""

    def test_fitsBudget(self) -> None:
        """For any budget from 120 to 1,024 bytes (room for the fixed fields), a full Answer
        is cut to fit it."""
        for budget in range(120, MAX_REPLY_SIZE + 1, 37):
            answer = Answer(
                {b"id": OUR_ID, b"token": b"t" * 8},
                nodes=nodes(8),
                nodes6=nodes(8, ipv6=True),
                tail=Tail(100),
            )
            data = buildResponse(b"x" * 32, answer, PACKED, krpc.VERSION, budget)
            assert data is not None
            self.assertLessEqual(len(data), budget)

    def test_budgetCappedAt1024(self) -> None:
        """A budget above 1,024 bytes is taken as 1,024."""
        answer = Answer({b"id": OUR_ID}, nodes=nodes(8), tail=Tail(200))
        data = buildResponse(TID, answer, PACKED, krpc.VERSION, 5000)
        assert data is not None
        self.assertLessEqual(len(data), MAX_REPLY_SIZE)
        self.assertGreater(len(data), MAX_REPLY_SIZE - 8)

    def test_otherFamilyTrimmedFirst(self) -> None:
        """An IPv4 requester's reply loses nodes6 before nodes; an IPv6 requester's the
        reverse; whole nodes go, and a list left empty goes with its key."""
        for packed, own, other, width in (
            (PACKED, b"nodes", b"nodes6", 38),
            (PACKED6, b"nodes6", b"nodes", 26),
        ):
            full = decode(
                buildResponse(
                    TID,
                    Answer({b"id": OUR_ID}, nodes=nodes(8), nodes6=nodes(8, ipv6=True)),
                    packed,
                    krpc.VERSION,
                )
            )
            fullSize = len(
                krpc.encodeResponse(TID, full.values, requester=packed, version=krpc.VERSION)
            )
            # Two of the other family's nodes too many: exactly two of them go.
            budget = fullSize - 2 * width + 1
            reply = decode(
                buildResponse(
                    TID,
                    Answer({b"id": OUR_ID}, nodes=nodes(8), nodes6=nodes(8, ipv6=True)),
                    packed,
                    krpc.VERSION,
                    budget,
                )
            )
            self.assertEqual(reply.values[own], full.values[own])
            self.assertEqual(len(reply.values[other]), 6 * width)
            self.assertEqual(reply.values[other], full.values[other][: 6 * width])
            # Not even the requester's family fits whole: the other family is gone.
            reply = decode(
                buildResponse(
                    TID,
                    Answer({b"id": OUR_ID}, nodes=nodes(8), nodes6=nodes(8, ipv6=True)),
                    packed,
                    krpc.VERSION,
                    150,
                )
            )
            self.assertNotIn(other, reply.values)
            ownWidth = 26 if own == b"nodes" else 38
            self.assertEqual(len(reply.values[own]) % ownWidth, 0)
            self.assertLess(len(reply.values[own]), 8 * ownWidth)

    def test_nodesBeforeTail(self) -> None:
        """The tail gets the room the nodes left: nodes are never cut for it, and it fills
        what is left of the budget."""
        tail = Tail(200)
        answer = Answer({b"id": OUR_ID}, nodes=nodes(8), nodes6=nodes(8, ipv6=True), tail=tail)
        data = buildResponse(TID, answer, PACKED, krpc.VERSION)
        assert data is not None
        reply = decode(data)
        self.assertEqual(len(krpc.responseNodes(reply)), 8)
        self.assertEqual(len(krpc.responseNodes(reply, ipv6=True)), 8)
        values = krpc.responseValues(reply)
        self.assertGreater(len(values), 10)
        self.assertEqual(len(tail.rooms), 1)
        self.assertLessEqual(len(data), MAX_REPLY_SIZE)
        self.assertGreater(len(data), MAX_REPLY_SIZE - 8)  # one more value would not fit

    def test_tailGetsNoRoomWhenNodesFillBudget(self) -> None:
        """When the nodes had to be trimmed, the tail is offered no room."""
        tail = Tail(200)
        answer = Answer({b"id": OUR_ID}, nodes=nodes(8), tail=tail)
        reply = decode(buildResponse(TID, answer, PACKED, krpc.VERSION, 200))
        self.assertNotIn(b"values", reply.values)
        self.assertLessEqual(tail.rooms[0], 26)

    def test_extrasBeforeNodes(self) -> None:
        """Extras (BEP 33's filters) that fit without any node stay: nodes, the other
        family's first, are trimmed to make room for them."""
        extras = {b"BFpe": b"\x01" * 256, b"BFsd": b"\x02" * 256}
        answer = Answer({b"id": OUR_ID}, nodes=nodes(8), nodes6=nodes(8, ipv6=True), extras=extras)
        data = buildResponse(TID, answer, PACKED, krpc.VERSION, 800)
        assert data is not None
        reply = decode(data)
        self.assertEqual((reply.values[b"BFpe"], reply.values[b"BFsd"]), tuple(extras.values()))
        self.assertNotIn(b"nodes6", reply.values)
        self.assertTrue(0 < len(krpc.responseNodes(reply)) < 8)
        self.assertLessEqual(len(data), 800)

    def test_extrasThatCannotFitDropped(self) -> None:
        """Extras too large even without nodes go whole, and the nodes stay."""
        extras = {b"BFpe": b"\x01" * 256, b"BFsd": b"\x02" * 256}
        answer = Answer({b"id": OUR_ID}, nodes=nodes(8), extras=extras)
        reply = decode(buildResponse(TID, answer, PACKED, krpc.VERSION, 400))
        self.assertNotIn(b"BFpe", reply.values)
        self.assertNotIn(b"BFsd", reply.values)
        self.assertEqual(len(krpc.responseNodes(reply)), 8)

    def test_extrasBeforeVersion(self) -> None:
        """Extras that fit only without the version keep their place; the version goes."""
        extras = {b"BFpe": b"\x01" * 256, b"BFsd": b"\x02" * 256}
        answer = Answer({b"id": OUR_ID}, extras=extras)
        data = buildResponse(TID, answer, PACKED, b"V" * 500)
        reply = decode(data)
        self.assertIn(b"BFsd", reply.values)
        self.assertIsNone(reply.version)

    def test_impossible(self) -> None:
        """None when not even the fixed fields fit in 1,024 bytes, for any kind of answer."""
        fields = {b"id": OUR_ID, b"blob": b"x" * 2000}
        self.assertIsNone(buildResponse(TID, Answer(dict(fields)), PACKED, krpc.VERSION))
        self.assertIsNone(buildResponse(TID, dict(fields), PACKED, krpc.VERSION))
        self.assertIsNone(buildResponse(TID, bencoding.encode(fields), PACKED, None))


class VersionTests(SynchronousTestCase):
    """The v field is dropped only when the reply cannot carry it."""

    def test_longVersionKeptWhenItFits(self) -> None:
        """A 200-byte version is sent with a full find_node reply."""
        version = b"V" * 200
        answer = Answer({b"id": OUR_ID}, nodes=nodes(8), nodes6=nodes(8, ipv6=True))
        data = buildResponse(TID, answer, PACKED, version)
        assert data is not None
        self.assertLessEqual(len(data), MAX_REPLY_SIZE)
        reply = decode(data)
        self.assertEqual(reply.version, version)
        self.assertEqual(len(krpc.responseNodes(reply, ipv6=True)), 8)

    def test_versionThatCannotFitDroppedBeforeNodes(self) -> None:
        """A 1,000-byte version, which no reply can carry, is dropped, and no node is cut
        for it."""
        for kind in ("nodes", "tail"):
            answer = Answer(
                {b"id": OUR_ID},
                nodes=nodes(8),
                nodes6=nodes(8, ipv6=True),
                tail=Tail(100) if kind == "tail" else None,
            )
            data = buildResponse(TID, answer, PACKED, b"V" * 1000)
            assert data is not None
            self.assertLessEqual(len(data), MAX_REPLY_SIZE)
            reply = decode(data)
            self.assertIsNone(reply.version)
            self.assertEqual(len(krpc.responseNodes(reply)), 8)
            self.assertEqual(len(krpc.responseNodes(reply, ipv6=True)), 8)
            if kind == "tail":
                self.assertGreater(len(krpc.responseValues(reply)), 10)

    def test_versionOverAmplificationBudgetDropped(self) -> None:
        """A version longer than an unverified requester's budget is dropped, so that the
        reply stays within that budget."""
        answer = Answer({b"id": OUR_ID}, nodes=nodes(8))
        data = buildResponse(TID, answer, PACKED, b"V" * 500, 380)
        assert data is not None
        self.assertLessEqual(len(data), 380)
        reply = decode(data)
        self.assertIsNone(reply.version)
        self.assertGreater(len(krpc.responseNodes(reply)), 0)

    def test_versionOfBytesAnswerDroppedWhenNeeded(self) -> None:
        """A bencoded answer keeps a version that fits and loses one that does not."""
        ping = bencoding.encode({b"id": OUR_ID})
        self.assertEqual(decode(buildResponse(TID, ping, PACKED, b"V" * 200)).version, b"V" * 200)
        data = buildResponse(TID, ping, PACKED, b"V" * 1000)
        assert data is not None
        self.assertLessEqual(len(data), MAX_REPLY_SIZE)
        self.assertIsNone(decode(data).version)
        self.assertEqual(decode(data).nodeId, OUR_ID)


class ErrorTests(SynchronousTestCase):
    """buildError: errors within the error budget."""

    def test_error(self) -> None:
        """An error carries the tid, code, message and version."""
        error = decodeError(buildError(TID, 203, "invalid token", krpc.VERSION))
        self.assertEqual(
            (error.tid, error.code, error.message, error.version),
            (TID, 203, b"invalid token", krpc.VERSION),
        )

    def test_messageCappedAt200(self) -> None:
        """A message is cut to 200 characters whatever the budget."""
        error = decodeError(buildError(TID, 202, "x" * 500, krpc.VERSION))
        self.assertEqual(error.message, b"x" * 200)

    def test_messageCutToBudget(self) -> None:
        """Over budget, the message is cut first, the version kept."""
        full = buildError(TID, 203, "invalid argument: port", krpc.VERSION)
        assert full is not None
        data = buildError(TID, 203, "invalid argument: port", krpc.VERSION, len(full) - 5)
        assert data is not None
        self.assertLessEqual(len(data), len(full) - 5)
        error = decodeError(data)
        self.assertEqual(error.message, b"invalid argument:")
        self.assertEqual(error.version, krpc.VERSION)

    def test_versionDroppedOnlyWhenNeeded(self) -> None:
        """A version too long for the budget is dropped, and the message then kept whole."""
        self.assertEqual(
            decodeError(buildError(TID, 203, "invalid token", b"V" * 200)).version, b"V" * 200
        )
        data = buildError(TID, 203, "invalid token", b"V" * 1000)
        assert data is not None
        self.assertLessEqual(len(data), MAX_REPLY_SIZE)
        error = decodeError(data)
        self.assertEqual((error.message, error.version), (b"invalid token", None))

    def test_budgetCappedAt1024(self) -> None:
        """An error never exceeds 1,024 bytes, whatever budget is asked for."""
        data = buildError(TID, 202, "x" * 200, b"V" * 900, 5000)
        assert data is not None
        self.assertLessEqual(len(data), MAX_REPLY_SIZE)

    def test_impossible(self) -> None:
        """None when not even an error without message or version fits."""
        self.assertIsNone(buildError(TID, 203, "invalid token", krpc.VERSION, 10))


class TailTests(SynchronousTestCase):
    """The tails handlers give: values and samples."""

    def test_valuesTail(self) -> None:
        """valuesTail wraps bencoded peers in the values key and list; nothing for none."""
        self.assertEqual(valuesTail(b""), b"")
        items = peers(2)
        self.assertEqual(valuesTail(items), b"6:valuesl" + items + b"e")
        self.assertEqual(len(valuesTail(items)), VALUES_OVERHEAD + len(items))

    def test_bytesTailWholeRecords(self) -> None:
        """bytesTail keeps as many whole records as fit in the room."""
        data = b"".join(bytes([i]) * 20 for i in range(1, 11))
        whole = bytesTail(b"samples", data, 20, 1000)
        self.assertEqual(whole, b"7:samples200:" + data)
        for room in range(0, len(whole) + 1):
            tail = bytesTail(b"samples", data, 20, room)
            self.assertLessEqual(len(tail), room)
            if tail:
                value = bencoding.decode(b"d" + tail + b"e")[b"samples"]
                self.assertEqual(len(value) % 20, 0)
                self.assertEqual(value, data[: len(value)])
                # One record more would not have fitted.
                self.assertGreater(len(tail) + 20 + 1, room)

    def test_bytesTailEmpty(self) -> None:
        """No records still give the key with an empty string, when that fits."""
        self.assertEqual(bytesTail(b"samples", b"", 20, 11), b"7:samples0:")
        self.assertEqual(bytesTail(b"samples", b"", 20, 10), b"")
