"""Tests for twisted_dht.ratelimit: token buckets, the per-IP flood blocker and the repeat
limiter, on a Clock."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht.ratelimit import FRESH, REFUSED, REPEAT, DoSBlocker, RepeatLimiter, TokenBucket


class TokenBucketTests(SynchronousTestCase):
    """TokenBucket on a Clock."""

    def setUp(self) -> None:
        self.clock = Clock()

    def test_startsFullAndEmpties(self) -> None:
        """A new bucket holds its burst, and refuses once that is taken."""
        bucket = TokenBucket(10, 20, reactor=self.clock)
        self.assertEqual(sum(bucket.take() for _ in range(25)), 20)

    def test_refillsAtRate(self) -> None:
        """Tokens come back at C{rate} per second of the injected clock."""
        bucket = TokenBucket(10, 20, reactor=self.clock)
        while bucket.take():
            pass
        self.clock.advance(0.5)
        self.assertEqual(sum(bucket.take() for _ in range(10)), 5)

    def test_burstCapsTheLevel(self) -> None:
        """However long it waits, the bucket holds at most C{burst} tokens."""
        bucket = TokenBucket(10, 20, reactor=self.clock)
        self.clock.advance(1000)
        self.assertTrue(bucket.take(20))
        self.assertFalse(bucket.take(1))

    def test_takeAmount(self) -> None:
        """A take of many tokens succeeds only if all of them are there, and then takes all."""
        bucket = TokenBucket(100, 1000, reactor=self.clock)
        self.assertTrue(bucket.take(600))
        self.assertFalse(bucket.take(600))
        self.assertTrue(bucket.take(400))

    def test_zeroRateDisables(self) -> None:
        """A bucket of rate 0 never refuses and is not enabled."""
        bucket = TokenBucket(0, reactor=self.clock)
        self.assertFalse(bucket.enabled)
        self.assertTrue(all(bucket.take(10**9) for _ in range(100)))
        self.assertEqual(bucket.delay(10**9), 0.0)

    def test_spendGoesIntoDebtBoundedByBurst(self) -> None:
        """spend() may take the level below zero, but never below -burst."""
        bucket = TokenBucket(10, 20, reactor=self.clock)
        bucket.spend(1000)
        self.assertEqual(bucket.level, -20)
        self.clock.advance(2.05)
        self.assertFalse(bucket.take())
        self.clock.advance(0.1)
        self.assertTrue(bucket.take())

    def test_delay(self) -> None:
        """delay() says how long until the tokens asked for are there."""
        bucket = TokenBucket(4, 4, reactor=self.clock)
        self.assertEqual(bucket.delay(), 0.0)
        bucket.take(4)
        self.assertAlmostEqual(bucket.delay(2), 0.5)

    def test_invalidArguments(self) -> None:
        """A negative rate, or a burst below one token, is refused, at construction and by
        setRate."""
        self.assertRaises(ValueError, TokenBucket, -1, reactor=self.clock)
        self.assertRaises(ValueError, TokenBucket, 10, 0.5, reactor=self.clock)
        bucket = TokenBucket(10, reactor=self.clock)
        self.assertRaises(ValueError, bucket.setRate, -1)
        self.assertRaises(ValueError, bucket.setRate, 10, 0.5)

    def test_enableAtRuntime(self) -> None:
        """A bucket disabled at construction limits once setRate gives it a rate."""
        bucket = TokenBucket(0, reactor=self.clock)
        self.clock.advance(100)
        bucket.setRate(10, 20)
        self.assertTrue(bucket.enabled)
        self.assertEqual(sum(bucket.take() for _ in range(25)), 20)
        self.clock.advance(0.5)
        self.assertEqual(sum(bucket.take() for _ in range(10)), 5)

    def test_disableAtRuntime(self) -> None:
        """setRate(0) turns a limiting bucket off: everything is taken."""
        bucket = TokenBucket(10, 20, reactor=self.clock)
        bucket.take(20)
        bucket.setRate(0)
        self.assertFalse(bucket.enabled)
        self.assertTrue(all(bucket.take(10**9) for _ in range(100)))

    def test_setRateDefaultBurst(self) -> None:
        """setRate without a burst gives one second's worth, and the bucket starts full."""
        bucket = TokenBucket(10, 20, reactor=self.clock)
        bucket.take(20)
        bucket.setRate(4)
        self.assertEqual(sum(bucket.take() for _ in range(10)), 4)

    def test_reactorRequired(self) -> None:
        """The reactor is a required keyword: no global reactor is picked up."""
        self.assertRaises(TypeError, TokenBucket, 10)


class DoSBlockerTests(SynchronousTestCase):
    """DoSBlocker on a Clock, at libtorrent's 5 datagrams a second."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.blocker = DoSBlocker(5, reactor=self.clock)

    def flood(self, ip: str, count: int, interval: float = 0.0) -> int:
        """Send C{count} datagrams from C{ip}; return how many were allowed."""
        allowed = 0
        for _ in range(count):
            allowed += self.blocker.allow(ip)
            self.clock.advance(interval)
        return allowed

    def test_blocksAbove5PerSecondOver10Seconds(self) -> None:
        """The 51st datagram within 10 s blocks the IP (5/s averaged over 10 s)."""
        self.assertEqual(self.flood("1.2.3.4", 50), 50)
        self.assertFalse(self.blocker.allow("1.2.3.4"))
        self.assertFalse(self.blocker.allow("1.2.3.4"))
        self.assertEqual(self.blocker.blocks, 1)

    def test_steadyRateUnderLimitNeverBlocked(self) -> None:
        """An IP sending 4.5 datagrams a second for ten minutes is never blocked."""
        self.assertEqual(self.flood("1.2.3.4", 2700, 1 / 4.5), 2700)

    def test_blockLastsFiveMinutes(self) -> None:
        """A blocked IP is ignored for 300 s, then served again with a fresh window."""
        self.flood("1.2.3.4", 51)
        self.clock.advance(299)
        self.assertFalse(self.blocker.allow("1.2.3.4"))
        self.clock.advance(1)
        self.assertEqual(self.flood("1.2.3.4", 50), 50)
        self.assertEqual(self.blocker.blocks, 1)

    def test_otherIPsUnaffected(self) -> None:
        """Blocking one IP does not block another."""
        self.flood("1.2.3.4", 60)
        self.assertTrue(self.blocker.allow("1.2.3.5"))

    def test_trackerIsBoundedLRU(self) -> None:
        """A flood from many sources keeps at most maxTracked entries, dropping the oldest."""
        blocker = DoSBlocker(5, maxTracked=100, reactor=self.clock)
        for i in range(10000):
            blocker.allow(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
        self.assertEqual(len(blocker), 100)
        for _ in range(51):
            blocker.allow("1.1.1.1")
        for i in range(99):
            blocker.allow(f"2.2.2.{i}")
        self.assertFalse(blocker.allow("1.1.1.1"))  # still tracked, so still blocked
        for i in range(100):
            blocker.allow(f"3.3.3.{i}")
        self.assertEqual(len(blocker), 100)
        self.assertTrue(blocker.allow("1.1.1.1"))  # forgotten: served again

    def test_zeroRateDisables(self) -> None:
        """A blocker of rate 0 allows everything and tracks nothing."""
        blocker = DoSBlocker(0, reactor=self.clock)
        self.assertFalse(blocker.enabled)
        self.assertTrue(all(blocker.allow("1.2.3.4") for _ in range(10000)))
        self.assertEqual(len(blocker), 0)

    def test_enableAtRuntime(self) -> None:
        """A blocker disabled at construction blocks floods once setRate gives it a rate."""
        blocker = DoSBlocker(0, reactor=self.clock)
        self.assertTrue(all(blocker.allow("1.2.3.4") for _ in range(1000)))
        blocker.setRate(5)
        self.assertTrue(blocker.enabled)
        self.assertEqual(sum(blocker.allow("1.2.3.4") for _ in range(60)), 50)
        self.assertEqual(blocker.blocks, 1)

    def test_changeRateAtRuntime(self) -> None:
        """setRate changes the threshold for later datagrams: at 1/s over 10 s, the 11th
        datagram in a window blocks."""
        self.blocker.setRate(1)
        self.assertEqual(self.flood("1.2.3.4", 20), 10)

    def test_disableAtRuntime(self) -> None:
        """setRate(0) stops blocking new floods; an IP already blocked stays blocked."""
        self.flood("1.2.3.4", 51)
        self.blocker.setRate(0)
        self.assertFalse(self.blocker.enabled)
        self.assertEqual(self.flood("5.6.7.8", 1000), 1000)
        self.blocker.setRate(5)
        self.assertFalse(self.blocker.allow("1.2.3.4"))

    def test_negativeRateRefused(self) -> None:
        """A negative rate is refused by the constructor and by setRate."""
        self.assertRaises(ValueError, DoSBlocker, -1, reactor=self.clock)
        self.assertRaises(ValueError, self.blocker.setRate, -1)

    def test_reactorRequired(self) -> None:
        """The reactor is a required keyword: no global reactor is picked up."""
        self.assertRaises(TypeError, DoSBlocker, 5)

    def test_exemptNeverBlocked(self) -> None:
        """An IP the exempt predicate accepts is never blocked."""
        blocker = DoSBlocker(5, exempt=lambda ip: ip.startswith("127."), reactor=self.clock)
        self.assertTrue(all(blocker.allow("127.0.0.1") for _ in range(1000)))
        self.assertFalse(all(blocker.allow("8.8.8.8") for _ in range(1000)))


class RepeatLimiterTests(SynchronousTestCase):
    """RepeatLimiter on a Clock."""

    def setUp(self) -> None:
        self.clock = Clock()

    def test_freshRepeatRefused(self) -> None:
        """Within an interval: one fresh answer, C{repeats} repeats, then refusals; the
        interval counts from the fresh answer."""
        limiter = RepeatLimiter(100, repeats=2, reactor=self.clock)
        verdicts = [limiter.check("10.0.0.1") for _ in range(5)]
        self.assertEqual(verdicts, [FRESH, REPEAT, REPEAT, REFUSED, REFUSED])
        self.clock.advance(99)
        self.assertEqual(limiter.check("10.0.0.1"), REFUSED)
        self.clock.advance(1)
        self.assertEqual(limiter.check("10.0.0.1"), FRESH)
        self.assertEqual(limiter.check("10.0.0.2"), FRESH)

    def test_boundedMemory(self) -> None:
        """At most maxTracked IPs are kept; the least recently seen is forgotten, and is
        fresh again."""
        limiter = RepeatLimiter(100, maxTracked=3, reactor=self.clock)
        for i in range(4):
            limiter.check(f"10.0.0.{i}")
        self.assertEqual(len(limiter), 3)
        self.assertEqual(limiter.check("10.0.0.0"), FRESH)
        self.assertEqual(limiter.check("10.0.0.3"), REPEAT)

    def test_invalidSettings(self) -> None:
        """A negative interval or repeat count, or no room for an IP, is refused."""
        for settings in ({"interval": -1}, {"interval": 1, "repeats": -1},
                         {"interval": 1, "maxTracked": 0}):  # fmt: skip
            self.assertRaises(ValueError, RepeatLimiter, reactor=self.clock, **settings)
