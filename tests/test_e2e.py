"""End to end: C{twistd dht} in a subprocess, queried over UDP and by C{python -m twisted_dht}."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import DatagramProtocol, ProcessProtocol
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from twisted_dht import krpc
from twisted_dht.state import readState

from .test_cli import projectEnvironment, temporaryDirectory

reactor: Any = _reactor
HASH = "0123456789abcdef0123456789abcdef01234567"
TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
"""C{twistd} of this interpreter (C{python -m twisted} is C{twist}, which has no -n)."""


class Server(ProcessProtocol):
    """A twistd process: its output, and a Deferred of its exit."""

    def __init__(self) -> None:
        self.output = b""
        self.ended: Deferred[BaseException] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(reason.value)


class Client(DatagramProtocol):
    """A plain UDP socket that fires C{replies[tid]} with the reply to its query."""

    def __init__(self) -> None:
        self.replies: dict[bytes, Deferred[krpc.Message]] = {}

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        message = krpc.decodeMessage(datagram)
        waiting = self.replies.pop(message.tid, None)
        if waiting is not None and not isinstance(message, krpc.Query):
            waiting.callback(message)

    def query(
        self, address: tuple[str, int], tid: bytes, method: bytes, args: dict[bytes, Any]
    ) -> Deferred[krpc.Message]:
        assert self.transport is not None
        self.replies[tid] = Deferred()
        self.transport.write(krpc.encodeQuery(tid, method, {b"id": b"e" * 20, **args}), address)
        return self.replies[tid]


def freePort() -> int:
    """A UDP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TwistdEndToEndTests(TestCase):
    """The acceptance test of issue 5."""

    timeout = 120

    def setUp(self) -> None:
        self.directory = temporaryDirectory(self)
        self.statePath = os.path.join(self.directory, "dht.state")
        self.port = freePort()
        self.address = ("127.0.0.1", self.port)
        self.client = Client()
        listening = reactor.listenUDP(0, self.client, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)

    def startServer(self) -> Server:
        """Run twistd dht on our port in the foreground; killed by PID in cleanup."""
        server = Server()
        argv = [
            sys.executable, "-c", TWISTD, "-n", "--pidfile=", "dht",
            "--port", str(self.port), "--interface", "127.0.0.1", "--no-ipv6",
            "--no-bootstrap", "--state", self.statePath,
        ]  # fmt: skip
        process = reactor.spawnProcess(
            server, sys.executable, argv, env=projectEnvironment(), path=self.directory
        )

        def kill() -> Deferred[Any] | None:
            if server.ended.called:
                return None
            try:
                os.kill(process.pid, signal.SIGKILL)
            except (OSError, TypeError):
                return None
            return server.ended.addTimeout(10, reactor)

        self.addCleanup(kill)
        server.process = process  # type: ignore[attr-defined]
        return server

    async def stopServer(self, server: Server) -> None:
        """SIGTERM, then wait (bounded) for a clean exit."""
        os.kill(server.process.pid, signal.SIGTERM)  # type: ignore[attr-defined]
        reason = await server.ended.addTimeout(20, reactor)
        self.assertIsInstance(reason, (ProcessDone, ProcessTerminated), server.output)

    async def waitForPing(self, server: Server) -> krpc.Response:
        """Ping until the server answers: at most 100 tries, 0.2 s apart."""
        for attempt in range(100):
            if server.ended.called:
                self.fail(f"twistd exited early:\n{server.output.decode()}")
            reply = self.client.query(self.address, b"p%d" % attempt, b"ping", {})
            try:
                message = await reply.addTimeout(0.2, reactor)
            except Exception:
                continue
            assert isinstance(message, krpc.Response)
            return message
        self.fail(f"twistd never answered a ping:\n{server.output.decode()}")

    async def runCLI(self, *argv: str) -> tuple[bytes, bytes]:
        """Run C{python -m twisted_dht} against the server; it must succeed."""
        common = [
            "--bootstrap",
            f"{self.address[0]}:{self.address[1]}",
            "--relax-local",
            "--timeout",
            "30",
        ]
        result = getProcessOutputAndValue(
            sys.executable,
            ["-m", "twisted_dht", *argv, *common],
            env=projectEnvironment(),
            path=self.directory,
        )
        out, err, code = await result.addTimeout(60, reactor)
        self.assertEqual(code, 0, (out + err).decode())
        return out, err

    async def test_twistdDHT(self) -> None:
        """twistd dht answers ping and get_peers, stores a CLI announce that a CLI lookup
        finds, saves its state on SIGTERM and keeps its node id on restart."""
        server = self.startServer()
        pong = await self.waitForPing(server)
        nodeId = pong.nodeId

        reply = await self.client.query(
            self.address, b"gp", b"get_peers", {b"info_hash": bytes.fromhex(HASH)}
        ).addTimeout(5, reactor)
        assert isinstance(reply, krpc.Response)
        self.assertEqual(reply.nodeId, nodeId)
        self.assertIsNotNone(krpc.responseToken(reply))

        out, _ = await self.runCLI("announce", HASH, "--port", "6789")
        self.assertIn(b"to 1 nodes", out)
        out, _ = await self.runCLI("lookup", HASH, "--json")
        self.assertIn("127.0.0.1:6789", json.loads(out)["peers"])

        await self.stopServer(server)
        self.assertEqual(readState(self.statePath).nodeId, nodeId)
        self.assertIn(b"stopping; state saved", server.output)

        server = self.startServer()
        pong = await self.waitForPing(server)
        self.assertEqual(pong.nodeId, nodeId)
        await self.stopServer(server)

    async def test_badPortIsAUsageError(self) -> None:
        """twistd dht --port 70000 prints a one-line usage error and exits non-zero."""
        result = getProcessOutputAndValue(
            sys.executable,
            ["-c", TWISTD, "-n", "--pidfile=", "dht", "--port", "70000"],
            env=projectEnvironment(),
            path=self.directory,
        )
        out, err, code = await result.addTimeout(30, reactor)
        self.assertNotEqual(code, 0)
        self.assertIn(b"Port number not in range: 70000", out + err)
        self.assertNotIn(b"Traceback", out + err)
        await deferLater(reactor, 0)

    async def test_portInUseIsOneLine(self) -> None:
        """A port already in use ends twistd dht with status 1 and a message, no traceback."""
        taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        port = str(taken.getsockname()[1])
        result = getProcessOutputAndValue(
            sys.executable,
            ["-c", TWISTD, "-n", "--pidfile=", "dht", "--port", port,
             "--interface", "127.0.0.1", "--no-ipv6", "--no-bootstrap"],
            env=projectEnvironment(),
            path=self.directory,
        )  # fmt: skip
        out, err, code = await result.addTimeout(30, reactor)
        self.assertEqual(code, 1)
        self.assertIn(f"cannot listen on UDP 127.0.0.1:{port}".encode(), out + err)
        self.assertNotIn(b"Traceback", out + err)
