"""Tests for L{twisted_dht.cli}: argument errors, the state command, commands on loopback."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import socket
import sys
import tempfile
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SynchronousTestCase, TestCase

import twisted_dht
from twisted_dht import cli
from twisted_dht.bootstrap import DEFAULT_ROUTERS
from twisted_dht.service import DHTService
from twisted_dht.state import SavedState, saveState
from twisted_dht.testing import MemoryReactor

reactor: Any = _reactor
HASH = "0123456789abcdef0123456789abcdef01234567"


def projectEnvironment() -> dict[str, str]:
    """The environment for a subprocess that must import this very twisted_dht (and find
    its twistd plugin next to it)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(twisted_dht.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def temporaryDirectory(case: SynchronousTestCase) -> str:
    """A new directory, removed after the test (trial's mktemp writes into the cwd)."""
    directory = tempfile.mkdtemp(prefix="twisted_dht-test-")
    case.addCleanup(shutil.rmtree, directory, True)
    return directory


class ParseTests(SynchronousTestCase):
    """parseArguments accepts good command lines and rejects bad ones with exit code 2."""

    def parseError(self, *argv: str) -> str:
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        error = self.assertRaises(SystemExit, cli.parseArguments, list(argv))
        self.assertEqual(error.code, 2)
        message = stderr.getvalue()
        self.assertIn("error:", message)
        self.assertNotIn("Traceback", message)
        return message

    def test_lookupDefaults(self) -> None:
        """lookup parses the info_hash and defaults every common option."""
        args = cli.parseArguments(["lookup", HASH])
        self.assertEqual(args.command, "lookup")
        self.assertEqual(args.infoHash, bytes.fromhex(HASH))
        self.assertIsNone(args.bootstrap)
        self.assertEqual(args.listen_port, 0)
        self.assertEqual(args.interface, "")
        self.assertEqual(args.timeout, 60.0)
        self.assertFalse(args.json)
        self.assertFalse(args.relax_local)

    def test_commonOptions(self) -> None:
        """The common options parse after the command, --bootstrap repeatable."""
        args = cli.parseArguments(
            ["find-node", HASH, "--bootstrap", "127.0.0.1:1", "--bootstrap", "[::1]:2",
             "--listen-port", "7000", "--interface", "127.0.0.1", "--timeout", "2.5",
             "--json", "--relax-local"]
        )  # fmt: skip
        self.assertEqual(args.target, bytes.fromhex(HASH))
        self.assertEqual(args.bootstrap, [("127.0.0.1", 1), ("::1", 2)])
        self.assertEqual((args.listen_port, args.interface), (7000, "127.0.0.1"))
        self.assertEqual(args.timeout, 2.5)
        self.assertTrue(args.json and args.relax_local)

    def test_announceAndPing(self) -> None:
        """announce takes --port or --implied-port; ping takes HOST:PORT."""
        self.assertEqual(cli.parseArguments(["announce", HASH, "--port", "5"]).port, 5)
        self.assertTrue(cli.parseArguments(["announce", HASH, "--implied-port"]).implied_port)
        self.assertEqual(
            cli.parseArguments(["ping", "router.example:6881"]).address,
            ("router.example", 6881),
        )
        self.assertEqual(cli.parseArguments(["state", "f"]).path, "f")

    def test_surveysAndSeed(self) -> None:
        """scrape takes an info_hash; sample --count, --rate and --max-queries (rate 5 and
        no limits by default); announce --seed."""
        self.assertEqual(cli.parseArguments(["scrape", HASH]).infoHash, bytes.fromhex(HASH))
        args = cli.parseArguments(["sample"])
        self.assertEqual((args.count, args.rate, args.max_queries), (None, 5.0, None))
        args = cli.parseArguments(
            ["sample", "--count", "7", "--rate", "0.5", "--max-queries", "9"]
        )
        self.assertEqual((args.count, args.rate, args.max_queries), (7, 0.5, 9))
        self.assertTrue(cli.parseArguments(["announce", HASH, "--port", "5", "--seed"]).seed)
        self.assertFalse(cli.parseArguments(["announce", HASH, "--port", "5"]).seed)
        self.assertIn("positive", self.parseError("sample", "--rate", "0"))
        self.assertIn("at least 1", self.parseError("sample", "--count", "0"))
        self.assertIn("required", self.parseError("scrape"))

    def test_noCommand(self) -> None:
        """No command is an error."""
        self.assertIn("required", self.parseError())

    def test_unknownCommand(self) -> None:
        """An unknown command is an error naming it."""
        self.assertIn("frobnicate", self.parseError("frobnicate"))

    def test_badHex(self) -> None:
        """An info_hash or id that is not 40 hex digits is an error."""
        self.assertIn("40 hex digits", self.parseError("lookup", "abc"))
        self.assertIn("hexadecimal", self.parseError("find-node", "x" * 40))
        self.assertIn("40 hex digits", self.parseError("announce", "12", "--port", "1"))

    def test_badHostPort(self) -> None:
        """A malformed HOST:PORT (no port, bad port, bare IPv6) is an error."""
        self.assertIn("HOST:PORT", self.parseError("ping", "1.2.3.4"))
        self.assertIn("70000", self.parseError("ping", "1.2.3.4:70000"))
        self.assertIn("[IPV6]", self.parseError("ping", "::1:6881"))
        self.assertIn("missing port", self.parseError("lookup", HASH, "--bootstrap", "h:"))

    def test_badAnnounce(self) -> None:
        """announce needs exactly one of --port and --implied-port, and a valid port."""
        self.assertIn("required", self.parseError("announce", HASH))
        self.assertIn("not allowed", self.parseError(
            "announce", HASH, "--port", "1", "--implied-port"
        ))  # fmt: skip
        self.assertIn("0", self.parseError("announce", HASH, "--port", "0"))

    def test_badCommonOptions(self) -> None:
        """A bad timeout, listen port or interface is an error."""
        self.assertIn("timeout", self.parseError("lookup", HASH, "--timeout", "-1"))
        self.assertIn("70000", self.parseError("lookup", HASH, "--listen-port", "70000"))
        self.assertIn("IPv4", self.parseError("lookup", HASH, "--interface", "::1"))


class ShowStateTests(SynchronousTestCase):
    """The state command prints a state file and never changes it."""

    def setUp(self) -> None:
        directory = temporaryDirectory(self)
        self.path = os.path.join(directory, "dht.state")
        self.out, self.err = io.StringIO(), io.StringIO()

    def show(self, *extra: str) -> int:
        args = cli.parseArguments(["state", self.path, *extra])
        return cli.showState(args, cli.Console(self.out, self.err, args.json))

    def test_text(self) -> None:
        """The node id and each node are printed, one per line."""
        saveState(self.path, SavedState(bytes(20), nodes6=((b"\x01" * 20, ("::1", 5)),)))
        self.assertEqual(self.show(), 0)
        output = self.out.getvalue()
        self.assertIn("Node id: " + "00" * 20, output)
        self.assertIn("IPv4 nodes: 0", output)
        self.assertIn("01" * 20 + " [::1]:5", output)

    def test_json(self) -> None:
        """With --json the document itself is printed."""
        state = SavedState(bytes(20), nodes=((b"\x01" * 20, ("1.2.3.4", 5)),))
        saveState(self.path, state)
        self.assertEqual(self.show("--json"), 0)
        self.assertEqual(json.loads(self.out.getvalue()), state.toJSON())

    def test_missing(self) -> None:
        """A missing file is reported with exit code 1."""
        self.assertEqual(self.show(), 1)
        self.assertIn("no state file", self.err.getvalue())

    def test_corruptLeftInPlace(self) -> None:
        """A corrupt file is reported with exit code 1 and not moved aside."""
        with open(self.path, "w") as f:
            f.write("{")
        self.assertEqual(self.show(), 1)
        self.assertIn("not a valid state file", self.err.getvalue())
        self.assertTrue(os.path.exists(self.path))
        self.assertFalse(os.path.exists(self.path + ".corrupt"))


class SessionTests(TestCase):
    """Commands run against a DHTService on loopback."""

    def setUp(self) -> None:
        directory = temporaryDirectory(self)
        self.service = DHTService(
            port=0,
            interface="127.0.0.1",
            ipv6=False,
            bootstrap=False,
            statePath=os.path.join(directory, "dht.state"),
            reactor=reactor,
        )
        self.service.startService()
        self.addCleanup(self.service.stopService)
        host, port = self.service.addresses()[0]
        self.address = f"{host}:{port}"
        self.out, self.err = io.StringIO(), io.StringIO()

    async def runCommand(self, *argv: str) -> int:
        args = cli.parseArguments(list(argv))
        console = cli.Console(self.out, self.err, args.json)
        return await cli.Session(reactor, args, console).run()

    async def test_ping(self) -> None:
        """ping prints the node id of the node that answered."""
        self.assertEqual(
            await self.runCommand("ping", self.address, "--interface", "127.0.0.1"), 0
        )
        assert self.service.node is not None
        self.assertIn(self.service.node.nodeId.hex(), self.out.getvalue())

    async def test_pingJSON(self) -> None:
        """ping --json prints one JSON document."""
        self.assertEqual(await self.runCommand("ping", self.address, "--json"), 0)
        document = json.loads(self.out.getvalue())
        assert self.service.node is not None
        self.assertEqual(document["nodeId"], self.service.node.nodeId.hex())
        self.assertEqual(document["address"], self.address)

    async def test_announceThenLookup(self) -> None:
        """An announce is stored by the node and a lookup then prints the peer."""
        common = ["--bootstrap", self.address, "--relax-local", "--timeout", "20"]
        self.assertEqual(await self.runCommand("announce", HASH, "--port", "4242", *common), 0)
        self.assertIn("to 1 nodes", self.out.getvalue())
        self.out.truncate(0)
        self.out.seek(0)
        self.assertEqual(await self.runCommand("lookup", HASH, *common), 0)
        self.assertEqual(self.out.getvalue().split(), ["127.0.0.1:4242"])
        self.assertIn("Found 1 peers", self.err.getvalue())

    async def test_seedThenScrape(self) -> None:
        """announce --seed is stored as a seed, and scrape --json counts it."""
        common = ["--bootstrap", self.address, "--relax-local", "--timeout", "20"]
        code = await self.runCommand("announce", HASH, "--port", "4242", "--seed", *common)
        self.assertEqual(code, 0)
        self.assertIn("as a seed", self.out.getvalue())
        self.out.truncate(0)
        self.out.seek(0)
        self.assertEqual(await self.runCommand("scrape", HASH, "--json", *common), 0)
        document = json.loads(self.out.getvalue())
        self.assertEqual(document, {"infoHash": HASH, "seeds": 1, "peers": 0, "nodes": 1})

    async def test_sample(self) -> None:
        """sample prints the info_hashes the node stores, one a line, and a summary."""
        assert self.service.node is not None
        hashes = sorted(bytes([i]) * 20 for i in range(1, 4))
        for infoHash in hashes:
            self.service.node.peerStore.addPeer(infoHash, ("127.0.0.9", 6881))
        common = ["--bootstrap", self.address, "--relax-local", "--timeout", "20"]
        self.assertEqual(await self.runCommand("sample", "--rate", "50", *common), 0)
        self.assertEqual(sorted(self.out.getvalue().split()), [h.hex() for h in hashes])
        self.assertIn("Found 3 info_hashes with 1 queries (1 answered)", self.err.getvalue())

    async def test_sampleJSON(self) -> None:
        """sample --json names each info_hash with its source; --count stops the walk."""
        assert self.service.node is not None
        for i in range(1, 6):
            self.service.node.peerStore.addPeer(bytes([i]) * 20, ("127.0.0.9", 6881))
        common = ["--bootstrap", self.address, "--relax-local", "--timeout", "20", "--json"]
        self.assertEqual(await self.runCommand("sample", "--count", "2", *common), 0)
        document = json.loads(self.out.getvalue())
        self.assertEqual(len(document["infoHashes"]), 2)
        self.assertEqual({entry["source"] for entry in document["infoHashes"]}, {self.address})
        self.assertEqual((document["queries"], document["reason"]), (1, "count"))

    async def test_timeout(self) -> None:
        """A command that outlasts --timeout gives up with a message and exit code 1."""
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(silent.close)
        silent.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        self.assertEqual(await self.runCommand("ping", address, "--timeout", "0.3"), 1)
        self.assertIn("gave up after 0.3 s", self.err.getvalue())

    async def test_bindFailure(self) -> None:
        """A listen port that cannot be bound is a clear error with exit code 1."""
        taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        port = str(taken.getsockname()[1])
        code = await self.runCommand("ping", self.address, "--listen-port", port, "--interface",
                              "127.0.0.1")  # fmt: skip
        self.assertEqual(code, 1)
        self.assertIn("cannot bind UDP port " + port, self.err.getvalue())

    def test_defaultRouters(self) -> None:
        """Without --bootstrap a session uses the public routers and pings none of them."""
        args = cli.parseArguments(["lookup", HASH])
        session = cli.Session(reactor, args, cli.Console(self.out, self.err, False))
        self.assertEqual(session.routers, list(DEFAULT_ROUTERS))
        self.assertEqual(session.node.knownNodes, [])

    async def test_readOnlyNotInOthersTables(self) -> None:
        """A command's short-lived node is read-only (BEP 43): it never enters our table."""
        self.assertEqual(await self.runCommand("ping", self.address), 0)
        assert self.service.node is not None
        self.assertEqual(len(self.service.node.ipv4.table), 0)


class SubprocessTests(TestCase):
    """C{python -m twisted_dht} exits with code 2 and a message, no traceback, on bad input."""

    async def runModule(self, *argv: str) -> tuple[bytes, bytes, int]:
        result = getProcessOutputAndValue(
            sys.executable, ["-m", "twisted_dht", *argv], env=projectEnvironment()
        )
        out, err, code = await result.addTimeout(30, reactor)
        return out, err, code

    async def test_badInfoHash(self) -> None:
        """A bad info_hash exits with code 2 and says what is wrong."""
        out, err, code = await self.runModule("lookup", "nothex")
        self.assertEqual(code, 2)
        self.assertIn(b"expected 40 hex digits", err)
        self.assertNotIn(b"Traceback", err)
        self.assertEqual(out, b"")

    async def test_unknownCommand(self) -> None:
        """An unknown command exits with code 2."""
        _, err, code = await self.runModule("frobnicate")
        self.assertEqual(code, 2)
        self.assertIn(b"invalid choice", err)
        self.assertNotIn(b"Traceback", err)

    async def test_badAddress(self) -> None:
        """A bad HOST:PORT exits with code 2."""
        _, err, code = await self.runModule("ping", "localhost")
        self.assertEqual(code, 2)
        self.assertIn(b"expected HOST:PORT", err)
        self.assertNotIn(b"Traceback", err)

    async def test_missingStateFile(self) -> None:
        """state on a missing file exits with code 1 and a message."""
        _, err, code = await self.runModule(
            "state", os.path.join(temporaryDirectory(self), "missing")
        )
        self.assertEqual(code, 1)
        self.assertIn(b"no state file", err)
        self.assertNotIn(b"Traceback", err)


class InMemorySessionTests(SynchronousTestCase):
    """Commands on an in-memory reactor: exact exit codes and times on its clock."""

    def setUp(self) -> None:
        self.reactor = MemoryReactor()
        self.out, self.err = io.StringIO(), io.StringIO()

    def command(self, *argv: str, limit: float = 120.0) -> tuple[int, float]:
        """Run a command; its exit code and how long it took on the clock."""
        args = cli.parseArguments(list(argv))
        console = cli.Console(self.out, self.err, args.json)
        codes: list[int] = []
        Deferred.fromCoroutine(cli.Session(self.reactor, args, console).run()).addCallback(
            codes.append
        )
        start = self.reactor.seconds()
        while not codes and self.reactor.seconds() - start < limit:
            self.reactor.advance(0.05)
        self.assertEqual(len(codes), 1, "the command did not end")
        return codes[0], self.reactor.seconds() - start

    def test_pingWithoutRoute(self) -> None:
        """ping to an address the host has no route to exits 1 at once with one line."""
        self.reactor.network.failSends(
            "2001:db8::1", OSError(errno.ENETUNREACH, "Network is unreachable")
        )
        code, took = self.command("ping", "[2001:db8::1]:6881")
        self.assertEqual(code, 1)
        self.assertLess(took, 1)
        [line] = self.err.getvalue().splitlines()
        self.assertIn("Network is unreachable", line)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_timeoutDuringJoin(self) -> None:
        """lookup through a router that never answers ends at --timeout, not later."""
        code, took = self.command("lookup", HASH, "--bootstrap", "127.0.0.1:9", "--timeout", "2")
        self.assertEqual(code, 1)
        self.assertLessEqual(took, 2.1)
        self.assertIn("gave up after 2 s", self.err.getvalue())
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_timeoutUnderLoss(self) -> None:
        """Every command ends within its --timeout on a network that loses everything."""
        self.reactor.network.lossRate = 1.0
        for command in (
            ["ping", "10.0.0.9:6881"],
            ["find-node", HASH],
            ["announce", HASH, "--implied-port"],
            ["scrape", HASH],
            ["sample"],
        ):
            code, took = self.command(*command, "--bootstrap", "10.0.0.9:6881", "--timeout", "3")
            self.assertEqual(code, 1, command)
            self.assertLessEqual(took, 3.1, command)
