"""Tests for twisted_dht.protocol: dispatch, errors, transactions and timeouts."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from twisted_dht import krpc
from twisted_dht.errors import (
    ErrorCode,
    KRPCError,
    MalformedMessage,
    ProtocolStopped,
    QueryTimeout,
)
from twisted_dht.interfaces import IKRPCController
from twisted_dht.krpc import Address, Query
from twisted_dht.protocol import KRPCProtocol
from twisted_dht.testing import FakeDatagramTransport

OUR_ID = b"\x11" * 20
THEIR_ID = b"\x22" * 20
PEER: Address = ("10.0.0.2", 6881)


@implementer(IKRPCController)
class RecordingController:
    """A controller answering ping, with hooks to make handlers misbehave."""

    def __init__(self) -> None:
        self.seen: list[tuple[Query, Address]] = []
        self.deferred: Deferred[dict[bytes, Any]] | None = None

    def queryReceived(self, query: Query, address: Address) -> None:
        self.seen.append((query, address))

    def krpc_ping(self, query: Query, address: Address) -> dict[bytes, Any]:
        return {b"id": OUR_ID}

    def krpc_slow(self, query: Query, address: Address) -> Deferred[dict[bytes, Any]]:
        self.deferred = Deferred()
        return self.deferred

    def krpc_broken(self, query: Query, address: Address) -> dict[bytes, Any]:
        raise RuntimeError("bug")

    def krpc_refuse(self, query: Query, address: Address) -> Deferred[dict[bytes, Any]]:
        return fail(KRPCError(ErrorCode.PROTOCOL, "invalid token"))

    def krpc_badargs(self, query: Query, address: Address) -> dict[bytes, Any]:
        raise MalformedMessage("invalid argument: port must be an integer")

    def krpc_huge(self, query: Query, address: Address) -> dict[bytes, Any]:
        return {b"id": OUR_ID, b"blob": b"x" * 2000}


class ProtocolTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.controller = RecordingController()
        self.protocol = KRPCProtocol(self.controller, reactor=self.clock, timeout=5)
        self.transport = FakeDatagramTransport(("10.0.0.1", 6881))
        self.protocol.makeConnection(self.transport)  # type: ignore[arg-type]

    def receive(self, data: bytes, address: Address = PEER) -> None:
        self.protocol.datagramReceived(data, address)

    def replies(self) -> list[krpc.Message]:
        return [krpc.decodeMessage(data) for data, _ in self.transport.written]

    def query(
        self, method: bytes, args: dict[bytes, Any] | None = None, tid: bytes = b"aa"
    ) -> bytes:
        return krpc.encodeQuery(tid, method, {b"id": THEIR_ID, **(args or {})})


class IncomingQueryTests(ProtocolTestCase):
    def test_pingAnswered(self) -> None:
        """A ping gets one response with our id, the echoed tid, ip and version."""
        self.receive(self.query(b"ping", tid=b"\x00\x01\x02\x03"))
        [(data, address)] = self.transport.written
        self.assertEqual(address, PEER)
        reply = krpc.decodeMessage(data)
        assert isinstance(reply, krpc.Response)
        self.assertEqual(reply.tid, b"\x00\x01\x02\x03")
        self.assertEqual(reply.nodeId, OUR_ID)
        self.assertEqual(reply.ip, PEER)
        self.assertEqual(reply.version, krpc.VERSION)

    def test_controllerSeesQueries(self) -> None:
        """Every valid query is shown to the controller's queryReceived with its source."""
        self.receive(self.query(b"ping"))
        self.receive(self.query(b"nonesuch"))
        self.assertEqual([q.method for q, _ in self.controller.seen], [b"ping", b"nonesuch"])
        self.assertEqual(self.controller.seen[0][1], PEER)

    def test_unknownMethod(self) -> None:
        """An unknown method is answered with error 204."""
        self.receive(self.query(b"vote"))
        [reply] = self.replies()
        assert isinstance(reply, krpc.Error)
        self.assertEqual(reply.code, ErrorCode.METHOD_UNKNOWN)

    def test_missingIdAnswered203(self) -> None:
        """A query without an id is answered with error 203 naming the field."""
        self.receive(krpc.bencoding.encode({b"t": b"zz", b"y": b"q", b"q": b"ping", b"a": {}}))
        [reply] = self.replies()
        assert isinstance(reply, krpc.Error)
        self.assertEqual((reply.tid, reply.code), (b"zz", ErrorCode.PROTOCOL))
        self.assertIn(b"id", reply.message)

    def test_handlerException(self) -> None:
        """A handler raising an unexpected exception gets error 202, and it is logged."""
        self.receive(self.query(b"broken"))
        [reply] = self.replies()
        assert isinstance(reply, krpc.Error)
        self.assertEqual(reply.code, ErrorCode.SERVER)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_handlerKRPCError(self) -> None:
        """A handler failing with KRPCError answers with that code and message."""
        self.receive(self.query(b"refuse"))
        [reply] = self.replies()
        assert isinstance(reply, krpc.Error)
        self.assertEqual((reply.code, reply.message), (203, b"invalid token"))

    def test_handlerMalformedArgument(self) -> None:
        """A handler raising MalformedMessage for a bad argument answers 203."""
        self.receive(self.query(b"badargs"))
        [reply] = self.replies()
        assert isinstance(reply, krpc.Error)
        self.assertEqual(reply.code, ErrorCode.PROTOCOL)

    def test_deferredHandler(self) -> None:
        """A handler's Deferred result is sent when it fires, not before."""
        self.receive(self.query(b"slow"))
        self.assertEqual(self.transport.written, [])
        assert self.controller.deferred is not None
        self.controller.deferred.callback({b"id": OUR_ID})
        [reply] = self.replies()
        self.assertIsInstance(reply, krpc.Response)

    def test_oversizedReplyRefused(self) -> None:
        """A reply over 1,024 bytes is never sent; a 202 goes instead and it is logged."""
        self.receive(self.query(b"huge"))
        [(data, _)] = self.transport.written
        self.assertLessEqual(len(data), krpc.MAX_REPLY_SIZE)
        reply = krpc.decodeMessage(data)
        assert isinstance(reply, krpc.Error)
        self.assertEqual(reply.code, ErrorCode.SERVER)

    def test_garbageDropped(self) -> None:
        """Garbage gets no reply and is counted as malformed."""
        self.receive(b"\xff\x00garbage")
        self.receive(b"d1:t2:aa1:y1:re")
        self.assertEqual(self.transport.written, [])
        self.assertEqual(self.protocol.counters["malformed"], 2)

    def test_unknownTransactionNotAnswered(self) -> None:
        """A response or error with an unknown transaction id is dropped without a reply."""
        self.receive(krpc.encodeResponse(b"qq", {b"id": THEIR_ID}))
        self.receive(krpc.encodeError(b"qq", 201, "x"))
        self.assertEqual(self.transport.written, [])
        self.assertEqual(self.protocol.counters["unknownTransaction"], 2)

    def test_readOnlyAnswersNothing(self) -> None:
        """A read-only protocol (BEP 43) answers no query, not even with an error."""
        self.protocol.readOnly = True
        self.receive(self.query(b"ping"))
        self.receive(krpc.bencoding.encode({b"t": b"zz", b"y": b"q", b"q": b"ping", b"a": {}}))
        self.assertEqual(self.transport.written, [])

    def test_queryCounting(self) -> None:
        """Incoming queries are counted per known method, unknown ones under one key."""
        for method in (b"ping", b"ping", b"x1", b"x2"):
            self.receive(self.query(method))
        self.assertEqual(self.protocol.queriesIn, {b"ping": 2, b"other": 2})

    def test_sendErrorSurvives(self) -> None:
        """An OSError from the transport is counted, never raised."""

        def refuse(packet: bytes, addr: Any = None) -> None:
            raise OSError("network unreachable")

        self.transport.write = refuse  # type: ignore[method-assign]
        self.receive(self.query(b"ping"))
        self.assertEqual(self.protocol.counters["sendErrors"], 1)

    @given(st.binary(max_size=300))
    @settings(max_examples=300, deadline=None)
    def test_arbitraryBytesNeverRaise(self, data: bytes) -> None:
        """Arbitrary bytes never raise from datagramReceived and cause at most one datagram."""
        before = len(self.transport.written)
        self.receive(data)
        self.assertLessEqual(len(self.transport.written) - before, 1)


class OutgoingQueryTests(ProtocolTestCase):
    def sentQuery(self) -> Query:
        data, address = self.transport.written[-1]
        self.assertEqual(address, PEER)
        message = krpc.decodeMessage(data)
        assert isinstance(message, Query)
        return message

    def test_responseFiresDeferred(self) -> None:
        """A response from the queried address fires the query's Deferred with it."""
        d = self.protocol.query(PEER, b"ping", {b"id": OUR_ID})
        sent = self.sentQuery()
        self.assertEqual((sent.method, sent.nodeId), (b"ping", OUR_ID))
        self.assertTrue(2 <= len(sent.tid) <= 4)
        self.receive(krpc.encodeResponse(sent.tid, {b"id": THEIR_ID}))
        response = self.successResultOf(d)
        self.assertEqual(response.nodeId, THEIR_ID)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_errorFailsDeferred(self) -> None:
        """An error reply fails the Deferred with KRPCError carrying the code."""
        d = self.protocol.query(PEER, b"ping", {b"id": OUR_ID})
        self.receive(krpc.encodeError(self.sentQuery().tid, 204, "Method Unknown"))
        failure = self.failureResultOf(d, KRPCError)
        self.assertEqual(failure.value.code, 204)

    def test_timeout(self) -> None:
        """With no reply, the Deferred fails with QueryTimeout after the timeout."""
        d = self.protocol.query(PEER, b"ping", {b"id": OUR_ID}, timeout=2)
        self.clock.advance(1.9)
        self.assertNoResult(d)
        self.clock.advance(0.2)
        self.failureResultOf(d, QueryTimeout)
        self.assertEqual(self.protocol.pendingCount, 0)

    def test_replyFromWrongAddressIgnored(self) -> None:
        """A reply carrying the right tid from another address does not fire the query."""
        d = self.protocol.query(PEER, b"ping", {b"id": OUR_ID})
        tid = self.sentQuery().tid
        self.receive(krpc.encodeResponse(tid, {b"id": THEIR_ID}), ("10.0.0.3", 6881))
        self.assertNoResult(d)
        self.receive(krpc.encodeResponse(tid, {b"id": THEIR_ID}))
        self.successResultOf(d)

    def test_cancelForgets(self) -> None:
        """Cancelling a query removes it and its timer; a late reply is then unknown."""
        d = self.protocol.query(PEER, b"ping", {b"id": OUR_ID})
        tid = self.sentQuery().tid
        d.cancel()
        self.failureResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.receive(krpc.encodeResponse(tid, {b"id": THEIR_ID}))
        self.assertEqual(self.protocol.counters["unknownTransaction"], 1)

    def test_uniqueTransactionIds(self) -> None:
        """Pending queries to one address never share a transaction id."""
        for _ in range(2000):
            self.protocol.query(PEER, b"ping", {b"id": OUR_ID})
        tids = {krpc.decodeMessage(data).tid for data, _ in self.transport.written}
        self.assertEqual(len(tids), 2000)
        self.assertEqual(self.protocol.pendingCount, 2000)

    def test_stopFailsPending(self) -> None:
        """stopProtocol fails every pending query and leaves no DelayedCall."""
        ds = [self.protocol.query(PEER, b"ping", {b"id": OUR_ID}) for _ in range(3)]
        self.protocol.doStop()
        for d in ds:
            self.failureResultOf(d, ProtocolStopped)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_queryWhenStopped(self) -> None:
        """A query on a stopped protocol fails at once with ProtocolStopped."""
        self.protocol.doStop()
        self.failureResultOf(self.protocol.query(PEER, b"ping", {b"id": OUR_ID}), ProtocolStopped)

    def test_readOnlyQueriesCarryRo(self) -> None:
        """Queries of a read-only protocol carry ro=1 (BEP 43)."""
        self.protocol.readOnly = True
        self.protocol.query(PEER, b"ping", {b"id": OUR_ID})
        self.assertTrue(self.sentQuery().readOnly)
