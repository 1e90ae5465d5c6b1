"""Tests for L{twisted_dht.periodic}: a job on a Clock that outlives its failures."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht.periodic import Periodic

INTERVAL = 60.0


class PeriodicTests(SynchronousTestCase):
    """Periodic on a Clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.calls: list[float] = []

    def periodic(self, function: Callable[[], object] | None = None) -> Periodic:
        """A Periodic of C{function} (by default one that records the time it ran),
        stopped at the end of the test."""

        def record() -> None:
            self.calls.append(self.clock.seconds())

        job = Periodic(record if function is None else function, INTERVAL, self.clock, "Test job")
        self.addCleanup(job.stop)
        return job

    def test_runsEveryInterval(self) -> None:
        """Once started, the function runs one interval from now and every interval after."""
        job = self.periodic()
        job.start()
        self.assertTrue(job.running)
        self.assertEqual(self.calls, [])
        self.clock.advance(INTERVAL - 1)
        self.assertEqual(self.calls, [])
        self.clock.advance(1)
        self.clock.advance(INTERVAL)
        self.clock.advance(INTERVAL)
        self.assertEqual(self.calls, [INTERVAL, 2 * INTERVAL, 3 * INTERVAL])
        self.assertEqual(job.failures, 0)

    def test_raisingFunctionRunsAgain(self) -> None:
        """A function that raises is logged, counted, and called again at the next
        interval."""
        calls: list[float] = []

        def broken() -> None:
            calls.append(self.clock.seconds())
            raise OSError("disk full")

        job = self.periodic(broken)
        job.start()
        self.clock.advance(INTERVAL)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertEqual(job.failures, 1)
        self.assertTrue(job.running)
        self.clock.advance(INTERVAL)
        self.clock.advance(INTERVAL)
        self.assertEqual(calls, [INTERVAL, 2 * INTERVAL, 3 * INTERVAL])
        self.assertEqual(job.failures, 3)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 2)

    def test_recoversAfterAFailure(self) -> None:
        """A run that fails once does not stop later runs, which succeed."""
        calls: list[float] = []

        def flaky() -> None:
            calls.append(self.clock.seconds())
            if len(calls) == 1:
                raise RuntimeError("once")

        job = self.periodic(flaky)
        job.start()
        self.clock.advance(INTERVAL)
        self.clock.advance(INTERVAL)
        self.assertEqual(calls, [INTERVAL, 2 * INTERVAL])
        self.assertEqual(job.failures, 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_failingDeferredRunsAgain(self) -> None:
        """A function whose Deferred fails is logged, counted, and called again at the
        next interval."""
        calls: list[float] = []

        def broken() -> Deferred[None]:
            calls.append(self.clock.seconds())
            return fail(ValueError("no route"))

        job = self.periodic(broken)
        job.start()
        self.clock.advance(INTERVAL)
        self.assertEqual(job.failures, 1)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.clock.advance(INTERVAL)
        self.assertEqual(calls, [INTERVAL, 2 * INTERVAL])
        self.assertEqual(job.failures, 2)
        self.assertTrue(job.running)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    def test_laterFailingDeferredRunsAgain(self) -> None:
        """A Deferred that fails some time after the run started is logged and counted,
        and the job runs again at the next interval after that."""
        pending: list[Deferred[None]] = []

        def slow() -> Deferred[None]:
            d: Deferred[None] = Deferred()
            pending.append(d)
            return d

        job = self.periodic(slow)
        job.start()
        self.clock.advance(INTERVAL)
        self.assertEqual(len(pending), 1)
        self.clock.advance(INTERVAL / 2)
        pending[0].errback(ValueError("late"))
        self.assertEqual(job.failures, 1)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.clock.advance(INTERVAL)
        self.assertEqual(len(pending), 2)

    def test_succeedingDeferredNotCounted(self) -> None:
        """A function whose Deferred succeeds is not counted as failing."""
        job = self.periodic(lambda: succeed(None))
        job.start()
        self.clock.advance(INTERVAL)
        self.clock.advance(INTERVAL)
        self.assertEqual(job.failures, 0)
        self.assertTrue(job.running)

    def test_stopCancels(self) -> None:
        """Stopping leaves no pending timer, and the function is not called again."""
        job = self.periodic()
        job.start()
        self.clock.advance(INTERVAL)
        job.stop()
        self.assertFalse(job.running)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(10 * INTERVAL)
        self.assertEqual(self.calls, [INTERVAL])

    def test_stopTwiceAndStopUnstarted(self) -> None:
        """Stopping a job that never started, or stopping twice, is harmless."""
        job = self.periodic()
        job.stop()
        job.start()
        job.stop()
        job.stop()
        self.assertFalse(job.running)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_startTwiceHarmless(self) -> None:
        """Starting a running job schedules no second timer and does not double the calls."""
        job = self.periodic()
        job.start()
        job.start()
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(INTERVAL)
        self.assertEqual(self.calls, [INTERVAL])

    def test_restart(self) -> None:
        """A stopped job can be started again, one interval from the restart."""
        job = self.periodic()
        job.start()
        job.stop()
        self.clock.advance(INTERVAL / 2)
        job.start()
        self.assertTrue(job.running)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(INTERVAL)
        self.assertEqual(self.calls, [1.5 * INTERVAL])

    def test_stopAfterFailureLeavesNoTimer(self) -> None:
        """A job that has failed still stops cleanly, leaving no pending timer."""

        def broken() -> None:
            raise RuntimeError("bug")

        job = self.periodic(broken)
        job.start()
        self.clock.advance(INTERVAL)
        self.flushLoggedErrors(RuntimeError)
        job.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
