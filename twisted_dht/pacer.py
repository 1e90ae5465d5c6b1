"""QueryPacer: our outgoing queries at a bounded rate, the excess in a bounded queue."""

from __future__ import annotations

import contextlib
from collections import deque
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from .addresses import Address
from .errors import ProtocolStopped, QueryDropped
from .interfaces import SendQuery
from .krpc import Response
from .ratelimit import TokenBucket


class _QueuedQuery:
    """A query waiting for the outgoing query rate."""

    __slots__ = ("address", "args", "deferred", "method", "sent", "timeout")

    def __init__(
        self, address: Address, method: bytes, args: dict[bytes, Any], timeout: float | None
    ) -> None:
        self.address = address
        self.method = method
        self.args = args
        self.timeout = timeout
        self.deferred: Deferred[Response] = Deferred()
        self.sent: Deferred[Response] | None = None
        """The query's Deferred once it is sent."""


class QueryPacer:
    """Send queries through C{send} within C{bucket}'s rate; the excess waits, in order.

    At most C{maxQueued} queries wait; beyond that a query fails at once with
    L{QueryDropped} (counted in C{dropped}). Cancelling a waiting query removes it;
    cancelling a sent one cancels the query. L{stop} fails every waiting query. A C{send}
    that raises fails only its own query: the queue keeps draining.
    """

    def __init__(
        self, send: SendQuery, bucket: TokenBucket, maxQueued: int, reactor: IReactorTime
    ) -> None:
        self.send = send
        self.bucket = bucket
        self.maxQueued = maxQueued
        self.reactor = reactor
        self.dropped = 0
        self._queued: deque[_QueuedQuery] = deque()
        self._drainTimer: IDelayedCall | None = None

    def __len__(self) -> int:
        """How many queries wait."""
        return len(self._queued)

    def submit(
        self, address: Address, method: bytes, args: dict[bytes, Any], timeout: float | None
    ) -> Deferred[Response]:
        """Send now if the rate allows and nothing waits, else queue (or drop when full)."""
        if not self._queued and self.bucket.take():
            return self._sendOne(address, method, args, timeout)
        if len(self._queued) >= self.maxQueued:
            self.dropped += 1
            return fail(QueryDropped("too many queries wait for the query-rate limit"))
        entry = _QueuedQuery(address, method, args, timeout)

        def cancel(deferred: Deferred[Response]) -> None:
            if entry.sent is not None:
                entry.sent.cancel()
                return
            with contextlib.suppress(ValueError):
                self._queued.remove(entry)

        entry.deferred = Deferred(cancel)
        self._queued.append(entry)
        self._scheduleDrain()
        return entry.deferred

    def stop(self) -> None:
        """Cancel the drain timer and fail every waiting query with L{ProtocolStopped}."""
        if self._drainTimer is not None and self._drainTimer.active():
            self._drainTimer.cancel()
        self._drainTimer = None
        queued, self._queued = self._queued, deque()
        for entry in queued:
            entry.deferred.errback(ProtocolStopped("the node stopped"))

    def _scheduleDrain(self) -> None:
        if self._drainTimer is None and self._queued:
            self._drainTimer = self.reactor.callLater(self.bucket.delay(), self._drain)

    def _drain(self) -> None:
        """Send the waiting queries the rate allows now."""
        self._drainTimer = None
        while self._queued and self.bucket.take():
            entry = self._queued.popleft()
            entry.sent = self._sendOne(entry.address, entry.method, entry.args, entry.timeout)
            entry.sent.chainDeferred(entry.deferred)
        self._scheduleDrain()

    def _sendOne(
        self, address: Address, method: bytes, args: dict[bytes, Any], timeout: float | None
    ) -> Deferred[Response]:
        try:
            return self.send(address, method, args, timeout)
        except Exception:
            return fail()
