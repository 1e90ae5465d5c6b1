"""Tests for the hardening wired into KRPCProtocol, the admission policy and DHTNode: flood drops,
budgets, outgoing query pacing, the amplification cap, BEP 42 eligibility and id changes."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht import bencoding, bep42, krpc
from twisted_dht.addresses import Address, packAddress
from twisted_dht.admission import AMPLIFICATION
from twisted_dht.errors import QueryDropped
from twisted_dht.node import DHTNode
from twisted_dht.stats import NodeStats
from twisted_dht.testing import FakeDatagramTransport, MemoryNetwork

OUR_ID = b"\x11" * 20
REMOTE_ID = b"\x22" * 20
INFO_HASH = b"\x44" * 20
HERE: Address = ("81.0.0.1", 6881)


def source(n: int) -> Address:
    """The n-th distinct global source address."""
    return (f"93.{n // 256 % 256}.{n % 256}.9", 6881)


def query(method: bytes, args: dict[bytes, Any], tid: bytes = b"aa") -> bytes:
    """A query datagram."""
    return bencoding.encode({b"t": tid, b"y": b"q", b"q": method, b"a": args})


class NodeTestCase(SynchronousTestCase):
    options: dict[str, Any] = {}

    def setUp(self) -> None:
        self.clock = Clock()
        self.node = DHTNode(OUR_ID, reactor=self.clock, routers=[], **self.options)
        self.transport = FakeDatagramTransport(HERE)
        self.node.ipv4.protocol.makeConnection(self.transport)  # type: ignore[arg-type]

    @property
    def stats(self) -> NodeStats:
        """The node's traffic and drop counters."""
        return self.node.stats()

    def send(self, data: bytes, address: Address) -> list[bytes]:
        """Deliver one datagram; return what was sent back to C{address}."""
        before = len(self.transport.written)
        self.node.ipv4.protocol.datagramReceived(data, address)
        return [d for d, a in self.transport.written[before:] if a == address]

    def ping(self, address: Address) -> list[bytes]:
        return self.send(query(b"ping", {b"id": REMOTE_ID}), address)


class BlockerTests(NodeTestCase):
    def test_floodFromOneIPDroppedSilently(self) -> None:
        """Above 5 queries/s from one IP over 10 s, the IP gets no replies and is counted."""
        answered = sum(len(self.ping(source(1))) for _ in range(200))
        self.assertEqual(answered, 50)
        self.assertEqual(self.stats.drops["rateLimit"], 150)
        self.assertEqual(len(self.ping(source(2))), 1)

    def test_blockedIPServedAfterFiveMinutes(self) -> None:
        """A blocked IP is answered again after 300 s on the clock."""
        for _ in range(60):
            self.ping(source(1))
        self.clock.advance(301)
        self.assertEqual(len(self.ping(source(1))), 1)

    def test_blockerFirst(self) -> None:
        """Garbage from a blocked IP is dropped before decoding (not counted as malformed)."""
        for _ in range(60):
            self.ping(source(1))
        self.send(b"garbage", source(1))
        self.assertEqual(self.stats.drops["malformed"], 0)


class BlockerOffTests(NodeTestCase):
    options = {"ipRateLimit": 0}

    def test_zeroDisables(self) -> None:
        """ipRateLimit=0 answers every query of a single IP (within the other budgets)."""
        self.assertEqual(sum(len(self.ping(source(1))) for _ in range(300)), 300)


class QueryBudgetTests(NodeTestCase):
    options = {"queryRateLimit": 10}

    def test_overBudgetQueriesDropped(self) -> None:
        """Over the global query rate (burst 2 s), queries from any IP are dropped unanswered."""
        answered = sum(len(self.ping(source(i))) for i in range(50))
        self.assertEqual(answered, 20)
        self.assertEqual(self.stats.drops["queryLimit"], 30)
        self.assertEqual(sum(self.stats.errorsSent.values()), 0)
        self.clock.advance(1)
        self.assertEqual(sum(len(self.ping(source(100 + i))) for i in range(50)), 10)


class UploadBudgetTests(NodeTestCase):
    options = {"uploadLimit": 1000}

    def test_repliesDroppedOverBudget(self) -> None:
        """Replies that the upload budget (3 s of burst) cannot pay for are dropped."""
        replies = [self.ping(source(i)) for i in range(100)]
        sent = sum(len(r) for r in replies)
        size = len(next(r for r in replies if r)[0])
        self.assertEqual(sent, 3000 // size)
        self.assertEqual(self.stats.drops["uploadLimit"], 100 - sent)
        self.assertLessEqual(self.stats.bytesOut, 3000 + 2 * 100)

    def test_ourQueriesSpendTheBudget(self) -> None:
        """Our own queries are sent even over budget, and leave less for replies."""
        for i in range(60):
            self.node.sendQuery(source(1000 + i), b"ping", {}).addErrback(lambda _: None)
        self.assertEqual(self.node.ipv4.protocol.queriesOut[b"ping"], 60)
        self.assertEqual(self.ping(source(1)), [])
        self.assertEqual(self.stats.drops["uploadLimit"], 1)
        self.node.ipv4.protocol.stopProtocol()


class AmplificationTests(NodeTestCase):
    options = {"ipRateLimit": 0}

    def fill(self) -> None:
        for i in range(8):
            ip = f"85.0.{i}.1"
            self.node.ipv4.table.nodeResponded(bep42.generateId(ip), (ip, 7000))
            ip6 = f"2a00:{i + 1:x}::1"
            self.node.ipv6.table.nodeResponded(bep42.generateId(ip6), (ip6, 7000))
        for i in range(100):
            self.node.peerStore.addPeer(INFO_HASH, (f"86.1.{i}.1", 6881))

    def test_unverifiedReplyCapped(self) -> None:
        """A get_peers/find_node reply to an unverified global IP is at most 4x its query."""
        self.fill()
        for method, key in ((b"get_peers", b"info_hash"), (b"find_node", b"target")):
            data = query(method, {b"id": REMOTE_ID, key: INFO_HASH, b"want": [b"n4", b"n6"]})
            (reply,) = self.send(data, source(1))
            self.assertLessEqual(len(reply), AMPLIFICATION * len(data))
            krpc.decodeMessage(reply)

    def test_plainFindNodeUntrimmed(self) -> None:
        """An ordinary IPv4 find_node from an unverified IP still gets all 8 nodes."""
        self.fill()
        (reply,) = self.send(
            query(b"find_node", {b"id": REMOTE_ID, b"target": INFO_HASH}), source(1)
        )
        response = krpc.decodeMessage(reply)
        assert isinstance(response, krpc.Response)
        self.assertEqual(len(krpc.responseNodes(response)), 8)

    def test_tokenHistoryLiftsCap(self) -> None:
        """After a valid announce, the same IP gets full-size get_peers replies."""
        self.fill()
        data = query(b"get_peers", {b"id": REMOTE_ID, b"info_hash": INFO_HASH})
        (small,) = self.send(data, source(1))
        token = self.node.tokenStore.generate(source(1)[0], INFO_HASH)
        announce = query(
            b"announce_peer",
            {b"id": REMOTE_ID, b"info_hash": INFO_HASH, b"port": 6881, b"token": token},
        )
        self.assertEqual(len(self.send(announce, source(1))), 1)
        (large,) = self.send(data, source(1))
        self.assertGreater(len(large), AMPLIFICATION * len(data))
        self.assertLessEqual(len(large), krpc.MAX_REPLY_SIZE)
        self.assertLess(len(small), len(large))

    def test_confirmedContactUncapped(self) -> None:
        """A routing-table contact that answered our query is verified: no 4x cap."""
        self.fill()
        self.node.ipv4.table.nodeResponded(bep42.generateId(source(1)[0]), source(1))
        data = query(b"get_peers", {b"id": REMOTE_ID, b"info_hash": INFO_HASH})
        (reply,) = self.send(data, source(1))
        self.assertGreater(len(reply), AMPLIFICATION * len(data))

    def test_localRequesterUncapped(self) -> None:
        """A requester in a local range (BEP 42's exempt ranges) gets full replies."""
        self.fill()
        data = query(b"get_peers", {b"id": REMOTE_ID, b"info_hash": INFO_HASH})
        (reply,) = self.send(data, ("10.9.9.9", 6881))
        self.assertGreater(len(reply), AMPLIFICATION * len(data))

    def test_errorsCappedToo(self) -> None:
        """An error reply to a tiny query stays within 4x its size."""
        for data in (
            b"d1:t1:x1:y1:qe",
            b"d1:ade1:q1:x1:t1:x1:y1:qe",
            query(b"x" * 30, {b"id": REMOTE_ID}),
        ):
            replies = self.send(data, source(2))
            for reply in replies:
                self.assertLessEqual(len(reply), 4 * len(data))
                krpc.decodeMessage(reply)

    def test_malformedAndUnknownTidUnanswered(self) -> None:
        """Garbage and responses to no query of ours get no reply at all."""
        response = bencoding.encode({b"t": b"zz", b"y": b"r", b"r": {b"id": REMOTE_ID}})
        self.assertEqual(self.send(b"\xff\x00garbage", source(3)), [])
        self.assertEqual(self.send(response, source(3)), [])
        self.assertEqual(self.stats.unknownTransactions, 1)


class PacingTests(NodeTestCase):
    options = {"outgoingQueryRate": 10, "maxQueuedQueries": 15}

    def test_queriesOverRateWait(self) -> None:
        """Over the outgoing rate (burst 2 s), queries wait and go out as tokens come back."""
        deferreds = [self.node.sendQuery(source(i), b"ping", {}) for i in range(30)]
        self.assertEqual(len(self.transport.written), 20)
        self.assertEqual(self.node.queuedQueries, 10)
        self.clock.advance(0.5)
        self.assertEqual(len(self.transport.written), 25)
        self.clock.advance(0.5)
        self.assertEqual(len(self.transport.written), 30)
        self.assertEqual(self.node.queuedQueries, 0)
        for d in deferreds:
            d.cancel()
            self.failureResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_queueBounded(self) -> None:
        """Beyond maxQueuedQueries waiting, queries fail at once with QueryDropped."""
        deferreds = [self.node.sendQuery(source(i), b"ping", {}) for i in range(40)]
        self.assertEqual(self.node.queuedQueries, 15)
        for d in deferreds[35:]:
            self.failureResultOf(d, QueryDropped)
        for d in deferreds[:35]:
            d.cancel()
            self.failureResultOf(d)

    def test_cancelRemovesFromQueue(self) -> None:
        """Cancelling a waiting query removes it from the queue; it is never sent."""
        deferreds = [self.node.sendQuery(source(i), b"ping", {}) for i in range(21)]
        deferreds[20].cancel()
        self.failureResultOf(deferreds[20])
        self.assertEqual(self.node.queuedQueries, 0)
        self.clock.advance(10)
        self.assertEqual(len(self.transport.written), 20)
        for d in deferreds[:20]:
            self.failureResultOf(d)

    def test_stopFailsQueued(self) -> None:
        """stop() fails every waiting query and leaves no timer behind."""
        self.node.start(bootstrap=False)
        deferreds = [self.node.sendQuery(source(i), b"ping", {}) for i in range(25)]
        self.node.stop()
        self.node.ipv4.protocol.stopProtocol()
        for d in deferreds:
            self.failureResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class VotingTests(NodeTestCase):
    def answer(self, address: Address, seenAs: Address) -> None:
        """Ping C{address} and deliver its reply saying it saw us at C{seenAs}."""
        d = self.node.ping(address)
        data, _ = self.transport.written[-1]
        tid = krpc.decodeMessage(data).tid
        reply = krpc.encodeResponse(
            tid, {b"id": bep42.generateId(address[0])}, requester=packAddress(seenAs)
        )
        self.node.ipv4.protocol.datagramReceived(reply, address)
        self.successResultOf(d)

    def test_idRegeneratedAfterVotes(self) -> None:
        """Ten voters agreeing on a new external IP give the node a BEP 42 id for it."""
        changed: list[bytes] = []
        self.node.idChanged.append(changed.append)
        for i in range(9):
            self.answer(source(i), ("81.5.5.5", 6881))
        self.assertEqual(self.node.nodeId, OUR_ID)
        self.answer(source(9), ("81.5.5.5", 6881))
        self.assertNotEqual(self.node.nodeId, OUR_ID)
        self.assertTrue(bep42.verifyId(self.node.nodeId, "81.5.5.5"))
        self.assertEqual(changed, [self.node.nodeId])
        self.assertEqual(self.node.ipv4.table.ownId, self.node.nodeId)
        self.assertEqual(self.node.stats().externalIP, "81.5.5.5")

    def test_validIdKept(self) -> None:
        """If our id is already valid for the voted IP, it is kept and nobody is told."""
        valid = bep42.generateId("81.5.5.5")
        self.node.setNodeId(valid)
        changed: list[bytes] = []
        self.node.idChanged.append(changed.append)
        for i in range(12):
            self.answer(source(i), ("81.5.5.5", 6881))
        self.assertEqual(self.node.nodeId, valid)
        self.assertEqual(changed, [])

    def test_failingCallbackLogged(self) -> None:
        """An idChanged callback that raises is logged and does not stop the change."""

        def broken(nodeId: bytes) -> None:
            raise RuntimeError("bug")

        self.node.idChanged.append(broken)
        self.node.setNodeId(b"\x33" * 20)
        self.assertEqual(self.node.nodeId, b"\x33" * 20)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class EligibilityTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.network = MemoryNetwork(self.clock)
        self.nodes: list[DHTNode] = []

    def add(self, ip: str, nodeId: bytes, **options: Any) -> DHTNode:
        node = DHTNode(nodeId, reactor=self.clock, routers=[], **options)
        self.network.listen(node.ipv4.protocol, (ip, 6881))
        self.nodes.append(node)
        return node

    def tearDown(self) -> None:
        for node in self.nodes:
            node.stop()
        self.clock.advance(60)

    def test_nonCompliantNotStoreTarget(self) -> None:
        """A non-compliant responder is served and used, but is neither a closest node nor
        an announce target of a lookup."""
        good = [self.add(f"85.0.{i}.1", bep42.generateId(f"85.0.{i}.1")) for i in range(4)]
        target = b"\x77" * 20
        bad = self.add("86.0.0.1", target[:19] + b"\x00")
        searcher = self.add("87.0.0.1", bep42.generateId("87.0.0.1"))
        seeds = [
            (n.nodeId, ("86.0.0.1" if n is bad else f"85.0.{good.index(n)}.1", 6881))
            for n in [bad, *good]
        ]
        d = searcher.lookup(target, b"get_peers", False, seeds=seeds)
        for _ in range(1000):
            self.clock.advance(0.01)
        result = self.successResultOf(d)
        addresses = {address for _, address in result.closest}
        self.assertNotIn(("86.0.0.1", 6881), addresses)
        self.assertNotIn(("86.0.0.1", 6881), {address for _, address, _ in result.tokens})
        self.assertEqual(len(result.tokens), 4)
        self.assertEqual(bad.ipv4.protocol.counters["responsesSent"], 1)

    def test_enforceNodeIdKeepsTableClean(self) -> None:
        """With enforceNodeId, a non-compliant node never enters the routing table;
        without it, it may."""
        strict = self.add("88.0.0.1", bep42.generateId("88.0.0.1"), enforceNodeId=True)
        lax = self.add("88.0.1.1", bep42.generateId("88.0.1.1"))
        for table in (strict.ipv4.table, lax.ipv4.table):
            table.nodeResponded(b"\x55" * 20, ("89.0.0.1", 6881))
            table.nodeResponded(bep42.generateId("89.0.1.1"), ("89.0.1.1", 6881))
            table.nodeResponded(b"\x56" * 20, ("10.0.0.1", 6881))
        self.assertIsNone(strict.ipv4.table.get(("89.0.0.1", 6881)))
        self.assertIsNotNone(strict.ipv4.table.get(("89.0.1.1", 6881)))
        self.assertIsNotNone(strict.ipv4.table.get(("10.0.0.1", 6881)))
        self.assertIsNotNone(lax.ipv4.table.get(("89.0.0.1", 6881)))

    def test_searchSubnetDefault(self) -> None:
        """Lookups keep one contact per /24 by default, and not with relaxLocal."""
        self.assertTrue(self.add("90.0.0.1", OUR_ID).search.restrictSubnets)
        self.assertFalse(self.add("90.0.1.1", REMOTE_ID, relaxLocal=True).search.restrictSubnets)


class RuntimeLimitTests(NodeTestCase):
    options = {"ipRateLimit": 0, "queryRateLimit": 0}

    def test_limitEnabledAfterStart(self) -> None:
        """A per-IP limit off at construction and turned on at runtime takes effect."""
        self.assertEqual(sum(len(self.ping(source(1))) for _ in range(100)), 100)
        self.node.policy.ipRateLimit = 5
        answered = sum(len(self.ping(source(2))) for _ in range(200))
        self.assertEqual(answered, 50)
        self.assertEqual(self.stats.drops["rateLimit"], 150)

    def test_queryLimitEnabledAfterStart(self) -> None:
        """A global query limit turned on at runtime drops the excess."""
        self.node.policy.queryRateLimit = 10
        answered = sum(len(self.ping(source(i))) for i in range(50))
        self.assertEqual(answered, 20)
        self.assertEqual(self.stats.drops["queryLimit"], 30)
