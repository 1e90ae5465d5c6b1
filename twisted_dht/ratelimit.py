"""Rate limits against floods: a per-IP blocker and token buckets, all on an injected clock.

  - L{DoSBlocker} is libtorrent's C{dos_blocker}: an IP sending more than C{rate}
    datagrams per second, averaged over C{window} seconds, is ignored for C{blockTime}
    seconds. Its tracker is an LRU of C{maxTracked} IPs, so a flood from spoofed sources
    costs a bounded amount of memory (it can only evict entries, not add them).
  - L{TokenBucket} meters a rate (bytes or queries per second) with a burst allowance.
  - L{RepeatLimiter} keeps, per IP, how often an answer that stands for an interval was
    given (BEP 51's samples), for crawlers that ask again sooner.

Both are cheap enough to be consulted for every datagram: a dict lookup and a few float
operations, with C{now} passed in so that one clock read serves every check.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime

DEFAULT_IP_RATE = 5.0
"""Datagrams per second one IP may send, averaged over L{DEFAULT_WINDOW} (libtorrent's
C{dht_block_ratelimit})."""

DEFAULT_WINDOW = 10.0
"""Seconds over which the per-IP rate is averaged (libtorrent)."""

DEFAULT_BLOCK_TIME = 300.0
"""Seconds an offending IP is ignored (libtorrent's C{dht_block_timeout})."""

DEFAULT_MAX_TRACKED = 500
"""IPs the blocker remembers; the least recently heard from is forgotten first."""

DEFAULT_UPLOAD_LIMIT = 65536
"""Bytes per second we send. libtorrent's 8,000 B/s suits a client sharing a home uplink;
a dedicated node can afford eight times that (about 220 find_node replies a second)."""

DEFAULT_UPLOAD_BURST = 3.0
"""Seconds of L{DEFAULT_UPLOAD_LIMIT} that may be sent at once (libtorrent's 3 s)."""

DEFAULT_QUERY_RATE = 500.0
"""Incoming queries per second we handle in all; more are dropped unanswered."""

DEFAULT_QUERY_BURST = 2.0
"""Seconds of L{DEFAULT_QUERY_RATE} that may arrive at once."""

DEFAULT_OUTGOING_QUERY_RATE = 100.0
"""Queries per second our own lookups, pings and announces send; more wait their turn."""

DEFAULT_OUTGOING_QUERY_BURST = 2.0
"""Seconds of L{DEFAULT_OUTGOING_QUERY_RATE} that may be sent at once."""


class TokenBucket:
    """A token bucket: C{rate} tokens per second, holding at most C{burst} tokens.

    A rate of 0 disables it: L{take} always succeeds. L{spend} may take the level below
    zero (down to C{-burst}), for traffic that is metered but never refused.
    """

    __slots__ = ("_last", "burst", "level", "rate", "reactor")

    def __init__(self, rate: float, burst: float | None = None, *, reactor: IReactorTime) -> None:
        """
        @param rate: tokens added per second; 0 disables the bucket.
        @param burst: capacity, and the initial level; default one second's worth (at
            least 1).
        """
        self.reactor = reactor
        self.rate = 0.0
        self.burst = 0.0
        self.setRate(rate, burst)
        self._last = self.reactor.seconds()

    def setRate(self, rate: float, burst: float | None = None) -> None:
        """Change the rate (0: off) and the burst (default one second's worth, at least
        1); the bucket starts full again."""
        if not rate >= 0:
            raise ValueError("the rate cannot be negative")
        burst = float(max(rate, 1.0) if burst is None else burst)
        if rate and burst < 1:
            raise ValueError("the burst must hold at least one token")
        self.rate = float(rate)
        self.burst = self.level = burst

    @property
    def enabled(self) -> bool:
        """Whether the bucket limits anything (its rate is not 0)."""
        return self.rate > 0

    def _refill(self, now: float) -> float:
        level = self.level + (now - self._last) * self.rate
        if level > self.burst:
            level = self.burst
        self._last = now
        self.level = level
        return level

    def take(self, amount: float = 1.0, now: float | None = None) -> bool:
        """Take C{amount} tokens if the bucket holds them; return whether it did."""
        if not self.rate:
            return True
        level = self._refill(self.reactor.seconds() if now is None else now)
        if level < amount:
            return False
        self.level = level - amount
        return True

    def spend(self, amount: float, now: float | None = None) -> None:
        """Take C{amount} tokens unconditionally (the level stays above C{-burst})."""
        if not self.rate:
            return
        level = self._refill(self.reactor.seconds() if now is None else now) - amount
        self.level = level if level > -self.burst else -self.burst

    def delay(self, amount: float = 1.0) -> float:
        """Seconds until C{amount} tokens are available (0 when they are now)."""
        if not self.rate:
            return 0.0
        level = self._refill(self.reactor.seconds())
        return 0.0 if level >= amount else (amount - level) / self.rate


class DoSBlocker:
    """Ignores IPs that send more than C{rate} datagrams per second (libtorrent's
    C{dos_blocker}).

    Each tracked IP has a window of C{window} seconds; C{rate * window} datagrams inside
    one window block the IP for C{blockTime} seconds from that moment. A rate of 0
    disables the blocker. IPs for which C{exempt(ip)} is true are never blocked (it is
    only called when an IP would be).
    """

    def __init__(
        self,
        rate: float = DEFAULT_IP_RATE,
        *,
        window: float = DEFAULT_WINDOW,
        blockTime: float = DEFAULT_BLOCK_TIME,
        maxTracked: int = DEFAULT_MAX_TRACKED,
        exempt: Callable[[str], bool] | None = None,
        reactor: IReactorTime,
    ) -> None:
        if rate < 0 or window <= 0 or blockTime < 0 or maxTracked < 1:
            raise ValueError("need rate >= 0, window > 0, blockTime >= 0, maxTracked >= 1")
        self.reactor = reactor
        self.rate = float(rate)
        self.window = float(window)
        self.blockTime = float(blockTime)
        self.maxTracked = maxTracked
        self.exempt = exempt
        self._threshold = max(1, round(rate * window))
        # ip -> [window end, datagrams in the window, blocked until]
        self._tracked: OrderedDict[str, list[float]] = OrderedDict()
        self.blocks = 0
        """How many times an IP was blocked."""

    @property
    def enabled(self) -> bool:
        """Whether the blocker limits anything (its rate is not 0)."""
        return self.rate > 0

    def setRate(self, rate: float) -> None:
        """Change the rate (0: off); the IPs blocked now stay blocked."""
        if not rate >= 0:
            raise ValueError("the rate cannot be negative")
        self.rate = float(rate)
        self._threshold = max(1, round(rate * self.window))

    def __len__(self) -> int:
        """How many IPs are tracked (at most C{maxTracked})."""
        return len(self._tracked)

    def allow(self, ip: str, now: float | None = None) -> bool:
        """Count one datagram from C{ip}; whether it should be handled."""
        if not self.rate:
            return True
        if now is None:
            now = self.reactor.seconds()
        tracked = self._tracked
        entry = tracked.get(ip)
        if entry is None:
            tracked[ip] = [now + self.window, 1.0, 0.0]
            if len(tracked) > self.maxTracked:
                tracked.popitem(last=False)
            return True
        tracked.move_to_end(ip)
        if now < entry[2]:
            return False
        if now >= entry[0]:
            entry[0] = now + self.window
            entry[1] = 1.0
            return True
        entry[1] += 1.0
        if entry[1] > self._threshold:
            if self.exempt is not None and self.exempt(ip):
                entry[1] = 0.0
                return True
            entry[2] = now + self.blockTime
            entry[0] = entry[2]
            entry[1] = 0.0
            self.blocks += 1
            return False
        return True


DEFAULT_REPEAT_TRACKED = 4096
"""IPs a L{RepeatLimiter} remembers; the least recently answered is forgotten first."""

FRESH = "fresh"
REPEAT = "repeat"
REFUSED = "refused"


class RepeatLimiter:
    """Per IP, how often an answer that stands for C{interval} seconds is given again
    (BEP 51's sample): the first query of an interval is L{FRESH}, the next C{repeats}
    are L{REPEAT} (a retry after a lost reply: answer from the cache), the rest
    L{REFUSED} (answer nothing) until C{interval} seconds after the fresh one.

    The IPs are an LRU of C{maxTracked}: an IP forgotten is fresh again, and a flood from
    spoofed sources costs a bounded amount of memory.
    """

    def __init__(
        self,
        interval: float,
        *,
        repeats: int = 1,
        maxTracked: int = DEFAULT_REPEAT_TRACKED,
        reactor: IReactorTime,
    ) -> None:
        if interval < 0 or repeats < 0 or maxTracked < 1:
            raise ValueError("need interval >= 0, repeats >= 0, maxTracked >= 1")
        self.reactor = reactor
        self.interval = float(interval)
        self.repeats = repeats
        self.maxTracked = maxTracked
        # ip -> [when its fresh answer was given, answers given since]
        self._tracked: OrderedDict[str, list[float]] = OrderedDict()

    def __len__(self) -> int:
        """How many IPs are tracked (at most C{maxTracked})."""
        return len(self._tracked)

    def check(self, ip: str) -> str:
        """Count one query from C{ip}: L{FRESH}, L{REPEAT} or L{REFUSED}."""
        now = self.reactor.seconds()
        tracked = self._tracked
        entry = tracked.get(ip)
        if entry is None or now - entry[0] >= self.interval:
            tracked[ip] = [now, 1.0]
            tracked.move_to_end(ip)
            if len(tracked) > self.maxTracked:
                tracked.popitem(last=False)
            return FRESH
        tracked.move_to_end(ip)
        entry[1] += 1.0
        return REPEAT if entry[1] <= 1 + self.repeats else REFUSED
