"""Tests for twisted_dht.probe: every check passes against our node, and a server with one
fault fails the matching check only."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.trial.unittest import SynchronousTestCase, TestCase

from twisted_dht import bencoding, cli, krpc
from twisted_dht.addresses import Address
from twisted_dht.errors import ErrorCode, KRPCError
from twisted_dht.node import DHTNode
from twisted_dht.probe import FAIL, PASS, UNSUPPORTED, ProbeReport, runProbe
from twisted_dht.probechecks import CHECKS, DEFAULT_CHECKS
from twisted_dht.probecli import formatReport, probeCommand
from twisted_dht.testing import MemoryNetwork, MemoryReactor

TARGET: Address = ("127.0.0.1", 6881)


class TamperingNetwork(MemoryNetwork):
    """A network on which what one address sends can be rewritten (or dropped: None)."""

    tamper: Callable[[bytes], bytes | None] | None = None

    def send(self, source: Address, destination: Address, packet: bytes) -> None:
        if self.tamper is not None and source == TARGET:
            rewritten = self.tamper(packet)
            if rewritten is None:
                return
            packet = rewritten
        super().send(source, destination, packet)


def rewriteResponse(change: Callable[[dict[bytes, Any]], bool]) -> Callable[[bytes], bytes]:
    """A tamper that decodes each reply, lets C{change} edit it, and re-encodes it when
    C{change} says it did."""

    def tamper(packet: bytes) -> bytes:
        message = bencoding.decode(packet)
        return bencoding.encode(message) if change(message) else packet

    return tamper


class InMemoryProbeTests(SynchronousTestCase):
    """The probe against our node on an in-memory network, each fault on its own."""

    def setUp(self) -> None:
        self.reactor = MemoryReactor()
        self.network = TamperingNetwork(self.reactor, latency=0.001)
        self.reactor.network = self.network
        self.node = DHTNode(reactor=self.reactor, routers=[])
        self.node.listen(TARGET[1], interface=TARGET[0], interface6=None)
        self.node.start(bootstrap=False)
        self.addCleanup(self.node.stop)

    def probe(self, **options: Any) -> ProbeReport:
        reports: list[ProbeReport] = []
        ensureDeferred(runProbe(self.reactor, TARGET, **options)).addCallback(reports.append)
        for _ in range(100000):
            if reports:
                break
            self.reactor.advance(0.01)
        [report] = reports
        return report

    def statuses(self, report: ProbeReport) -> dict[str, str]:
        return {result.name: result.status for result in report.results}

    def assertOnlyFails(self, report: ProbeReport, *names: str) -> None:
        failed = [r.name for r in report.results if r.status != PASS]
        self.assertEqual(failed, list(names), formatReport(report))

    def test_ourNodePassesEverything(self) -> None:
        """Every check passes against our node, within a few hundred datagrams."""
        report = self.probe()
        self.assertEqual([r.name for r in report.results], DEFAULT_CHECKS)
        self.assertOnlyFails(report)
        self.assertTrue(report.passed)
        self.assertLess(report.datagramsSent, 400)

    def test_wrongErrorCode(self) -> None:
        """A node answering an unknown method with 202 fails error-unknown-method only."""
        handlerFor = self.node.controller.handlerFor

        def wrongCode(query: krpc.Query, address: Address) -> Any:
            raise KRPCError(ErrorCode.SERVER, "Server Error")

        self.node.controller.handlerFor = lambda m: handlerFor(m) or wrongCode  # type: ignore[method-assign]
        report = self.probe()
        self.assertOnlyFails(report, "error-unknown-method")
        [result] = [r for r in report.results if r.name == "error-unknown-method"]
        self.assertIn("error 202", result.evidence)

    def test_noBEP44(self) -> None:
        """A node answering get and put with error 204 (no BEP 44) has the three BEP 44
        checks reported as not supported, and nothing failed."""
        handlerFor = self.node.controller.handlerFor
        self.node.controller.handlerFor = lambda m: (  # type: ignore[method-assign]
            None if m in (b"get", b"put") else handlerFor(m)
        )
        report = self.probe()
        bep44 = [name for name in DEFAULT_CHECKS if name.startswith("bep44-")]
        self.assertEqual(len(bep44), 3)
        self.assertOnlyFails(report, *bep44)
        self.assertEqual(
            {name: self.statuses(report)[name] for name in bep44},
            dict.fromkeys(bep44, UNSUPPORTED),
        )
        self.assertTrue(report.passed)

    def test_itemPutWithoutToken(self) -> None:
        """A node taking any token fails the token checks of announce_peer and
        bep44-bad-token (put), while its BEP 44 round trips pass."""
        self.node.tokenStore.validate = lambda ip, i, t: True  # type: ignore[method-assign]
        self.assertOnlyFails(
            self.probe(), "error-bad-token", "token-ip", "token-info-hash", "bep44-bad-token"
        )

    def test_itemLost(self) -> None:
        """A node that answers a put but stores nothing fails both BEP 44 round trips."""
        self.node.itemStore.put = lambda *a, **k: None  # type: ignore[method-assign]
        self.assertOnlyFails(self.probe(), "bep44-immutable", "bep44-mutable")

    def test_tokenNotBoundToIP(self) -> None:
        """Tokens that ignore the requester's IP fail token-ip only."""
        store = self.node.tokenStore
        generate, validate = store.generate, store.validate
        store.generate = lambda ip, infoHash: generate("10.0.0.1", infoHash)  # type: ignore[method-assign]
        store.validate = lambda ip, i, t: validate("10.0.0.1", i, t)  # type: ignore[method-assign]
        self.assertOnlyFails(self.probe(), "token-ip")

    def test_tokenNotBoundToInfoHash(self) -> None:
        """Tokens that ignore the info_hash fail token-info-hash only."""
        store = self.node.tokenStore
        generate, validate = store.generate, store.validate
        store.generate = lambda ip, infoHash: generate(ip, b"\x00" * 20)  # type: ignore[method-assign]
        store.validate = lambda ip, i, t: validate(ip, b"\x00" * 20, t)  # type: ignore[method-assign]
        self.assertOnlyFails(self.probe(), "token-info-hash")

    def test_oversizedReply(self) -> None:
        """Replies padded over 1,024 bytes when many peers are stored fail reply-size only."""

        def pad(message: dict[bytes, Any]) -> bool:
            values = message.get(b"r", {}).get(b"values", [])
            if len(values) < 50:
                return False
            message[b"r"][b"pad"] = b"x" * 200
            return True

        self.network.tamper = rewriteResponse(pad)
        self.assertOnlyFails(self.probe(), "reply-size")

    def test_longTidTruncated(self) -> None:
        """A node that echoes only 4 bytes of an 8-byte tid fails tid-lengths only."""

        def truncate(message: dict[bytes, Any]) -> bool:
            if len(message[b"t"]) <= 4:
                return False
            message[b"t"] = message[b"t"][:4]
            return True

        self.network.tamper = rewriteResponse(truncate)
        report = self.probe()
        self.assertOnlyFails(report, "tid-lengths")
        self.assertIn("8-byte tid not echoed", report.results[1].evidence)

    def test_answersStrayResponses(self) -> None:
        """A node that answers a response to no query fails silence-stray-response only."""
        receive = self.node.ipv4.protocol.datagramReceived
        transport = self.node.ipv4.protocol.transport
        assert transport is not None

        def answerEverything(data: bytes, address: Address) -> None:
            if data.startswith(b"d1:rd2:id20:"):  # a response: answer it with an error
                tid = krpc.decodeMessage(data).tid
                transport.write(krpc.encodeError(tid, 203, "what?"), address)  # type: ignore[attr-defined]
            receive(data, address)

        self.node.ipv4.protocol.datagramReceived = answerEverything  # type: ignore[method-assign]
        self.assertOnlyFails(self.probe(), "silence-stray-response")

    def test_unreachableNode(self) -> None:
        """A node that does not answer fails ping and skips the rest, at once."""
        self.network.tamper = lambda packet: None
        report = self.probe(timeout=1.0)
        self.assertEqual(report.results[0].status, FAIL)
        self.assertTrue(all(r.status == FAIL for r in report.results))
        self.assertEqual(report.datagramsSent, 1)
        self.assertIn("skipped", report.results[-1].evidence)

    def test_burstOptIn(self) -> None:
        """The burst runs only when asked for, and reports how many pings were answered."""
        self.assertNotIn("burst", self.statuses(self.probe(checks=["ping"])))
        report = self.probe(checks=["ping", "burst"], burst=30)
        self.assertEqual(report.results[1].status, PASS)
        self.assertIn("30 of a burst of 30", report.results[1].evidence)

    def test_unknownCheck(self) -> None:
        """An unknown check name is a ValueError naming the known ones."""
        failures: list[Any] = []
        ensureDeferred(runProbe(self.reactor, TARGET, checks=["nope"])).addErrback(failures.append)
        [failure] = failures
        self.assertIn("unknown check nope", str(failure.value))
        self.assertIn("tid-lengths", str(failure.value))

    def test_oneSourceWithoutLoopbackSpares(self) -> None:
        """With a single --source-ip, the checks that need a second address are not
        supported rather than failed."""
        report = self.probe(checks=["ping", "token-ip"], sourceIPs=["127.0.0.1"])
        self.assertEqual(self.statuses(report), {"ping": PASS, "token-ip": UNSUPPORTED})
        self.assertTrue(report.passed)


class CommandTests(SynchronousTestCase):
    """python -m twisted_dht probe: output, JSON and exit codes."""

    def setUp(self) -> None:
        self.reactor = MemoryReactor(latency=0.001)
        self.node = DHTNode(reactor=self.reactor, routers=[])
        self.node.listen(TARGET[1], interface=TARGET[0], interface6=None)
        self.addCleanup(self.node.stop)
        self.out, self.err = io.StringIO(), io.StringIO()

    def command(self, *argv: str) -> int:
        args = cli.parseArguments(["probe", *argv])
        console = cli.Console(self.out, self.err, args.json)
        codes: list[int] = []
        Deferred.fromCoroutine(probeCommand(self.reactor, args, console)).addCallback(codes.append)
        while not codes:
            self.reactor.advance(0.01)
        return codes[0]

    def test_table(self) -> None:
        """The table has a row per check and a summary; exit 0 when all pass."""
        self.assertEqual(self.command("127.0.0.1:6881", "--checks", "ping,version"), 0)
        lines = self.out.getvalue().splitlines()
        self.assertTrue(lines[1].startswith("ping"))
        self.assertIn("twisted_dht 0.1", lines[2])
        self.assertIn("2 passed, 0 failed, 0 not supported", lines[-1])

    def test_json(self) -> None:
        """--json prints one document with every result."""
        self.assertEqual(self.command("127.0.0.1:6881", "--checks", "ping", "--json"), 0)
        document = json.loads(self.out.getvalue())
        self.assertEqual(document["results"][0]["name"], "ping")
        self.assertEqual(document["results"][0]["status"], PASS)
        self.assertTrue(document["passed"])

    def test_failingNodeExits1(self) -> None:
        """A node that does not answer: exit 1."""
        self.assertEqual(self.command("127.0.0.1:9", "--checks", "ping", "--timeout", "1"), 1)

    def test_badCheckExits2(self) -> None:
        """An unknown check: exit 2 with one line."""
        self.assertEqual(self.command("127.0.0.1:6881", "--checks", "pingg"), 2)
        [line] = self.err.getvalue().splitlines()
        self.assertIn("unknown check pingg", line)

    def test_badAddressExits2(self) -> None:
        """A bad HOST:PORT is argparse's usage error (exit 2)."""
        with self.assertRaises(SystemExit) as raised:
            cli.parseArguments(["probe", "nowhere"])
        self.assertEqual(raised.exception.code, 2)


class LoopbackProbeTests(TestCase):
    """The probe over real UDP sockets on loopback against our node."""

    timeout = 60

    async def test_everyCheckPasses(self) -> None:
        node = DHTNode(reactor=reactor, routers=[])
        [port] = node.listen(0, interface="127.0.0.1", interface6=None)
        node.start(bootstrap=False)
        try:
            report = await runProbe(reactor, ("127.0.0.1", port.getHost().port))
        finally:
            node.stop()
            await port.stopListening()
        failed = [r for r in report.results if r.status != PASS]
        self.assertEqual(failed, [], "\n".join(formatReport(report)))
        self.assertEqual(set(CHECKS) - {r.name for r in report.results}, {"burst"})
