"""A conformance probe for any DHT node: ``python -m twisted_dht probe HOST:PORT``.

L{runProbe} sends a bounded set of crafted KRPC datagrams to one node from one or more
local UDP sockets (L{ProbeSocket}) and grades each named check of L{CHECKS}
(L{twisted_dht.probechecks}) as passed, failed or not supported, with its evidence. It is
safe to point at someone else's node: a few hundred datagrams at most, no flood unless
C{burst} asks for one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IReactorTime, IReactorUDP
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import deferLater

from . import krpc
from .addresses import Address, formatAddress, isIPv6, packIP
from .errors import MalformedMessage
from .krpc import Message, Query, Response
from .sockets import MAX_PACKET_SIZE

if TYPE_CHECKING:
    pass

PASS = "pass"
FAIL = "fail"
UNSUPPORTED = "not supported"

MAX_REPLY = krpc.MAX_REPLY_SIZE

SILENCE_WAIT = 1.0
"""Seconds the probe listens for a reply that must not come."""


class CheckFailed(Exception):
    """A check saw the node misbehave; the message is the evidence."""


class NotSupported(Exception):
    """The node does not implement what a check tests (or it cannot be seen from here)."""


@dataclass
class CheckResult:
    """One check's grade and what it saw."""

    name: str
    status: str
    evidence: str


@dataclass
class ProbeReport:
    """Every check's result, in order, and what the probe sent."""

    target: str
    results: list[CheckResult] = field(default_factory=list)
    datagramsSent: int = 0

    @property
    def passed(self) -> bool:
        """Whether every supported check passed."""
        return all(result.status != FAIL for result in self.results)

    def counts(self) -> dict[str, int]:
        """How many checks got each status."""
        return {
            status: sum(r.status == status for r in self.results)
            for status in (PASS, FAIL, UNSUPPORTED)
        }

    def toJSON(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "passed": self.passed,
            "counts": self.counts(),
            "datagramsSent": self.datagramsSent,
            "results": [asdict(result) for result in self.results],
        }


class ProbeSocket(DatagramProtocol):
    """One local UDP socket of the probe, with a node id of its own.

    It sends raw datagrams to the target, hands each reply to the request waiting for its
    transaction id, keeps every datagram the target sent (L{received}), and answers the
    target's own queries (ping, find_node, get_peers) as a minimal node would, so that a
    target which verifies its queriers can.
    """

    noisy = False

    def __init__(self, reactor: IReactorTime, target: Address, readOnly: bool = False) -> None:
        self.clock = reactor
        self.target = target
        self._targetKey = (packIP(target[0]), target[1])
        self.nodeId = os.urandom(20)
        self.readOnly = readOnly
        self.received: list[bytes] = []
        """Every datagram the target sent us, in order."""
        self.unmatched: list[Message] = []
        """Replies from the target that matched no request."""
        self.sent = 0
        self._waiting: dict[bytes, Deferred[Message | None]] = {}

    @property
    def address(self) -> Address:
        """Our (host, port)."""
        host = self.transport.getHost()  # type: ignore[union-attr]
        return host.host, host.port

    def datagramReceived(self, data: bytes, address: Address) -> None:
        try:
            if (packIP(address[0]), address[1]) != self._targetKey:
                return
        except ValueError:
            return
        self.received.append(data)
        try:
            message = krpc.decodeMessage(data)
        except MalformedMessage:
            return
        if isinstance(message, Query):
            self._answer(message)
            return
        waiting = self._waiting.pop(message.tid, None)
        if waiting is None:
            self.unmatched.append(message)
        else:
            waiting.callback(message)

    def _answer(self, query: Query) -> None:
        if self.readOnly:
            return
        values: dict[bytes, Any] = {b"id": self.nodeId}
        if query.method in (b"find_node", b"get_peers"):
            values[b"nodes"] = b""
        if query.method == b"get_peers":
            values[b"token"] = b"probe"
        if query.method in (b"ping", b"find_node", b"get_peers", b"announce_peer"):
            self.send(krpc.encodeResponse(query.tid, values))
        else:
            self.send(krpc.encodeError(query.tid, 204, "Method Unknown"))

    def send(self, data: bytes) -> None:
        """Send one datagram to the target."""
        self.sent += 1
        self.transport.write(data, self.target)  # type: ignore[union-attr]

    def request(self, data: bytes, tid: bytes, timeout: float) -> Deferred[Message | None]:
        """Send C{data}; fire with the reply whose transaction id is C{tid}, or None after
        C{timeout} seconds."""
        waiting: Deferred[Message | None] = Deferred()
        self._waiting[tid] = waiting

        def expire() -> None:
            if self._waiting.pop(tid, None) is waiting:
                waiting.callback(None)

        timer = self.clock.callLater(timeout, expire)

        def done(result: Message | None) -> Message | None:
            if timer.active():
                timer.cancel()
            return result

        waiting.addCallback(done)
        self.send(data)
        return waiting

    def query(
        self,
        method: bytes,
        args: dict[bytes, Any],
        timeout: float,
        *,
        tid: bytes | None = None,
        withId: bool = True,
    ) -> Deferred[Message | None]:
        """Send a query (with our id unless C{withId} is false) and wait for its reply."""
        tid = os.urandom(4) if tid is None else tid
        body = {b"id": self.nodeId, **args} if withId else dict(args)
        data = krpc.encodeQuery(tid, method, body, readOnly=self.readOnly)
        return self.request(data, tid, timeout)


class Probe:
    """The state one run shares between checks: its sockets, the target, its options."""

    def __init__(
        self,
        reactor: Any,
        target: Address,
        *,
        timeout: float = 2.0,
        sourceIPs: Sequence[str] = (),
        burst: int = 0,
    ) -> None:
        self.reactor = reactor
        self.target = target
        self.timeout = timeout
        self.burst = burst
        self.loopback = _isLoopback(target[0])
        self.sourceIPs = list(sourceIPs) or self._defaultSources()
        self.targetId: bytes | None = None
        self.version: bytes | None = None
        self.sockets: list[ProbeSocket] = []
        self._ports: list[IListeningPort] = []
        self._spare = 1

    def _defaultSources(self) -> list[str]:
        if isIPv6(self.target[0]):
            return ["::1"] if self.loopback else ["::"]
        return ["127.0.0.1", "127.0.0.2"] if self.loopback else [""]

    @property
    def main(self) -> ProbeSocket:
        """The first socket, opened by L{start}."""
        return self.sockets[0]

    def start(self) -> None:
        self.open(self.sourceIPs[0])

    def open(self, interface: str, readOnly: bool = False) -> ProbeSocket:
        """A new socket bound to C{interface} on a free port."""
        socket = ProbeSocket(self.reactor, self.target, readOnly)
        udp: IReactorUDP = self.reactor
        self._ports.append(udp.listenUDP(0, socket, interface, MAX_PACKET_SIZE))
        self.sockets.append(socket)
        return socket

    def otherSource(self) -> ProbeSocket | None:
        """A socket on a second local IP (the second --source-ip), or None."""
        if len(self.sourceIPs) < 2:
            return None
        return self.open(self.sourceIPs[1])

    def spareLoopback(self, subnet: int) -> str | None:
        """A loopback IPv4 address of its own, in 127.<subnet>.0.0/16, when the target
        is on IPv4 loopback (where every 127/8 address is ours)."""
        if not self.loopback or isIPv6(self.target[0]):
            return None
        self._spare += 1
        return f"127.{subnet}.{self._spare // 250}.{self._spare % 250 + 1}"

    async def ask(
        self, method: bytes, args: dict[bytes, Any], socket: ProbeSocket | None = None
    ) -> Message:
        """A query from C{socket} (default: the main one) that must get a reply."""
        reply = await (socket or self.main).query(method, args, self.timeout)
        if reply is None:
            raise CheckFailed(f"no reply to {method.decode()} within {self.timeout:g} s")
        return reply

    async def askResponse(
        self, method: bytes, args: dict[bytes, Any], socket: ProbeSocket | None = None
    ) -> krpc.Response:
        """A query that must get a response (not an error)."""
        reply = await self.ask(method, args, socket)
        if isinstance(reply, krpc.Error):
            raise CheckFailed(f"{method.decode()} answered with error {reply.code}")
        assert isinstance(reply, krpc.Response)
        return reply

    async def wait(self, seconds: float) -> None:
        await deferLater(self.reactor, seconds, lambda: None)

    @property
    def datagramsSent(self) -> int:
        return sum(socket.sent for socket in self.sockets)

    def received(self) -> Iterable[bytes]:
        """Every datagram the target sent to any of our sockets."""
        for socket in self.sockets:
            yield from socket.received

    async def close(self) -> None:
        ports, self._ports = self._ports, []
        for port in ports:
            stopping = port.stopListening()
            if stopping is not None:
                await stopping


# Reading replies (shared by the checks) ------------------------------------------------


def responseOf(reply: Message, what: str) -> Response:
    """C{reply} as a response; an error fails the check."""
    if isinstance(reply, krpc.Error):
        raise CheckFailed(f"{what} answered with error {reply.code}")
    assert isinstance(reply, Response)
    return reply


def nodesOf(reply: Response, key: bytes = b"nodes") -> list[tuple[bytes, Address]]:
    """The well-formed C{nodes} (or C{nodes6}) of a reply; malformed ones fail the check."""
    value = reply.values.get(key)
    if value is None:
        return []
    if not isinstance(value, bytes):
        raise CheckFailed(f"{key.decode()} is not a string")
    try:
        return krpc.unpackNodes(value, ipv6=key == b"nodes6")
    except MalformedMessage as e:
        raise CheckFailed(f"{key.decode()}: {e}") from None


def valuesOf(reply: Response) -> list[Address]:
    """The peers of a get_peers reply; malformed ones fail the check."""
    try:
        return krpc.responseValues(reply)
    except MalformedMessage as e:
        raise CheckFailed(f"values: {e}") from None


async def tokenFor(probe: Probe, infoHash: bytes, socket: ProbeSocket | None = None) -> bytes:
    """A get_peers token for C{infoHash}."""
    reply = await probe.askResponse(b"get_peers", {b"info_hash": infoHash}, socket)
    token = reply.values.get(b"token")
    if not isinstance(token, bytes) or not token:
        raise CheckFailed("get_peers gave no token")
    return token


async def storedPeers(probe: Probe, infoHash: bytes) -> list[Address]:
    """The peers the target gives for C{infoHash}."""
    return valuesOf(await probe.askResponse(b"get_peers", {b"info_hash": infoHash}))


def announceArgs(infoHash: bytes, token: bytes, port: int, implied: bool = False) -> Any:
    """The arguments of an announce_peer (without our id)."""
    args: dict[bytes, Any] = {b"info_hash": infoHash, b"token": token, b"port": port}
    if implied:
        args[b"implied_port"] = 1
    return args


def _isLoopback(host: str) -> bool:
    try:
        ip = packIP(host)
    except ValueError:
        return False
    return ip[:1] == b"\x7f" if len(ip) == 4 else ip == b"\x00" * 15 + b"\x01"


async def runProbe(
    reactor: Any,
    target: Address,
    *,
    checks: Sequence[str] | None = None,
    timeout: float = 2.0,
    sourceIPs: Sequence[str] = (),
    burst: int = 0,
) -> ProbeReport:
    """Probe the node at C{target} (an IP literal and port) with C{checks} (default:
    every check of L{CHECKS}, and C{burst} when it is positive).

    @raise ValueError: for an unknown check name.
    """
    from .probechecks import CHECKS, DEFAULT_CHECKS  # they import this module

    names = list(checks) if checks is not None else list(DEFAULT_CHECKS)
    if checks is None and burst > 0:
        names.append("burst")
    unknown = [name for name in names if name not in CHECKS]
    if unknown:
        raise ValueError(f"unknown check {', '.join(unknown)} (known: {', '.join(CHECKS)})")
    probe = Probe(reactor, target, timeout=timeout, sourceIPs=sourceIPs, burst=burst)
    report = ProbeReport(formatAddress(target))
    probe.start()
    unreachable = False
    try:
        for name in names:
            if unreachable:
                result = CheckResult(name, FAIL, "skipped: the node did not answer ping")
            else:
                result = await _runCheck(probe, name, CHECKS[name])
                unreachable = name == "ping" and result.status == FAIL
            report.results.append(result)
    finally:
        report.datagramsSent = probe.datagramsSent
        await probe.close()
    return report


async def _runCheck(probe: Probe, name: str, check: Any) -> CheckResult:
    try:
        evidence = await check(probe)
    except CheckFailed as e:
        return CheckResult(name, FAIL, str(e))
    except NotSupported as e:
        return CheckResult(name, UNSUPPORTED, str(e))
    except OSError as e:
        return CheckResult(name, FAIL, f"cannot send: {e}")
    return CheckResult(name, PASS, evidence)
