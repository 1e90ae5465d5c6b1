"""The interop peer drivers, proven against each other: libtorrent <-> bittorrent-dht.

Real reactor, loopback only: each test starts its own peers and stops them in cleanup
(bittorrent-dht by PID). Our own node is not involved; tests/test_interop.py uses these
helpers against it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Generator
from typing import Any

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from tests.interop.peers import (
    BittorrentDHTPeer,
    LibtorrentPeer,
    PeerMissing,
    freeUDPPort,
    libtorrentAvailable,
    nextLoopbackInterface,
    nodeModulesAvailable,
    requirePeer,
)

INFO_HASH_LT = bytes.fromhex("5d3c1f0e2b4a69788796a5b4c3d2e1f00f1e2d3c")
INFO_HASH_BT = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f9001122334")

Steps = Generator[Deferred[Any], Any, None]


class RequirePeerTests(SynchronousTestCase):
    """requirePeer skips locally and fails under CI."""

    def test_availableIsSilent(self) -> None:
        """An installed peer lets the test run, CI or not."""
        self.patch(os, "environ", {"CI": "true"})
        requirePeer("libtorrent", True)

    def test_missingSkipsWithoutCI(self) -> None:
        """A missing peer skips the test when CI is unset."""
        self.patch(os, "environ", {})
        self.assertRaises(SkipTest, requirePeer, "libtorrent", False)

    def test_missingFailsUnderCI(self) -> None:
        """A missing peer fails the test (an AssertionError, not a skip) when CI is set."""
        self.patch(os, "environ", {"CI": "true"})
        exc = self.assertRaises(PeerMissing, requirePeer, "bittorrent-dht", False)
        self.assertIsInstance(exc, AssertionError)
        self.assertNotIsInstance(exc, SkipTest)


class _PeersTestCase(TestCase):
    timeout = 60

    def setUp(self) -> None:
        requirePeer("bittorrent-dht (npm install in tests/interop)", nodeModulesAvailable())
        requirePeer("libtorrent==2.1.1 (pip)", libtorrentAvailable())

    def btdht(self, **kwargs: Any) -> BittorrentDHTPeer:
        peer = BittorrentDHTPeer(**kwargs)
        self.addCleanup(peer.stop)
        return peer

    def libtorrent(self, **kwargs: Any) -> LibtorrentPeer:
        peer = LibtorrentPeer(**kwargs)
        self.addCleanup(peer.stop)
        return peer

    @defer.inlineCallbacks
    def startPair(self) -> Generator[Deferred[Any], Any, tuple[BittorrentDHTPeer, LibtorrentPeer]]:
        """bittorrent-dht bootstraps from libtorrent's address and libtorrent from its.

        bittorrent-dht starts first, on a port libtorrent is about to take: its own bootstrap
        query is lost (libtorrent is not listening yet; it times out in 2 s, and bittorrent-dht
        learns libtorrent from libtorrent's queries instead). The other order costs 15 s:
        libtorrent waits that long for a silent router before its bootstrap completes.
        """
        interface = nextLoopbackInterface()
        ltPort = freeUDPPort(interface)
        bt = self.btdht()
        yield bt.start("127.0.0.1", 0, [(interface, ltPort)])
        lt = self.libtorrent(bootstrap=[bt.address], interface=interface, port=ltPort)
        yield lt.start()
        self.assertEqual(lt.port, ltPort)
        return bt, lt


class BootstrapTests(_PeersTestCase):
    """Each peer bootstraps from the other."""

    @defer.inlineCallbacks
    def test_bootstrapFromEachOther(self) -> Steps:
        """libtorrent bootstraps from bittorrent-dht, which then holds libtorrent in its table."""
        bt, lt = yield self.startPair()
        yield bt.whenReady()

        # libtorrent's bootstrap (get_peers with bs: 1) went to bittorrent-dht and was answered.
        self.assertTrue(lt.bootstrapped)
        btHost, btPort = bt.address
        exchanged = lt.packetsWith(btHost, btPort)
        sent = [p for p in exchanged if p.direction == "out" and p.query == b"get_peers"]
        self.assertTrue(any(p.message[b"a"].get(b"bs") == 1 for p in sent))
        self.assertIn(b"r", [p.kind for p in exchanged if p.direction == "in"])
        self.assertEqual(lt.errorPackets(), [])

        # bittorrent-dht saw that query and keeps libtorrent, under its real id, as a node.
        ltHost, ltPort = lt.address
        bootstrapQueries = [
            q for q in bt.queriesNamed("get_peers") if q["from"] == f"{ltHost}:{ltPort}"
        ]
        self.assertTrue(any(q["a"].get("bs") == 1 for q in bootstrapQueries))
        self.assertIn((lt.nodeId, ltHost, ltPort), (yield bt.nodes()))

    @defer.inlineCallbacks
    def test_addNodeEntersRoutingTables(self) -> Steps:
        """libtorrent's addNode puts a bittorrent-dht node in its live nodes, and back."""
        bt = self.btdht()
        yield bt.start("127.0.0.1", 0, [])
        lt = self.libtorrent(bootstrap=[])
        yield lt.start()
        self.assertEqual((yield lt.liveNodes()), [])

        yield lt.addNode(*bt.address)
        self.assertIn((bt.nodeId, *bt.address), (yield lt.liveNodes()))
        self.assertEqual((yield bt.addNode(*lt.address)), lt.nodeId)
        self.assertIn((lt.nodeId, *lt.address), (yield bt.nodes()))


class AnnounceTests(_PeersTestCase):
    """An announce by one peer is found by the other's lookup."""

    @defer.inlineCallbacks
    def test_libtorrentAnnounceFoundByBittorrentDHT(self) -> Steps:
        """A libtorrent dht_announce is stored by bittorrent-dht and its lookup finds the port."""
        bt, lt = yield self.startPair()
        count = yield lt.announce(INFO_HASH_LT, 6881)
        self.assertGreaterEqual(count, 1)

        found = yield bt.lookup(INFO_HASH_LT.hex())
        self.assertIn((lt.host, 6881), found)
        ltHost, ltPort = lt.address
        announces = [
            q for q in bt.queriesNamed("announce_peer") if q["from"] == f"{ltHost}:{ltPort}"
        ]
        self.assertEqual([q["a"]["info_hash"] for q in announces], [INFO_HASH_LT.hex()])
        self.assertEqual(lt.errorPackets(), [])

    @defer.inlineCallbacks
    def test_bittorrentDHTAnnounceFoundByLibtorrent(self) -> Steps:
        """A bittorrent-dht announce reaches libtorrent and libtorrent's getPeers finds it."""
        bt, lt = yield self.startPair()
        event = yield bt.announce(INFO_HASH_BT.hex(), 7001)
        self.assertGreaterEqual(event["nodes"], 1)
        yield lt.waitUntil(lambda: (INFO_HASH_BT, bt.host, 7001) in lt.announcesReceived)

        found = yield lt.getPeers(INFO_HASH_BT)
        self.assertIn((bt.host, 7001), found)
        self.assertEqual(lt.errorPackets(), [])


class LifetimeTests(_PeersTestCase):
    """The bittorrent-dht driver never outlives its test."""

    @defer.inlineCallbacks
    def test_stopKillsUnresponsiveDriver(self) -> Steps:
        """stop() SIGKILLs and reaps a driver that does not exit when asked."""
        bt = self.btdht()
        yield bt.start("127.0.0.1", 0, [])
        pid = bt.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        yield bt.stop(timeout=0.5)
        self.assertFalse(bt.running)
        self.assertRaises(ProcessLookupError, os.kill, pid, 0)

    @defer.inlineCallbacks
    def test_driverHardCap(self) -> Steps:
        """The driver exits by itself once its maximum lifetime has passed."""
        bt = self.btdht(maxLifetime=1)
        yield bt.start("127.0.0.1", 0, [])
        yield bt.whenExited(timeout=10)
        self.assertFalse(bt.running)
        self.assertIn("fatal", [e.get("event") for e in bt.events])
