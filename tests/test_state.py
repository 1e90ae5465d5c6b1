"""Tests for L{twisted_dht.state}: the state file, its atomic writes and corrupt-file recovery."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
from collections.abc import Iterator
from typing import Any

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from twisted_dht import krpc
from twisted_dht import state as stateModule
from twisted_dht.node import DHTNode
from twisted_dht.nodeid import fromInt
from twisted_dht.service import DHTService
from twisted_dht.state import (
    MAX_SAVED_NODES,
    MAX_STATE_BYTES,
    SavedNode,
    SavedState,
    StateError,
    applyState,
    loadState,
    readState,
    saveState,
    stateOf,
)
from twisted_dht.testing import MemoryReactor, MemoryUDPPort

from .routingsupport import addr
from .test_cli import temporaryDirectory

ID = bytes(range(20))
OTHER = bytes(range(1, 21))


def _id(n: int) -> bytes:
    return bytes([n]) * 20


def manyNodes(count: int) -> tuple[tuple[SavedNode, ...], tuple[SavedNode, ...]]:
    """C{count} distinct IPv4 and IPv6 saved nodes."""
    return (
        tuple((fromInt(i + 1), (f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 6881))
              for i in range(count)),
        tuple((fromInt(i + 1), (f"fd00::{i >> 16:x}:{i & 0xFFFF:x}", 6881))
              for i in range(count)),
    )  # fmt: skip


def manyNodesDocument(count: int) -> dict[str, Any]:
    """A valid state document with C{count} nodes per family (not capped)."""
    nodes, nodes6 = manyNodes(count)
    return {
        "version": 1,
        "nodeId": ID.hex(),
        "nodes": [[i.hex(), host, port] for i, (host, port) in nodes],
        "nodes6": [[i.hex(), host, port] for i, (host, port) in nodes6],
    }


def compactJSON(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


class _Stuck(BaseException):
    """The code under L{bounded} blocked (a BaseException: C{loadState} cannot swallow it)."""


@contextlib.contextmanager
def bounded() -> Iterator[None]:
    """A safety net for code that might block or allocate without end (as reading a FIFO
    or /dev/zero did): fail after 10 s, or past 256 MiB more address space, rather than
    hang or exhaust the machine. Code that works finishes long before either."""
    undo: list[Any] = []
    if hasattr(signal, "setitimer"):

        def stuck(signum: int, frame: object) -> None:
            raise _Stuck("blocked for 10 seconds")

        previous = signal.signal(signal.SIGALRM, stuck)
        signal.setitimer(signal.ITIMER_REAL, 10)
        undo.append(lambda: signal.setitimer(signal.ITIMER_REAL, 0))
        undo.append(lambda: signal.signal(signal.SIGALRM, previous))
    try:
        import resource

        with open("/proc/self/statm") as f:
            size = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (ImportError, OSError, ValueError):
        pass
    else:
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = size + 256 * 1024 * 1024
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        undo.insert(0, lambda: resource.setrlimit(resource.RLIMIT_AS, (soft, hard)))
    try:
        yield
    finally:
        for step in undo:
            step()


SAMPLE = SavedState(
    nodeId=ID,
    nodes=((_id(1), ("1.2.3.4", 6881)), (_id(2), ("5.6.7.8", 1))),
    nodes6=((_id(3), ("2001:db8::1", 65535)),),
)


class StateFileTests(SynchronousTestCase):
    """Saving and loading state files."""

    def setUp(self) -> None:
        self.directory = temporaryDirectory(self)
        self.path = os.path.join(self.directory, "dht.state")
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def warnings(self) -> list[dict[str, object]]:
        return [e for e in self.events if e["log_level"] == LogLevel.warn]

    def write(self, data: bytes) -> None:
        with open(self.path, "wb") as f:
            f.write(data)

    def assertMovedAside(self, original: bytes, aside: str = ".corrupt") -> None:
        self.assertFalse(os.path.exists(self.path))
        with open(self.path + aside, "rb") as f:
            self.assertEqual(f.read(), original)
        self.assertEqual(len(self.warnings()), 1)

    def test_roundTrip(self) -> None:
        """A saved state loads back equal, and the file is the documented JSON."""
        saveState(self.path, SAMPLE)
        self.assertEqual(loadState(self.path), SAMPLE)
        with open(self.path) as f:
            document = json.load(f)
        self.assertEqual(
            document,
            {
                "version": 1,
                "nodeId": ID.hex(),
                "nodes": [[_id(1).hex(), "1.2.3.4", 6881], [_id(2).hex(), "5.6.7.8", 1]],
                "nodes6": [[_id(3).hex(), "2001:db8::1", 65535]],
            },
        )

    def test_atomicWriteLeavesNoTemporaryFile(self) -> None:
        """Saving twice replaces the file and leaves nothing else in the directory."""
        saveState(self.path, SAMPLE)
        saveState(self.path, SavedState(OTHER))
        self.assertEqual(os.listdir(self.directory), ["dht.state"])
        self.assertEqual(loadState(self.path), SavedState(OTHER))

    def test_failedWriteKeepsOldFile(self) -> None:
        """When the rename fails the old file stays and the temporary file is removed."""
        saveState(self.path, SAMPLE)

        def failingReplace(source: str, destination: str) -> None:
            raise OSError("disk full")

        self.patch(os, "replace", failingReplace)
        self.assertRaises(OSError, saveState, self.path, SavedState(OTHER))
        self.assertEqual(os.listdir(self.directory), ["dht.state"])
        self.assertEqual(readState(self.path), SAMPLE)

    def test_missingFile(self) -> None:
        """A missing state file loads as None, with no warning."""
        self.assertIsNone(loadState(self.path))
        self.assertEqual(self.warnings(), [])

    def test_corruptJSON(self) -> None:
        """Invalid JSON loads as None, is moved to .corrupt and logs one warning."""
        self.write(b'{"version": 1, "nodeId": ')
        self.assertIsNone(loadState(self.path))
        self.assertMovedAside(b'{"version": 1, "nodeId": ')
        self.assertIn(".corrupt", self.warnings()[0]["aside"])  # type: ignore[operator]

    def test_wrongTypes(self) -> None:
        """Valid JSON of the wrong shape loads as None and is moved aside."""
        cases = [
            [],
            {"nodeId": ID.hex()},
            {"version": True, "nodeId": ID.hex()},
            {"version": 2, "nodeId": ID.hex()},
            {"version": 1, "nodeId": "abc"},
            {"version": 1, "nodeId": "zz" * 20},
            {"version": 1, "nodeId": ID.hex(), "nodes": {}},
            {"version": 1, "nodeId": ID.hex(), "nodes": [[ID.hex(), "1.2.3.4"]]},
            {"version": 1, "nodeId": ID.hex(), "nodes": [[ID.hex(), "host", 1]]},
            {"version": 1, "nodeId": ID.hex(), "nodes": [[ID.hex(), "::1", 1]]},
            {"version": 1, "nodeId": ID.hex(), "nodes6": [[ID.hex(), "1.2.3.4", 1]]},
            {"version": 1, "nodeId": ID.hex(), "nodes": [[ID.hex(), "1.2.3.4", 0]]},
            {"version": 1, "nodeId": ID.hex(), "nodes": [[ID.hex(), "1.2.3.4", "1"]]},
        ]
        for document in cases:
            data = json.dumps(document).encode()
            self.write(data)
            self.assertRaises(StateError, readState, self.path)
            self.assertIsNone(loadState(self.path), document)
            self.assertTrue(os.path.exists(self.path + ".corrupt"), document)
            os.unlink(self.path + ".corrupt")
        self.assertEqual(len(self.warnings()), len(cases))

    def test_notUTF8(self) -> None:
        """A file that is not UTF-8 text loads as None and is moved aside."""
        self.write(b"\xff\xfe\x00garbage")
        self.assertIsNone(loadState(self.path))
        self.assertMovedAside(b"\xff\xfe\x00garbage")

    def test_unreadable(self) -> None:
        """An unreadable state path (a directory here) loads as None and is moved aside."""
        os.mkdir(self.path)
        self.assertIsNone(loadState(self.path))
        self.assertFalse(os.path.exists(self.path))
        self.assertTrue(os.path.isdir(self.path + ".corrupt"))
        self.assertEqual(len(self.warnings()), 1)

    def test_existingCorruptNotOverwritten(self) -> None:
        """An older .corrupt file is kept; the new one goes to .corrupt.1, then .corrupt.2."""
        with open(self.path + ".corrupt", "wb") as f:
            f.write(b"older")
        self.write(b"first")
        self.assertIsNone(loadState(self.path))
        self.write(b"second")
        self.assertIsNone(loadState(self.path))
        for suffix, content in ((".corrupt", b"older"), (".corrupt.1", b"first"),
                                (".corrupt.2", b"second")):  # fmt: skip
            with open(self.path + suffix, "rb") as f:
                self.assertEqual(f.read(), content)

    def test_cannotMoveAside(self) -> None:
        """When the file cannot be moved aside, loading still gives None and one warning."""
        self.write(b"junk")

        def failingRename(source: str, destination: str) -> None:
            raise OSError("read-only file system")

        self.patch(os, "rename", failingRename)
        self.assertIsNone(loadState(self.path))
        self.assertEqual(len(self.warnings()), 1)
        self.assertIn("could not move", self.warnings()[0]["log_format"])  # type: ignore[operator]

    def test_unexpectedErrorNeverRaises(self) -> None:
        """Even an unexpected exception while reading gives None, not a crash."""
        self.write(b"{}")

        def broken(path: str) -> SavedState:
            raise RuntimeError("unexpected")

        self.patch(stateModule, "readState", broken)
        self.assertIsNone(loadState(self.path))
        self.assertEqual(len(self.warnings()), 1)


class NodeStateTests(SynchronousTestCase):
    """L{stateOf} and L{applyState} connect a node and its saved state."""

    def test_stateOf(self) -> None:
        """The saved nodes are those that answered and are not bad, good ones first."""
        clock = Clock()
        node = DHTNode(ID, reactor=clock, routers=[], relaxLocal=True)
        node.ipv4.table.nodeResponded(_id(1), ("10.0.0.1", 1001))
        clock.advance(16 * 60)
        node.ipv4.table.nodeResponded(_id(2), ("10.0.0.2", 1002))
        node.ipv4.table.nodeQueried(_id(3), ("10.0.0.3", 1003))
        node.ipv6.table.nodeResponded(_id(4), ("fd00::4", 1004))
        saved = stateOf(node)
        self.assertEqual(saved.nodeId, ID)
        self.assertEqual(saved.nodes, ((_id(2), ("10.0.0.2", 1002)), (_id(1), ("10.0.0.1", 1001))))
        self.assertEqual(saved.nodes6, ((_id(4), ("fd00::4", 1004)),))

    def test_applyState(self) -> None:
        """Applying a state makes the node ping the saved addresses first."""
        node = DHTNode(ID, reactor=Clock(), routers=[])
        applyState(node, SAMPLE)
        self.assertEqual(
            node.knownNodes, [("1.2.3.4", 6881), ("5.6.7.8", 1), ("2001:db8::1", 65535)]
        )


class UntrustedFileTests(SynchronousTestCase):
    """A state file that is not a regular file, or too large, cannot block, exhaust or
    flood the node."""

    def setUp(self) -> None:
        self.directory = temporaryDirectory(self)
        self.path = os.path.join(self.directory, "dht.state")
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.reads: list[int] = []
        read = os.read

        def countingRead(fd: int, size: int) -> bytes:
            data = read(fd, size)
            self.reads.append(len(data))
            return data

        self.patch(os, "read", countingRead)

    def warnings(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["log_level"] == LogLevel.warn]

    def assertOneWarning(self, reason: str) -> None:
        [warning] = self.warnings()
        self.assertIn(reason, warning["reason"])

    def test_fifo(self) -> None:
        """A FIFO does not block: one warning, a fresh start, and the FIFO is neither
        moved nor replaced by a save (it is not ours, like /dev/null)."""
        if not hasattr(os, "mkfifo"):
            raise SkipTest("no FIFOs on this platform")
        os.mkfifo(self.path)
        with bounded():
            self.assertIsNone(loadState(self.path))
        self.assertOneWarning("a FIFO")
        self.assertEqual(self.reads, [])
        self.assertRaises(OSError, saveState, self.path, SAMPLE)
        self.assertTrue(stat.S_ISFIFO(os.lstat(self.path).st_mode))
        self.assertEqual(os.listdir(self.directory), ["dht.state"])

    def test_symlinkToDevZero(self) -> None:
        """A symlink to /dev/zero is refused without reading it; the link (not /dev/zero)
        is moved aside as a corrupt file is, and a save then writes a regular file."""
        if not os.path.exists("/dev/zero") or not hasattr(os, "symlink"):
            raise SkipTest("no /dev/zero or no symlinks here")
        os.symlink("/dev/zero", self.path)
        with bounded():
            self.assertIsNone(loadState(self.path))
        self.assertOneWarning("a character device")
        self.assertEqual(self.reads, [])
        self.assertEqual(os.readlink(self.path + ".corrupt"), "/dev/zero")
        saveState(self.path, SAMPLE)
        self.assertTrue(stat.S_ISREG(os.lstat(self.path).st_mode))
        self.assertTrue(stat.S_ISCHR(os.stat("/dev/zero").st_mode))

    def test_tooLarge(self) -> None:
        """A valid file one byte over MAX_STATE_BYTES is moved aside with one warning,
        unread; one of exactly MAX_STATE_BYTES loads."""
        data = compactJSON(SAMPLE.toJSON())
        with open(self.path, "wb") as f:
            f.write(data + b" " * (MAX_STATE_BYTES - len(data)))
        self.assertEqual(loadState(self.path), SAMPLE)
        with open(self.path, "ab") as f:
            f.write(b" ")
        self.reads.clear()
        self.assertIsNone(loadState(self.path))
        self.assertOneWarning(f"larger than {MAX_STATE_BYTES} bytes")
        self.assertEqual(self.reads, [])
        self.assertFalse(os.path.exists(self.path))
        self.assertEqual(os.path.getsize(self.path + ".corrupt"), MAX_STATE_BYTES + 1)

    def test_tooLargeReadsOneByteMore(self) -> None:
        """A file whose size is not known in advance (as in /proc) is read no further
        than one byte past MAX_STATE_BYTES."""
        with open(self.path, "wb") as f:
            f.truncate(64 * 1024 * 1024)  # sparse: no disk used
        fstat = os.fstat

        def unknownSize(fd: int) -> os.stat_result:
            info = fstat(fd)
            return os.stat_result((info.st_mode, *info[1:6], 0, *info[7:10]))

        self.patch(os, "fstat", unknownSize)
        self.assertIsNone(loadState(self.path))
        self.assertOneWarning("larger than")
        self.assertEqual(sum(self.reads), MAX_STATE_BYTES + 1)

    def test_loadCapsNodes(self) -> None:
        """A valid file with tens of thousands of nodes per family (as many as fit under
        MAX_STATE_BYTES) loads the first MAX_SAVED_NODES of each, in file order."""
        data = compactJSON(manyNodesDocument(25_000))
        self.assertLess(len(data), MAX_STATE_BYTES)
        with open(self.path, "wb") as f:
            f.write(data)
        loaded = loadState(self.path)
        assert loaded is not None
        self.assertEqual((len(loaded.nodes), len(loaded.nodes6)), (MAX_SAVED_NODES,) * 2)
        nodes, nodes6 = manyNodes(MAX_SAVED_NODES)
        self.assertEqual(loaded, SavedState(ID, nodes, nodes6))
        self.assertEqual(len(loaded.addresses()), 2 * MAX_SAVED_NODES)
        self.assertEqual(self.warnings(), [])

    def test_fromJSONChecksOnlyWhatItKeeps(self) -> None:
        """A document of 100,000 nodes per family is cut to MAX_SAVED_NODES each without
        validating the rest (which is why it is quick): entries past the cap are ignored."""
        document = manyNodesDocument(100_000)
        for key in ("nodes", "nodes6"):
            document[key][MAX_SAVED_NODES:] = [None] * (100_000 - MAX_SAVED_NODES)
        loaded = SavedState.fromJSON(document)
        self.assertEqual((len(loaded.nodes), len(loaded.nodes6)), (MAX_SAVED_NODES,) * 2)
        document["nodes"][MAX_SAVED_NODES - 1] = None
        self.assertRaises(StateError, SavedState.fromJSON, document)

    def test_saveCaps(self) -> None:
        """A state of 1,000 nodes per family is saved (and applied) with the first
        MAX_SAVED_NODES of each."""
        nodes, nodes6 = manyNodes(1000)
        saveState(self.path, SavedState(ID, nodes, nodes6))
        with open(self.path) as f:
            document = json.load(f)
        self.assertEqual([len(document["nodes"]), len(document["nodes6"])], [MAX_SAVED_NODES] * 2)
        self.assertEqual(document, manyNodesDocument(MAX_SAVED_NODES))
        node = DHTNode(ID, reactor=Clock(), routers=[])
        applyState(node, SavedState(ID, nodes, nodes6))
        self.assertEqual(len(node.knownNodes), 2 * MAX_SAVED_NODES)

    def test_stateOfCaps(self) -> None:
        """stateOf keeps the first MAX_SAVED_NODES contacts in its order, best first."""
        clock = Clock()
        node = DHTNode(bytes(20), reactor=clock, routers=[], relaxLocal=True)
        for depth in range(100):  # 8 ids in each of 100 buckets around our id
            for j in range(8):
                clock.advance(1)
                nodeId = fromInt(1 << (159 - depth) | j)
                node.ipv4.table.nodeResponded(nodeId, addr(depth * 8 + j))
        contacts = node.ipv4.table.contacts()
        self.assertGreater(len(contacts), MAX_SAVED_NODES)
        saved = stateOf(node)
        self.assertEqual(len(saved.nodes), MAX_SAVED_NODES)
        best = sorted(contacts, key=lambda c: -c.lastSeen())[:MAX_SAVED_NODES]
        self.assertEqual(saved.nodes, tuple((c.nodeId, c.address) for c in best))


class StartFromHugeStateTests(SynchronousTestCase):
    """A service started from a state file with a huge node list starts at once."""

    def test_answersAtOnceAndPingsAtMostTheCap(self) -> None:
        """Right after startService, before the clock moves, the node answers a ping, and
        at most MAX_SAVED_NODES pings per family are sent or queued."""
        path = os.path.join(temporaryDirectory(self), "dht.state")
        with open(path, "wb") as f:
            f.write(compactJSON(manyNodesDocument(25_000)))
        reactor = MemoryReactor()
        service = DHTService(
            port=0,
            interface="127.0.0.1",
            ipv6=False,
            routers=[],
            statePath=path,
            reactor=reactor,
        )
        service.startService()
        self.addCleanup(lambda: self.successResultOf(service.stopService()))
        node = service.node
        assert node is not None
        self.assertEqual(len(node.knownNodes), 2 * MAX_SAVED_NODES)
        transport = node.ipv4.protocol.transport
        assert isinstance(transport, MemoryUDPPort)
        pings = [krpc.decodeMessage(data) for data, _ in transport.written]
        self.assertTrue(all(isinstance(m, krpc.Query) and m.method == b"ping" for m in pings))
        self.assertLessEqual(len(pings) + node.sender.queued, 2 * MAX_SAVED_NODES)
        self.assertGreater(len(pings), 0)
        del transport.written[:]
        client = ("127.0.0.9", 4000)
        query = krpc.encodeQuery(b"pi", b"ping", {b"id": b"c" * 20})
        node.ipv4.protocol.datagramReceived(query, client)
        [(data, address)] = transport.written
        self.assertEqual(address, client)
        reply = krpc.decodeMessage(data)
        self.assertIsInstance(reply, krpc.Response)
        self.assertEqual(reply.tid, b"pi")
