"""Tests for twisted_dht.admission: the one policy deciding what we accept and may send."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht.addresses import Address
from twisted_dht.admission import (
    AMPLIFICATION,
    DROP_LOG_QUIET,
    DROP_REASONS,
    MAX_VERIFIED,
    AdmissionPolicy,
)
from twisted_dht.krpc import Query
from twisted_dht.reply import ERROR_AMPLIFICATION, MAX_REPLY_SIZE

PUBLIC = "203.0.113.5"
PUBLIC6 = "2001:db8::5"
LOCAL = "192.168.1.5"
OUR_ID = b"\x22" * 20


def query(size: int) -> Query:
    """A find_node query that came in a datagram of C{size} bytes."""
    return Query(b"aa", b"find_node", {b"id": OUR_ID, b"target": OUR_ID}, size=size)


def publicHost(i: int) -> str:
    """The C{i}th of a run of distinct public IPv4 addresses."""
    return f"203.0.{i // 256}.{i % 256}"


class PolicyTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.responders: set[Address] = set()

    def policy(
        self,
        *,
        ipRateLimit: float = 0,
        queryRateLimit: float = 0,
        uploadLimit: float = 0,
        amplification: float = AMPLIFICATION,
        readOnly: bool = False,
        relaxLocal: bool = False,
    ) -> AdmissionPolicy:
        """A policy on our clock with only the given limits on."""
        return AdmissionPolicy(
            reactor=self.clock,
            ipRateLimit=ipRateLimit,
            queryRateLimit=queryRateLimit,
            uploadLimit=uploadLimit,
            amplification=amplification,
            readOnly=readOnly,
            relaxLocal=relaxLocal,
            isResponder=self.responders.__contains__,
        )

    def datagrams(self, policy: AdmissionPolicy, host: str, count: int) -> int:
        """How many of C{count} datagrams from C{host}, all now, the policy lets in."""
        now = self.clock.seconds()
        return sum(policy.admitDatagram(host, now) for _ in range(count))


class CounterTests(PolicyTestCase):
    def test_countersByReason(self) -> None:
        """The counters hold one entry per drop reason, all zero at first."""
        self.assertEqual(self.policy().counters, dict.fromkeys(DROP_REASONS, 0))
        self.assertEqual(
            set(DROP_REASONS),
            {"readOnly", "rateLimit", "queryLimit", "uploadLimit", "amplification"},
        )

    def test_refusedAmplification(self) -> None:
        """A reply refused for its amplification budget is counted."""
        policy = self.policy()
        policy.refusedAmplification()
        policy.refusedAmplification()
        self.assertEqual(policy.counters["amplification"], 2)


class DropWarningTests(PolicyTestCase):
    """A limit that starts dropping says so once, not once per packet."""

    def warnings(self) -> list[str]:
        return [formatEvent(event) for event in self.events if event["log_level"] == LogLevel.warn]

    def setUp(self) -> None:
        super().setUp()
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def test_oneWarningForAFlood(self) -> None:
        """A thousand queries over the budget log one warning naming the limit and option."""
        policy = self.policy(queryRateLimit=5)
        now = self.clock.seconds()
        for _ in range(1000):
            policy.admitQuery(now)
        self.assertEqual(policy.counters["queryLimit"], 990)
        [warning] = self.warnings()
        self.assertIn("Over 5 queries/s", warning)
        self.assertIn("--query-rate-limit", warning)

    def test_warnsAgainAfterQuiet(self) -> None:
        """Drops that keep coming stay at one warning; after a quiet spell, one more."""
        policy = self.policy(uploadLimit=100)
        for _ in range(10):
            policy.admitReply(1000)
            self.clock.advance(DROP_LOG_QUIET / 20)
        self.assertEqual(len(self.warnings()), 1)
        self.clock.advance(DROP_LOG_QUIET)
        policy.admitReply(1000)
        self.assertEqual(len(self.warnings()), 2)
        self.assertIn("--upload-limit", self.warnings()[1])

    def test_eachLimitWarns(self) -> None:
        """The per-IP blocker and the amplification rule warn too; read-only mode does not."""
        policy = self.policy(ipRateLimit=1, readOnly=True)
        self.datagrams(policy, PUBLIC, 100)
        policy.refusedAmplification()
        policy.admitQuery(self.clock.seconds())
        self.assertEqual(policy.counters["readOnly"], 1)
        [blocked, amplified] = self.warnings()
        self.assertIn("--ip-rate-limit", blocked)
        self.assertIn("are not sent", amplified)


class AdmitDatagramTests(PolicyTestCase):
    def test_offAdmitsAll(self) -> None:
        """With ipRateLimit 0, every datagram is let in and nothing is counted."""
        policy = self.policy()
        self.assertEqual(self.datagrams(policy, PUBLIC, 1000), 1000)
        self.assertEqual(policy.counters["rateLimit"], 0)
        self.assertFalse(policy.screens)

    def test_floodBlocked(self) -> None:
        """An IP over rate x window datagrams (1/s over 10 s: 10) is blocked and each
        dropped datagram counted; other IPs are not affected."""
        policy = self.policy(ipRateLimit=1)
        self.assertTrue(policy.screens)
        self.assertEqual(self.datagrams(policy, PUBLIC, 15), 10)
        self.assertEqual(policy.counters["rateLimit"], 5)
        self.assertEqual(self.datagrams(policy, PUBLIC6, 3), 3)

    def test_blockExpires(self) -> None:
        """A blocked IP stays blocked for the block time, then is let in again."""
        policy = self.policy(ipRateLimit=1)
        self.datagrams(policy, PUBLIC, 11)
        self.clock.advance(299)
        self.assertEqual(self.datagrams(policy, PUBLIC, 1), 0)
        self.clock.advance(1)
        self.assertEqual(self.datagrams(policy, PUBLIC, 1), 1)

    def test_relaxLocalExemptsLocal(self) -> None:
        """With relaxLocal, a local IP is never blocked; a public one still is."""
        policy = self.policy(ipRateLimit=1, relaxLocal=True)
        self.assertEqual(self.datagrams(policy, LOCAL, 50), 50)
        self.assertEqual(self.datagrams(policy, PUBLIC, 50), 10)

    def test_localBlockedWithoutRelaxLocal(self) -> None:
        """Without relaxLocal, a local IP is limited like any other."""
        policy = self.policy(ipRateLimit=1)
        self.assertEqual(self.datagrams(policy, LOCAL, 50), 10)

    def test_enabledAtRuntime(self) -> None:
        """A limit off at construction and turned on later takes effect at once, and can
        be turned off again."""
        policy = self.policy()
        self.assertEqual(self.datagrams(policy, PUBLIC, 50), 50)
        policy.ipRateLimit = 1
        self.assertEqual(policy.ipRateLimit, 1)
        self.assertTrue(policy.screens)
        self.assertEqual(self.datagrams(policy, PUBLIC, 50), 10)
        policy.ipRateLimit = 0
        self.assertFalse(policy.screens)
        self.assertEqual(self.datagrams(policy, PUBLIC, 50), 50)

    def test_negativeRateRefused(self) -> None:
        """A negative rate is refused."""
        policy = self.policy()
        with self.assertRaises(ValueError):
            policy.ipRateLimit = -1


class AdmitQueryTests(PolicyTestCase):
    def test_offAdmitsAll(self) -> None:
        """Without a query limit or read-only mode, every query is admitted."""
        policy = self.policy()
        self.assertFalse(policy.screensQueries)
        self.assertTrue(all(policy.admitQuery(self.clock.seconds()) for _ in range(1000)))

    def test_readOnly(self) -> None:
        """In read-only mode (BEP 43) no query is admitted, and each one is counted."""
        policy = self.policy(readOnly=True)
        self.assertTrue(policy.readOnly)
        self.assertTrue(policy.screensQueries)
        self.assertFalse(policy.admitQuery(self.clock.seconds()))
        self.assertFalse(policy.admitQuery(self.clock.seconds()))
        self.assertEqual(policy.counters["readOnly"], 2)

    def test_readOnlySetAtRuntime(self) -> None:
        """Read-only mode can be turned on and off while running."""
        policy = self.policy()
        policy.readOnly = True
        self.assertFalse(policy.admitQuery(self.clock.seconds()))
        policy.readOnly = False
        self.assertTrue(policy.admitQuery(self.clock.seconds()))
        self.assertFalse(policy.screensQueries)

    def test_queryBudget(self) -> None:
        """The global query budget admits its burst (two seconds' worth), then its rate."""
        policy = self.policy(queryRateLimit=5)
        now = self.clock.seconds()
        self.assertEqual(sum(policy.admitQuery(now) for _ in range(15)), 10)
        self.assertEqual(policy.counters["queryLimit"], 5)
        self.assertEqual(sum(policy.admitQuery(now + 1) for _ in range(15)), 5)

    def test_enabledAtRuntime(self) -> None:
        """A query limit off at construction and set later takes effect at once."""
        policy = self.policy()
        now = self.clock.seconds()
        self.assertEqual(sum(policy.admitQuery(now) for _ in range(50)), 50)
        policy.queryRateLimit = 5
        self.assertEqual(policy.queryRateLimit, 5)
        self.assertTrue(policy.screens)
        self.assertTrue(policy.screensQueries)
        self.assertEqual(sum(policy.admitQuery(now) for _ in range(50)), 10)
        policy.queryRateLimit = 0
        self.assertFalse(policy.screensQueries)
        self.assertEqual(sum(policy.admitQuery(now) for _ in range(50)), 50)


class AdmitReplyTests(PolicyTestCase):
    def test_offAdmitsAll(self) -> None:
        """Without an upload limit every reply is admitted."""
        policy = self.policy()
        self.assertFalse(policy.screensReplies)
        self.assertTrue(all(policy.admitReply(1024) for _ in range(1000)))

    def test_uploadBudget(self) -> None:
        """Replies spend the upload budget (three seconds' worth at first); one it cannot
        pay for is refused and counted, and the budget refills with time."""
        policy = self.policy(uploadLimit=100)
        self.assertTrue(policy.screensReplies)
        self.assertTrue(policy.admitReply(200))
        self.assertFalse(policy.admitReply(200))
        self.assertEqual(policy.counters["uploadLimit"], 1)
        self.assertTrue(policy.admitReply(100))
        self.clock.advance(1)
        self.assertTrue(policy.admitReply(100))
        self.assertFalse(policy.admitReply(1))

    def test_queriesMetered(self) -> None:
        """Our own queries spend the upload budget without ever being refused."""
        policy = self.policy(uploadLimit=100)
        policy.meterQuery(1000)
        policy.meterQuery(1000)
        self.assertFalse(policy.admitReply(1))
        self.assertEqual(policy.counters["uploadLimit"], 1)

    def test_enabledAtRuntime(self) -> None:
        """An upload limit off at construction and set later takes effect at once."""
        policy = self.policy()
        self.assertTrue(policy.admitReply(1024))
        policy.uploadLimit = 100
        self.assertEqual(policy.uploadLimit, 100)
        self.assertTrue(policy.screensReplies)
        self.assertTrue(policy.admitReply(300))
        self.assertFalse(policy.admitReply(1))
        policy.uploadLimit = 0
        self.assertFalse(policy.screensReplies)
        self.assertTrue(policy.admitReply(1024))


class BudgetTests(PolicyTestCase):
    def test_unverifiedAmplification(self) -> None:
        """An unverified public requester gets at most C{amplification} times its query."""
        policy = self.policy()
        self.assertEqual(policy.replyBudget(query(100), (PUBLIC, 1)), int(AMPLIFICATION * 100))
        self.assertEqual(policy.replyBudget(query(100), (PUBLIC6, 1)), int(AMPLIFICATION * 100))
        self.assertEqual(self.policy(amplification=2.5).replyBudget(query(100), (PUBLIC, 1)), 250)

    def test_largeQueryFullBudget(self) -> None:
        """A query large enough that the amplification bound passes 1,024 gets 1,024."""
        policy = self.policy()
        self.assertEqual(policy.replyBudget(query(300), (PUBLIC, 1)), MAX_REPLY_SIZE)

    def test_offOrUnknownSizeFullBudget(self) -> None:
        """With amplification 0, or a query of unknown size, the budget is 1,024."""
        self.assertEqual(
            self.policy(amplification=0).replyBudget(query(50), (PUBLIC, 1)), MAX_REPLY_SIZE
        )
        self.assertEqual(self.policy().replyBudget(query(0), (PUBLIC, 1)), MAX_REPLY_SIZE)

    def test_localFullBudget(self) -> None:
        """A local requester is trusted with the full budget."""
        policy = self.policy()
        for host in (LOCAL, "10.1.2.3", "127.0.0.1", "::1", "fe80::1", "fe80::1%eth0"):
            self.assertEqual(policy.replyBudget(query(50), (host, 1)), MAX_REPLY_SIZE, host)
            self.assertTrue(policy.isVerified((host, 1)), host)

    def test_verifiedFullBudget(self) -> None:
        """A host that presented a valid token gets the full budget, on any port."""
        policy = self.policy()
        self.assertFalse(policy.isVerified((PUBLIC, 1)))
        policy.markVerified(PUBLIC)
        self.assertTrue(policy.isVerified((PUBLIC, 2)))
        self.assertEqual(policy.replyBudget(query(50), (PUBLIC, 2)), MAX_REPLY_SIZE)
        self.assertEqual(policy.replyBudget(query(50), (PUBLIC6, 1)), 200)

    def test_responderFullBudget(self) -> None:
        """A contact that answered our queries (isResponder) gets the full budget."""
        policy = self.policy()
        self.responders.add((PUBLIC, 6881))
        self.assertTrue(policy.isVerified((PUBLIC, 6881)))
        self.assertEqual(policy.replyBudget(query(50), (PUBLIC, 6881)), MAX_REPLY_SIZE)
        self.assertFalse(policy.isVerified((PUBLIC, 6882)))
        self.assertEqual(policy.replyBudget(query(50), (PUBLIC, 6882)), 200)

    def test_noResponderCallback(self) -> None:
        """Without isResponder, only tokens and locality verify."""
        policy = AdmissionPolicy(reactor=self.clock)
        self.assertFalse(policy.isVerified((PUBLIC, 1)))
        self.assertEqual(policy.replyBudget(query(50), (PUBLIC, 1)), 200)

    def test_errorBudget(self) -> None:
        """An error is at most ERROR_AMPLIFICATION times the datagram that caused it, and
        at most 1,024 bytes; the size unknown, 1,024."""
        policy = self.policy()
        self.assertEqual(policy.errorBudget(50), ERROR_AMPLIFICATION * 50)
        self.assertEqual(policy.errorBudget(1000), MAX_REPLY_SIZE)
        self.assertEqual(policy.errorBudget(0), MAX_REPLY_SIZE)


class VerifiedMemoryTests(PolicyTestCase):
    def test_boundedLRU(self) -> None:
        """At most MAX_VERIFIED hosts are remembered, the least recently verified going
        first; verifying a host again makes it the most recent."""
        policy = self.policy()
        for i in range(MAX_VERIFIED):
            policy.markVerified(publicHost(i))
        self.assertTrue(all(policy.isVerified((publicHost(i), 1)) for i in range(MAX_VERIFIED)))
        policy.markVerified(publicHost(0))
        policy.markVerified(publicHost(MAX_VERIFIED))
        self.assertTrue(policy.isVerified((publicHost(0), 1)))
        self.assertFalse(policy.isVerified((publicHost(1), 1)))
        self.assertEqual(policy.replyBudget(query(50), (publicHost(1), 1)), 200)
        self.assertTrue(policy.isVerified((publicHost(MAX_VERIFIED), 1)))
        self.assertEqual(
            sum(policy.isVerified((publicHost(i), 1)) for i in range(MAX_VERIFIED + 1)),
            MAX_VERIFIED,
        )
