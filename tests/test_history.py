"""Tests for L{twisted_dht.history}: the ring buffer and the rate history, on a Clock."""

from __future__ import annotations

import json
from dataclasses import replace

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht.history import RATES, RateHistory, RingBuffer
from twisted_dht.stats import NodeStats

from .test_web import nodeStats


class RingBufferTests(SynchronousTestCase):
    def test_keepsTheLastValues(self) -> None:
        """A full ring buffer drops its oldest value for each new one and never grows."""
        ring = RingBuffer(3)
        for value in range(5):
            ring.append(value)
        self.assertEqual((ring.values(), len(ring)), ([2, 3, 4], 3))

    def test_sizeAtLeastOne(self) -> None:
        """A ring buffer of no value is refused."""
        self.assertRaises(ValueError, RingBuffer, 0)


class RateHistoryTests(SynchronousTestCase):
    """RateHistory samples per-second rates on its clock, and only between start and stop."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.stats: NodeStats | None = nodeStats()
        self.history = RateHistory(lambda: self.stats, self.clock, interval=10, size=3)

    def bump(self, queries: int, byteCount: int) -> None:
        assert self.stats is not None
        self.stats = replace(
            self.stats,
            queriesIn={"ping": sum(self.stats.queriesIn.values()) + queries},
            bytesIn=self.stats.bytesIn + byteCount,
        )

    def test_ratesPerSecond(self) -> None:
        """Each sample is the increase since the previous one over the interval."""
        self.history.start()
        self.bump(50, 1000)
        self.clock.advance(10)
        self.bump(20, 0)
        self.clock.advance(10)
        self.assertEqual(self.history.series("queriesIn"), [5.0, 2.0])
        self.assertEqual(self.history.series("bytesIn"), [100.0, 0.0])
        self.assertEqual(self.history.series("queriesOut"), [0.0, 0.0])
        self.history.stop()

    def test_fixedSize(self) -> None:
        """An hour's worth at most: the oldest samples go."""
        self.history.start()
        for i in range(6):
            self.bump(10 * i, 0)
            self.clock.advance(10)
        self.assertEqual(self.history.series("queriesIn"), [3.0, 4.0, 5.0])
        self.history.stop()

    def test_stopLeavesNoTimer(self) -> None:
        """Stopping leaves no DelayedCall, keeps the samples, and sampling stops."""
        self.history.start()
        self.clock.advance(10)
        self.history.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(100)
        self.assertEqual(len(self.history.samples), 1)

    def test_noNodeNoSample(self) -> None:
        """While there is no node, no sample is taken; a counter that went back (a new
        node) counts from zero."""
        self.stats = None
        self.history.start()
        self.clock.advance(10)
        self.assertEqual(len(self.history.samples), 0)
        self.stats = nodeStats(bytesIn=500)
        self.clock.advance(10)
        self.stats = nodeStats(bytesIn=100)
        self.clock.advance(10)
        self.assertEqual(self.history.series("bytesIn"), [10.0])
        self.history.stop()

    def test_toJSON(self) -> None:
        """toJSON gives the interval, size, times and one list per rate."""
        self.history.start()
        self.clock.advance(10)
        document = json.loads(json.dumps(self.history.toJSON()))
        self.assertEqual((document["interval"], document["size"]), (10, 3))
        self.assertEqual(document["times"], [10])
        self.assertEqual(set(document["rates"]), set(RATES))
        self.history.stop()
