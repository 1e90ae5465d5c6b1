"""KRPCProtocol: KRPC over UDP — decoding, dispatch of queries, pending transactions."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.internet import udp
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from . import krpc
from .errors import (
    ErrorCode,
    KRPCError,
    MalformedMessage,
    ProtocolStopped,
    QueryTimeout,
)
from .interfaces import IKRPCController
from .krpc import Address, Query, Response
from .ratelimit import DoSBlocker, TokenBucket

DEFAULT_TIMEOUT = 10.0
"""Seconds an outgoing query waits for its reply."""

ERROR_AMPLIFICATION = 4
"""An error reply is at most this many times the size of the datagram that caused it."""

_OTHER = b"other"

COUNTERS = (
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
    "droppedReadOnly",
    "droppedRateLimit",
    "droppedQueryLimit",
    "droppedUploadLimit",
    "droppedAmplification",
)
"""The names in L{KRPCProtocol.counters}."""

PACKED_ADDRESS_CACHE = 4096
"""Requester addresses whose compact form is kept for the ``ip`` of replies."""


class KRPCProtocol(DatagramProtocol):
    """One UDP socket speaking KRPC.

    Incoming queries go to C{controller.krpc_<method>(query, address)}, which returns the
    reply's C{r} dictionary (or that dictionary bencoded) or a Deferred of it, or raises
    L{KRPCError} (or L{MalformedMessage}, answered with 203); the reply goes back from
    this socket.
    Replies to our queries fire the Deferreds returned by L{query}. Malformed input and
    replies that match no pending query are dropped and counted, never answered.

    Optional limits, checked in this order: C{blocker} (a L{DoSBlocker}) sees every
    datagram and drops those of flooding IPs; C{queryLimiter} (a L{TokenBucket} of
    queries) drops queries over the global rate; C{uploadLimiter} (a L{TokenBucket} of
    bytes) is spent by everything we send and drops a reply that it cannot pay for. All
    drops are silent and counted (C{droppedRateLimit}, C{droppedQueryLimit},
    C{droppedUploadLimit}). Error replies never exceed L{ERROR_AMPLIFICATION} times the
    datagram that caused them.
    """

    log = Logger()
    noisy = False

    def __init__(
        self,
        controller: IKRPCController,
        *,
        reactor: IReactorTime | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        readOnly: bool = False,
        version: bytes | None = krpc.VERSION,
        blocker: DoSBlocker | None = None,
        queryLimiter: TokenBucket | None = None,
        uploadLimiter: TokenBucket | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor  # type: ignore[assignment]
        self.reactor: IReactorTime = reactor  # type: ignore[assignment]
        self.controller = controller
        self.timeout = timeout
        self.readOnly = readOnly
        self.version = version
        self.blocker = blocker if blocker is not None and blocker.enabled else None
        self.queryLimiter = (
            queryLimiter if queryLimiter is not None and queryLimiter.enabled else None
        )
        self.uploadLimiter = (
            uploadLimiter if uploadLimiter is not None and uploadLimiter.enabled else None
        )
        self._pending: dict[tuple[bytes, Address], tuple[Deferred[Response], IDelayedCall]] = {}
        # Plain dicts: incrementing a Counter (a dict subclass) costs twice as much.
        self.queriesIn: dict[bytes, int] = {}
        """Queries received by method (C{b"other"} for unknown methods)."""
        self.queriesOut: dict[bytes, int] = {}
        """Queries sent by method."""
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        """Traffic, errors and drops, by the names in L{COUNTERS}."""
        self._packed: dict[Address, bytes] = {}
        """Compact forms of recent requesters' addresses (see L{PACKED_ADDRESS_CACHE})."""
        self._handlers: dict[bytes, Callable[[Query, Address], Any]] = {}
        """The controller's bound C{krpc_*} methods by wire name, filled on first use.
        Only methods that exist are stored, so it holds at most one entry per handler."""

    # Receiving ---------------------------------------------------------------

    def datagramReceived(self, datagram: bytes, address: Address) -> None:
        """Handle one datagram from C{address}, a (host, port) pair; never raises."""
        counters = self.counters
        counters["bytesIn"] += len(datagram)
        # Only the limits need the time: without them, no clock read per datagram.
        limited = self.blocker is not None or self.queryLimiter is not None
        now = self.reactor.seconds() if limited else 0.0
        if self.blocker is not None and not self.blocker.allow(address[0], now):
            counters["droppedRateLimit"] += 1
            return
        try:
            message = krpc.decodeMessage(datagram)
        except MalformedMessage as e:
            counters["malformed"] += 1
            self.log.debug(
                "Malformed datagram from {address}: {reason}", address=address, reason=e
            )
            if e.queryTid is not None and not self.readOnly and self._admitQuery(now):
                self._sendError(e.queryTid, ErrorCode.PROTOCOL, str(e), address, len(datagram))
            return
        except Exception:
            counters["malformed"] += 1
            self.log.failure(
                "Unexpected failure decoding a datagram from {address}", address=address
            )
            return
        if type(message) is Query:
            if self.readOnly:
                counters["droppedReadOnly"] += 1
                return
            if self.queryLimiter is not None and not self._admitQuery(now):
                return
            message.size = len(datagram)
            self._queryReceived(message, address)
        else:
            self._replyReceived(message, address)  # type: ignore[arg-type]

    def _admitQuery(self, now: float) -> bool:
        """Whether the global query budget lets one more query in (counted when not)."""
        if self.queryLimiter is None or self.queryLimiter.take(1.0, now):
            return True
        self.counters["droppedQueryLimit"] += 1
        return False

    def _queryReceived(self, query: Query, address: Address) -> None:
        method = query.method
        handler = self._handlers.get(method)
        if handler is None:
            handler = getattr(self.controller, "krpc_" + method.decode("ascii", "replace"), None)
            if handler is not None:
                self._handlers[method] = handler
        queriesIn = self.queriesIn
        counted = method if handler is not None else _OTHER
        queriesIn[counted] = queriesIn.get(counted, 0) + 1
        try:
            self.controller.queryReceived(query, address)
        except Exception:
            self.log.failure("Controller failed on a query from {address}", address=address)
        if handler is None:
            self._sendError(
                query.tid,
                ErrorCode.METHOD_UNKNOWN,
                "Method Unknown: " + method.decode("latin-1"),
                address,
                query.size,
            )
            return
        try:
            result = handler(query, address)
        except Exception:
            self._handlerFailed(Failure(), query, address)
            return
        # Most handlers return a dict or bytes: test that first, as isinstance against
        # Deferred (an ABC) costs about 0.1 us.
        kind = type(result)
        if kind is not dict and kind is not bytes and isinstance(result, Deferred):
            result.addCallbacks(
                self._sendResponse,
                self._handlerFailed,
                callbackArgs=(query, address),
                errbackArgs=(query, address),
            )
        else:
            self._sendResponse(result, query, address)

    def _sendResponse(
        self, values: dict[bytes, Any] | bytes, query: Query, address: Address
    ) -> None:
        packed = self._packed.get(address)
        if packed is None:
            if len(self._packed) >= PACKED_ADDRESS_CACHE:
                self._packed.clear()
            packed = self._packed[address] = krpc.packAddress(address)
        data = krpc.encodeResponse(query.tid, values, requester=packed, version=self.version)
        if len(data) > krpc.MAX_REPLY_SIZE:
            self.log.error(
                "Refusing to send a {size}-byte reply to {method}",
                size=len(data),
                method=query.method,
            )
            self._sendError(query.tid, ErrorCode.SERVER, "Server Error", address, query.size)
            return
        if self.uploadLimiter is not None and self._overBudget(data):
            return
        self.counters["responsesSent"] += 1
        self._write(data, address, reply=True)

    def _overBudget(self, data: bytes) -> bool:
        """Whether the upload budget refuses a reply of C{data} (counted when it does)."""
        if self.uploadLimiter is None or self.uploadLimiter.take(len(data)):
            return False
        self.counters["droppedUploadLimit"] += 1
        return True

    def _handlerFailed(self, failure: Failure, query: Query, address: Address) -> None:
        error = failure.value
        size = query.size
        if isinstance(error, KRPCError):
            self._sendError(query.tid, error.code, error.message, address, size)
        elif isinstance(error, MalformedMessage):
            self._sendError(query.tid, ErrorCode.PROTOCOL, str(error), address, size)
        else:
            self.log.failure(
                "Handler for {method} failed", failure, method=query.method.decode("latin-1")
            )
            self._sendError(query.tid, ErrorCode.SERVER, "Server Error", address, size)

    def _sendError(
        self, tid: bytes, code: int, message: str, address: Address, querySize: int = 0
    ) -> None:
        """Send an error, its message cut so that it stays within L{ERROR_AMPLIFICATION}
        times C{querySize} (when known); dropped if even an empty message does not fit."""
        text = message[:200].encode("utf-8", "replace")
        data = krpc.encodeError(tid, code, text, version=self.version)
        if querySize:
            excess = len(data) - ERROR_AMPLIFICATION * querySize
            if excess > 0:
                text = text[: max(0, len(text) - excess)]
                data = krpc.encodeError(tid, code, text, version=self.version)
                if len(data) > ERROR_AMPLIFICATION * querySize:
                    self.counters["droppedAmplification"] += 1
                    return
        if self._overBudget(data):
            return
        self.counters["errorsSent"] += 1
        self._write(data, address, reply=True)

    def _replyReceived(self, reply: krpc.Response | krpc.Error, address: Address) -> None:
        pending = self._pending.pop((reply.tid, address), None)
        if pending is None:
            self.counters["unknownTransaction"] += 1
            return
        deferred, timer = pending
        timer.cancel()
        if type(reply) is Response:
            self.counters["responsesReceived"] += 1
            deferred.callback(reply)
        else:
            self.counters["errorsReceived"] += 1
            assert isinstance(reply, krpc.Error)
            deferred.errback(KRPCError(reply.code, reply.message.decode("utf-8", "replace")))

    # Sending -----------------------------------------------------------------

    def query(
        self,
        address: Address,
        method: bytes,
        args: dict[bytes, Any],
        timeout: float | None = None,
    ) -> Deferred[Response]:
        """Send a query; C{args} must hold our C{id}.

        @return: a Deferred that fires with the L{Response}, or fails with L{KRPCError},
            L{QueryTimeout} or L{ProtocolStopped}; cancelling it forgets the query.
        """
        if self.transport is None:
            return _failed(ProtocolStopped("the protocol is not running"))
        key = (self._newTid(address), address)

        def cancel(deferred: Deferred[Response]) -> None:
            entry = self._pending.pop(key, None)
            if entry is not None:
                entry[1].cancel()

        deferred: Deferred[Response] = Deferred(cancel)
        timer = self.reactor.callLater(
            self.timeout if timeout is None else timeout, self._timedOut, key
        )
        self._pending[key] = (deferred, timer)
        data = krpc.encodeQuery(key[0], method, args, version=self.version, readOnly=self.readOnly)
        self.queriesOut[method] = self.queriesOut.get(method, 0) + 1
        if self.uploadLimiter is not None:
            self.uploadLimiter.spend(len(data))
        self._write(data, address)
        return deferred

    def _newTid(self, address: Address) -> bytes:
        pending = self._pending
        for length in (2, 2, 2, 4, 4, 4):
            tid = os.urandom(length)
            if (tid, address) not in pending:
                return tid
        while True:  # pragma: no cover - needs ~2**32 queries pending to one address
            tid = os.urandom(8)
            if (tid, address) not in pending:
                return tid

    def _timedOut(self, key: tuple[bytes, Address]) -> None:
        entry = self._pending.pop(key, None)
        if entry is not None:
            self.counters["timeouts"] += 1
            entry[0].errback(QueryTimeout(f"no reply from {key[1][0]}:{key[1][1]}"))

    def _write(self, data: bytes, address: Address, reply: bool = False) -> None:
        """Send C{data} to C{address}; a C{reply} skips Twisted's address check.

        A reply (response or error) goes back to the address a datagram came from, as
        the socket reported it; C{udp.Port.write} would parse it again to check that it
        is an IP literal of the socket's family (four parses, about a tenth of the CPU
        when answering pings), so replies use the socket's C{sendto} directly. Queries,
        whose address comes from callers, keep the check.
        """
        transport = self.transport
        if transport is None:
            return
        try:
            if reply and isinstance(transport, udp.Port):
                transport.socket.sendto(data, address)
            else:
                transport.write(data, address)
        except OSError as e:
            self.counters["sendErrors"] += 1
            self.log.debug("Cannot send to {address}: {error}", address=address, error=e)
            return
        self.counters["bytesOut"] += len(data)

    @property
    def pendingCount(self) -> int:
        """How many of our queries await a reply."""
        return len(self._pending)

    def stopProtocol(self) -> None:
        """Cancel every pending timer and fail every pending query."""
        pending, self._pending = self._pending, {}
        for deferred, timer in pending.values():
            timer.cancel()
            deferred.errback(ProtocolStopped("the protocol stopped"))
        self.transport = None


def _failed(error: Exception) -> Deferred[Response]:
    deferred: Deferred[Response] = Deferred()
    deferred.errback(error)
    return deferred
