"""AdmissionPolicy: every rule that decides what we accept and what we may send, in one place.

The wire protocol asks it, as twisted.names' server asks C{allowQuery}:

  - L{AdmissionPolicy.admitDatagram}: the per-IP flood blocker (every datagram);
  - L{AdmissionPolicy.admitQuery}: read-only mode (BEP 43), then the global query budget;
  - L{AdmissionPolicy.admitReply}: the upload budget, spent by everything we send;
  - L{AdmissionPolicy.replyBudget} and L{AdmissionPolicy.errorBudget}: how many bytes a
    reply may take (the amplification rules: an unverified requester gets at most
    C{amplification} times its query's size, an error at most L{ERROR_AMPLIFICATION}
    times the datagram that caused it).

Every limit can be changed while running (0 turns it off); every refusal is counted in
L{AdmissionPolicy.counters} by reason. A requester is I{verified} when it proved that it
receives our packets: it presented a valid token, or it is a routing-table contact that
answered one of our queries (C{isResponder}); local addresses are trusted as verified.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from . import ratelimit
from .addresses import Address, isLocal
from .krpc import Query
from .ratelimit import DoSBlocker, TokenBucket
from .reply import ERROR_AMPLIFICATION, MAX_REPLY_SIZE

_log = Logger()

AMPLIFICATION = 4.0
"""A find_node or get_peers reply to an unverified requester is at most this many times
the size of its query. A plain find_node query is about 95 bytes and its reply with 8
nodes about 290 (3x), so 4x trims nothing an ordinary IPv4 lookup needs, while a spoofed
query can never make us send more than 4 bytes per byte received."""

MAX_VERIFIED = 1024
"""IPs remembered as having presented a valid token (an LRU)."""

LOCAL_CACHE = 4096
"""Requester hosts whose locality (L{isLocal}) is remembered."""

DROP_REASONS = ("readOnly", "rateLimit", "queryLimit", "uploadLimit", "amplification")
"""The keys of L{AdmissionPolicy.counters}."""

DROP_LOG_QUIET = 300.0
"""A limit that starts dropping logs one warning; it logs again only after dropping
nothing for this many seconds (the counters count every drop)."""

_DROP_WARNINGS = {
    "rateLimit": "An IP sent more than {policy.ipRateLimit:g} datagrams/s and is ignored "
    "for 5 minutes (--ip-rate-limit)",
    "queryLimit": "Over {policy.queryRateLimit:g} queries/s: the excess is dropped "
    "(--query-rate-limit)",
    "uploadLimit": "Replies over the upload budget of {policy.uploadLimit:g} bytes/s are "
    "dropped (--upload-limit)",
    "amplification": "Errors that would exceed {amplification}x the datagram that caused "
    "them are not sent",
}
"""The warning each limit logs when it starts dropping (read-only mode logs none)."""


class AdmissionPolicy:
    """The limits a node applies to its traffic (see the module docstring).

    @param isResponder: C{isResponder(address)} is whether a routing-table contact at
        C{address} answered one of our queries.
    """

    def __init__(
        self,
        *,
        reactor: IReactorTime,
        ipRateLimit: float = ratelimit.DEFAULT_IP_RATE,
        queryRateLimit: float = ratelimit.DEFAULT_QUERY_RATE,
        uploadLimit: float = ratelimit.DEFAULT_UPLOAD_LIMIT,
        amplification: float = AMPLIFICATION,
        readOnly: bool = False,
        relaxLocal: bool = False,
        isResponder: Callable[[Address], bool] | None = None,
    ) -> None:
        self.blocker = DoSBlocker(
            ipRateLimit, exempt=isLocal if relaxLocal else None, reactor=reactor
        )
        self.queryBucket = TokenBucket(
            queryRateLimit, queryRateLimit * ratelimit.DEFAULT_QUERY_BURST, reactor=reactor
        )
        self.uploadBucket = TokenBucket(
            uploadLimit, uploadLimit * ratelimit.DEFAULT_UPLOAD_BURST, reactor=reactor
        )
        self.amplification = amplification
        self.isResponder = isResponder
        self.counters: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        """Refusals by reason (see L{DROP_REASONS})."""
        self.reactor = reactor
        self._lastDrop: dict[str, float] = {}
        self._verified: OrderedDict[str, None] = OrderedDict()
        self._local: dict[str, bool] = {}
        """L{isLocal} of recent requesters' hosts (cleared at L{LOCAL_CACHE} entries)."""
        self._readOnly = readOnly
        self._refresh()

    def _refresh(self) -> None:
        """Speed: which checks are on, so that the wire path skips a call per datagram,
        query and reply for the limits that are off (the usual case of all but one)."""
        self.screens = self.blocker.enabled or self.queryBucket.enabled
        """Whether a received datagram needs the clock: a per-IP or query limit is on."""
        self.screensQueries = self._readOnly or self.queryBucket.enabled
        """Whether L{admitQuery} can refuse anything."""
        self.screensReplies = self.uploadBucket.enabled
        """Whether L{admitReply} can refuse anything."""

    @property
    def readOnly(self) -> bool:
        """BEP 43 read-only mode: no query is answered."""
        return self._readOnly

    @readOnly.setter
    def readOnly(self, readOnly: bool) -> None:
        self._readOnly = readOnly
        self._refresh()

    # Limits, changeable at runtime ---------------------------------------------

    @property
    def ipRateLimit(self) -> float:
        """Datagrams per second one IP may send before it is ignored; 0: off."""
        return self.blocker.rate

    @ipRateLimit.setter
    def ipRateLimit(self, rate: float) -> None:
        self.blocker.setRate(rate)
        self._refresh()

    @property
    def queryRateLimit(self) -> float:
        """Incoming queries per second handled in all; 0: off."""
        return self.queryBucket.rate

    @queryRateLimit.setter
    def queryRateLimit(self, rate: float) -> None:
        self.queryBucket.setRate(rate, rate * ratelimit.DEFAULT_QUERY_BURST)
        self._refresh()

    @property
    def uploadLimit(self) -> float:
        """Bytes per second we send; 0: off."""
        return self.uploadBucket.rate

    @uploadLimit.setter
    def uploadLimit(self, rate: float) -> None:
        self.uploadBucket.setRate(rate, rate * ratelimit.DEFAULT_UPLOAD_BURST)
        self._refresh()

    # Receiving -----------------------------------------------------------------

    def admitDatagram(self, host: str, now: float) -> bool:
        """Count one datagram from C{host}; whether the per-IP blocker lets it in."""
        if self.blocker.allow(host, now):
            return True
        self._dropped("rateLimit")
        return False

    def admitQuery(self, now: float) -> bool:
        """Whether a query may be handled: not read-only, and within the query budget."""
        if self._readOnly:
            self.counters["readOnly"] += 1
            return False
        if self.queryBucket.take(1.0, now):
            return True
        self._dropped("queryLimit")
        return False

    # Sending -------------------------------------------------------------------

    def admitReply(self, size: int) -> bool:
        """Whether the upload budget pays for a reply of C{size} bytes (spent when so)."""
        if self.uploadBucket.take(size):
            return True
        self._dropped("uploadLimit")
        return False

    def meterQuery(self, size: int) -> None:
        """Spend the upload budget on one of our queries (never refused)."""
        self.uploadBucket.spend(size)

    def replyBudget(self, query: Query, address: Address) -> int:
        """The most bytes a reply to C{query} from C{address} may take."""
        limit = self.amplification * query.size
        if not limit or limit >= MAX_REPLY_SIZE:
            return MAX_REPLY_SIZE
        # isVerified, inlined: this runs for every find_node and get_peers.
        host = address[0]
        local = self._local.get(host)
        if local is None:
            local = self._isLocal(host)
        if local or host in self._verified:
            return MAX_REPLY_SIZE
        if self.isResponder is not None and self.isResponder(address):
            return MAX_REPLY_SIZE
        return int(limit)

    def errorBudget(self, querySize: int) -> int:
        """The most bytes an error caused by a datagram of C{querySize} bytes may take."""
        if not querySize:
            return MAX_REPLY_SIZE
        return min(MAX_REPLY_SIZE, ERROR_AMPLIFICATION * querySize)

    def refusedAmplification(self) -> None:
        """Count a reply that did not fit its amplification budget."""
        self._dropped("amplification")

    def _dropped(self, reason: str) -> None:
        """Count a drop; warn when the limit starts dropping (see L{DROP_LOG_QUIET})."""
        self.counters[reason] += 1
        now = self.reactor.seconds()
        last = self._lastDrop.get(reason)
        self._lastDrop[reason] = now
        if last is None or not 0 <= now - last < DROP_LOG_QUIET:
            _log.warn(_DROP_WARNINGS[reason], policy=self, amplification=ERROR_AMPLIFICATION)

    # Verified requesters -------------------------------------------------------

    def markVerified(self, host: str) -> None:
        """C{host} presented a valid token: it receives what we send it."""
        verified = self._verified
        verified[host] = None
        verified.move_to_end(host)
        if len(verified) > MAX_VERIFIED:
            verified.popitem(last=False)

    def _isLocal(self, host: str) -> bool:
        """L{isLocal}, remembered for the last L{LOCAL_CACHE} hosts."""
        local = self._local
        if len(local) >= LOCAL_CACHE:
            local.clear()
        found = local[host] = isLocal(host)
        return found

    def isVerified(self, address: Address) -> bool:
        """Whether C{address} proved it receives our packets (or is local)."""
        host = address[0]
        if host in self._verified or self._local.get(host) or self._isLocal(host):
            return True
        return self.isResponder is not None and self.isResponder(address)
