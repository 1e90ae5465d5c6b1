"""Tests for L{twisted_dht.state}: the state file, its atomic writes and corrupt-file recovery."""

from __future__ import annotations

import json
import os

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht import state as stateModule
from twisted_dht.node import DHTNode
from twisted_dht.state import (
    SavedState,
    StateError,
    applyState,
    loadState,
    readState,
    saveState,
    stateOf,
)

from .test_cli import temporaryDirectory

ID = bytes(range(20))
OTHER = bytes(range(1, 21))


def _id(n: int) -> bytes:
    return bytes([n]) * 20


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
