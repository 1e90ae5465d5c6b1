"""Tests for twisted_dht.pacer: outgoing queries at a bounded rate, the excess queued."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht.addresses import Address
from twisted_dht.errors import ProtocolStopped, QueryDropped
from twisted_dht.krpc import Response
from twisted_dht.pacer import QueryPacer
from twisted_dht.ratelimit import TokenBucket

PEER = ("192.0.2.1", 6881)


class RecordingSender:
    """A send callable that records each query and hands back a Deferred to fire."""

    def __init__(self) -> None:
        self.sent: list[tuple[Address, bytes, dict[bytes, Any], float | None]] = []
        self.deferreds: list[Deferred[Response]] = []
        self.cancelled = 0
        self.failOn: set[bytes] = set()
        """Methods whose send raises, as a buggy or broken send path would."""

    def __call__(
        self, address: Address, method: bytes, args: dict[bytes, Any], timeout: float | None
    ) -> Deferred[Response]:
        if method in self.failOn:
            raise RuntimeError(f"cannot send {method!r}")
        self.sent.append((address, method, args, timeout))

        def cancel(deferred: Deferred[Response]) -> None:
            self.cancelled += 1

        deferred: Deferred[Response] = Deferred(cancel)
        self.deferreds.append(deferred)
        return deferred

    @property
    def methods(self) -> list[bytes]:
        return [method for _, method, _, _ in self.sent]


class QueryPacerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.send = RecordingSender()
        # 10 queries per second, a burst of 2, at most 3 waiting.
        bucket = TokenBucket(10, 2, reactor=self.clock)
        self.pacer = QueryPacer(self.send, bucket, maxQueued=3, reactor=self.clock)

    def submit(self, method: bytes, timeout: float | None = None) -> Deferred[Response]:
        return self.pacer.submit(PEER, method, {b"target": b"t" * 20}, timeout)

    def test_withinRateSentAtOnce(self) -> None:
        """Queries within the burst go out at once, with their arguments and timeout."""
        self.submit(b"a", 2.5)
        self.submit(b"b")
        self.assertEqual(
            self.send.sent,
            [
                (PEER, b"a", {b"target": b"t" * 20}, 2.5),
                (PEER, b"b", {b"target": b"t" * 20}, None),
            ],
        )
        self.assertEqual(len(self.pacer), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_excessWaitsAndGoesInOrder(self) -> None:
        """Beyond the burst, queries wait and go out in order as the rate allows."""
        for method in (b"a", b"b", b"c", b"d"):
            self.submit(method)
        self.assertEqual(self.send.methods, [b"a", b"b"])
        self.assertEqual(len(self.pacer), 2)
        self.clock.advance(0.1)
        self.assertEqual(self.send.methods, [b"a", b"b", b"c"])
        self.clock.advance(0.1)
        self.assertEqual(self.send.methods, [b"a", b"b", b"c", b"d"])
        self.assertEqual(len(self.pacer), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_nothingOvertakesTheQueue(self) -> None:
        """A query submitted while others wait queues behind them, even with a token."""
        for method in (b"a", b"b", b"c"):
            self.submit(method)
        self.clock.advance(0.25)  # the drain sends c; a token is left over
        self.assertEqual(self.send.methods, [b"a", b"b", b"c"])
        self.submit(b"d")
        self.assertEqual(self.send.methods[-1], b"d")

    def test_replyReachesCaller(self) -> None:
        """A queued query's reply fires the Deferred the caller was given."""
        self.submit(b"a")
        self.submit(b"b")
        waiting = self.submit(b"c")
        self.clock.advance(0.1)
        response = Response(tid=b"aa", values={b"id": b"i" * 20})
        self.send.deferreds[2].callback(response)
        self.assertIs(self.successResultOf(waiting), response)

    def test_fullQueueDrops(self) -> None:
        """With C{maxQueued} waiting, a query fails at once with QueryDropped, counted."""
        for method in (b"a", b"b", b"c", b"d", b"e"):
            self.submit(method)
        dropped = self.submit(b"f")
        self.failureResultOf(dropped, QueryDropped)
        self.assertEqual(self.pacer.dropped, 1)
        self.assertEqual(len(self.pacer), 3)

    def test_cancelWaitingRemovesIt(self) -> None:
        """Cancelling a waiting query removes it from the queue: it is never sent."""
        self.submit(b"a")
        self.submit(b"b")
        waiting = self.submit(b"c")
        waiting.cancel()
        self.failureResultOf(waiting, CancelledError)
        self.assertEqual(len(self.pacer), 0)
        self.clock.advance(1)
        self.assertEqual(self.send.methods, [b"a", b"b"])

    def test_cancelSentCancelsQuery(self) -> None:
        """Cancelling a queued query after it was sent cancels the query itself."""
        self.submit(b"a")
        self.submit(b"b")
        waiting = self.submit(b"c")
        self.clock.advance(0.1)
        waiting.cancel()
        self.assertEqual(self.send.cancelled, 1)
        self.failureResultOf(waiting, CancelledError)

    def test_stopFailsWaiting(self) -> None:
        """L{QueryPacer.stop} fails every waiting query and leaves no timer."""
        self.submit(b"a")
        self.submit(b"b")
        waiting = [self.submit(b"c"), self.submit(b"d")]
        self.pacer.stop()
        for deferred in waiting:
            self.failureResultOf(deferred, ProtocolStopped)
        self.assertEqual(len(self.pacer), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_sendRaisingAtOnceFailsOnlyItsQuery(self) -> None:
        """A send that raises fails that query's Deferred instead of raising to the caller."""
        self.send.failOn.add(b"bad")
        self.failureResultOf(self.submit(b"bad"), RuntimeError)
        self.submit(b"good")
        self.assertEqual(self.send.methods, [b"good"])

    def test_sendRaisingWhileDrainingKeepsDraining(self) -> None:
        """A queued query whose send raises fails alone; the ones behind it still go."""
        self.send.failOn.add(b"bad")
        self.submit(b"a")
        self.submit(b"b")
        bad = self.submit(b"bad")
        after = self.submit(b"c")
        self.clock.advance(0.1)
        self.failureResultOf(bad, RuntimeError)
        self.assertNoResult(after)
        self.clock.advance(0.1)
        self.assertEqual(self.send.methods, [b"a", b"b", b"c"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_rateOff(self) -> None:
        """A rate of 0 sends everything at once."""
        self.pacer.bucket.setRate(0)
        for index in range(20):
            self.submit(bytes([index]))
        self.assertEqual(len(self.send.sent), 20)
