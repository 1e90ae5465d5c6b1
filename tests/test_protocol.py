"""Tests for twisted_dht.protocol: dispatch, errors, admission, transactions and timeouts."""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import InvalidAddressError, MessageLengthError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from twisted_dht import bencoding, krpc
from twisted_dht.addresses import Address
from twisted_dht.admission import AdmissionPolicy
from twisted_dht.errors import (
    DropQuery,
    ErrorCode,
    KRPCError,
    MalformedMessage,
    ProtocolStopped,
    QueryTimeout,
    SendFailed,
)
from twisted_dht.interfaces import Handler, IKRPCController
from twisted_dht.krpc import Query
from twisted_dht.protocol import KRPCProtocol
from twisted_dht.reply import Answer
from twisted_dht.testing import FakeDatagramTransport

OUR_ID = b"\x11" * 20
THEIR_ID = b"\x22" * 20
HOST: Address = ("10.0.0.1", 6881)
HOST6: Address = ("::", 6881)
PEER: Address = ("10.0.0.2", 6881)
ZONED: Address = ("fe80::1%eth0", 6881)
TIMEOUT = 5.0


@implementer(IKRPCController)
class RecordingController:
    """A controller answering ping and methods that misbehave in every way a handler can;
    it records each query it is told was answered, with what had been sent by then."""

    def __init__(self, policy: AdmissionPolicy) -> None:
        self.policy = policy
        self.transport: FakeDatagramTransport | None = None
        self.answered: list[tuple[Query, Address, list[tuple[bytes, Address]]]] = []
        self.lookups: list[bytes] = []
        self.deferred: Deferred[Any] | None = None

    def handlerFor(self, method: bytes) -> Handler | None:
        self.lookups.append(method)
        handler: Handler | None = getattr(self, "krpc_" + method.decode("ascii", "replace"), None)
        return handler

    def queryAnswered(self, query: Query, address: Address) -> None:
        sent = list(self.transport.written) if self.transport is not None else []
        self.answered.append((query, address, sent))

    def krpc_ping(self, query: Query, address: Address) -> dict[bytes, Any]:
        return {b"id": OUR_ID}

    def krpc_encoded(self, query: Query, address: Address) -> bytes:
        return bencoding.encode({b"id": OUR_ID, b"x": 1})

    def krpc_answer(self, query: Query, address: Address) -> Answer:
        return Answer({b"id": OUR_ID}, nodes=krpc.packNode(THEIR_ID, PEER))

    def krpc_drop(self, query: Query, address: Address) -> Answer:
        raise DropQuery()

    def krpc_slow(self, query: Query, address: Address) -> Deferred[Any]:
        self.deferred = Deferred()
        return self.deferred

    async def krpc_async(self, query: Query, address: Address) -> dict[bytes, Any]:
        return {b"id": OUR_ID, b"async": 1}

    async def krpc_asyncslow(self, query: Query, address: Address) -> dict[bytes, Any]:
        self.deferred = Deferred()
        value = await self.deferred
        return {b"id": OUR_ID, b"value": value}

    async def krpc_asyncbroken(self, query: Query, address: Address) -> dict[bytes, Any]:
        raise RuntimeError("async bug")

    def krpc_none(self, query: Query, address: Address) -> None:
        return None

    def krpc_number(self, query: Query, address: Address) -> int:
        return 5

    def krpc_broken(self, query: Query, address: Address) -> dict[bytes, Any]:
        raise RuntimeError("bug")

    def krpc_refuse(self, query: Query, address: Address) -> Deferred[dict[bytes, Any]]:
        return fail(KRPCError(ErrorCode.PROTOCOL, "invalid token"))

    def krpc_raise(self, query: Query, address: Address) -> dict[bytes, Any]:
        raise KRPCError(ErrorCode.GENERIC, "go away")

    def krpc_badargs(self, query: Query, address: Address) -> dict[bytes, Any]:
        raise MalformedMessage("invalid argument: port must be an integer")

    def krpc_huge(self, query: Query, address: Address) -> dict[bytes, Any]:
        return {b"id": OUR_ID, b"blob": b"x" * 2000}


class RefusingSocket:
    """A socket whose every C{sendto} raises C{error}."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def sendto(self, data: bytes, address: Address) -> int:
        raise self.error


class RefusingTransport(FakeDatagramTransport):
    """A fake transport whose every send raises C{error}, through C{write} and, when the
    fake has one, its C{socket}."""

    def __init__(self, address: Address, error: Exception) -> None:
        super().__init__(address)
        self.error = error
        if getattr(self, "socket", None) is not None:
            self.socket = RefusingSocket(error)  # type: ignore[assignment]

    def write(self, packet: bytes, addr: Address | None = None) -> None:
        raise self.error


SEND_ERRORS: list[Callable[[], Exception]] = [
    lambda: OSError(errno.ENETUNREACH, "Network is unreachable"),
    lambda: OSError(errno.EAGAIN, "Resource temporarily unavailable"),
    lambda: InvalidAddressError("dht.example", "write() only accepts IP addresses"),
    lambda: MessageLengthError("message too long"),
]
"""What a UDP send can raise for a local failure."""


class ProtocolTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.policy = AdmissionPolicy(
            reactor=self.clock, ipRateLimit=0, queryRateLimit=0, uploadLimit=0
        )
        self.controller = RecordingController(self.policy)
        self.connect(FakeDatagramTransport(HOST))

    def connect(
        self, transport: FakeDatagramTransport, version: bytes | None = krpc.VERSION
    ) -> None:
        """Start a new protocol on C{transport}."""
        self.protocol = KRPCProtocol(self.controller, reactor=self.clock, version=version)
        self.transport = self.controller.transport = transport
        self.protocol.makeConnection(transport)

    def receive(self, data: bytes, address: Address = PEER) -> None:
        self.protocol.datagramReceived(data, address)

    def replies(self) -> list[krpc.Message]:
        return [krpc.decodeMessage(data) for data, _ in self.transport.written]

    def reply(self) -> krpc.Message:
        """The one datagram sent, decoded."""
        [reply] = self.replies()
        return reply

    def error(self) -> krpc.Error:
        """The one datagram sent, an error."""
        reply = self.reply()
        assert isinstance(reply, krpc.Error), reply
        return reply

    def response(self) -> krpc.Response:
        """The one datagram sent, a response."""
        reply = self.reply()
        assert isinstance(reply, krpc.Response), reply
        return reply

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

    def test_answerKinds(self) -> None:
        """A handler may answer with a dict, a bencoded dict or an Answer."""
        self.receive(self.query(b"encoded"))
        self.receive(self.query(b"answer"))
        encoded, answer = self.replies()
        assert isinstance(encoded, krpc.Response) and isinstance(answer, krpc.Response)
        self.assertEqual(encoded.values, {b"id": OUR_ID, b"x": 1})
        self.assertEqual(krpc.responseNodes(answer), [(THEIR_ID, PEER)])

    def test_customVersion(self) -> None:
        """Replies carry the version the protocol was given; None sends none."""
        self.connect(FakeDatagramTransport(HOST), version=b"XY\x00\x09")
        self.receive(self.query(b"ping"))
        self.assertEqual(self.response().version, b"XY\x00\x09")
        self.connect(FakeDatagramTransport(HOST), version=None)
        self.receive(self.query(b"ping"))
        self.assertIsNone(self.response().version)

    def test_controllerToldOfAnsweredQueries(self) -> None:
        """Every well-formed query is reported to the controller with its source, those
        answered with an error too; malformed ones are not."""
        self.receive(self.query(b"ping"))
        self.receive(self.query(b"nonesuch"))
        self.receive(self.query(b"refuse"))
        self.receive(bencoding.encode({b"t": b"zz", b"y": b"q", b"q": b"ping", b"a": {}}))
        self.assertEqual(
            [q.method for q, _, _ in self.controller.answered], [b"ping", b"nonesuch", b"refuse"]
        )
        self.assertEqual(self.controller.answered[0][1], PEER)

    def test_handlerLookedUpOnce(self) -> None:
        """The controller is asked for a method's handler once, not per query."""
        for _ in range(3):
            self.receive(self.query(b"ping"))
        self.assertEqual(self.controller.lookups, [b"ping"])
        self.assertEqual(len(self.transport.written), 3)

    def test_unknownMethod(self) -> None:
        """An unknown method is answered with error 204."""
        self.receive(self.query(b"vote"))
        self.assertEqual(self.error().code, ErrorCode.METHOD_UNKNOWN)

    def test_missingIdAnswered203(self) -> None:
        """A query without an id is answered with error 203 naming the field."""
        self.receive(bencoding.encode({b"t": b"zz", b"y": b"q", b"q": b"ping", b"a": {}}))
        error = self.error()
        self.assertEqual((error.tid, error.code), (b"zz", ErrorCode.PROTOCOL))
        self.assertIn(b"id", error.message)

    def test_handlerException(self) -> None:
        """A handler raising an unexpected exception gets error 202, and it is logged."""
        self.receive(self.query(b"broken"))
        self.assertEqual(self.error().code, ErrorCode.SERVER)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_handlerKRPCError(self) -> None:
        """A handler failing with KRPCError, returned or raised, answers with that code
        and message."""
        self.receive(self.query(b"refuse"))
        self.receive(self.query(b"raise"))
        refused, raised = self.replies()
        assert isinstance(refused, krpc.Error) and isinstance(raised, krpc.Error)
        self.assertEqual((refused.code, refused.message), (203, b"invalid token"))
        self.assertEqual((raised.code, raised.message), (201, b"go away"))

    def test_handlerMalformedArgument(self) -> None:
        """A handler raising MalformedMessage for a bad argument answers 203."""
        self.receive(self.query(b"badargs"))
        self.assertEqual(self.error().code, ErrorCode.PROTOCOL)

    def test_deferredHandler(self) -> None:
        """A handler's Deferred result is sent when it fires, not before."""
        self.receive(self.query(b"slow"))
        self.assertEqual(self.transport.written, [])
        assert self.controller.deferred is not None
        self.controller.deferred.callback({b"id": OUR_ID})
        self.assertEqual(self.response().nodeId, OUR_ID)

    def test_deferredHandlerFailure(self) -> None:
        """A handler's Deferred failing unexpectedly is answered with 202 and logged."""
        self.receive(self.query(b"slow"))
        assert self.controller.deferred is not None
        self.controller.deferred.errback(RuntimeError("late bug"))
        self.assertEqual(self.error().code, ErrorCode.SERVER)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_deferredAnswerThatCannotBeEncodedIsLogged(self) -> None:
        """A Deferred handler's answer that cannot be bencoded is logged, not swallowed,
        and the controller still hears the query was handled."""
        self.receive(self.query(b"slow"))
        assert self.controller.deferred is not None
        self.controller.deferred.callback({b"id": OUR_ID, b"x": 1.5})
        self.assertEqual(self.transport.written, [])
        self.assertEqual(len(self.flushLoggedErrors()), 1)
        self.assertEqual(len(self.controller.answered), 1)

    def test_oversizedReplyRefused(self) -> None:
        """A reply over 1,024 bytes is never sent; a 202 goes instead."""
        self.receive(self.query(b"huge"))
        [(data, _)] = self.transport.written
        self.assertLessEqual(len(data), krpc.MAX_REPLY_SIZE)
        self.assertEqual(self.error().code, ErrorCode.SERVER)

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
        """In read-only mode (BEP 43) no query is answered, not even with an error, and
        the controller is not told of any."""
        self.policy.readOnly = True
        self.receive(self.query(b"ping"))
        self.receive(bencoding.encode({b"t": b"zz", b"y": b"q", b"q": b"ping", b"a": {}}))
        self.assertEqual(self.transport.written, [])
        self.assertEqual(self.controller.answered, [])
        self.assertEqual(self.policy.counters["readOnly"], 2)

    def test_queryCounting(self) -> None:
        """Incoming queries are counted per known method, unknown ones under one key."""
        for method in (b"ping", b"ping", b"x1", b"x2"):
            self.receive(self.query(method))
        self.assertEqual(self.protocol.queriesIn, {b"ping": 2, b"other": 2})

    def test_trafficCounted(self) -> None:
        """Bytes in and out and replies sent are counted."""
        query = self.query(b"ping")
        self.receive(query)
        self.receive(self.query(b"vote"))
        counters = self.protocol.counters
        self.assertEqual(counters["bytesIn"], len(query) + len(self.query(b"vote")))
        self.assertEqual(counters["bytesOut"], sum(len(d) for d, _ in self.transport.written))
        self.assertEqual((counters["responsesSent"], counters["errorsSent"]), (1, 1))

    @given(st.binary(max_size=300))
    @settings(max_examples=300, deadline=None, derandomize=True)
    def test_arbitraryBytesNeverRaise(self, data: bytes) -> None:
        """Arbitrary bytes never raise from datagramReceived and cause at most one datagram."""
        before = len(self.transport.written)
        self.receive(data)
        self.assertLessEqual(len(self.transport.written) - before, 1)


class HandlerRegressionTests(ProtocolTestCase):
    """Queries that made datagramReceived raise, or went unanswered, before the redesign."""

    def test_zonedIPv6Source(self) -> None:
        """A query from a zoned IPv6 source (fe80::1%eth0) is answered to that source,
        its ip field without the zone, and nothing raises."""
        self.connect(FakeDatagramTransport(HOST6))
        self.receive(self.query(b"ping"), ZONED)
        self.receive(self.query(b"answer"), ZONED)
        self.receive(self.query(b"vote"), ZONED)
        self.assertEqual([address for _, address in self.transport.written], [ZONED] * 3)
        ping, answer, vote = self.replies()
        assert isinstance(ping, krpc.Response) and isinstance(answer, krpc.Response)
        self.assertEqual(ping.ip, ("fe80::1", 6881))
        self.assertEqual(answer.ip, ("fe80::1", 6881))
        assert isinstance(vote, krpc.Error)
        self.assertEqual(vote.code, ErrorCode.METHOD_UNKNOWN)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_handlerReturningNone(self) -> None:
        """A handler returning None (or anything but an answer) gets 202, logged; nothing
        raises."""
        self.receive(self.query(b"none"))
        self.receive(self.query(b"number"))
        codes = [reply.code for reply in self.replies() if isinstance(reply, krpc.Error)]
        self.assertEqual(codes, [ErrorCode.SERVER, ErrorCode.SERVER])
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 2)
        self.assertEqual(len(self.controller.answered), 2)

    def test_dropQuery(self) -> None:
        """A handler raising DropQuery, at once or through its Deferred, sends nothing and
        logs nothing; the controller is told, as for any well-formed query."""
        self.receive(self.query(b"drop"))
        self.receive(self.query(b"slow"))
        assert self.controller.deferred is not None
        self.controller.deferred.errback(DropQuery())
        self.assertEqual(self.transport.written, [])
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertEqual(len(self.controller.answered), 2)
        self.assertEqual(self.protocol.counters["errorsSent"], 0)

    def test_deferredOfNone(self) -> None:
        """A handler's Deferred firing with None gets 202, logged."""
        self.receive(self.query(b"slow"))
        assert self.controller.deferred is not None
        self.controller.deferred.callback(None)
        self.assertEqual(self.error().code, ErrorCode.SERVER)
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)

    def test_asyncHandler(self) -> None:
        """An async def handler's result is sent."""
        self.receive(self.query(b"async"))
        self.assertEqual(self.response().values, {b"id": OUR_ID, b"async": 1})

    def test_asyncHandlerAwaiting(self) -> None:
        """An async def handler awaiting a Deferred is answered once it returns, then the
        controller is told."""
        self.receive(self.query(b"asyncslow"))
        self.assertEqual(self.transport.written, [])
        self.assertEqual(self.controller.answered, [])
        assert self.controller.deferred is not None
        self.controller.deferred.callback(7)
        self.assertEqual(self.response().values, {b"id": OUR_ID, b"value": 7})
        [(_, _, sent)] = self.controller.answered
        self.assertEqual(sent, self.transport.written)

    def test_asyncHandlerRaising(self) -> None:
        """An async def handler raising gets 202, logged."""
        self.receive(self.query(b"asyncbroken"))
        self.assertEqual(self.error().code, ErrorCode.SERVER)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_controllerToldAfterReply(self) -> None:
        """The controller hears of a query only once its reply was sent, for immediate,
        Deferred and error answers alike."""
        self.receive(self.query(b"ping", tid=b"p1"))
        self.receive(self.query(b"vote", tid=b"v1"))
        self.receive(self.query(b"broken", tid=b"b1"))
        self.receive(self.query(b"slow", tid=b"s1"))
        assert self.controller.deferred is not None
        self.controller.deferred.callback({b"id": OUR_ID})
        self.flushLoggedErrors(RuntimeError)
        self.assertEqual(len(self.controller.answered), 4)
        for query, _, sent in self.controller.answered:
            self.assertEqual(krpc.decodeMessage(sent[-1][0]).tid, query.tid)

    def test_controllerFailureLogged(self) -> None:
        """A controller failing after a query is logged; the reply was sent anyway."""

        def broken(query: Query, address: Address) -> None:
            raise RuntimeError("controller bug")

        self.controller.queryAnswered = broken  # type: ignore[method-assign]
        self.receive(self.query(b"ping"))
        self.receive(self.query(b"vote"))
        self.assertEqual(len(self.replies()), 2)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)


class RuntimeLimitTests(ProtocolTestCase):
    """Limits off at construction take effect when turned on while running."""

    def pings(self, count: int) -> int:
        """How many of C{count} pings from PEER, all now, are answered."""
        before = len(self.transport.written)
        for _ in range(count):
            self.receive(self.query(b"ping"))
        return len(self.transport.written) - before

    def test_ipRateLimit(self) -> None:
        """The per-IP blocker, off at first, blocks a flooding IP once turned on."""
        self.assertEqual(self.pings(30), 30)
        self.policy.ipRateLimit = 1.0
        self.assertEqual(self.pings(30), 10)
        self.assertEqual(self.policy.counters["rateLimit"], 20)

    def test_queryRateLimit(self) -> None:
        """The global query budget, off at first, drops queries once turned on."""
        self.assertEqual(self.pings(30), 30)
        self.policy.queryRateLimit = 1.0
        self.assertEqual(self.pings(5), 2)
        self.assertEqual(self.policy.counters["queryLimit"], 3)
        self.clock.advance(1)
        self.assertEqual(self.pings(5), 1)

    def test_uploadLimit(self) -> None:
        """The upload budget, off at first, withholds replies once turned on."""
        self.assertEqual(self.pings(30), 30)
        size = len(self.transport.written[0][0])
        self.policy.uploadLimit = 100.0  # a burst of 300 bytes
        self.assertEqual(self.pings(30), 300 // size)
        self.assertEqual(self.policy.counters["uploadLimit"], 30 - 300 // size)

    def test_errorsPayUploadBudget(self) -> None:
        """Error replies spend the upload budget too."""
        self.policy.uploadLimit = 100.0
        for _ in range(30):
            self.receive(self.query(b"vote"))
        self.assertLess(len(self.transport.written), 30)
        self.assertGreater(self.policy.counters["uploadLimit"], 0)


class SendErrorTests(ProtocolTestCase):
    """Local send failures: counted for replies, failing our queries at once."""

    def test_replySendErrorsCounted(self) -> None:
        """A reply or error the transport refuses to send is counted, never raised."""
        for makeError in SEND_ERRORS:
            self.connect(RefusingTransport(HOST, makeError()))
            self.receive(self.query(b"ping"))
            self.receive(self.query(b"vote"))
            self.assertEqual(self.protocol.counters["sendErrors"], 2)
            self.assertEqual(self.protocol.counters["bytesOut"], 0)
            self.assertEqual(self.transport.written, [])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_querySendFailsAtOnce(self) -> None:
        """A query the transport refuses to send fails at once with SendFailed carrying
        the cause, leaving nothing pending and no timer."""
        for makeError in SEND_ERRORS:
            error = makeError()
            self.connect(RefusingTransport(HOST, error))
            d = self.protocol.query(PEER, b"ping", {b"id": OUR_ID}, TIMEOUT)
            failure = self.failureResultOf(d, SendFailed)
            self.assertIs(failure.value.reason, error)
            self.assertEqual(failure.value.address, PEER)
            self.assertEqual(self.protocol.pendingCount, 0)
            self.assertEqual(self.clock.getDelayedCalls(), [])
            self.assertEqual(self.protocol.counters["sendErrors"], 1)
            self.assertEqual(self.protocol.queriesOut, {})

    def test_portOutOfRangeFailsWithSendFailed(self) -> None:
        """A query to a port over 65535 (OverflowError from the socket) is a SendFailed."""
        d = self.protocol.query(("192.0.2.1", 70000), b"ping", {b"id": OUR_ID}, TIMEOUT)
        self.assertIsInstance(self.failureResultOf(d, SendFailed).value.reason, OverflowError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_sendFailedMessage(self) -> None:
        """SendFailed says where the query was going and why it could not go."""
        self.connect(RefusingTransport(HOST, OSError(errno.ENETUNREACH, "Network is unreachable")))
        d = self.protocol.query(("2001:db8::1", 6881), b"ping", {b"id": OUR_ID}, TIMEOUT)
        failure = self.failureResultOf(d, SendFailed)
        self.assertEqual(
            str(failure.value), "cannot send to [2001:db8::1]:6881: Network is unreachable"
        )

    def test_sendsAgainAfterFailure(self) -> None:
        """A failed send leaves the protocol working: the next query goes out."""
        sends: list[bool] = [False, True]
        transport = FakeDatagramTransport(HOST)
        realWrite = transport.write

        def flaky(packet: bytes, addr: Address | None = None) -> None:
            if not sends.pop(0):
                raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
            realWrite(packet, addr)

        transport.write = flaky  # type: ignore[method-assign]
        self.connect(transport)
        self.failureResultOf(self.protocol.query(PEER, b"ping", {b"id": OUR_ID}, TIMEOUT))
        d = self.protocol.query(PEER, b"ping", {b"id": OUR_ID}, TIMEOUT)
        [(data, _)] = self.transport.written
        self.receive(krpc.encodeResponse(krpc.decodeMessage(data).tid, {b"id": THEIR_ID}))
        self.assertEqual(self.successResultOf(d).nodeId, THEIR_ID)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class OutgoingQueryTests(ProtocolTestCase):
    def sentQuery(self) -> Query:
        data, address = self.transport.written[-1]
        self.assertEqual(address, PEER)
        message = krpc.decodeMessage(data)
        assert isinstance(message, Query)
        return message

    def ask(self, address: Address = PEER) -> Deferred[krpc.Response]:
        return self.protocol.query(address, b"ping", {b"id": OUR_ID}, TIMEOUT)

    def test_responseFiresDeferred(self) -> None:
        """A response from the queried address fires the query's Deferred with it."""
        d = self.ask()
        sent = self.sentQuery()
        self.assertEqual((sent.method, sent.nodeId), (b"ping", OUR_ID))
        self.assertEqual(sent.version, krpc.VERSION)
        self.assertTrue(2 <= len(sent.tid) <= 4)
        self.receive(krpc.encodeResponse(sent.tid, {b"id": THEIR_ID}))
        response = self.successResultOf(d)
        self.assertEqual(response.nodeId, THEIR_ID)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.protocol.queriesOut, {b"ping": 1})
        self.assertEqual(self.protocol.counters["responsesReceived"], 1)

    def test_errorFailsDeferred(self) -> None:
        """An error reply fails the Deferred with KRPCError carrying the code."""
        d = self.ask()
        self.receive(krpc.encodeError(self.sentQuery().tid, 204, "Method Unknown"))
        failure = self.failureResultOf(d, KRPCError)
        self.assertEqual(failure.value.code, 204)
        self.assertEqual(self.protocol.counters["errorsReceived"], 1)

    def test_timeout(self) -> None:
        """With no reply, the Deferred fails with QueryTimeout after the timeout."""
        d = self.protocol.query(PEER, b"ping", {b"id": OUR_ID}, 2)
        self.clock.advance(1.9)
        self.assertNoResult(d)
        self.clock.advance(0.2)
        self.failureResultOf(d, QueryTimeout)
        self.assertEqual(self.protocol.pendingCount, 0)
        self.assertEqual(self.protocol.counters["timeouts"], 1)

    def test_replyFromWrongAddressIgnored(self) -> None:
        """A reply carrying the right tid from another address does not fire the query."""
        d = self.ask()
        tid = self.sentQuery().tid
        self.receive(krpc.encodeResponse(tid, {b"id": THEIR_ID}), ("10.0.0.3", 6881))
        self.assertNoResult(d)
        self.receive(krpc.encodeResponse(tid, {b"id": THEIR_ID}))
        self.successResultOf(d)

    def test_cancelForgets(self) -> None:
        """Cancelling a query removes it and its timer; a late reply is then unknown."""
        d = self.ask()
        tid = self.sentQuery().tid
        d.cancel()
        self.failureResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.protocol.pendingCount, 0)
        self.receive(krpc.encodeResponse(tid, {b"id": THEIR_ID}))
        self.assertEqual(self.protocol.counters["unknownTransaction"], 1)

    def test_uniqueTransactionIds(self) -> None:
        """Pending queries to one address never share a transaction id."""
        for _ in range(2000):
            self.ask()
        tids = {krpc.decodeMessage(data).tid for data, _ in self.transport.written}
        self.assertEqual(len(tids), 2000)
        self.assertEqual(self.protocol.pendingCount, 2000)

    def test_fourByteTransactionIds(self) -> None:
        """Our transaction ids are 4 bytes: mainline 6+ (Pkarr) drops any other length."""
        for _ in range(50):
            self.ask()
        lengths = {len(krpc.decodeMessage(data).tid) for data, _ in self.transport.written}
        self.assertEqual(lengths, {4})

    def test_stopFailsPending(self) -> None:
        """stopProtocol fails every pending query and leaves no DelayedCall."""
        ds = [self.ask() for _ in range(3)]
        self.protocol.doStop()
        for d in ds:
            self.failureResultOf(d, ProtocolStopped)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.protocol.pendingCount, 0)

    def test_queryWhenStopped(self) -> None:
        """A query on a stopped protocol fails at once with ProtocolStopped."""
        self.protocol.doStop()
        self.failureResultOf(self.ask(), ProtocolStopped)

    def test_noReplyAfterStop(self) -> None:
        """A Deferred answer that fires after the protocol stopped sends nothing."""
        self.receive(self.query(b"slow"))
        self.protocol.doStop()
        assert self.controller.deferred is not None
        self.controller.deferred.callback({b"id": OUR_ID})
        self.assertEqual(self.transport.written, [])

    def test_readOnlyQueriesCarryRo(self) -> None:
        """Queries sent in read-only mode carry ro=1 (BEP 43)."""
        self.ask()
        self.assertFalse(self.sentQuery().readOnly)
        self.policy.readOnly = True
        self.ask()
        self.assertTrue(self.sentQuery().readOnly)

    def test_queriesMetered(self) -> None:
        """Our queries spend the upload budget, so replies can then be refused."""
        self.policy.uploadLimit = 10.0  # a burst of 30 bytes
        self.ask()
        self.receive(self.query(b"ping"))
        self.assertEqual(len(self.transport.written), 1)  # the query only
        self.assertEqual(self.policy.counters["uploadLimit"], 1)
