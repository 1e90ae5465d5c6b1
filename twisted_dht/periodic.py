"""Periodic: a job on an injected clock that outlives its own failures."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure


class Periodic:
    """Call C{function} every C{interval} seconds of C{clock} between L{start} and L{stop}.

    Starting a running one, or stopping a stopped one, does nothing. A failure of
    C{function} (an exception, or a Deferred that fails) is logged as C{description}
    failing, and the job runs again at the next interval: a daemon's token rotation or
    state save must not end for good on one full disk.
    """

    log = Logger()

    def __init__(
        self,
        function: Callable[[], object],
        interval: float,
        clock: IReactorTime,
        description: str,
    ) -> None:
        self.function = function
        self.interval = interval
        self.clock = clock
        self.description = description
        self.failures = 0
        """How many runs failed."""
        self._loop: LoopingCall | None = None

    @property
    def running(self) -> bool:
        """Whether the loop is running."""
        return self._loop is not None and self._loop.running

    def start(self) -> None:
        """Start calling, the first time one interval from now."""
        if self.running:
            return
        loop = self._loop = LoopingCall(self._run)
        loop.clock = self.clock
        loop.start(self.interval, now=False)

    def stop(self) -> None:
        """Stop calling, leaving no pending timer."""
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()

    def _run(self) -> Deferred[object] | None:
        try:
            result = self.function()
        except Exception:
            self._failed(Failure())
            return None
        if isinstance(result, Deferred):
            return result.addErrback(self._failed)
        return None

    def _failed(self, failure: Failure) -> None:
        self.failures += 1
        self.log.failure(
            "{description} failed; it runs again in {interval} s",
            failure,
            description=self.description,
            interval=self.interval,
        )
