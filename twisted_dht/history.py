"""RateHistory: the last hour of a node's rates, in a fixed-size ring buffer sampled on the
injected reactor (what the status page charts and ``/status.json`` gives)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime

from .periodic import Periodic
from .stats import NodeStats

HISTORY_INTERVAL = 10.0
"""Seconds between two samples."""

HISTORY_SIZE = 360
"""Rates kept: 360 x 10 s is one hour."""

RATES: dict[str, str] = {
    "queriesIn": "queries received/s",
    "queriesOut": "queries sent/s",
    "bytesIn": "bytes received/s",
    "bytesOut": "bytes sent/s",
    "dropped": "drops/s",
}
"""The rates kept, and what each one is."""


def _totals(stats: NodeStats) -> dict[str, int]:
    return {
        "queriesIn": sum(stats.queriesIn.values()),
        "queriesOut": sum(stats.queriesOut.values()),
        "bytesIn": stats.bytesIn,
        "bytesOut": stats.bytesOut,
        "dropped": stats.dropped,
    }


class RingBuffer:
    """The last C{size} values appended, oldest first; appending to a full one drops the
    oldest."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a ring buffer holds at least one value, not {size}")
        self.size = size
        self._values: deque[Any] = deque(maxlen=size)

    def append(self, value: Any) -> None:
        self._values.append(value)

    def values(self) -> list[Any]:
        """The values, oldest first."""
        return list(self._values)

    def __len__(self) -> int:
        return len(self._values)


class RateHistory:
    """Every C{interval} seconds of C{clock} between L{start} and L{stop}, the rates of
    L{RATES} since the previous sample, C{size} of them at most.

    @param stats: gives the node's stats now (None while there is no node).
    """

    def __init__(
        self,
        stats: Callable[[], NodeStats | None],
        clock: IReactorTime,
        interval: float = HISTORY_INTERVAL,
        size: int = HISTORY_SIZE,
    ) -> None:
        self.stats = stats
        self.clock = clock
        self.interval = interval
        self.samples = RingBuffer(size)
        """(time, {rate name: per second}) pairs, oldest first."""
        self._last: tuple[float, dict[str, int]] | None = None
        self._loop = Periodic(self.sample, interval, clock, "The rate history")

    @property
    def running(self) -> bool:
        return self._loop.running

    def start(self) -> None:
        """Take the first reading now and a sample every interval from now on."""
        self._last = self._reading()
        self._loop.start()

    def stop(self) -> None:
        """Stop sampling, leaving no pending timer (the samples are kept)."""
        self._loop.stop()

    def _reading(self) -> tuple[float, dict[str, int]] | None:
        stats = self.stats()
        return None if stats is None else (self.clock.seconds(), _totals(stats))

    def sample(self) -> None:
        """Append the rates since the previous reading (a counter that went back, as a
        new node after a restart does, counts from zero)."""
        reading = self._reading()
        last, self._last = self._last, reading
        if reading is None or last is None:
            return
        now, totals = reading
        elapsed = now - last[0]
        if elapsed <= 0:
            return
        rates = {}
        for name, total in totals.items():
            before = last[1][name]
            rates[name] = (total - before if total >= before else total) / elapsed
        self.samples.append((now, rates))

    def series(self, name: str) -> list[float]:
        """The rate C{name} (a key of L{RATES}), oldest first."""
        return [rates[name] for _, rates in self.samples.values()]

    def toJSON(self) -> dict[str, Any]:
        """The history as a JSON-ready dict: interval, size, times, and one list per rate."""
        samples = self.samples.values()
        return {
            "interval": self.interval,
            "size": self.samples.size,
            "times": [when for when, _ in samples],
            "rates": {name: [rates[name] for _, rates in samples] for name in RATES},
        }
