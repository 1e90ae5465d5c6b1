"""KRPCProtocol: KRPC over one UDP socket — decoding, dispatch of queries, pending transactions.

One query's path::

    datagramReceived -> policy.admitDatagram -> krpc.decodeMessage -> policy.admitQuery
      -> controller.handlerFor(method)(query, address)      (an Answer, or a Deferred of one)
      -> reply.buildResponse(..., policy.replyBudget(...)) -> policy.admitReply -> sendto
      -> controller.queryAnswered(query, address)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeAlias

from twisted.internet.defer import Deferred, fail
from twisted.internet.error import MessageLengthError
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from . import krpc
from .addresses import Address, packAddress
from .errors import (
    DropQuery,
    ErrorCode,
    KRPCError,
    MalformedMessage,
    ProtocolStopped,
    QueryTimeout,
    SendFailed,
)
from .interfaces import Handler, IKRPCController
from .krpc import Query, Response
from .reply import Answer, buildError, buildResponse
from .stats import Histogram, errorCodeLabel

_OTHER = b"other"

COUNTERS = (
    "datagramsIn",
    "datagramsOut",
    "bytesIn",
    "bytesOut",
    "malformed",
    "unknownTransaction",
    "responsesSent",
    "errorsSent",
    "responsesReceived",
    "errorsReceived",
    "timeouts",
    "sendErrors",
)
"""The names in L{KRPCProtocol.counters} (the admission policy counts its drops)."""

PACKED_ADDRESS_CACHE = 4096
"""Requester addresses whose compact form is kept for the ``ip`` of replies."""

_SEND_ERRORS = (OSError, ValueError, OverflowError, MessageLengthError)
"""What a UDP send raises for a local failure: OSError (no route, EAGAIN), ValueError
(Twisted's InvalidAddressError: a hostname, the wrong family), OverflowError (a port over
65535), MessageLengthError."""


_PendingQuery: TypeAlias = "tuple[Deferred[Response], IDelayedCall, float]"
"""One of our queries waiting for its reply: its Deferred, its timeout, when it was sent."""


class KRPCProtocol(DatagramProtocol):
    """One UDP socket speaking KRPC, answering through an L{IKRPCController}.

    Incoming queries go to the controller's handler for their method; what it answers
    goes back through L{twisted_dht.reply.buildResponse}, and every datagram, query and
    reply is checked with the controller's admission policy. Replies to our queries fire
    the Deferreds returned by L{query}. Malformed input and replies that match no pending
    query are dropped and counted, never answered (but for a malformed query whose
    transaction id could be read: error 203).
    """

    log = Logger()
    noisy = False

    def __init__(
        self,
        controller: IKRPCController,
        *,
        reactor: IReactorTime,
        version: bytes | None = krpc.VERSION,
    ) -> None:
        self.clock = reactor
        self.controller = controller
        self.policy = controller.policy
        self.version = version
        self._pending: dict[tuple[bytes, Address], _PendingQuery] = {}
        # Plain dicts: incrementing a Counter (a dict subclass) costs twice as much.
        self.queriesIn: dict[bytes, int] = {}
        """Queries received by method (C{b"other"} for unknown methods)."""
        self.queriesOut: dict[bytes, int] = {}
        """Queries sent by method."""
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        """Traffic and errors, by the names in L{COUNTERS}."""
        self.errorsSent: dict[str, int] = {}
        """Error replies sent, by code (L{errorCodeLabel})."""
        self.errorsReceived: dict[str, int] = {}
        """Error replies received to our queries, by code (L{errorCodeLabel})."""
        self.invalidQueries: dict[bytes, int] = {}
        """Queries answered with error 203, by method (as counted in L{queriesIn})."""
        self.roundTrips = Histogram()
        """Seconds from each of our queries to its reply."""
        self._packed: dict[Address, bytes] = {}
        """Compact forms of recent requesters' addresses (see L{PACKED_ADDRESS_CACHE})."""
        self._handlers: dict[bytes, Handler] = {}
        """The controller's handlers by method, filled on first use (only those that
        exist, so at most one entry per handler)."""
        self._sendReply: Callable[[bytes, Address], object] | None = None

    def startProtocol(self) -> None:
        """Choose how replies are sent (see L{_replySender})."""
        self._sendReply = _replySender(self.transport)

    # Receiving ---------------------------------------------------------------

    def datagramReceived(self, datagram: bytes, address: Address) -> None:
        """Handle one datagram from C{address}, a (host, port) pair; never raises."""
        try:  # the whole path: a try costs nothing in Python 3.11 until it catches
            counters = self.counters
            counters["datagramsIn"] += 1
            counters["bytesIn"] += len(datagram)
            policy = self.policy
            # Only the limits need the time: without them, no clock read per datagram.
            screens = policy.screens
            now = self.clock.seconds() if screens else 0.0
            if screens and not policy.admitDatagram(address[0], now):
                return
            try:
                message = krpc.decodeMessage(datagram)
            except MalformedMessage as e:
                counters["malformed"] += 1
                self.log.debug(
                    "Malformed datagram from {address}: {reason}", address=address, reason=e
                )
                if e.queryTid is not None and policy.admitQuery(now):
                    self._sendError(e.queryTid, ErrorCode.PROTOCOL, str(e), address, len(datagram))
                return
            if type(message) is Query:
                if not policy.screensQueries or policy.admitQuery(now):
                    message.size = len(datagram)
                    self._queryReceived(message, address)
            else:
                self._replyReceived(message, address)  # type: ignore[arg-type]
        except Exception:
            self.log.failure("Failed on a datagram from {address}", address=address)

    def _queryReceived(self, query: Query, address: Address) -> None:
        method = query.method
        handler = self._handlers.get(method)
        if handler is None:
            handler = self.controller.handlerFor(method)
            if handler is not None:
                self._handlers[method] = handler
        queriesIn = self.queriesIn
        counted = method if handler is not None else _OTHER
        queriesIn[counted] = queriesIn.get(counted, 0) + 1
        if handler is None:
            self._sendError(
                query.tid,
                ErrorCode.METHOD_UNKNOWN,
                "Method Unknown: " + method.decode("latin-1"),
                address,
                query.size,
            )
            self._answered(query, address)
            return
        try:
            result = handler(query, address)
        except Exception:
            self._handlerFailed(Failure(), query, address)
            self._answered(query, address)
            return
        kind = type(result)
        # The common answers first: isinstance against Deferred (an ABC) costs 0.1 us.
        if kind is bytes or kind is Answer or kind is dict:
            self._respond(result, query, address)
            # Not through _answered: datagramReceived logs what this raises.
            self.controller.queryAnswered(query, address)
            return
        if isinstance(result, Coroutine):
            result = Deferred.fromCoroutine(result)
        if not isinstance(result, Deferred):
            self._handlerFailed(
                Failure(TypeError(f"a handler returned {kind.__name__}")), query, address
            )
            self._answered(query, address)
            return
        result.addCallbacks(
            self._respondLater,
            self._handlerFailed,
            callbackArgs=(query, address),
            errbackArgs=(query, address),
        ).addBoth(self._answeredLater, query, address)

    def _answeredLater(self, result: object, query: Query, address: Address) -> None:
        if isinstance(result, Failure):
            self.log.failure("Cannot reply to {address}", result, address=address)
        self._answered(query, address)

    def _answered(self, query: Query, address: Address) -> None:
        try:
            self.controller.queryAnswered(query, address)
        except Exception:
            self.log.failure("The controller failed after a query from {address}", address=address)

    def _respondLater(self, answer: Any, query: Query, address: Address) -> None:
        """Reply with what a Deferred or coroutine handler gave, if it is an answer."""
        if type(answer) is not Answer and type(answer) is not bytes and type(answer) is not dict:
            self._handlerFailed(
                Failure(TypeError(f"a handler answered {type(answer).__name__}")), query, address
            )
            return
        self._respond(answer, query, address)

    def _respond(
        self, answer: Answer | bytes | dict[bytes, Any], query: Query, address: Address
    ) -> None:
        packed = self._packed.get(address)
        if packed is None:
            if len(self._packed) >= PACKED_ADDRESS_CACHE:
                self._packed.clear()
            packed = self._packed[address] = packAddress(address)
        policy = self.policy
        budget = policy.replyBudget(query, address) if type(answer) is Answer else 1024
        data = buildResponse(query.tid, answer, packed, self.version, budget)
        if data is None:
            self.log.error(
                "A handler's reply to {method} exceeds 1,024 bytes", method=query.method
            )
            self._sendError(query.tid, ErrorCode.SERVER, "Server Error", address, query.size)
            return
        if not policy.screensReplies or policy.admitReply(len(data)):
            self.counters["responsesSent"] += 1
            self._send(data, address)

    def _handlerFailed(self, failure: Failure, query: Query, address: Address) -> None:
        error = failure.value
        size = query.size
        if isinstance(error, DropQuery):
            return
        if isinstance(error, KRPCError | MalformedMessage):
            if isinstance(error, KRPCError):
                code, message = error.code, error.message
            else:
                code, message = ErrorCode.PROTOCOL, str(error)
            if code == ErrorCode.PROTOCOL:
                method = query.method if query.method in self._handlers else _OTHER
                self.invalidQueries[method] = self.invalidQueries.get(method, 0) + 1
            self._sendError(query.tid, code, message, address, size)
        else:
            self.log.failure(
                "Handler for {method} failed", failure, method=query.method.decode("latin-1")
            )
            self._sendError(query.tid, ErrorCode.SERVER, "Server Error", address, size)

    def _sendError(
        self, tid: bytes, code: int, message: str, address: Address, querySize: int
    ) -> None:
        """Send an error within the error budget of a C{querySize}-byte datagram."""
        policy = self.policy
        data = buildError(tid, code, message, self.version, policy.errorBudget(querySize))
        if data is None:
            policy.refusedAmplification()
            return
        if policy.admitReply(len(data)):
            self.counters["errorsSent"] += 1
            label = errorCodeLabel(code)
            self.errorsSent[label] = self.errorsSent.get(label, 0) + 1
            self._send(data, address)

    def _send(self, data: bytes, address: Address) -> None:
        send = self._sendReply
        if send is None:
            return
        try:
            send(data, address)
        except _SEND_ERRORS as e:
            self.counters["sendErrors"] += 1
            self.log.debug("Cannot reply to {address}: {error}", address=address, error=e)
            return
        counters = self.counters
        counters["datagramsOut"] += 1
        counters["bytesOut"] += len(data)

    def _replyReceived(self, reply: krpc.Response | krpc.Error, address: Address) -> None:
        pending = self._pending.pop((reply.tid, address), None)
        if pending is None:
            self.counters["unknownTransaction"] += 1
            return
        deferred, timer, sentAt = pending
        timer.cancel()
        self.roundTrips.observe(self.clock.seconds() - sentAt)
        if type(reply) is Response:
            self.counters["responsesReceived"] += 1
            deferred.callback(reply)
        else:
            self.counters["errorsReceived"] += 1
            assert isinstance(reply, krpc.Error)
            label = errorCodeLabel(reply.code)
            self.errorsReceived[label] = self.errorsReceived.get(label, 0) + 1
            deferred.errback(KRPCError(reply.code, reply.message.decode("utf-8", "replace")))

    # Sending -----------------------------------------------------------------

    def query(
        self, address: Address, method: bytes, args: dict[bytes, Any], timeout: float
    ) -> Deferred[Response]:
        """Send a query; C{args} must hold our C{id}.

        @return: a Deferred that fires with the L{Response}, or fails with L{KRPCError},
            L{QueryTimeout}, L{SendFailed} (at once: nothing is left pending) or
            L{ProtocolStopped}; cancelling it forgets the query.
        """
        transport = self.transport
        if transport is None:
            return fail(ProtocolStopped("the protocol is not running"))
        tid = self._newTid(address)
        data = krpc.encodeQuery(
            tid, method, args, version=self.version, readOnly=self.policy.readOnly
        )
        try:
            transport.write(data, address)  # type: ignore[attr-defined]
        except _SEND_ERRORS as e:
            self.counters["sendErrors"] += 1
            return fail(SendFailed(address, e))
        self.counters["datagramsOut"] += 1
        self.counters["bytesOut"] += len(data)
        self.queriesOut[method] = self.queriesOut.get(method, 0) + 1
        self.policy.meterQuery(len(data))
        key = (tid, address)

        def cancel(deferred: Deferred[Response]) -> None:
            entry = self._pending.pop(key, None)
            if entry is not None:
                entry[1].cancel()

        deferred: Deferred[Response] = Deferred(cancel)
        clock = self.clock
        self._pending[key] = (
            deferred,
            clock.callLater(timeout, self._timedOut, key),
            clock.seconds(),
        )
        return deferred

    def _newTid(self, address: Address) -> bytes:
        """A random 4-byte transaction id not pending to C{address}: 4 bytes, as jech/dht
        and bootstrap-dht use, and the only length mainline 6+ (Pkarr) accepts."""
        pending = self._pending
        while True:
            tid = os.urandom(4)
            if (tid, address) not in pending:
                return tid

    def _timedOut(self, key: tuple[bytes, Address]) -> None:
        entry = self._pending.pop(key, None)
        if entry is not None:
            self.counters["timeouts"] += 1
            host, port = key[1]
            entry[0].errback(QueryTimeout(f"no reply from {host}:{port}"))

    @property
    def pendingCount(self) -> int:
        """How many of our queries await a reply."""
        return len(self._pending)

    def stopProtocol(self) -> None:
        """Cancel every pending timer and fail every pending query."""
        pending, self._pending = self._pending, {}
        self._sendReply = None
        for deferred, timer, _ in pending.values():
            timer.cancel()
            deferred.errback(ProtocolStopped("the protocol stopped"))
        self.transport = None


def _replySender(transport: Any) -> Callable[[bytes, Address], object]:
    """How replies are sent: the socket's own C{sendto} when the transport has one.

    Speed: a reply goes back to the address a datagram came from, as the socket reported
    it, so Twisted's C{Port.write} re-checking that it is an IP literal of the socket's
    family (four parses, about a tenth of the CPU when answering pings) is skipped.
    Queries, whose address comes from callers, keep the check.
    """
    socket = getattr(transport, "socket", None)
    sendto = getattr(socket, "sendto", None)
    return sendto if sendto is not None else transport.write  # type: ignore[no-any-return]
