"""Tests for twisted_dht.lookup: iterative find_node/get_peers over a simulated network."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht import krpc
from twisted_dht.addresses import Address, isIPv6
from twisted_dht.errors import KRPCError, ProtocolStopped, QueryTimeout, SendFailed
from twisted_dht.krpc import Response
from twisted_dht.lookup import Lookup, LookupResult
from twisted_dht.nodeid import distance

REPLY_DELAY = 0.05
SLOW_DELAY = 2.0

NORMAL = "normal"
SILENT = "silent"  # never answers: the sender's final timeout fires
SLOW = "slow"  # answers after SLOW_DELAY seconds
ERROR = "error"  # answers with a KRPC error
MALFORMED_NODES = "malformedNodes"
MALFORMED_VALUES = "malformedValues"
MALFORMED_TOKEN = "malformedToken"
STOPPED = "stopped"  # fails at once with ProtocolStopped, as a stopped protocol does
SYNC = "sync"  # answers synchronously
SEND_FAILED = "sendFailed"  # fails at once with SendFailed: our own send error


def packNodes(nodes: Iterable[tuple[bytes, Address]]) -> bytes:
    """Compact node info for a C{nodes} or C{nodes6} reply."""
    return b"".join(krpc.packNode(nodeId, address) for nodeId, address in nodes)


def ipv4Address(index: int) -> Address:
    """An IPv4 address of its own /24 for node C{index}."""
    return (f"10.{index // 250}.{index % 250}.1", 6881)


def ipv6Address(index: int) -> Address:
    """A canonical IPv6 address of its own /64 for node C{index}."""
    return (str(ipaddress.IPv6Address(f"2001:db8:{index // 65536:x}:{index % 65536:x}::1")), 6881)


class FakeNode:
    """A simulated DHT node: its id, address, routing table and behaviour."""

    def __init__(self, nodeId: bytes, address: Address) -> None:
        self.nodeId = nodeId
        self.address = address
        self.replyId = nodeId
        self.known: list[tuple[bytes, Address]] = []
        self.behaviour = NORMAL
        self.peers: list[Address] = []
        self.token: bytes | None = b"tk" + nodeId[:4]
        self.extraValues: dict[bytes, Any] = {}


class Network:
    """A simulated network of L{FakeNode}s answering a lookup's queries on a Clock."""

    def __init__(
        self,
        clock: Clock,
        size: int = 0,
        seed: int = 0,
        ipv6: bool = False,
        addressOf: Callable[[int], Address] | None = None,
        shortTimeout: float = 1.0,
    ) -> None:
        self.clock = clock
        self.ipv6 = ipv6
        self.shortTimeout = shortTimeout
        self.rng = random.Random(seed)
        self.nodes: dict[Address, FakeNode] = {}
        self.sent: list[tuple[Address, bytes, dict[bytes, Any], float]] = []
        self.cancelled: list[Address] = []
        self.told: set[Address] = set()
        self.outstanding: dict[int, tuple[Address, float]] = {}
        self.maxNotSlow = 0
        self.maxOutstanding = 0
        if addressOf is None:
            addressOf = ipv6Address if ipv6 else ipv4Address
        for index in range(size):
            self.add(self.rng.randbytes(20), addressOf(index))
        self.buildTables()

    def add(self, nodeId: bytes, address: Address) -> FakeNode:
        """Add one node (call L{buildTables} afterwards)."""
        node = FakeNode(nodeId, address)
        self.nodes[address] = node
        return node

    def buildTables(self) -> None:
        """Give every node its 8..16 closest peers and up to 8 random nodes per bucket."""
        everyone = list(self.nodes.values())
        for node in everyone:
            others = sorted(
                (distance(node.nodeId, other.nodeId), other)
                for other in everyone
                if other is not node
            )
            known = {other.address: other for _, other in others[: self.rng.randint(8, 16)]}
            buckets: dict[int, list[FakeNode]] = {}
            for d, other in others:
                buckets.setdefault(d.bit_length(), []).append(other)
            for members in buckets.values():
                for other in self.rng.sample(members, min(8, len(members))):
                    known[other.address] = other
            node.known = [(other.nodeId, other.address) for other in known.values()]

    def closest(
        self, target: bytes, k: int = 8, where: Callable[[FakeNode], bool] | None = None
    ) -> list[tuple[bytes, Address]]:
        """The true C{k} closest nodes to C{target}, by brute force."""
        nodes = [n for n in self.nodes.values() if where is None or where(n)]
        nodes.sort(key=lambda n: distance(n.nodeId, target))
        return [(n.nodeId, n.address) for n in nodes[:k]]

    def closestHeardOf(
        self,
        target: bytes,
        seeds: Iterable[tuple[bytes, Address]],
        where: Callable[[FakeNode], bool],
        k: int = 8,
    ) -> list[tuple[bytes, Address]]:
        """The C{k} closest nodes satisfying C{where} among the seeds and the nodes in replies.

        A node whose only neighbours fail cannot be found: this is what a lookup can know.
        """
        heard = self.told | {address for _, address in seeds}
        return self.closest(target, k, lambda n: n.address in heard and where(n))

    def ranked(self, target: bytes) -> list[FakeNode]:
        """Every node, nearest to C{target} first."""
        return sorted(self.nodes.values(), key=lambda n: distance(n.nodeId, target))

    @property
    def queried(self) -> list[Address]:
        """Every address queried, in order."""
        return [address for address, _, _, _ in self.sent]

    def reply(self, node: FakeNode, method: bytes, args: dict[bytes, Any]) -> Response:
        """The reply C{node} gives to a query."""
        target = args[b"info_hash" if method == b"get_peers" else b"target"]
        nearest = sorted(node.known, key=lambda entry: distance(entry[0], target))[:8]
        self.told.update(address for _, address in nearest)
        values: dict[bytes, Any] = {b"id": node.replyId}
        values[b"nodes6" if self.ipv6 else b"nodes"] = packNodes(nearest)
        if method == b"get_peers":
            if node.token is not None:
                values[b"token"] = node.token
            if node.peers:
                values[b"values"] = [krpc.packAddress(peer) for peer in node.peers]
        if node.behaviour == MALFORMED_NODES:
            values[b"nodes6" if self.ipv6 else b"nodes"] += b"x"
        elif node.behaviour == MALFORMED_VALUES:
            values[b"values"] = [b"abc"]
        elif node.behaviour == MALFORMED_TOKEN:
            values[b"token"] = 5
        values.update(node.extraValues)
        return Response(b"tt", values)

    def send(
        self, address: Address, method: bytes, args: dict[bytes, Any], timeout: float
    ) -> Deferred[Response]:
        """The lookup's C{send}: record the query and schedule the node's answer."""
        now = self.clock.seconds()
        self.sent.append((address, method, args, timeout))
        node = self.nodes.get(address)
        behaviour = SILENT if node is None else node.behaviour
        if behaviour == STOPPED:
            return fail(ProtocolStopped("stopped"))
        if behaviour == SEND_FAILED:
            return fail(SendFailed(address, OSError(101, "Network is unreachable")))
        if behaviour == SYNC:
            assert node is not None
            return succeed(self.reply(node, method, args))
        notSlow = sum(1 for _, deadline in self.outstanding.values() if now < deadline)
        self.maxNotSlow = max(self.maxNotSlow, notSlow + 1)
        self.maxOutstanding = max(self.maxOutstanding, len(self.outstanding) + 1)
        calls: list[IDelayedCall] = []

        def cancel(d: Deferred[Response]) -> None:
            self.outstanding.pop(id(d), None)
            self.cancelled.append(address)
            calls[0].cancel()

        deferred: Deferred[Response] = Deferred(cancel)
        self.outstanding[id(deferred)] = (address, self.clock.seconds() + self.shortTimeout)

        def fire(outcome: Response | Exception) -> None:
            self.outstanding.pop(id(deferred), None)
            if isinstance(outcome, Exception):
                deferred.errback(outcome)
            else:
                deferred.callback(outcome)

        if behaviour == SILENT:
            calls.append(self.clock.callLater(timeout, fire, QueryTimeout("no reply")))
        elif behaviour == ERROR:
            calls.append(self.clock.callLater(REPLY_DELAY, fire, KRPCError(201, "nope")))
        else:
            assert node is not None
            delay = SLOW_DELAY if behaviour == SLOW else REPLY_DELAY
            calls.append(self.clock.callLater(delay, fire, self.reply(node, method, args)))
        return deferred


class RecordingReporter:
    """A L{LookupReporter} that records what it is told."""

    def __init__(self) -> None:
        self.responded: list[tuple[bytes, Address]] = []
        self.failed: list[Address] = []

    def nodeResponded(self, nodeId: bytes, address: Address) -> None:
        self.responded.append((nodeId, address))

    def nodeFailed(self, address: Address) -> None:
        self.failed.append(address)


def runUntilDone(clock: Clock, deferred: Deferred[Any], limit: float = 1000.0) -> None:
    """Advance C{clock} from one delayed call to the next until C{deferred} has fired."""
    while not deferred.called and clock.seconds() < limit:
        calls = clock.getDelayedCalls()
        if not calls:
            break
        clock.advance(max(0.0, min(call.getTime() for call in calls) - clock.seconds()))


class LookupTestsMixin:
    """Helpers shared by the lookup tests."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.reporter = RecordingReporter()
        self.rng = random.Random(1234)
        self.ownId = self.rng.randbytes(20)

    def newNetwork(self, size: int, seed: int = 7, **kwargs: Any) -> Network:
        return Network(self.clock, size, seed, **kwargs)

    def lookup(
        self,
        network: Network,
        target: bytes,
        seeds: Iterable[tuple[bytes, Address]],
        **kwargs: Any,
    ) -> LookupResult:
        """Run a lookup to its end and return its result."""
        lookup = Lookup(
            target, self.ownId, network.send, self.reporter, reactor=self.clock, **kwargs
        )
        deferred = lookup.start(seeds)
        runUntilDone(self.clock, deferred)
        result: LookupResult = self.successResultOf(deferred)  # type: ignore[attr-defined]
        return result

    def randomSeeds(self, network: Network, count: int = 8) -> list[tuple[bytes, Address]]:
        nodes = self.rng.sample(sorted(network.nodes), count)
        return [(network.nodes[address].nodeId, address) for address in nodes]


class ConvergenceTests(LookupTestsMixin, SynchronousTestCase):
    """A lookup finds the true closest nodes of a simulated network."""

    def test_convergesToTrueClosest(self) -> None:
        """For many targets on a 500-node network, find_node finds exactly the 8 closest."""
        network = self.newNetwork(500)
        for _ in range(30):
            target = self.rng.randbytes(20)
            result = self.lookup(network, target, self.randomSeeds(network))
            self.assertEqual(result.closest, network.closest(target))
            self.assertLessEqual(result.queries, 250)
            self.assertGreaterEqual(result.responses, 8)
            self.assertGreaterEqual(result.roundTrips, 2)
            self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_getPeersConvergesToo(self) -> None:
        """A get_peers lookup finds the 8 closest nodes to the info_hash."""
        network = self.newNetwork(500)
        for _ in range(5):
            target = self.rng.randbytes(20)
            result = self.lookup(network, target, self.randomSeeds(network), method=b"get_peers")
            self.assertEqual(result.closest, network.closest(target))

    def test_queryArguments(self) -> None:
        """find_node sends {target}, get_peers {info_hash}, no id, and the final timeout."""
        network = self.newNetwork(50)
        target = self.rng.randbytes(20)
        self.lookup(network, target, self.randomSeeds(network, 3), timeout=7.5)
        self.assertTrue(network.sent)
        for _, method, args, timeout in network.sent:
            self.assertEqual((method, args, timeout), (b"find_node", {b"target": target}, 7.5))
        network.sent.clear()
        self.lookup(network, target, self.randomSeeds(network, 3), method=b"get_peers")
        self.assertTrue(network.sent)
        for _, method, args, timeout in network.sent:
            self.assertEqual((method, args, timeout), (b"get_peers", {b"info_hash": target}, 5.0))

    def test_extraArgumentsAndResponses(self) -> None:
        """extraArgs go into every query; onResponse sees every reply that parsed, with
        the responder's id and address, and never one that did not."""
        network = self.newNetwork(50)
        target = self.rng.randbytes(20)
        broken = network.ranked(target)[1]
        broken.behaviour = MALFORMED_VALUES
        seen: list[tuple[bytes, Address, Response]] = []
        result = self.lookup(
            network,
            target,
            self.randomSeeds(network, 3),
            method=b"get_peers",
            extraArgs={b"scrape": 1},
            onResponse=lambda *reply: seen.append(reply),
        )
        for _, _, args, _ in network.sent:
            self.assertEqual(args, {b"info_hash": target, b"scrape": 1})
        self.assertEqual(len(seen), result.responses - 1)
        self.assertNotIn(broken.address, [address for _, address, _ in seen])
        for nodeId, address, response in seen:
            self.assertEqual(network.nodes[address].nodeId, nodeId)
            self.assertEqual(response.nodeId, nodeId)

    def test_roundTrips(self) -> None:
        """Seeds are hop 1 and a node learned from a hop-n reply is hop n+1."""
        network = Network(self.clock)
        target = b"\x00" * 20
        a = network.add(b"\xc0" + b"\x00" * 19, ipv4Address(1))
        b = network.add(b"\x80" + b"\x00" * 19, ipv4Address(2))
        c = network.add(b"\x40" + b"\x00" * 19, ipv4Address(3))
        a.known = [(b.nodeId, b.address)]
        b.known = [(c.nodeId, c.address)]
        result = self.lookup(network, target, [(a.nodeId, a.address)])
        self.assertEqual(
            result.closest, [(c.nodeId, c.address), (b.nodeId, b.address), (a.nodeId, a.address)]
        )
        self.assertEqual((result.roundTrips, result.queries, result.responses), (3, 3, 3))
        seeds = [(n.nodeId, n.address) for n in (a, b, c)]
        self.assertEqual(self.lookup(network, target, seeds).roundTrips, 1)

    def test_nodeAnsweringWithAnotherId(self) -> None:
        """A node that answers with another id than we knew is kept under its real id."""
        network = self.newNetwork(30)
        node = next(iter(network.nodes.values()))
        wrongId = b"\xff" * 20
        result = self.lookup(network, node.nodeId, [(wrongId, node.address)])
        self.assertIn((node.nodeId, node.address), result.closest)
        self.assertNotIn(wrongId, [nodeId for nodeId, _ in result.closest])
        self.assertIn((node.nodeId, node.address), self.reporter.responded)

    def test_synchronousReplies(self) -> None:
        """Replies that fire synchronously inside send do not confuse the traversal."""
        network = self.newNetwork(200)
        for node in network.nodes.values():
            node.behaviour = SYNC
        target = self.rng.randbytes(20)
        lookup = Lookup(target, self.ownId, network.send, None, reactor=self.clock)
        result = self.successResultOf(lookup.start(self.randomSeeds(network)))
        self.assertEqual(result.closest, network.closest(target))
        self.assertEqual(self.clock.getDelayedCalls(), [])


class GetPeersTests(LookupTestsMixin, SynchronousTestCase):
    """get_peers collects peers and tokens."""

    def test_peersDeduplicatedAndOnPeerOncePerPeer(self) -> None:
        """Peers are de-duplicated in order of arrival and onPeer is called once per new peer."""
        network = self.newNetwork(300)
        target = self.rng.randbytes(20)
        pool = [(f"192.0.2.{i}", 6000 + i) for i in range(1, 16)]
        expected: set[Address] = set()
        for node in network.ranked(target)[:8]:
            node.peers = self.rng.sample(pool, 6)
            expected.update(node.peers)
        seen: list[Address] = []
        result = self.lookup(
            network, target, self.randomSeeds(network), method=b"get_peers", onPeer=seen.append
        )
        self.assertEqual(result.peers, seen)
        self.assertEqual(len(set(seen)), len(seen))
        self.assertEqual(set(seen), expected)

    def test_onPeerFailureIsLogged(self) -> None:
        """An exception raised by onPeer is logged and does not break the lookup."""
        network = self.newNetwork(100)
        target = self.rng.randbytes(20)
        network.ranked(target)[0].peers = [("192.0.2.1", 1), ("192.0.2.2", 2)]

        def onPeer(peer: Address) -> None:
            raise ZeroDivisionError(peer)

        result = self.lookup(
            network, target, self.randomSeeds(network), method=b"get_peers", onPeer=onPeer
        )
        self.assertEqual(result.peers, [("192.0.2.1", 1), ("192.0.2.2", 2)])
        self.assertEqual(result.closest, network.closest(target))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)

    def test_tokensOfClosestResponders(self) -> None:
        """tokens holds the 8 closest responders that gave a token, nearest first."""
        network = self.newNetwork(300)
        target = self.rng.randbytes(20)
        ranked = network.ranked(target)
        ranked[1].token = None
        ranked[3].token = None
        result = self.lookup(network, target, self.randomSeeds(network), method=b"get_peers")
        responders = sorted(set(self.reporter.responded), key=lambda e: distance(e[0], target))
        expected = [
            (nodeId, address, network.nodes[address].token)
            for nodeId, address in responders
            if network.nodes[address].token is not None
        ][:8]
        self.assertEqual(result.tokens, expected)
        tokenIds = [nodeId for nodeId, _, _ in result.tokens]
        self.assertNotIn(ranked[1].nodeId, tokenIds)
        self.assertNotIn(ranked[3].nodeId, tokenIds)
        for node in (ranked[0], ranked[2], ranked[4], ranked[5], ranked[6], ranked[7]):
            self.assertIn((node.nodeId, node.address, node.token), result.tokens)

    def test_findNodeHasNoPeersOrTokens(self) -> None:
        """A find_node lookup reports neither peers nor tokens."""
        network = self.newNetwork(100)
        target = self.rng.randbytes(20)
        network.ranked(target)[0].peers = [("192.0.2.1", 1)]
        result = self.lookup(network, target, self.randomSeeds(network))
        self.assertEqual((result.peers, result.tokens), ([], []))


class ParallelismTests(LookupTestsMixin, SynchronousTestCase):
    """alpha, short timeouts and slow nodes."""

    def test_alphaRespected(self) -> None:
        """Never more than alpha queries are in flight and not yet slow; slow ones free slots."""
        network = self.newNetwork(400)
        for node in self.rng.sample(list(network.nodes.values()), 120):
            node.behaviour = self.rng.choice([SLOW, SILENT])
        for _ in range(5):
            target = self.rng.randbytes(20)
            self.lookup(network, target, self.randomSeeds(network, 16), alpha=3)
        self.assertEqual(network.maxNotSlow, 3)
        self.assertGreater(network.maxOutstanding, 3)

    def test_silentFirstNodeDoesNotStall(self) -> None:
        """A silent first node frees its slot after the short timeout: the lookup ends early."""
        network = self.newNetwork(300)
        target = self.rng.randbytes(20)
        ranked = network.ranked(target)
        silent = ranked[40]
        silent.behaviour = SILENT
        seeds = [(silent.nodeId, silent.address)] + [
            (n.nodeId, n.address) for n in ranked[200:203]
        ]
        result = self.lookup(network, target, seeds, alpha=1, timeout=5.0)
        self.assertEqual(network.queried[0], silent.address)
        self.assertEqual(result.closest, network.closest(target))
        self.assertLess(self.clock.seconds(), 3.0)
        self.assertIn(silent.address, network.cancelled)
        self.assertEqual(self.reporter.failed, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_lateReplyFromSlowNodeCounts(self) -> None:
        """A reply that comes after the short timeout but before the final one is used."""
        network = self.newNetwork(300)
        target = self.rng.randbytes(20)
        closest = network.ranked(target)[0]
        closest.behaviour = SLOW
        result = self.lookup(network, target, self.randomSeeds(network))
        self.assertEqual(result.closest, network.closest(target))
        self.assertIn((closest.nodeId, closest.address), self.reporter.responded)
        self.assertGreaterEqual(self.clock.seconds(), SLOW_DELAY)

    def test_noDelayedCallLeftAfterFinish(self) -> None:
        """Queries still outstanding when the lookup finishes are cancelled, timers too."""
        network = self.newNetwork(300)
        for node in self.rng.sample(list(network.nodes.values()), 150):
            node.behaviour = SLOW
        target = self.rng.randbytes(20)
        for node in network.ranked(target)[:8]:
            node.behaviour = NORMAL
        self.lookup(network, target, self.randomSeeds(network, 20), alpha=8)
        self.assertTrue(network.cancelled)
        self.assertEqual(network.outstanding, {})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cancelCancelsOutstandingQueries(self) -> None:
        """Cancelling the lookup cancels every query and timer and fails with CancelledError."""
        network = self.newNetwork(300)
        for node in network.nodes.values():
            node.behaviour = SLOW
        lookup = Lookup(
            self.rng.randbytes(20), self.ownId, network.send, self.reporter, reactor=self.clock
        )
        deferred = lookup.start(self.randomSeeds(network))
        self.clock.advance(1.5)
        outstanding = sorted(address for address, _ in network.outstanding.values())
        self.assertEqual(len(outstanding), 6)
        deferred.cancel()
        self.failureResultOf(deferred, CancelledError)
        self.assertEqual(sorted(network.cancelled), outstanding)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertTrue(lookup.finished)
        self.assertEqual((self.reporter.responded, self.reporter.failed), ([], []))


class ReportingTests(LookupTestsMixin, SynchronousTestCase):
    """What the lookup tells the routing table, and how it treats failures."""

    def test_finalTimeoutsReportedAsFailures(self) -> None:
        """A node that never answers is reported failed once its final timeout fires."""
        network = self.newNetwork(300)
        target = self.rng.randbytes(20)
        silent = network.ranked(target)[0]
        silent.behaviour = SILENT
        result = self.lookup(network, target, self.randomSeeds(network), timeout=5.0)
        self.assertEqual(self.reporter.failed, [silent.address])
        self.assertEqual(result.closest, network.closest(target, where=lambda n: n is not silent))
        self.assertGreaterEqual(self.clock.seconds(), 5.0)

    def test_responsesReportedNodesListEntriesNot(self) -> None:
        """Every responder is reported once with its id; contacts only heard of are never told."""
        network = self.newNetwork(300)
        target = self.rng.randbytes(20)
        self.lookup(network, target, self.randomSeeds(network))
        queried = set(network.queried) - set(network.cancelled)
        self.assertEqual(
            sorted(self.reporter.responded),
            sorted((network.nodes[address].nodeId, address) for address in queried),
        )
        heard: set[Address] = set()
        for address in queried:
            heard.update(address for _, address in network.nodes[address].known)
        neverAsked = heard - set(network.queried)
        self.assertTrue(neverAsked)
        reported = {address for _, address in self.reporter.responded}
        self.assertEqual(reported & neverAsked, set())
        self.assertEqual(self.reporter.failed, [])

    def test_errorRepliesFailInLookupButNotReported(self) -> None:
        """A KRPC error removes the node from the lookup but is not reported to the table."""
        network = self.newNetwork(300)
        target = self.rng.randbytes(20)
        erring = network.ranked(target)[:2]
        for node in erring:
            node.behaviour = ERROR
        seeds = self.randomSeeds(network)
        result = self.lookup(network, target, seeds)
        self.assertEqual(
            result.closest,
            network.closestHeardOf(target, seeds, lambda n: n.behaviour == NORMAL),
        )
        self.assertEqual(len(result.closest), 8)
        for node in erring:
            self.assertIn(node.address, network.queried)
            self.assertNotIn(node.address, self.reporter.failed)
            self.assertNotIn((node.nodeId, node.address), self.reporter.responded)

    def test_localSendFailureNotCountedAgainstNode(self) -> None:
        """A query we could not send (SendFailed) leaves the node out of the lookup, is
        neither reported as a failure to the table nor logged, and the lookup goes on."""
        network = self.newNetwork(300)
        target = self.rng.randbytes(20)
        unsendable = network.ranked(target)[:3]
        for node in unsendable:
            node.behaviour = SEND_FAILED
        seeds = self.randomSeeds(network)
        result = self.lookup(network, target, seeds)
        self.assertEqual(
            result.closest,
            network.closestHeardOf(target, seeds, lambda n: n.behaviour == NORMAL),
        )
        for node in unsendable:
            self.assertIn(node.address, network.queried)
            self.assertNotIn(node.address, self.reporter.failed)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_malformedRepliesDoNotBreakLookup(self) -> None:
        """Malformed nodes, values or tokens fail that node for the lookup only, unreported."""
        network = self.newNetwork(300)
        target = self.rng.randbytes(20)
        ranked = network.ranked(target)
        bad = ranked[0:3]
        for node, behaviour in zip(
            bad, (MALFORMED_NODES, MALFORMED_VALUES, MALFORMED_TOKEN), strict=True
        ):
            node.behaviour = behaviour
        seeds = self.randomSeeds(network)
        result = self.lookup(network, target, seeds, method=b"get_peers")
        self.assertEqual(
            result.closest,
            network.closestHeardOf(target, seeds, lambda n: n.behaviour == NORMAL),
        )
        self.assertEqual(len(result.closest), 8)
        for node in bad:
            self.assertIn(node.address, network.queried)
            self.assertNotIn(node.address, self.reporter.failed)
            self.assertNotIn((node.nodeId, node.address), self.reporter.responded)
            self.assertNotIn(node.nodeId, [nodeId for nodeId, _, _ in result.tokens])

    def test_protocolStoppedNotReported(self) -> None:
        """Queries failing with ProtocolStopped end the lookup empty, with nothing reported."""
        network = self.newNetwork(50)
        for node in network.nodes.values():
            node.behaviour = STOPPED
        lookup = Lookup(
            self.rng.randbytes(20), self.ownId, network.send, self.reporter, reactor=self.clock
        )
        result = self.successResultOf(lookup.start(self.randomSeeds(network)))
        self.assertEqual((result.closest, result.queries, result.responses), ([], 8, 0))
        self.assertEqual((self.reporter.responded, self.reporter.failed), ([], []))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_noReporter(self) -> None:
        """A lookup without a reporter works."""
        network = self.newNetwork(100)
        target = self.rng.randbytes(20)
        lookup = Lookup(target, self.ownId, network.send, None, reactor=self.clock)
        deferred = lookup.start(self.randomSeeds(network))
        runUntilDone(self.clock, deferred)
        self.assertEqual(self.successResultOf(deferred).closest, network.closest(target))


class ContactFilterTests(LookupTestsMixin, SynchronousTestCase):
    """Which contacts a lookup agrees to query."""

    def test_neverQueriesOwnIdPortZeroDuplicatesOrSameIp(self) -> None:
        """Our own id, port 0, an address seen before and a second contact of an IP are skipped."""
        network = self.newNetwork(300)
        target = self.ownId[:-1] + bytes([self.ownId[-1] ^ 1])  # a self-lookup
        ranked = network.ranked(target)
        ownNode = network.add(self.ownId, ("10.200.0.1", 6881))
        # Sybils: as close to the target as a real node, sharing its IP, on another port.
        sybils = [
            network.add(
                node.nodeId[:-1] + bytes([node.nodeId[-1] ^ 0xFF]), (node.address[0], 7000)
            )
            for node in ranked[:20]
        ]
        network.buildTables()

        def near(value: int) -> bytes:
            return target[:-1] + bytes([target[-1] ^ value])

        seed = ranked[100]
        seeds = [
            (self.ownId, ownNode.address),
            (near(2), ("10.201.0.1", 0)),
            (seed.nodeId, seed.address),
            (near(3), seed.address),
            (near(4), (seed.address[0], 9999)),
            *self.randomSeeds(network, 6),
        ]
        result = self.lookup(network, target, seeds)
        queried = network.queried
        self.assertNotIn(ownNode.address, queried)
        self.assertNotIn(0, [port for _, port in queried])
        self.assertEqual(len(set(queried)), len(queried))
        self.assertEqual(len({host for host, _ in queried}), len(queried))
        self.assertNotIn(self.ownId, [nodeId for nodeId, _ in result.closest])
        self.assertTrue(set(queried) & {sybil.address for sybil in sybils})
        self.assertTrue(set(queried) & {node.address for node in ranked[:20]})

    def test_restrictSubnetsIPv4(self) -> None:
        """With restrictSubnets, at most one contact per /24 is queried in a lookup."""
        network = self.newNetwork(300, addressOf=lambda i: (f"10.0.{i % 25}.{i // 25 + 1}", 6881))
        target = self.rng.randbytes(20)
        seeds = self.randomSeeds(network)
        self.lookup(network, target, seeds)
        subnets = [host.rsplit(".", 1)[0] for host, _ in network.queried]
        self.assertNotEqual(len(set(subnets)), len(subnets))
        network.sent.clear()
        self.lookup(network, target, seeds, restrictSubnets=True)
        subnets = [host.rsplit(".", 1)[0] for host, _ in network.queried]
        self.assertEqual(len(set(subnets)), len(subnets))

    def test_restrictSubnetsIPv6(self) -> None:
        """With restrictSubnets, at most one contact per /64 is queried in an IPv6 lookup."""

        def addressOf(index: int) -> Address:
            host = ipaddress.IPv6Address(f"2001:db8:0:{index % 25:x}::{index // 25 + 1:x}")
            return (str(host), 6881)

        network = self.newNetwork(300, ipv6=True, addressOf=addressOf)
        target = self.rng.randbytes(20)
        seeds = self.randomSeeds(network)

        def prefixes() -> list[bytes]:
            return [ipaddress.IPv6Address(host).packed[:8] for host, _ in network.queried]

        self.lookup(network, target, seeds, ipv6=True)
        self.assertNotEqual(len(set(prefixes())), len(prefixes()))
        network.sent.clear()
        self.lookup(network, target, seeds, ipv6=True, restrictSubnets=True)
        self.assertEqual(len(set(prefixes())), len(prefixes()))

    def test_relaxLocalAllowsManyNodesPerLocalIP(self) -> None:
        """With relaxLocal, many nodes on one loopback IP are all usable in a lookup."""
        network = self.newNetwork(100, addressOf=lambda i: ("127.0.0.1", 7000 + i))
        target = self.rng.randbytes(20)
        seeds = self.randomSeeds(network)
        self.lookup(network, target, seeds)
        self.assertEqual(len(network.queried), 1)
        network.sent.clear()
        self.lookup(network, target, seeds, relaxLocal=True, restrictSubnets=True)
        self.assertGreater(len(set(network.queried)), 8)

    def test_maxQueriesBound(self) -> None:
        """No more than maxQueries queries are sent, and the lookup still finishes."""
        network = self.newNetwork(300)
        result = self.lookup(
            network, self.rng.randbytes(20), self.randomSeeds(network), maxQueries=5
        )
        self.assertEqual((result.queries, len(network.sent)), (5, 5))
        self.assertEqual(len(result.closest), 5)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_maxCandidatesBound(self) -> None:
        """Beyond maxCandidates the farthest contacts not yet queried are dropped."""
        network = self.newNetwork(300)
        target = self.rng.randbytes(20)
        seeds = self.randomSeeds(network, 40)
        seeds.sort(key=lambda entry: distance(entry[0], target))
        self.lookup(network, target, seeds, maxCandidates=10)
        dropped = {address for _, address in seeds[10:]}
        self.assertEqual(dropped & set(network.queried), set())
        self.assertEqual(network.queried[:3], [address for _, address in seeds[:3]])

    def test_wrongFamilyIgnored(self) -> None:
        """An IPv4 lookup ignores IPv6 contacts and an IPv6 lookup ignores IPv4 ones."""
        network = self.newNetwork(20)
        seeds = [(b"\x05" * 20, ("2001:db8::1", 6881))]
        self.assertEqual(self.lookup(network, b"\x00" * 20, seeds).queries, 0)
        seeds = [(b"\x05" * 20, ("10.0.0.1", 6881))]
        self.assertEqual(self.lookup(network, b"\x00" * 20, seeds, ipv6=True).queries, 0)


class EndingTests(LookupTestsMixin, SynchronousTestCase):
    """Lookups that find nothing, eligibility and IPv6."""

    def test_emptySeeds(self) -> None:
        """Without seeds the lookup fires at once with an empty result."""
        network = self.newNetwork(10)
        target = b"\x00" * 20
        lookup = Lookup(target, self.ownId, network.send, self.reporter, reactor=self.clock)
        result = self.successResultOf(lookup.start([]))
        self.assertEqual(result, LookupResult(target, [], [], [], 0, 0, 0))
        self.assertEqual((network.sent, self.clock.getDelayedCalls()), ([], []))

    def test_everyQueryFails(self) -> None:
        """When no seed answers, the lookup fires with an empty result after the timeouts."""
        network = self.newNetwork(20)
        for node in network.nodes.values():
            node.behaviour = SILENT
        seeds = self.randomSeeds(network, 5)
        result = self.lookup(network, b"\x00" * 20, seeds)
        self.assertEqual((result.closest, result.queries, result.responses), ([], 5, 0))
        self.assertEqual(sorted(self.reporter.failed), sorted(a for _, a in seeds))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_startTwice(self) -> None:
        """A lookup cannot be started twice."""
        network = self.newNetwork(10)
        lookup = Lookup(b"\x00" * 20, self.ownId, network.send, None, reactor=self.clock)
        lookup.start([])
        self.assertRaises(RuntimeError, lookup.start, [])

    def test_ineligibleRespondersDoNotEndLookup(self) -> None:
        """Ineligible responders are in neither closest nor tokens; the lookup goes past them."""
        network = self.newNetwork(300)
        target = self.rng.randbytes(20)
        ranked = network.ranked(target)
        ineligible = {ranked[0].nodeId, ranked[2].nodeId, ranked[5].nodeId}
        seeds = self.randomSeeds(network)
        result = self.lookup(
            network,
            target,
            seeds,
            method=b"get_peers",
            eligible=lambda nodeId, address: nodeId not in ineligible,
        )
        expected = network.closestHeardOf(target, seeds, lambda n: n.nodeId not in ineligible)
        self.assertEqual(len(expected), 8)
        self.assertIn((ranked[8].nodeId, ranked[8].address), expected)
        self.assertEqual(result.closest, expected)
        self.assertEqual([(i, a) for i, a, _ in result.tokens], expected)
        for nodeId in ineligible:
            self.assertIn(nodeId, [i for i, _ in self.reporter.responded])

    def test_ineligibleRespondersStillGiveNodes(self) -> None:
        """The nodes an ineligible responder returns are used."""
        network = self.newNetwork(300)
        target = self.rng.randbytes(20)
        gateway = network.ranked(target)[150]
        result = self.lookup(
            network,
            target,
            [(gateway.nodeId, gateway.address)],
            eligible=lambda nodeId, address: nodeId != gateway.nodeId,
        )
        self.assertEqual(result.closest, network.closest(target))

    def test_ipv6Lookup(self) -> None:
        """An IPv6 lookup sends want n6, reads nodes6 and ignores nodes."""
        network = self.newNetwork(300, ipv6=True)
        decoy = packNodes([(b"\x00" * 20, ("10.9.9.9", 6881))])
        for node in network.nodes.values():
            node.extraValues = {b"nodes": decoy}
        target = self.rng.randbytes(20)
        result = self.lookup(network, target, self.randomSeeds(network), ipv6=True)
        self.assertEqual(result.closest, network.closest(target))
        for address, _, args, _ in network.sent:
            self.assertEqual(args, {b"target": target, b"want": [b"n6"]})
            self.assertTrue(isIPv6(address[0]))
