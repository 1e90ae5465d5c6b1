"""Tests for twisted_dht.node: a whole node on an in-memory network driven by a Clock."""

from __future__ import annotations

import errno
import functools
import heapq
import random
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import (
    IHostnameResolver,
    IReactorPluggableNameResolver,
    IResolutionReceiver,
)
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from twisted_dht import krpc
from twisted_dht.addresses import Address
from twisted_dht.errors import SendFailed
from twisted_dht.node import EXPIRY_INTERVAL, DHTNode
from twisted_dht.nodeid import distance
from twisted_dht.peers import PeerStore
from twisted_dht.testing import MemoryNetwork

K = 8


def addressOf(index: int) -> Address:
    """A distinct IPv4 address (and /24) per node index."""
    return (f"10.{index // 200}.{index % 200}.1", 6881)


def address6Of(index: int) -> Address:
    """A distinct IPv6 address (and /64) per node index, in the ULA range that BEP 42
    exempts (like the IPv4 addresses, so that random node ids count as compliant)."""
    return (f"fd00:{index:x}::1", 6881)


class Swarm:
    """N DHT nodes on one MemoryNetwork and Clock; node 0 is everyone's router.

    With C{dualStack}, every node also has an IPv6 socket (BEP 32).
    """

    def __init__(
        self,
        count: int,
        *,
        seed: int = 1,
        lossRate: float = 0.0,
        dualStack: bool = False,
        **options: Any,
    ):
        self.clock = Clock()
        self.network = MemoryNetwork(self.clock, lossRate=lossRate, seed=seed)
        rng = random.Random(seed)
        routers = [addressOf(0), address6Of(0)] if dualStack else [addressOf(0)]
        self.nodes: list[DHTNode] = []
        for index in range(count):
            node = DHTNode(
                rng.randbytes(20),
                reactor=self.clock,
                routers=routers if index else [],
                **options,
            )
            self.network.listen(node.ipv4.protocol, addressOf(index))
            if dualStack:
                self.network.listen(node.ipv6.protocol, address6Of(index))
            self.nodes.append(node)

    def run(self, seconds: float, step: float = 0.01) -> None:
        for _ in range(round(seconds / step)):
            self.clock.advance(step)

    def join(self, spacing: float = 0.5) -> None:
        """Start every node, one after the other."""
        for node in self.nodes:
            node.start()
            self.run(spacing)
        self.run(20)

    def wait(self, deferred: Deferred[Any], limit: float = 120) -> Any:
        results: list[Any] = []
        deferred.addBoth(results.append)
        steps = 0
        while not results and steps < limit / 0.01:
            self.clock.advance(0.01)
            steps += 1
        if not results:
            raise AssertionError("the Deferred did not fire in simulated time")
        return results[0]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.run(1)

    def trueClosest(self, target: bytes) -> list[bytes]:
        ids = [node.nodeId for node in self.nodes]
        return heapq.nsmallest(K, ids, key=lambda i: distance(i, target))


@functools.cache
def joinedSwarm() -> Swarm:
    """200 nodes that joined one after the other, shared by the tests that only look up.

    It lives on its own Clock and MemoryNetwork: nothing of it touches the reactor.
    """
    swarm = Swarm(200)
    swarm.join(spacing=0.2)
    return swarm


class SwarmTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.swarm = joinedSwarm()

    def test_everyTableFills(self) -> None:
        """After 200 nodes bootstrap from one, every node knows at least K good nodes."""
        counts = [node.ipv4.table.goodCount() for node in self.swarm.nodes]
        self.assertGreaterEqual(min(counts), K, counts)

    def test_lookupConverges(self) -> None:
        """findNode from any node returns the true K closest nodes (brute force)."""
        rng = random.Random(7)
        for _ in range(10):
            target = rng.randbytes(20)
            origin = rng.choice(self.swarm.nodes)
            found = self.swarm.wait(origin.findNode(target))
            expected = [i for i in self.swarm.trueClosest(target) if i != origin.nodeId]
            self.assertEqual([nodeId for nodeId, _ in found][: len(expected)], expected[:K])

    def test_announceThenGetPeers(self) -> None:
        """A peer announced by one node is found by getPeers from another."""
        infoHash = random.Random(3).randbytes(20)
        announcer, looker = self.swarm.nodes[17], self.swarm.nodes[123]
        accepted = self.swarm.wait(announcer.announce(infoHash, 51413))
        self.assertGreaterEqual(accepted, K // 2)
        seen: list[Address] = []
        peers = self.swarm.wait(looker.getPeers(infoHash, onPeer=seen.append))
        self.assertIn((addressOf(17)[0], 51413), peers)
        self.assertEqual(sorted(seen), sorted(peers))

    def test_impliedPortAnnounce(self) -> None:
        """An announce without a port stores our UDP source port."""
        infoHash = random.Random(4).randbytes(20)
        self.swarm.wait(self.swarm.nodes[40].announce(infoHash))
        peers = self.swarm.wait(self.swarm.nodes[90].getPeers(infoHash))
        self.assertEqual(peers, [addressOf(40)])

    def test_pingApi(self) -> None:
        """ping fires with the remote node's id."""
        nodeId = self.swarm.wait(self.swarm.nodes[5].ping(addressOf(6)))
        self.assertEqual(nodeId, self.swarm.nodes[6].nodeId)

    def test_stats(self) -> None:
        """stats reports table sizes, stored peers and queries by method."""
        stats = self.swarm.nodes[0].stats()
        self.assertGreater(stats.ipv4.nodes, K)
        self.assertEqual(stats.ipv4.nodes, len(self.swarm.nodes[0].ipv4.table))
        self.assertGreater(stats.queriesIn["find_node"], 0)
        self.assertEqual(stats.peers, self.swarm.nodes[0].peerStore.peerCount())
        self.assertEqual(stats.nodeId, self.swarm.nodes[0].nodeId)


class LossyNetworkTests(SynchronousTestCase):
    def test_lookupsSurviveLoss(self) -> None:
        """With 10% of datagrams lost, announce then getPeers still works."""
        swarm = Swarm(60, seed=2, lossRate=0.1)
        swarm.join(spacing=0.2)
        infoHash = b"\x42" * 20
        self.assertGreater(swarm.wait(swarm.nodes[10].announce(infoHash, 6000)), 0)
        peers = swarm.wait(swarm.nodes[50].getPeers(infoHash))
        self.assertIn((addressOf(10)[0], 6000), peers)
        swarm.stop()


class DualStackTests(SynchronousTestCase):
    def test_bothFamilies(self) -> None:
        """Dual-stack nodes fill both tables, and an announce is found over IPv4 and IPv6."""
        swarm = Swarm(40, seed=5, dualStack=True)
        swarm.join(spacing=0.2)
        self.assertGreaterEqual(min(node.ipv6.table.goodCount() for node in swarm.nodes), K)
        infoHash = b"\x66" * 20
        self.assertGreater(swarm.wait(swarm.nodes[7].announce(infoHash, 7777)), K)
        peers = swarm.wait(swarm.nodes[33].getPeers(infoHash))
        self.assertIn((addressOf(7)[0], 7777), peers)
        self.assertIn((address6Of(7)[0], 7777), peers)
        found = swarm.wait(swarm.nodes[12].findNode(swarm.nodes[20].nodeId))
        self.assertIn((swarm.nodes[20].nodeId, address6Of(20)), found)
        swarm.stop()


@implementer(IHostnameResolver)
class FakeResolver:
    """Resolves every name to the addresses it was given, at once."""

    def __init__(self, hosts: dict[str, list[str]]) -> None:
        self.hosts = hosts

    def resolveHostName(
        self,
        resolutionReceiver: IResolutionReceiver,
        hostName: str,
        portNumber: int = 0,
        addressTypes: Any = None,
        transportSemantics: str = "TCP",
    ) -> IResolutionReceiver:
        resolutionReceiver.resolutionBegan(None)  # type: ignore[arg-type]
        for host in self.hosts.get(hostName, []):
            kind = IPv6Address if ":" in host else IPv4Address
            resolutionReceiver.addressResolved(kind("UDP", host, portNumber))
        resolutionReceiver.resolutionComplete()
        return resolutionReceiver


@implementer(IReactorPluggableNameResolver)
class ResolvingClock(Clock):
    """A Clock with a name resolver."""

    def __init__(self, hosts: dict[str, list[str]]) -> None:
        super().__init__()
        self.nameResolver = FakeResolver(hosts)

    def installNameResolver(self, resolver: IHostnameResolver) -> IHostnameResolver:
        old, self.nameResolver = self.nameResolver, resolver  # type: ignore[assignment]
        return old


class RouterNameTests(SynchronousTestCase):
    def test_routerNamesResolveToBothFamilies(self) -> None:
        """A router name is resolved to its IPv4 and IPv6 addresses, each asked over its
        own socket; an unknown name is skipped."""
        clock = ResolvingClock({"router.example": ["10.9.9.9", "fd00:9::9"]})
        network = MemoryNetwork(clock)
        routers = [("router.example", 6881), ("nowhere.example", 6881)]
        node = DHTNode(b"\x01" * 20, reactor=clock, routers=routers)
        network.listen(node.ipv4.protocol, ("10.0.0.1", 6881))
        network.listen(node.ipv6.protocol, ("fd00:1::1", 6881))
        router = DHTNode(b"\x02" * 20, reactor=clock, routers=[])
        network.listen(router.ipv4.protocol, ("10.9.9.9", 6881))
        network.listen(router.ipv6.protocol, ("fd00:9::9", 6881))
        d = node.bootstrap()
        for _ in range(1000):
            clock.advance(0.01)
        self.assertEqual(self.successResultOf(d).routersAnswered, 2)
        self.assertEqual(set(node.routerNodes), {("10.9.9.9", 6881), ("fd00:9::9", 6881)})


class LifecycleTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.network = MemoryNetwork(self.clock)
        self.node = DHTNode(b"\x01" * 20, reactor=self.clock, routers=[("10.9.9.9", 6881)])
        self.network.listen(self.node.ipv4.protocol, ("10.0.0.1", 6881))

    def test_stopLeavesNoDelayedCall(self) -> None:
        """stop cancels loops, bootstrap retries, announces and queries: no DelayedCall left."""
        self.node.start()
        self.node.keepAnnounced(b"\x02" * 20, 6881)
        self.node.ping(("10.0.0.2", 6881)).addErrback(lambda _: None)
        self.clock.advance(1)
        self.node.stop()
        self.clock.advance(1)  # in-flight datagrams arrive (to nobody)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_bootstrapWithoutNetworkBacksOff(self) -> None:
        """With no router answering, the node logs, keeps serving and retries with backoff."""
        self.network.unreachable.add(("10.9.9.9", 6881))
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.node.start()
        sent = []
        for _ in range(3600):
            self.clock.advance(1)
            sent.append(self.node.ipv4.protocol.queriesOut[b"find_node"])
        # backoff: 5, 10, 20, ... capped at 300 s: about 15 attempts in an hour, not 3600
        self.assertLess(sent[-1], 25)
        self.assertGreater(sent[-1], 5)
        warnings = [e for e in events if e["log_level"] >= LogLevel.warn]
        self.assertEqual(len(warnings), 1)
        self.assertIn("1 router addresses resolved", formatEvent(warnings[0]))
        self.node.stop()

    def test_bootstrapResultWhenAlone(self) -> None:
        """bootstrap fires with success False when nobody answers."""
        self.network.unreachable.add(("10.9.9.9", 6881))
        d = self.node.bootstrap()
        self.clock.advance(30)
        result = self.successResultOf(d)
        self.assertFalse(result.success)
        self.assertEqual(result.goodNodes, 0)

    def test_badArguments(self) -> None:
        """findNode, getPeers and announce refuse ids that are not 20 bytes and bad ports."""
        self.assertRaises(ValueError, self.node.findNode, b"short")
        self.assertRaises(ValueError, self.node.getPeers, b"short")
        self.assertRaises(ValueError, self.node.announce, b"\x00" * 20, 0)

    def test_cancelGetPeers(self) -> None:
        """Cancelling getPeers cancels its lookup and queries."""
        self.node.ipv4.table.nodeResponded(b"\x05" * 20, ("10.0.0.5", 6881))
        self.network.unreachable.add(("10.0.0.5", 6881))
        d = self.node.getPeers(b"\x03" * 20)
        self.clock.advance(0.1)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.node.ipv4.protocol.pendingCount, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_keepAnnouncedReannounces(self) -> None:
        """keepAnnounced announces again within 15-30 minutes until stopAnnouncing."""
        self.node.start(bootstrap=False)
        announced: list[bytes] = []
        original = self.node.search.announce

        def announce(infoHash: bytes, *args: Any, **kwargs: Any) -> Deferred[int]:
            announced.append(infoHash)
            return original(infoHash, *args, **kwargs)

        self.node.search.announce = announce  # type: ignore[method-assign]
        infoHash = b"\x07" * 20
        self.node.keepAnnounced(infoHash, 6881)
        self.clock.advance(899)
        self.assertEqual(announced, [infoHash])
        self.clock.advance(902)
        self.assertEqual(announced, [infoHash, infoHash])
        self.node.stopAnnouncing(infoHash)
        self.clock.advance(3600)
        self.assertEqual(len(announced), 2)
        self.assertEqual(self.node.announcing(), [])
        self.node.stop()

    def test_staleBucketRefreshed(self) -> None:
        """A bucket unchanged for 15 minutes gets a refresh lookup from maintenance."""
        neighbour = DHTNode(b"\x80" * 20, reactor=self.clock, routers=[])
        self.network.listen(neighbour.ipv4.protocol, ("10.0.0.8", 6881))
        self.node.start(bootstrap=False)
        self.node.ipv4.table.nodeResponded(neighbour.nodeId, ("10.0.0.8", 6881))
        before = self.node.search.lookupsStarted
        self.clock.advance(16 * 60)
        self.assertGreater(self.node.search.lookupsStarted, before)
        self.node.stop()

    def test_knownNodesTriedFirst(self) -> None:
        """Known nodes (from the state file) are pinged before routers are asked."""
        self.node.knownNodes = [("10.0.0.7", 6881)]
        self.node.bootstrap()
        self.clock.advance(0)
        sent = [krpc.decodeMessage(data) for data, _ in self.node.ipv4.protocol.transport.written]  # type: ignore[union-attr]
        first = sent[0]
        assert isinstance(first, krpc.Query)
        self.assertEqual(first.method, b"ping")


class JoinTests(SynchronousTestCase):
    """When the node joins, and what cancelling a join does."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.network = MemoryNetwork(self.clock)
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def node(self, routers: list[Address], address: Address = ("10.0.0.1", 6881)) -> DHTNode:
        node = DHTNode(b"\x01" * 20, reactor=self.clock, routers=routers)
        self.network.listen(node.ipv4.protocol, address)
        self.addCleanup(node.stop)
        return node

    def warnings(self) -> list[str]:
        return [formatEvent(e) for e in self.events if e["log_level"] >= LogLevel.warn]

    def test_noRoutersNoNodesNoAttempts(self) -> None:
        """With no router and nothing known (--no-bootstrap, no state), the node sends
        nothing and warns about nothing, however long it waits."""
        node = self.node([])
        node.start()
        for _ in range(120):
            self.clock.advance(60)
        self.assertEqual(node.ipv4.protocol.queriesOut, {})
        self.assertEqual(self.warnings(), [])

    def test_noBootstrapRejoinsThroughKnownNodes(self) -> None:
        """start(bootstrap=False) sends nothing at start; with known nodes and no live
        contact, maintenance joins through them."""
        node = self.node([])
        node.knownNodes = [("10.0.0.2", 6881)]
        node.start(bootstrap=False)
        self.clock.advance(1)
        self.assertEqual(node.ipv4.protocol.queriesOut, {})
        self.clock.advance(60)
        self.assertEqual(node.ipv4.protocol.queriesOut.get(b"ping"), 1)

    def test_querierBecomesAContactToRejoinThrough(self) -> None:
        """A node that queried us is a contact: once it is gone, the node rejoins through it."""
        node = self.node([])
        other = DHTNode(b"\x02" * 20, reactor=self.clock, routers=[])
        self.network.listen(other.ipv4.protocol, ("10.0.0.2", 6881))
        node.start()
        pinged = other.ping(("10.0.0.1", 6881))
        for _ in range(10):
            self.clock.advance(0.01)
        self.successResultOf(pinged)
        self.assertEqual(len(node.ipv4.table), 1)
        self.network.unbind(("10.0.0.2", 6881))
        self.assertEqual(self.warnings(), [])
        for _ in range(40):
            self.clock.advance(60)
        [warning] = self.warnings()
        self.assertIn("Bootstrap failed", warning)

    def test_cancelledJoinFailsAtOnce(self) -> None:
        """Cancelling bootstrap fails it with CancelledError at once, leaving nothing
        pending, even while it waits on several queries."""
        node = self.node([("10.9.9.9", 6881), ("10.9.9.8", 6881)])
        node.knownNodes = [("10.0.0.7", 6881)]
        d = node.bootstrap()
        self.clock.advance(0.5)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(node.ipv4.protocol.pendingCount, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cancelledJoinDuringLookup(self) -> None:
        """Cancelling bootstrap once the routers answered (during its lookups) fails it."""
        router = DHTNode(b"\x09" * 20, reactor=self.clock, routers=[])
        self.network.listen(router.ipv4.protocol, ("10.9.9.9", 6881))
        router.ipv4.table.nodeResponded(b"\x05" * 20, ("10.0.0.5", 6881))
        self.network.unreachable.add(("10.0.0.5", 6881))
        node = self.node([("10.9.9.9", 6881)])
        d = node.bootstrap()
        for _ in range(50):
            self.clock.advance(0.01)
        self.assertEqual(node.routerNodes, {("10.9.9.9", 6881): router.nodeId})
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(node.ipv4.protocol.pendingCount, 0)


class SendFailureTests(SynchronousTestCase):
    """A local send error is ours: the query fails at once and nobody is blamed."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.network = MemoryNetwork(self.clock)
        self.node = DHTNode(b"\x01" * 20, reactor=self.clock, routers=[])
        self.network.listen(self.node.ipv4.protocol, ("10.0.0.1", 6881))

    def test_pingFailsAtOnceWithoutPenalty(self) -> None:
        """A ping whose send fails (no route) fails with SendFailed at once; the contact
        keeps its record and nothing is left pending."""
        table = self.node.ipv4.table
        table.nodeResponded(b"\x05" * 20, ("10.0.0.5", 6881))
        self.network.failSends("10.0.0.5", OSError(errno.ENETUNREACH, "Network is unreachable"))
        failure = self.failureResultOf(self.node.ping(("10.0.0.5", 6881)), SendFailed)
        self.assertIn("Network is unreachable", str(failure.value))
        contact = table.get(("10.0.0.5", 6881))
        assert contact is not None
        self.assertEqual(contact.failures, 0)
        self.assertEqual(self.node.ipv4.protocol.pendingCount, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_pacedQueriesKeepDraining(self) -> None:
        """Queries waiting for the outgoing rate still go out after one fails to send."""
        node = DHTNode(b"\x03" * 20, reactor=self.clock, routers=[], outgoingQueryRate=1)
        self.network.listen(node.ipv4.protocol, ("10.0.0.3", 6881))
        peer = DHTNode(b"\x04" * 20, reactor=self.clock, routers=[])
        self.network.listen(peer.ipv4.protocol, ("10.0.0.4", 6881))
        self.network.failSends("10.0.0.9", OSError(errno.ENETUNREACH, "Network is unreachable"))
        pings = [node.ping(("10.0.0.4", 6881)) for _ in range(3)]
        pings.insert(1, node.ping(("10.0.0.9", 6881)))
        for _ in range(100):
            self.clock.advance(0.1)
        self.failureResultOf(pings[1], SendFailed)
        for ping in (pings[0], *pings[2:]):
            self.assertEqual(self.successResultOf(ping), peer.nodeId)


class PeriodicJobTests(SynchronousTestCase):
    """The node drives the stores' periodic work, which outlives its failures."""

    def test_expiryRunsAgainAfterAFailure(self) -> None:
        """A peer store whose removeExpired raises is called again next interval."""
        clock = Clock()
        store = PeerStore(reactor=clock)
        calls = []

        def removeExpired() -> None:
            calls.append(clock.seconds())
            if len(calls) == 1:
                raise OSError("the store's disk is full")

        store.removeExpired = removeExpired  # type: ignore[method-assign]
        node = DHTNode(reactor=clock, routers=[], peerStore=store)
        node.start()
        self.addCleanup(node.stop)
        clock.advance(EXPIRY_INTERVAL)
        clock.advance(EXPIRY_INTERVAL)
        self.assertEqual(calls, [EXPIRY_INTERVAL, 2 * EXPIRY_INTERVAL])
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_tokensRotate(self) -> None:
        """A token given out stops being valid two rotation intervals later."""
        clock = Clock()
        node = DHTNode(reactor=clock, routers=[])
        node.start()
        self.addCleanup(node.stop)
        token = node.tokenStore.generate("10.0.0.2", b"\x07" * 20)
        clock.advance(node.tokenStore.interval)
        self.assertTrue(node.tokenStore.validate("10.0.0.2", b"\x07" * 20, token))
        clock.advance(node.tokenStore.interval)
        self.assertFalse(node.tokenStore.validate("10.0.0.2", b"\x07" * 20, token))
