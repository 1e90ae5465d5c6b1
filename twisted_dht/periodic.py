"""Periodic: a LoopingCall on an injected clock that logs its failures."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure


class Periodic:
    """Call C{function} every C{interval} seconds of C{clock} between L{start} and L{stop}.

    Starting a running one, or stopping a stopped one, does nothing; a failure of
    C{function} stops the loop and is logged as C{description} failing.
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
        self._loop: LoopingCall | None = None

    @property
    def running(self) -> bool:
        """Whether the loop is running."""
        return self._loop is not None and self._loop.running

    def start(self) -> None:
        """Start calling, the first time one interval from now."""
        if self.running:
            return
        loop = self._loop = LoopingCall(self.function)
        loop.clock = self.clock
        loop.start(self.interval, now=False).addErrback(self._failed)

    def stop(self) -> None:
        """Stop calling, leaving no pending timer."""
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()

    def _failed(self, failure: Failure) -> None:
        self.log.failure("{description} failed", failure, description=self.description)
