"""Interoperability on the wire: our DHTNode against libtorrent and bittorrent-dht.

Real reactor, loopback only (127.0.0.0/8): each test starts its own nodes and peers and stops
them in cleanup (bittorrent-dht and our command-line processes by PID). The peer drivers are
in tests/interop/peers.py; without a peer the tests skip, or fail when ``CI`` is set.

Facts these tests lean on (shared/INTEROP.md): a libtorrent bootstrap router never enters
libtorrent's routing table (other nodes, and those given to ``addNode``, do); libtorrent
waits 15 s for a silent node, so it never gets a dead bootstrap address, and the only
libtorrent lookup that runs after one of our command-line nodes has exited (and left the
network) is the one that must find that node's announce; an announce only reaches nodes
already in the network, so every looker joins before the announce.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.interfaces import IProcessTransport
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from tests.interop.peers import (
    BittorrentDHTPeer,
    DHTPacket,
    LibtorrentPeer,
    libtorrentAvailable,
    nextLoopbackInterface,
    nodeModulesAvailable,
    requirePeer,
)
from twisted_dht import krpc
from twisted_dht.addresses import Address
from twisted_dht.krpc import Response
from twisted_dht.node import DHTNode
from twisted_dht.nodeid import randomId
from twisted_dht.probe import FAIL, PASS, UNSUPPORTED, runProbe
from twisted_dht.service import DHTService

ROOT = Path(__file__).resolve().parent.parent

LOCAL_OPTIONS: dict[str, Any] = {
    "relaxLocal": True,  # many nodes per loopback address
    "queryTimeout": 2.0,
    "shortTimeout": 0.5,
}
"""DHTNode options for a loopback network, where every peer answers within milliseconds."""

CLI_TIMEOUT = 20
"""The --timeout of our command-line processes (they stop themselves after it)."""


def infoHash(name: str) -> bytes:
    """A distinct info_hash per test purpose."""
    return hashlib.sha1(b"twisted_dht interop " + name.encode()).digest()


def hostPort(address: Address) -> str:
    """C{host:port}, as the command line and the bittorrent-dht driver write addresses."""
    return f"{address[0]}:{address[1]}"


def bounded(d: Deferred[Any], seconds: float, what: str) -> Deferred[Any]:
    """C{d}, failing with a message naming C{what} unless it fires within C{seconds}."""

    def explain(failure: Any) -> Any:
        failure.trap(defer.TimeoutError)
        raise AssertionError(f"{what}: nothing within {seconds} s")

    return d.addTimeout(seconds, reactor).addErrback(explain)


async def waitFor(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll C{condition} every 20 ms until it holds; fail after C{seconds}."""
    deadline = reactor.seconds() + seconds
    while not condition():
        if reactor.seconds() > deadline:
            raise AssertionError(f"{what}: not true within {seconds} s")
        await task.deferLater(reactor, 0.02, lambda: None)


def unansweredQueries(lt: LibtorrentPeer, ours: Iterable[Address]) -> list[str]:
    """Queries between libtorrent and C{ours}, either way, whose reply is missing or not
    C{y: r} (an error, or a query libtorrent dropped as malformed), described."""
    ours = set(ours)
    packets = lt.packets
    problems = []
    for i, packet in enumerate(packets):
        endpoint = (packet.host, packet.port)
        if packet.kind != b"q" or endpoint not in ours:
            continue
        message = packet.message
        assert message is not None
        back = "out" if packet.direction == "in" else "in"
        replies = [
            p
            for p in packets[i + 1 :]
            if p.direction == back
            and (p.host, p.port) == endpoint
            and p.kind in (b"r", b"e")
            and p.message is not None
            and p.message.get(b"t") == message.get(b"t")
        ]
        who = "ours to libtorrent" if packet.direction == "in" else "libtorrent's to us"
        if not replies:
            problems.append(f"{who}: {packet.query!r} to/from {endpoint} got no reply")
        elif replies[0].kind != b"r":
            problems.append(f"{who}: {packet.query!r} got {replies[0].message!r}")
    return problems


def queriesFrom(lt: LibtorrentPeer, ours: Iterable[Address]) -> list[DHTPacket]:
    """The queries libtorrent received from C{ours}."""
    ours = set(ours)
    return [
        p
        for p in lt.packets
        if p.direction == "in" and p.kind == b"q" and (p.host, p.port) in ours
    ]


class _ProcessRecorder:
    """Passes spawnProcess through to the reactor and keeps each child's transport, so that
    cleanup can kill a child that outlived its test by PID."""

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self.processes: list[IProcessTransport] = []

    def spawnProcess(self, *args: Any, **kwargs: Any) -> IProcessTransport:
        transport: IProcessTransport = self._reactor.spawnProcess(*args, **kwargs)
        self.processes.append(transport)
        return transport

    def killAll(self) -> None:
        for transport in self.processes:
            if transport.pid is not None:
                with contextlib.suppress(ProcessExitedAlready, OSError):
                    transport.signalProcess("KILL")


class _InteropTestCase(TestCase):
    """Starts our nodes and the peers, and stops every one of them in cleanup."""

    timeout = 60

    def setUp(self) -> None:
        requirePeer("bittorrent-dht (npm install in tests/interop)", nodeModulesAvailable())
        requirePeer("libtorrent==2.1.1 (pip)", libtorrentAvailable())
        self.processes = _ProcessRecorder(reactor)
        self.addCleanup(self.processes.killAll)

    # Starting nodes --------------------------------------------------------------

    def ourNode(self, interface: str = "127.0.0.1", **options: Any) -> DHTNode:
        """A running DHTNode bound on C{interface} (no bootstrap yet)."""
        node = DHTNode(routers=[], **{**LOCAL_OPTIONS, **options})
        port = reactor.listenUDP(0, node.ipv4.protocol, interface=interface)  # type: ignore[attr-defined]

        def stop() -> Deferred[Any]:
            node.stop()
            return port.stopListening()  # type: ignore[no-any-return]

        self.addCleanup(stop)
        node.start(bootstrap=False)
        return node

    async def ourService(self) -> DHTNode:
        """A running DHTService on 127.0.0.1 (IPv4 only, no bootstrap, no state file); its
        node."""
        dht = DHTService(
            port=0,
            interface="127.0.0.1",
            ipv6=False,
            routers=[],
            bootstrap=False,
            statsInterval=0,
            relaxLocal=True,
        )
        dht.startService()
        self.addCleanup(dht.stopService)
        assert dht.node is not None
        return dht.node

    @staticmethod
    def addressOf(node: DHTNode) -> Address:
        """Where C{node} listens."""
        assert node.ipv4.protocol.transport is not None
        host = node.ipv4.protocol.transport.getHost()
        return (host.host, host.port)

    async def joinedNode(self, through: Address, interface: str | None = None) -> DHTNode:
        """One of our nodes on its own 127.0.M.1, joined through the node at C{through}."""
        node = self.ourNode(interface or nextLoopbackInterface())
        node.knownNodes = [through]
        result = await bounded(node.bootstrap(), 15, "our bootstrap")
        self.assertTrue(result.success, f"our node could not join through {through}")
        return node

    async def btdht(
        self, bootstrap: Iterable[Address], host: str | None = None
    ) -> BittorrentDHTPeer:
        """A bittorrent-dht node on C{host} (default: its own 127.0.M.1), joined through
        C{bootstrap} (its bootstrap traversal has finished)."""
        peer = BittorrentDHTPeer(timeout=15.0, maxLifetime=90.0)
        self.addCleanup(peer.stop)
        bootstrap = list(bootstrap)
        await peer.start(host or nextLoopbackInterface(), 0, bootstrap)
        if bootstrap:
            await peer.whenReady()
        return peer

    async def libtorrent(
        self, bootstrap: Iterable[Address] = (), nodes: Iterable[Address] = ()
    ) -> LibtorrentPeer:
        """A libtorrent node on its own 127.0.N.1 that bootstrapped from C{bootstrap}, then
        added C{nodes} to its table with addNode (a bootstrap router never enters it)."""
        peer = LibtorrentPeer(bootstrap=bootstrap, timeout=15.0)
        self.addCleanup(peer.stop)
        await peer.start()
        for host, port in nodes:
            await peer.addNode(host, port)
        return peer

    # Our command line --------------------------------------------------------------

    async def runCLI(self, *args: str) -> Any:
        """Run C{python -m twisted_dht ARGS --json --relax-local}; its JSON document."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        argv = ["-m", "twisted_dht", *args, "--json", "--relax-local"]
        argv += ["--timeout", str(CLI_TIMEOUT)]
        running = getProcessOutputAndValue(
            sys.executable, argv, env=env, path=str(ROOT), reactor=self.processes
        )
        out, err, code = await bounded(running, CLI_TIMEOUT + 10, "python -m twisted_dht")
        self.assertEqual(code, 0, f"python -m twisted_dht {' '.join(args)}: {err.decode()}")
        return json.loads(out)

    # Checks ------------------------------------------------------------------------

    async def assertCleanExchanges(self, lt: LibtorrentPeer, ours: Iterable[Address]) -> None:
        """libtorrent's packet log: every query between it and C{ours}, either way, got a
        C{y: r} reply (once the replies in flight have arrived), and no error went either way."""
        ours = list(ours)
        with contextlib.suppress(defer.TimeoutError):
            await lt.waitUntil(lambda: not unansweredQueries(lt, ours), 3.0, "replies")
        self.assertEqual(unansweredQueries(lt, ours), [])
        self.assertEqual(lt.errorPackets(), [])

    def assertNoErrorsSent(self, *nodes: DHTNode) -> None:
        """Our nodes answered every query without an error and parsed every datagram."""
        for node in nodes:
            counters = node.ipv4.protocol.counters
            self.assertEqual((counters["errorsSent"], counters["malformed"]), (0, 0), node.stats())

    async def announcesSettled(self, lt: LibtorrentPeer, target: bytes, count: int) -> None:
        """Wait until libtorrent has sent its C{count} announce_peer queries for C{target}
        and every one of them has been answered."""

        def settled() -> bool:
            sent = [
                p
                for p in lt.packets
                if p.direction == "out"
                and p.query == b"announce_peer"
                and p.message is not None
                and p.message[b"a"].get(b"info_hash") == target
            ]
            answered = {
                (p.host, p.port, p.message.get(b"t"))
                for p in lt.packets
                if p.direction == "in" and p.kind == b"r" and p.message is not None
            }
            return len(sent) >= count and all(
                (p.host, p.port, p.message[b"t"]) in answered for p in sent if p.message
            )

        await lt.waitUntil(settled, 5.0, "libtorrent's announce_peer replies")


class BootstrapFromOurNodeTests(_InteropTestCase):
    """Scenario 1: the other implementations join the DHT through our node."""

    async def test_bootstrapThroughOurNode(self) -> None:
        """libtorrent and bittorrent-dht bootstrap from our node, which answers every query
        without error, and both keep our nodes in their routing tables."""
        hub = await self.ourService()
        hubAddress = self.addressOf(hub)
        member = await self.joinedNode(hubAddress)
        memberAddress = self.addressOf(member)

        lt = LibtorrentPeer(bootstrap=[hubAddress], timeout=15.0)
        self.addCleanup(lt.stop)
        await lt.start()
        # libtorrent's bootstrap (get_peers with bs: 1) went to our node and was answered.
        self.assertTrue(lt.bootstrapped)
        exchanged = lt.packetsWith(*hubAddress)
        bootstrapQueries = [
            p
            for p in exchanged
            if p.direction == "out" and p.query == b"get_peers" and p.message is not None
        ]
        self.assertTrue(any(p.message[b"a"].get(b"bs") == 1 for p in bootstrapQueries))
        self.assertIn(b"r", [p.kind for p in exchanged if p.direction == "in"])
        # libtorrent keeps its bootstrap routers out of its table by design; the nodes our
        # router gave it, and those it is given with addNode, go in.
        await lt.addNode(*memberAddress)
        self.assertIn((member.nodeId.hex(), *memberAddress), await lt.liveNodes())

        bt = await self.btdht([hubAddress], host="127.0.0.1")
        self.assertIn((hub.nodeId.hex(), *hubAddress), await bt.nodes())
        self.assertEqual(bt.warnings, [])

        # Our node answered both, and confirmed both as nodes in its own table.
        self.assertGreaterEqual(hub.ipv4.protocol.queriesIn[b"get_peers"], 1)
        self.assertGreaterEqual(hub.ipv4.protocol.queriesIn[b"find_node"], 1)

        def confirmed(address: Address) -> bytes | None:
            contact = hub.ipv4.table.get(address)
            return contact.nodeId if contact and contact.lastResponse is not None else None

        await waitFor(
            lambda: bool(confirmed(lt.address) and confirmed(bt.address)),
            5,
            "both peers confirmed in our table",
        )
        self.assertEqual(confirmed(lt.address), bytes.fromhex(lt.nodeId or ""))
        self.assertEqual(confirmed(bt.address), bytes.fromhex(bt.nodeId or ""))
        self.assertNoErrorsSent(hub, member)
        await self.assertCleanExchanges(lt, [hubAddress, memberAddress])


class LibtorrentAnnounceTests(_InteropTestCase):
    """Scenario 2: what libtorrent announces, our lookups find."""

    async def test_ourLookupsFindLibtorrentAnnounce(self) -> None:
        """A libtorrent announce through our node and other implementations' nodes is found
        by our getPeers and by C{python -m twisted_dht lookup}."""
        target = infoHash("libtorrent announces")
        hub = self.ourNode()
        hubAddress = self.addressOf(hub)
        bt = await self.btdht([hubAddress])
        looker = await self.joinedNode(hubAddress)
        lookerAddress = self.addressOf(looker)
        other = await self.libtorrent([hubAddress], [lookerAddress])
        announcer = await self.libtorrent([hubAddress], [lookerAddress])

        accepted = await announcer.announce(target, 6881)
        self.assertGreaterEqual(accepted, 2)
        await self.announcesSettled(announcer, target, accepted)
        # The network is small: every node got the announce, bittorrent-dht's included.
        await waitFor(
            lambda: (
                hostPort(announcer.address)
                in [q["from"] for q in bt.queriesNamed("announce_peer")]
            ),
            5,
            "bittorrent-dht got libtorrent's announce",
        )

        peers = await bounded(looker.getPeers(target), 15, "our getPeers")
        self.assertIn((announcer.host, 6881), peers)

        # Last, since our command-line node exits when done: libtorrent would wait 15 s if a
        # lookup of its own asked that dead node afterwards.
        document = await self.runCLI("lookup", target.hex(), "--bootstrap", hostPort(hubAddress))
        self.assertEqual(document["infoHash"], target.hex())
        self.assertIn(f"{announcer.host}:6881", document["peers"])

        ours = [hubAddress, lookerAddress]
        self.assertNoErrorsSent(hub, looker)
        for lt in (other, announcer):
            await self.assertCleanExchanges(lt, ours)


class OurAnnounceTests(_InteropTestCase):
    """Scenario 3: what our node announces, libtorrent and bittorrent-dht find."""

    async def network(self) -> tuple[Address, LibtorrentPeer, BittorrentDHTPeer]:
        """Two of our nodes, and a libtorrent and a bittorrent-dht looker that joined
        through them."""
        hub = self.ourNode()
        hubAddress = self.addressOf(hub)
        member = await self.joinedNode(hubAddress)
        lt = await self.libtorrent([hubAddress], [self.addressOf(member)])
        bt = await self.btdht([hubAddress])
        return hubAddress, lt, bt

    async def test_theyFindOurAnnounce(self) -> None:
        """Our node's announce is found by a libtorrent lookup and a bittorrent-dht lookup."""
        target = infoHash("our node announces")
        hubAddress, lt, bt = await self.network()
        announcer = await self.joinedNode(hubAddress)
        announcerHost = self.addressOf(announcer)[0]

        accepted = await bounded(announcer.announce(target, 51413), 15, "our announce")
        self.assertGreaterEqual(accepted, 3)  # the hub, libtorrent and bittorrent-dht

        self.assertIn((announcerHost, 51413), await lt.getPeers(target))
        self.assertIn((announcerHost, 51413), await bt.lookup(target.hex()))
        self.assertNoErrorsSent(announcer)
        await self.assertCleanExchanges(lt, [hubAddress, self.addressOf(announcer)])

    async def test_theyFindOurCommandLineAnnounce(self) -> None:
        """C{python -m twisted_dht announce} is found by a libtorrent lookup and a
        bittorrent-dht lookup."""
        target = infoHash("our command line announces")
        hubAddress, lt, bt = await self.network()
        interface = nextLoopbackInterface()

        document = await self.runCLI(
            "announce",
            target.hex(),
            "--port",
            "51414",
            "--bootstrap",
            hostPort(hubAddress),
            "--interface",
            interface,
        )
        self.assertGreaterEqual(document["accepted"], 3)
        self.assertEqual(document["port"], 51414)

        # Our command-line node has exited, yet stays in the others' tables for a while:
        # libtorrent's lookup asks it too and waits its full 15 s for it.
        btFound, ltFound = await gatherResults(
            [bt.lookup(target.hex()), lt.getPeers(target, timeout=30)]
        )
        self.assertIn((interface, 51414), btFound)
        self.assertIn((interface, 51414), ltFound)
        await self.assertCleanExchanges(lt, [hubAddress])


class DirectQueryTests(_InteropTestCase):
    """Scenario 4: our node queries theirs directly and parses every reply."""

    async def queryEverything(
        self, node: DHTNode, peer: Address, peerId: str, tokenLength: int
    ) -> None:
        """ping, find_node, get_peers, announce_peer (explicit and implied port) with the
        peer's token, and get_peers again: every reply parsed, the announces stored."""
        ourHost, ourPort = self.addressOf(node)
        self.assertEqual((await node.ping(peer)).hex(), peerId)

        ping = await node.sendQuery(peer, b"ping", {})
        self.assertIsInstance(ping, Response)
        self.assertEqual(ping.nodeId.hex(), peerId)

        found = await node.sendQuery(peer, b"find_node", {b"target": randomId()})
        for nodeId, (host, port) in krpc.responseNodes(found):
            self.assertEqual(len(nodeId), 20)
            self.assertTrue(host.startswith("127.") and 0 < port < 65536)

        wanted = await node.sendQuery(
            peer, b"find_node", {b"target": randomId(), b"want": [b"n4", b"n6"]}
        )
        krpc.responseNodes(wanted)
        krpc.responseNodes(wanted, ipv6=True)

        for name, portArgs, expected in (
            ("explicit port", {b"port": 6969}, 6969),
            ("implied port", {b"port": 1, b"implied_port": 1}, ourPort),
        ):
            target = infoHash(f"direct {name} {peerId}")
            first = await node.sendQuery(peer, b"get_peers", {b"info_hash": target})
            self.assertEqual(first.nodeId.hex(), peerId)
            self.assertEqual(krpc.responseValues(first), [])
            krpc.responseNodes(first)
            token = krpc.responseToken(first)
            assert token is not None
            self.assertEqual(len(token), tokenLength)

            announced = await node.sendQuery(
                peer, b"announce_peer", {b"info_hash": target, b"token": token, **portArgs}
            )
            self.assertEqual(announced.nodeId.hex(), peerId)

            again = await node.sendQuery(peer, b"get_peers", {b"info_hash": target})
            self.assertIn((ourHost, expected), krpc.responseValues(again))

    async def test_libtorrent(self) -> None:
        """Our node's queries to libtorrent are all answered and parsed, and its 4-byte
        tokens let our announces in."""
        node = self.ourNode()
        ours = self.addressOf(node)
        lt = await self.libtorrent()
        assert lt.nodeId is not None
        await self.queryEverything(node, lt.address, lt.nodeId, tokenLength=4)

        response = await node.sendQuery(lt.address, b"ping", {})
        self.assertEqual(response.ip, ours)  # libtorrent adds BEP 42's ip: we parse it
        target = infoHash(f"direct explicit port {lt.nodeId}")
        await lt.waitUntil(lambda: (target, ours[0], 6969) in lt.announcesReceived)
        self.assertEqual(node.ipv4.protocol.counters["errorsReceived"], 0)
        await self.assertCleanExchanges(lt, [ours])

    async def test_bittorrentDHT(self) -> None:
        """Our node's queries to bittorrent-dht are all answered and parsed, its 20-byte
        tokens let our announces in, and its own lookup then finds our port."""
        node = self.ourNode()
        ours = self.addressOf(node)
        bt = await self.btdht([])
        assert bt.nodeId is not None
        await self.queryEverything(node, bt.address, bt.nodeId, tokenLength=20)

        self.assertEqual(
            len([q for q in bt.queriesNamed("announce_peer") if q["from"] == hostPort(ours)]), 2
        )
        target = infoHash(f"direct explicit port {bt.nodeId}")
        self.assertIn((ours[0], 6969), await bt.lookup(target.hex()))
        self.assertEqual(node.ipv4.protocol.counters["errorsReceived"], 0)
        self.assertEqual(bt.warnings, [])


class MixedNetworkTests(_InteropTestCase):
    """Scenario 5: announces and lookups across a network of all three implementations."""

    def hostOf(self, member: Any) -> str:
        """The IP address a member of the network announces from."""
        return self.addressOf(member)[0] if isinstance(member, DHTNode) else str(member.host)

    def announceBy(self, announcer: Any, target: bytes, port: int) -> Deferred[Any]:
        """Announce C{port} for C{target} with whichever API C{announcer} has."""
        if isinstance(announcer, DHTNode):
            return bounded(announcer.announce(target, port), 15, "our announce")
        if isinstance(announcer, LibtorrentPeer):
            d = announcer.announce(target, port)

            async def settled(count: int) -> int:
                await self.announcesSettled(announcer, target, count)
                return count

            return d.addCallback(lambda count: Deferred.fromCoroutine(settled(count)))
        return announcer.announce(target.hex(), port)  # type: ignore[no-any-return]

    def lookupBy(self, looker: Any, target: bytes) -> Deferred[list[Address]]:
        """Look up C{target} with whichever API C{looker} has."""
        if isinstance(looker, DHTNode):
            return bounded(looker.getPeers(target), 15, "our getPeers")
        if isinstance(looker, LibtorrentPeer):
            return looker.getPeers(target)
        return looker.lookup(target.hex())  # type: ignore[no-any-return]

    async def test_everyPairAcrossImplementations(self) -> None:
        """In a network of 3 twisted_dht, 3 libtorrent and 3 bittorrent-dht nodes, an
        announce by each implementation is found by a lookup from each implementation."""
        hub = self.ourNode()
        hubAddress = self.addressOf(hub)
        ours = [hub, await self.joinedNode(hubAddress), await self.joinedNode(hubAddress)]
        bts = await gatherResults(
            [Deferred.fromCoroutine(self.btdht([hubAddress])) for _ in range(3)]
        )
        nodes = [self.addressOf(node) for node in ours[1:]]
        lts = [await self.libtorrent([hubAddress], nodes) for _ in range(3)]
        members: dict[str, list[Any]] = {
            "twisted_dht": ours,
            "libtorrent": lts,
            "bittorrent-dht": bts,
        }

        # Every looker has joined: now each announcer announces one info_hash per looker
        # (a different node of the same implementation when both are the same).
        pairs = []
        for i, announcerKind in enumerate(members):
            for j, lookerKind in enumerate(members):
                announcer = members[announcerKind][j]
                looker = members[lookerKind][(i + 1) % 3]
                self.assertIsNot(announcer, looker)
                target = infoHash(f"mixed {announcerKind} -> {lookerKind}")
                peer = (self.hostOf(announcer), 20000 + 10 * i + j)
                pairs.append((f"{announcerKind} -> {lookerKind}", announcer, looker, target, peer))
        accepted = await gatherResults(
            [
                self.announceBy(announcer, target, port)
                for _, announcer, _, target, (_, port) in pairs
            ]
        )
        for (pair, *_), count in zip(pairs, accepted, strict=True):
            self.assertTrue(count, f"nobody accepted the announce of {pair}")

        found = await gatherResults(
            [self.lookupBy(looker, target) for _, _, looker, target, _ in pairs]
        )
        missed = [
            pair for (pair, *_, peer), peers in zip(pairs, found, strict=True) if peer not in peers
        ]
        self.assertEqual(missed, [])

        ourAddresses = [self.addressOf(node) for node in ours]
        self.assertNoErrorsSent(*ours)
        for lt in lts:
            self.assertTrue(queriesFrom(lt, ourAddresses))
            await self.assertCleanExchanges(lt, ourAddresses)


class PacketLogTests(_InteropTestCase):
    """Scenario 6: libtorrent's packet log of a whole conversation with our nodes."""

    async def test_noErrorsNoMalformedQueries(self) -> None:
        """Every query our nodes sent libtorrent (plain, read-only, BEP 32 want) got a
        C{y: r} reply, every query it sent us too, and no error went either way."""
        hub = self.ourNode()
        hubAddress = self.addressOf(hub)
        member = await self.joinedNode(hubAddress)
        memberAddress = self.addressOf(member)
        lt = await self.libtorrent([hubAddress], [memberAddress])
        reader = self.ourNode(nextLoopbackInterface(), readOnly=True)
        reader.knownNodes = [lt.address]
        await bounded(reader.bootstrap(), 15, "read-only bootstrap")
        readerAddress = self.addressOf(reader)
        ours = [hubAddress, memberAddress, readerAddress]

        ourTarget, theirTarget = infoHash("packet log, ours"), infoHash("packet log, theirs")
        self.assertGreaterEqual(await bounded(member.announce(ourTarget, 7000), 15, "announce"), 2)
        count = await lt.announce(theirTarget, 7001)
        await self.announcesSettled(lt, theirTarget, count)
        self.assertIn((memberAddress[0], 7000), await lt.getPeers(ourTarget))
        self.assertIn((lt.host, 7001), await bounded(reader.getPeers(theirTarget), 15, "lookup"))
        await bounded(member.findNode(randomId()), 15, "findNode")
        await member.sendQuery(lt.address, b"find_node", {b"target": randomId(), b"want": [b"n4"]})

        methods = {p.query for p in queriesFrom(lt, ours)}
        self.assertLessEqual({b"ping", b"find_node", b"get_peers", b"announce_peer"}, methods)
        readOnly = queriesFrom(lt, [readerAddress])
        self.assertTrue(readOnly)
        self.assertEqual({p.message.get(b"ro") for p in readOnly if p.message}, {1})
        self.assertNoErrorsSent(hub, member, reader)
        await self.assertCleanExchanges(lt, ours)


class ProbeTests(_InteropTestCase):
    """python -m twisted_dht probe against the other implementations: what each passes,
    fails and does not support (README's table lists the same)."""

    timeout = 90

    async def probeReport(self, address: Address) -> dict[str, str]:
        """The checks that did not pass, with their status."""
        report = await runProbe(reactor, address)
        self.assertLess(report.datagramsSent, 300)
        return {r.name: r.status for r in report.results if r.status != PASS}

    async def test_libtorrent(self) -> None:
        """libtorrent 2.1.1 accepts port 0, answers an unknown method with 203, sends
        1,122 bytes for 100 stored peers, and (IPv4 only here) gives no nodes6."""
        lt = await self.libtorrent()
        self.assertEqual(
            await self.probeReport(lt.address),
            {
                "error-port-zero": FAIL,
                "error-unknown-method": FAIL,
                "reply-size": FAIL,
                "want-n4-n6": UNSUPPORTED,
            },
        )

    async def test_bittorrentDHT(self) -> None:
        """bittorrent-dht answers a query without an id, ignores some malformed queries
        instead of answering 203/204, binds tokens to the IP only, answers find_node with
        its whole table, implements none of BEP 32, 42's ip, 43, 51 or v, and without a
        verify function (its default) refuses mutable BEP 44 puts."""
        bt = await self.btdht([])
        statuses = await self.probeReport(bt.address)
        # Whether the read-only querier is seen in its table depends on its bucket state.
        self.assertIn(statuses.pop("read-only", UNSUPPORTED), (FAIL, UNSUPPORTED))
        failed = [
            "error-missing-id", "error-short-id", "error-missing-port", "error-missing-token",
            "error-port-zero", "error-unknown-method", "token-info-hash", "reply-size",
            "amplification", "bep44-mutable",
        ]  # fmt: skip
        unsupported = ["want-n4-n6", "bep42-ip", "sample-infohashes", "version"]
        self.assertEqual(
            statuses, {**dict.fromkeys(failed, FAIL), **dict.fromkeys(unsupported, UNSUPPORTED)}
        )
