"""Tests for python -m twisted_dht put, get and keygen, on an in-memory network."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import tempfile

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht import cli
from twisted_dht.bep44 import SigningKey, immutableTarget, mutableTarget
from twisted_dht.itemcli import keygen, readKey
from twisted_dht.node import DHTNode
from twisted_dht.testing import MemoryReactor

NODES = 12


def temporaryPath(case: SynchronousTestCase) -> str:
    """A path in a new directory removed after the test."""
    directory = tempfile.mkdtemp()
    case.addCleanup(shutil.rmtree, directory)
    return os.path.join(directory, "key")


class ItemCommandTests(SynchronousTestCase):
    """put and get through a small swarm of our nodes on the command's own reactor."""

    def setUp(self) -> None:
        self.reactor = MemoryReactor()
        self.nodes: list[DHTNode] = []
        for index in range(NODES):
            node = DHTNode(reactor=self.reactor, routers=[("10.0.0.1", 6881)] if index else [])
            node.listen(6881, interface=f"10.0.{index}.1", interface6=None)
            self.nodes.append(node)
            node.start()
            self.reactor.advance(0.5)
        self.reactor.pump([0.1] * 200)
        self.addCleanup(lambda: [node.stop() for node in self.nodes])
        self.keyPath = temporaryPath(self)

    def command(self, *argv: str) -> tuple[int, str, str]:
        """Run a command through the router; its exit code, stdout and stderr."""
        args = cli.parseArguments([*argv, "--bootstrap", "10.0.0.1:6881", "--timeout", "30"])
        out, err = io.StringIO(), io.StringIO()
        console = cli.Console(out, err, args.json)
        codes: list[int] = []
        Deferred.fromCoroutine(cli.Session(self.reactor, args, console).run()).addCallback(
            codes.append
        )
        while not codes:
            self.reactor.advance(0.05)
        return codes[0], out.getvalue(), err.getvalue()

    def keygen(self) -> SigningKey:
        args = cli.parseArguments(["keygen", self.keyPath])
        self.assertEqual(keygen(args, cli.Console(io.StringIO(), io.StringIO(), False)), 0)
        return readKey(self.keyPath)

    def test_immutable(self) -> None:
        """put prints the target (SHA-1 of the bencoded string); get prints the value."""
        code, out, _ = self.command("put", "Hello World!")
        self.assertEqual(code, 0)
        self.assertEqual(out.strip(), immutableTarget(b"12:Hello World!").hex())
        code, out, _ = self.command("get", out.strip())
        self.assertEqual((code, out), (0, "Hello World!\n"))

    def test_bencodedValue(self) -> None:
        code, out, _ = self.command("put", "--bencoded", "d1:ai1ee", "--json")
        self.assertEqual(code, 0)
        target = json.loads(out)["target"]
        code, out, _ = self.command("get", target, "--json")
        self.assertEqual(json.loads(out)["value"], {"a": 1})

    def test_mutable(self) -> None:
        """put --key twice takes seq 1 then 2; get --public-key --salt gets the last."""
        key = self.keygen()
        for value, seq in (("first", 1), ("second", 2)):
            code, out, _ = self.command(
                "put", "--key", self.keyPath, "--salt", "s", value, "--json"
            )
            self.assertEqual(code, 0)
            document = json.loads(out)
            self.assertEqual(document["seq"], seq)
            self.assertEqual(document["target"], mutableTarget(key.publicKey, b"s").hex())
        code, out, _ = self.command(
            "get", "--public-key", key.publicKey.hex(), "--salt", "s", "--json"
        )
        document = json.loads(out)
        self.assertEqual((code, document["value"], document["seq"]), (0, "second", 2))

    def test_staleSeqExits1(self) -> None:
        self.keygen()
        self.assertEqual(self.command("put", "--key", self.keyPath, "--seq", "5", "new")[0], 0)
        code, _, err = self.command("put", "--key", self.keyPath, "--seq", "2", "old")
        self.assertEqual(code, 1)
        self.assertIn("error 302", err)

    def test_getMissingExits1(self) -> None:
        code, _, err = self.command("get", "00" * 20)
        self.assertEqual(code, 1)
        self.assertIn("no node holds a valid item", err)

    def test_badKeyFileExits1(self) -> None:
        with open(self.keyPath, "w") as f:
            f.write("not a key\n")
        code, _, err = self.command("put", "--key", self.keyPath, "v")
        self.assertEqual(code, 1)
        self.assertIn("does not hold a key", err)

    def test_valueTooBigExits1(self) -> None:
        code, _, err = self.command("put", "x" * 1000)
        self.assertEqual(code, 1)
        self.assertIn("over 1000", err)


class KeygenTests(SynchronousTestCase):
    def run_keygen(self, path: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        args = cli.parseArguments(["keygen", path])
        return keygen(args, cli.Console(out, err, False)), out.getvalue(), err.getvalue()

    def test_writesSeedPrivately(self) -> None:
        """A 64-hex-digit seed on one line, mode 0600; the public key is printed."""
        path = temporaryPath(self)
        code, out, _ = self.run_keygen(path)
        self.assertEqual(code, 0)
        with open(path) as f:
            text = f.read()
        self.assertRegex(text, r"^[0-9a-f]{64}\n$")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(out.strip(), SigningKey(bytes.fromhex(text)).publicKey.hex())

    def test_neverOverwrites(self) -> None:
        path = temporaryPath(self)
        with open(path, "w") as f:
            f.write("precious\n")
        code, _, err = self.run_keygen(path)
        self.assertEqual(code, 1)
        self.assertIn("cannot create", err)
        with open(path) as f:
            self.assertEqual(f.read(), "precious\n")
