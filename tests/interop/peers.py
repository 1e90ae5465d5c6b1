"""Start, drive and stop third-party DHT peers on loopback for the interop tests.

Two peers, both driven from the Twisted reactor and every wait bounded by a timeout:

- `BittorrentDHTPeer`: webtorrent's ``bittorrent-dht`` in a Node subprocess
  (``btdht_driver.mjs`` beside this file, one JSON object per line on stdin/stdout).
- `LibtorrentPeer`: an in-process ``libtorrent.session`` whose alerts are polled every 50 ms.

Both follow ``shared/INTEROP.md``: loopback only, bootstrap always explicit (never the public
routers), no UPnP/NAT-PMP/LSD, libtorrent behind an ip_filter that only allows 127.0.0.0/8,
on its own 127.0.N.1 with raised rate limits. `requirePeer` skips a test when a peer is missing,
or fails it when ``CI`` is set.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import shutil
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import SkipTest

import bencodepy
from twisted.internet import defer, error, task
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorProcess, IReactorTime
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

__all__ = [
    "DRIVER",
    "NODE_MODULES",
    "BittorrentDHTPeer",
    "DHTPacket",
    "DriverError",
    "FoundItem",
    "LibtorrentPeer",
    "PeerMissing",
    "PutOutcome",
    "SampleAnswer",
    "ed25519Available",
    "freeUDPPort",
    "libtorrentAvailable",
    "nextLoopbackInterface",
    "nodeModulesAvailable",
    "requirePeer",
]

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "btdht_driver.mjs"
NODE_MODULES = HERE / "node_modules"
LIBTORRENT_VERSION = "2.1.1"

Address = tuple[str, int]

_log = Logger()


class PeerMissing(AssertionError):
    """A third-party peer the tests need is not installed, and ``CI`` is set."""


class DriverError(Exception):
    """A peer driver answered a command with an error, or died."""


def _ciIsSet() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def requirePeer(name: str, available: bool) -> None:
    """Skip the calling test when peer ``name`` is missing, or fail it when ``CI`` is set.

    Raises `unittest.SkipTest` (trial and pytest both report a skip) or `PeerMissing`, an
    `AssertionError`, which both runners report as a failure.
    """
    if available:
        return
    reason = f"interop peer {name} is not installed (see tests/interop and .ci/run)"
    if _ciIsSet():
        raise PeerMissing(f"{reason}; CI is set, so this is a failure, not a skip")
    raise SkipTest(reason)


def nodeModulesAvailable() -> bool:
    """Whether ``node`` is on PATH and ``npm install`` ran in tests/interop."""
    return (
        shutil.which("node") is not None
        and (NODE_MODULES / "bittorrent-dht" / "package.json").is_file()
        and DRIVER.is_file()
    )


def ed25519Available() -> bool:
    """Whether the driver's ed25519 package (``tweetnacl``, for BEP 44 mutable items) is in
    tests/interop/node_modules."""
    return (NODE_MODULES / "tweetnacl" / "package.json").is_file()


def libtorrentAvailable() -> bool:
    """Whether the libtorrent wheel the tests were written against can be imported."""
    try:
        import libtorrent
    except ImportError:
        return False
    return str(getattr(libtorrent, "__version__", "")).startswith(LIBTORRENT_VERSION)


def freeUDPPort(host: str = "127.0.0.1") -> int:
    """A UDP port on ``host`` that the OS considered free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


_subnets = itertools.cycle(range(10, 250))


def nextLoopbackInterface() -> str:
    """The next ``127.0.N.1`` (N from 10 to 249, cycling): one /24 per libtorrent peer."""
    return f"127.0.{next(_subnets)}.1"


def _hostPort(entry: Address | str) -> str:
    if isinstance(entry, str):
        return entry
    host, port = entry
    return f"{host}:{int(port)}"


def _getReactor(reactor: Any) -> Any:
    if reactor is None:
        from twisted.internet import reactor as globalReactor

        reactor = globalReactor
    return reactor


def _bounded(d: Deferred[Any], timeout: float, reactor: IReactorTime, what: str) -> Deferred[Any]:
    def explain(failure: Failure) -> Failure:
        if failure.check(defer.TimeoutError):
            return Failure(defer.TimeoutError(f"{what}: no answer within {timeout} s"))
        return failure

    d.addTimeout(timeout, reactor)
    d.addErrback(explain)
    return d


# ---------------------------------------------------------------------------------------------
# BEP 44 items, as the peers report them


@dataclass(frozen=True)
class FoundItem:
    """A BEP 44 item a peer's get found: ``value`` decoded, ``encoded`` its bencoding; a
    mutable item also has ``publicKey``, ``seq`` and ``signature``."""

    value: Any
    encoded: bytes
    publicKey: bytes | None = None
    salt: bytes = b""
    seq: int | None = None
    signature: bytes | None = None
    authoritative: bool = True
    """libtorrent: whether its lookup had finished (its last alert for the get)."""


@dataclass(frozen=True)
class PutOutcome:
    """What a peer's BEP 44 put reported: the target, how many nodes accepted it and, for a
    mutable item, the key, salt, seq and signature it put."""

    target: bytes
    nodes: int
    publicKey: bytes | None = None
    salt: bytes = b""
    seq: int | None = None
    signature: bytes | None = None


def mutableTarget(publicKey: bytes, salt: bytes = b"") -> bytes:
    """BEP 44: a mutable item's target is SHA-1 of its public key and salt."""
    return hashlib.sha1(publicKey + salt).digest()


def _bencode(value: Any) -> bytes:
    encoded = bencodepy.encode(value)
    assert isinstance(encoded, bytes)
    return encoded


# ---------------------------------------------------------------------------------------------
# bittorrent-dht (Node subprocess)


class _JSONLinesProtocol(ProcessProtocol):
    """Parse the driver's stdout as JSON lines; keep a tail of stderr; report the end."""

    def __init__(self, onEvent: Callable[[dict[str, Any]], None], onEnded: Callable[[], None]):
        self._onEvent = onEvent
        self._onEnded = onEnded
        self._buffer = b""
        self.stderr = b""
        self.reason: Failure | None = None

    def outReceived(self, data: bytes) -> None:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                _log.warn("btdht driver printed a non-JSON line: {line!r}", line=line)
                continue
            if isinstance(event, dict):
                self._onEvent(event)

    def errReceived(self, data: bytes) -> None:
        self.stderr = (self.stderr + data)[-8192:]

    def processEnded(self, reason: Failure) -> None:
        self.reason = reason
        self._onEnded()


class BittorrentDHTPeer:
    """A webtorrent ``bittorrent-dht`` node in a Node subprocess, driven over JSON lines.

    ``queries`` holds every query the node received (``{"q", "from", "a"}``, binary values in
    hex), ``warnings`` its warnings, ``events`` every line the driver printed.
    """

    def __init__(
        self,
        reactor: Any = None,
        timeout: float = 10.0,
        maxLifetime: float = 120.0,
        nodeBinary: str | None = None,
    ) -> None:
        self._reactor = _getReactor(reactor)
        self.timeout = timeout
        self.maxLifetime = maxLifetime
        self.nodeBinary = nodeBinary or shutil.which("node") or "node"
        self.host: str | None = None
        self.port: int | None = None
        self.nodeId: str | None = None
        self.ready = False
        self.queries: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self.events: list[dict[str, Any]] = []
        self._proto: _JSONLinesProtocol | None = None
        self._ended = False
        self._endWaiters: list[Deferred[None]] = []
        self._readyWaiters: list[Deferred[None]] = []
        self._pending: dict[int, tuple[Deferred[Any], list[Address]]] = {}
        self._ids = itertools.count(1)

    @property
    def pid(self) -> int | None:
        """The driver's process id while it runs."""
        if self._proto is None or self._proto.transport is None:
            return None
        return self._proto.transport.pid  # type: ignore[no-any-return]

    @property
    def address(self) -> Address:
        """``(host, port)`` the node listens on (after `start`)."""
        if self.host is None or self.port is None:
            raise DriverError("not started")
        return (self.host, self.port)

    # -- process plumbing

    def _spawn(self) -> None:
        env = dict(os.environ)
        env["BTDHT_DRIVER_MAX_SECONDS"] = str(max(1, int(self.maxLifetime)))
        self._proto = _JSONLinesProtocol(self._onEvent, self._onEnded)
        processReactor: IReactorProcess = self._reactor
        processReactor.spawnProcess(
            self._proto,
            self.nodeBinary,
            [self.nodeBinary, str(DRIVER)],
            env=env,
            path=str(HERE),
        )

    def _onEvent(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        kind = event.get("event")
        if kind == "query":
            self.queries.append(event)
        elif kind == "warning":
            self.warnings.append(str(event.get("message")))
        elif kind == "ready":
            self.ready = True
            waiters, self._readyWaiters = self._readyWaiters, []
            for waiter in waiters:
                waiter.callback(None)
        elif kind == "fatal":
            _log.warn("btdht driver: {message}", message=event.get("message"))
        cid = event.get("id")
        if not isinstance(cid, int) or cid not in self._pending:
            return
        reply, found = self._pending[cid]
        if kind == "peer":
            found.append((str(event["host"]), int(event["port"])))
            return
        del self._pending[cid]
        if kind == "error":
            code = f" (error {event['code']})" if event.get("code") is not None else ""
            reply.errback(DriverError(f"{event.get('cmd')}: {event.get('message')}{code}"))
        elif kind == "lookupDone":
            reply.callback(list(found))
        else:
            reply.callback(event)

    def _onEnded(self) -> None:
        self._ended = True
        stderr = self._proto.stderr.decode("utf-8", "replace") if self._proto else ""
        pending, self._pending = self._pending, {}
        for d, _ in pending.values():
            d.errback(DriverError(f"bittorrent-dht driver exited; stderr: {stderr[-2000:]}"))
        waiters, self._endWaiters = self._endWaiters, []
        for d in waiters:
            d.callback(None)

    def _command(self, cmd: str, timeout: float | None = None, **args: Any) -> Deferred[Any]:
        if self._proto is None or self._ended:
            return defer.fail(DriverError(f"{cmd}: the driver is not running"))
        cid = next(self._ids)

        def cancel(d: Deferred[Any]) -> None:
            self._pending.pop(cid, None)

        d: Deferred[Any] = Deferred(cancel)
        self._pending[cid] = (d, [])
        line = json.dumps({"cmd": cmd, "id": cid, **args}) + "\n"
        self._proto.transport.write(line.encode())  # type: ignore[union-attr]
        return _bounded(d, self.timeout if timeout is None else timeout, self._reactor, cmd)

    def _whenEnded(self) -> Deferred[None]:
        if self._ended or self._proto is None:
            return defer.succeed(None)
        d: Deferred[None] = Deferred(lambda d: self._endWaiters.remove(d))
        self._endWaiters.append(d)
        return d

    @property
    def running(self) -> bool:
        """Whether the driver process was started and has not been reaped yet."""
        return self._proto is not None and not self._ended

    def whenExited(self, timeout: float | None = None) -> Deferred[None]:
        """Fires once the driver process has ended and been reaped."""
        timeout = self.timeout if timeout is None else timeout
        return _bounded(self._whenEnded(), timeout, self._reactor, "btdht exit")

    # -- public API

    def start(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        bootstrap: Iterable[Address | str] = (),
        verify: bool = False,
    ) -> Deferred[int]:
        """Spawn the driver and listen on ``host:port`` (0: any), bootstrapping from the list.

        An empty ``bootstrap`` means no bootstrap at all (never the public routers). Fires
        with the port once the node listens; `whenReady` tells when its bootstrap finished.
        ``verify`` gives the node an ed25519 verify function (tweetnacl), without which it
        neither gets nor stores BEP 44 mutable items.
        """
        if self._proto is not None:
            return defer.fail(DriverError("already started"))
        self._spawn()
        d = self._command(
            "start",
            host=host,
            port=int(port),
            bootstrap=[_hostPort(b) for b in bootstrap],
            verify=bool(verify),
        )

        def listening(event: dict[str, Any]) -> int:
            self.host = str(event.get("host") or host)
            self.port = int(event["port"])
            self.nodeId = str(event["nodeId"])
            return self.port

        return d.addCallback(listening)

    def whenReady(self, timeout: float | None = None) -> Deferred[None]:
        """Fires once the node's bootstrap traversal has finished."""
        if self.ready:
            return defer.succeed(None)
        d: Deferred[None] = Deferred(lambda d: self._readyWaiters.remove(d))
        self._readyWaiters.append(d)
        return _bounded(d, self.timeout if timeout is None else timeout, self._reactor, "ready")

    def announce(self, infoHashHex: str, port: int) -> Deferred[dict[str, Any]]:
        """Announce ``port`` for the info_hash (a lookup first); fires with the driver's
        ``announced`` event (``nodes``: how many nodes accepted it), fails if none did."""
        return self._command("announce", infoHash=infoHashHex, port=int(port))

    def lookup(self, infoHashHex: str, timeout: float | None = None) -> Deferred[list[Address]]:
        """Run a get_peers lookup; fires with the distinct ``(host, port)`` peers found."""
        return self._command("lookup", timeout=timeout, infoHash=infoHashHex)

    def addNode(self, host: str, port: int) -> Deferred[str]:
        """Ping ``host:port`` and add it to the routing table; fires with its node id (hex)."""
        d = self._command("addNode", host=host, port=int(port))
        return d.addCallback(lambda event: str(event["nodeId"]))

    def nodes(self) -> Deferred[list[tuple[str, str, int]]]:
        """The routing table as ``(idhex, host, port)`` tuples."""
        d = self._command("nodes")
        return d.addCallback(
            lambda event: [(n["id"], n["host"], int(n["port"])) for n in event["nodes"]]
        )

    def put(
        self,
        value: Any,
        seed: bytes | None = None,
        *,
        seq: int = 1,
        salt: bytes = b"",
        cas: int | None = None,
        timeout: float | None = None,
    ) -> Deferred[PutOutcome]:
        """BEP 44 ``put`` (a get lookup first): immutable, or with ``seed`` (a 32-byte ed25519
        seed) mutable at ``seq``, signed by the driver with tweetnacl. Fails with
        `DriverError` (a KRPC error's code in its message) when no node accepted it."""
        args: dict[str, Any] = {"v": _bencode(value).hex()}
        if seed is not None:
            args.update(seed=seed.hex(), seq=int(seq), salt=salt.hex())
            if cas is not None:
                args["cas"] = int(cas)

        def outcome(event: dict[str, Any]) -> PutOutcome:
            mutable = "k" in event
            return PutOutcome(
                bytes.fromhex(event["target"]),
                int(event["nodes"]),
                bytes.fromhex(event["k"]) if mutable else None,
                salt if mutable else b"",
                int(event["seq"]) if mutable else None,
                bytes.fromhex(event["sig"]) if mutable else None,
            )

        return self._command("put", timeout=timeout, **args).addCallback(outcome)

    def get(
        self,
        target: bytes | None = None,
        *,
        publicKey: bytes | None = None,
        salt: bytes = b"",
        timeout: float | None = None,
    ) -> Deferred[FoundItem | None]:
        """BEP 44 ``get`` of the immutable item at ``target`` or the mutable item of
        ``publicKey`` and ``salt``, by a lookup (never from its own store); fires with the
        item bittorrent-dht kept (verified; for a mutable item the highest seq), or None."""
        if publicKey is not None:
            target = mutableTarget(publicKey, salt)
        if target is None:
            raise ValueError("a get needs a target or a public key")

        def found(event: dict[str, Any]) -> FoundItem | None:
            item = event.get("item")
            if not item:
                return None
            encoded = bytes.fromhex(item["v"])
            value = bencodepy.decode(encoded)
            if "k" not in item:
                return FoundItem(value, encoded)
            return FoundItem(
                value,
                encoded,
                bytes.fromhex(item["k"]),
                salt,
                int(item["seq"]),
                bytes.fromhex(item["sig"]),
            )

        d = self._command("get", timeout=timeout, target=target.hex(), salt=salt.hex())
        return d.addCallback(found)

    def queriesNamed(self, q: str) -> list[dict[str, Any]]:
        """The received queries of one method, e.g. ``"announce_peer"``."""
        return [query for query in self.queries if query.get("q") == q]

    def stop(self, timeout: float = 5.0) -> Deferred[None]:
        """Ask the driver to exit; SIGKILL it by PID if it has not within ``timeout`` s.

        Fires once the process is reaped. Safe to call twice, or before `start`.
        """
        if self._proto is None or self._ended:
            return defer.succeed(None)
        transport = self._proto.transport
        assert transport is not None
        with contextlib.suppress(Exception):  # the pipe may already be gone
            transport.write(b'{"cmd":"stop"}\n')
            transport.closeStdin()
        d = _bounded(self._whenEnded(), timeout, self._reactor, "btdht exit")

        def kill(failure: Failure) -> Deferred[None]:
            failure.trap(defer.TimeoutError)
            with contextlib.suppress(error.ProcessExitedAlready):
                transport.signalProcess("KILL")
            return _bounded(self._whenEnded(), timeout, self._reactor, "btdht reap")

        return d.addErrback(kill)


# ---------------------------------------------------------------------------------------------
# libtorrent (in process)


@dataclass(frozen=True)
class DHTPacket:
    """One DHT datagram libtorrent sent (``"out"``) or received (``"in"``)."""

    direction: str
    host: str
    port: int
    data: bytes
    timestamp: float = 0.0

    @property
    def message(self) -> dict[bytes, Any] | None:
        """The bdecoded datagram, or None if it is not a bencoded dict."""
        try:
            decoded = bencodepy.decode(self.data)
        except Exception:
            return None
        return decoded if isinstance(decoded, dict) else None

    @property
    def kind(self) -> bytes | None:
        """The ``y`` key: ``b"q"``, ``b"r"`` or ``b"e"``."""
        message = self.message
        return message.get(b"y") if message else None

    @property
    def query(self) -> bytes | None:
        """The ``q`` key of a query."""
        message = self.message
        return message.get(b"q") if message else None


@dataclass(frozen=True)
class SampleAnswer:
    """What libtorrent's ``dht_sample_infohashes_alert`` reported of one node's answer."""

    samples: list[bytes]
    num: int
    interval: int


@dataclass
class _GetPeers:
    infoHash: bytes
    deferred: Deferred[list[Address]]
    peers: list[Address] = field(default_factory=list)
    traversal: int | None = None


_PKT = re.compile(r"^(<==|==>) \[(.+?)\]")
_NODE_ID = re.compile(r"DHT tracker with node id: ([0-9a-f]{40})")
_ANNOUNCING = re.compile(r"announcing \[ ih: ([0-9a-f]{40}) ")
_SENDING_ANNOUNCE = re.compile(r"sending announce_peer \[ ih: ([0-9a-f]{40}) .*nodes: (\d+)")
_NEW_TRAVERSAL = re.compile(r"\[(\d+)\] NEW target: ([0-9a-f]{40})")
_COMPLETED = re.compile(r"\[(\d+)\] COMPLETED .*type: get_peers")


class LibtorrentPeer:
    """A libtorrent DHT node in this process, set up for loopback as INTEROP.md says.

    Alerts are polled every ``pollInterval`` s with a LoopingCall on the reactor.
    ``packets`` is every DHT datagram it sent or received (`DHTPacket`),
    ``announcesReceived`` the ``(info_hash, host, port)`` of every announce_peer it accepted,
    ``puts`` every BEP 44 put it finished (`PutOutcome`), ``itemAlerts`` every item alert of
    its BEP 44 gets (``(target, FoundItem or None)``), ``nodeId`` its node id (hex) once
    started, ``logLines`` its DHT log.
    """

    def __init__(
        self,
        bootstrap: Iterable[Address | str] = (),
        interface: str | None = None,
        port: int = 0,
        reactor: Any = None,
        timeout: float = 10.0,
        pollInterval: float = 0.05,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self._reactor = _getReactor(reactor)
        self.bootstrap = [_hostPort(b) for b in bootstrap]
        self.host = interface or nextLoopbackInterface()
        self.requestedPort = int(port)
        self.port: int | None = None
        self.timeout = timeout
        self.pollInterval = pollInterval
        self.extraSettings = dict(settings or {})
        self.nodeId: str | None = None
        self.bootstrapped = False
        self.packets: list[DHTPacket] = []
        self.announcesReceived: list[tuple[bytes, str, int]] = []
        self.puts: list[PutOutcome] = []
        self.itemAlerts: list[tuple[bytes, FoundItem | None]] = []
        self.logLines: list[str] = []
        self.session: Any = None
        self._loop: task.LoopingCall | None = None
        self._waiters: list[tuple[Callable[[], bool], Deferred[None]]] = []
        self._getPeers: list[_GetPeers] = []
        self._announces: list[tuple[str, Deferred[int]]] = []
        self._announceTraversals: dict[str, int] = {}
        self._liveNodes: list[Deferred[list[tuple[str, str, int]]]] = []
        self._samples: list[tuple[Address, Deferred[SampleAnswer]]] = []
        self._stats: list[Deferred[dict[str, int]]] = []

    @property
    def address(self) -> Address:
        """``(host, port)`` the DHT listens on (after `start`)."""
        if self.port is None:
            raise DriverError("not started")
        return (self.host, self.port)

    def settingsPack(self) -> dict[str, Any]:
        """The session settings: loopback only, explicit bootstrap, limits raised."""
        import libtorrent as lt

        category = lt.alert.category_t
        settings: dict[str, Any] = {
            "listen_interfaces": f"{self.host}:{self.requestedPort}",
            "enable_dht": True,
            "dht_bootstrap_nodes": ",".join(self.bootstrap),
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "enable_ip_notifier": False,
            "apply_filter_to_dht": True,
            "dht_restrict_routing_ips": False,
            "dht_restrict_search_ips": False,
            "dht_block_ratelimit": 100_000,
            "dht_upload_rate_limit": 100_000_000,
            "alert_queue_size": 100_000,
            "alert_mask": category.dht_notification
            | category.dht_log_notification
            | category.dht_operation_notification
            | category.status_notification
            | category.error_notification,
        }
        settings.update(self.extraSettings)
        return settings

    @staticmethod
    def loopbackOnlyFilter() -> Any:
        """An ip_filter that blocks everything but 127.0.0.0/8 (IPv6 included)."""
        import libtorrent as lt

        ipFilter = lt.ip_filter()
        ipFilter.add_rule("0.0.0.0", "255.255.255.255", 1)
        ipFilter.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1)
        ipFilter.add_rule("127.0.0.0", "127.255.255.255", 0)
        return ipFilter

    # -- alert plumbing (and waiting on what the alerts recorded)

    def waitUntil(
        self, condition: Callable[[], bool], timeout: float | None = None, what: str = "condition"
    ) -> Deferred[None]:
        """Fires once ``condition()`` holds, checked after every alert poll."""
        timeout = self.timeout if timeout is None else timeout
        if condition():
            return defer.succeed(None)
        d: Deferred[None] = Deferred(lambda d: self._dropWaiter(d))
        self._waiters.append((condition, d))
        return _bounded(d, timeout, self._reactor, what)

    def _dropWaiter(self, d: Deferred[None]) -> None:
        self._waiters = [(c, w) for c, w in self._waiters if w is not d]

    def _poll(self) -> None:
        if self.session is None:
            return
        for alert in self.session.pop_alerts():
            try:
                self._dispatch(alert)
            except Exception:
                _log.failure("libtorrent alert {alert!r}", alert=alert)
        ready = [(c, d) for c, d in self._waiters if c()]
        for condition, d in ready:
            self._waiters.remove((condition, d))
            d.callback(None)

    def _dispatch(self, alert: Any) -> None:
        import libtorrent as lt

        if isinstance(alert, lt.dht_pkt_alert):
            match = _PKT.match(alert.message())
            if match:
                host, _, port = match.group(2).rpartition(":")
                self.packets.append(
                    DHTPacket(
                        "in" if match.group(1) == "<==" else "out",
                        host.strip("[]"),
                        int(port),
                        bytes(alert.pkt_buf),
                        self._reactor.seconds(),
                    )
                )
        elif isinstance(alert, lt.dht_log_alert):
            self._onLog(alert.log_message())
        elif isinstance(alert, lt.listen_succeeded_alert):
            if self.port is None:
                self.port = int(alert.port)
        elif isinstance(alert, lt.listen_failed_alert):
            _log.warn("libtorrent listen failed: {message}", message=alert.message())
        elif isinstance(alert, lt.dht_bootstrap_alert):
            self.bootstrapped = True
        elif isinstance(alert, lt.dht_announce_alert):
            self.announcesReceived.append(
                (alert.info_hash.to_bytes(), str(alert.ip), int(alert.port))
            )
        elif isinstance(alert, lt.dht_get_peers_reply_alert):
            infoHash = alert.info_hash.to_bytes()
            peers = [(str(host), int(port)) for host, port in alert.peers()]
            for lookup in self._getPeers:
                if lookup.infoHash == infoHash:
                    lookup.peers.extend(p for p in peers if p not in lookup.peers)
        elif isinstance(alert, lt.dht_sample_infohashes_alert):
            endpoint = (str(alert.endpoint[0]), int(alert.endpoint[1]))
            for i, (wanted, d) in enumerate(self._samples):
                if wanted == endpoint:
                    del self._samples[i]
                    d.callback(
                        SampleAnswer(
                            samples=[sample.to_bytes() for sample in alert.samples],
                            num=int(alert.num_infohashes),
                            interval=int(alert.interval.total_seconds()),  # a timedelta
                        )
                    )
                    break
        elif isinstance(alert, lt.session_stats_alert):
            values = {str(name): int(value) for name, value in alert.values.items()}
            stats, self._stats = self._stats, []
            for waiter in stats:
                waiter.callback(values)
        elif isinstance(alert, lt.dht_put_alert):
            self.puts.append(self._putOutcome(alert))
        elif isinstance(alert, lt.dht_immutable_item_alert):
            target = alert.target.to_bytes()
            value: Any = alert.item
            encoded = lt.bencode(value)
            # Nothing found comes as an empty entry: keep only a value that hashes to target.
            found = FoundItem(value, encoded) if hashlib.sha1(encoded).digest() == target else None
            self.itemAlerts.append((target, found))
        elif isinstance(alert, lt.dht_mutable_item_alert):
            key, salt = bytes(alert.key), bytes(alert.salt)
            signature = bytes(alert.signature)
            mutable = None
            if any(signature):  # nothing found: a zero signature and seq
                data: Any = alert.item
                mutable = FoundItem(
                    data,
                    lt.bencode(data),
                    key,
                    salt,
                    int(alert.seq),
                    signature,
                    bool(alert.authoritative),
                )
            self.itemAlerts.append((mutableTarget(key, salt), mutable))
        elif isinstance(alert, lt.dht_live_nodes_alert):
            nodes = [
                (n["nid"].to_bytes().hex(), str(n["endpoint"][0]), int(n["endpoint"][1]))
                for n in alert.nodes
            ]
            waiters, self._liveNodes = self._liveNodes, []
            for d in waiters:
                d.callback(nodes)

    @staticmethod
    def _putOutcome(alert: Any) -> PutOutcome:
        publicKey = bytes(alert.public_key)
        if not any(publicKey):  # an immutable put: no key
            return PutOutcome(alert.target.to_bytes(), int(alert.num_success))
        salt = bytes(alert.salt)
        return PutOutcome(
            mutableTarget(publicKey, salt),
            int(alert.num_success),
            publicKey,
            salt,
            int(alert.seq),
            bytes(alert.signature),
        )

    def _onLog(self, line: str) -> None:
        self.logLines.append(line)
        if (match := _NODE_ID.search(line)) and self.nodeId is None:
            self.nodeId = match.group(1)
        elif match := _ANNOUNCING.search(line):
            target = match.group(1)
            self._announceTraversals[target] = self._announceTraversals.get(target, 0) + 1
        elif match := _NEW_TRAVERSAL.search(line):
            traversal, target = int(match.group(1)), match.group(2)
            if self._announceTraversals.get(target):
                self._announceTraversals[target] -= 1  # the lookup half of an announce
                return
            for lookup in self._getPeers:
                if lookup.traversal is None and lookup.infoHash.hex() == target:
                    lookup.traversal = traversal
                    break
        elif match := _SENDING_ANNOUNCE.search(line):
            target, count = match.group(1), int(match.group(2))
            for i, (wanted, d) in enumerate(self._announces):
                if wanted == target:
                    del self._announces[i]
                    d.callback(count)
                    break
        elif match := _COMPLETED.search(line):
            traversal = int(match.group(1))
            for lookup in self._getPeers:
                if lookup.traversal == traversal:
                    self._getPeers.remove(lookup)
                    lookup.deferred.callback(list(lookup.peers))
                    break

    # -- public API

    def start(self) -> Deferred[int]:
        """Open the session; fires with the DHT's UDP port once it listens (and, when it has
        bootstrap nodes, once its bootstrap finished)."""
        import libtorrent as lt

        if self.session is not None:
            return defer.fail(DriverError("already started"))
        params = lt.session_params()
        params.settings = self.settingsPack()  # type: ignore[assignment]
        params.ip_filter = self.loopbackOnlyFilter()
        self.session = lt.session(params)
        self._loop = task.LoopingCall(self._poll)
        self._loop.clock = self._reactor
        self._loop.start(self.pollInterval, now=False).addErrback(
            lambda f: _log.failure("libtorrent alert loop", f)
        )

        def started() -> bool:
            return (
                self.port is not None
                and self.nodeId is not None
                and (self.bootstrapped or not self.bootstrap)
            )

        def port(_: None) -> int:
            assert self.port is not None
            return self.port

        d = self.waitUntil(started, self.timeout, f"libtorrent start on {self.host}")
        return d.addCallback(port)

    def addNode(self, host: str, port: int) -> Deferred[None]:
        """``add_dht_node``: libtorrent pings the node; fires when it answered."""
        if self.session is None:
            return defer.fail(DriverError("not started"))
        seen = len(self.packets)
        self.session.add_dht_node((host, int(port)))

        def answered() -> bool:
            return any(
                p.direction == "in" and p.host == host and p.port == port and p.kind == b"r"
                for p in self.packets[seen:]
            )

        return self.waitUntil(answered, self.timeout, f"libtorrent addNode {host}:{port}")

    def announce(self, infoHash: bytes, port: int, flags: int = 0) -> Deferred[int]:
        """``dht_announce``; fires with how many nodes announce_peer was sent to (after the
        get_peers traversal that precedes it)."""
        import libtorrent as lt

        if self.session is None:
            return defer.fail(DriverError("not started"))

        def cancel(d: Deferred[int]) -> None:
            if (infoHash.hex(), d) in self._announces:
                self._announces.remove((infoHash.hex(), d))

        d: Deferred[int] = Deferred(cancel)
        self._announces.append((infoHash.hex(), d))
        self.session.dht_announce(lt.sha1_hash(infoHash), int(port), int(flags))
        return _bounded(d, self.timeout, self._reactor, "libtorrent announce")

    def getPeers(self, infoHash: bytes, timeout: float | None = None) -> Deferred[list[Address]]:
        """``dht_get_peers``; fires with every distinct peer that any reply carried, once the
        traversal has completed (libtorrent's DHT log says so)."""
        import libtorrent as lt

        if self.session is None:
            return defer.fail(DriverError("not started"))
        d: Deferred[list[Address]] = Deferred(
            lambda d: self._getPeers.remove(lookup) if lookup in self._getPeers else None
        )
        lookup = _GetPeers(infoHash, d)
        self._getPeers.append(lookup)
        self.session.dht_get_peers(lt.sha1_hash(infoHash))
        return _bounded(
            d, self.timeout if timeout is None else timeout, self._reactor, "libtorrent getPeers"
        )

    def _putDone(self, target: bytes, seen: int, timeout: float | None) -> Deferred[PutOutcome]:
        def done() -> PutOutcome | None:
            return next((put for put in self.puts[seen:] if put.target == target), None)

        def outcome(_: None) -> PutOutcome:
            put = done()
            assert put is not None
            return put

        d = self.waitUntil(lambda: done() is not None, timeout, f"libtorrent put {target.hex()}")
        return d.addCallback(outcome)

    def putImmutable(self, value: Any, timeout: float | None = None) -> Deferred[PutOutcome]:
        """``dht_put_immutable_item``: fires with its `PutOutcome` (``nodes``: num_success)
        once libtorrent's put has finished (its dht_put_alert)."""
        import libtorrent as lt

        if self.session is None:
            return defer.fail(DriverError("not started"))
        seen = len(self.puts)
        target = self.session.dht_put_immutable_item(value).to_bytes()
        assert target == hashlib.sha1(lt.bencode(value)).digest()
        return self._putDone(target, seen, timeout)

    def putMutable(
        self,
        privateKey: bytes,
        publicKey: bytes,
        data: bytes,
        salt: bytes = b"",
        timeout: float | None = None,
    ) -> Deferred[PutOutcome]:
        """``dht_put_mutable_item``: ``privateKey`` is libtorrent's 64-byte expanded key,
        ``data`` the byte string put as ``v``; libtorrent gets the item first and puts it
        with one more than the highest seq it found. Fires with its `PutOutcome`."""
        if self.session is None:
            return defer.fail(DriverError("not started"))
        seen = len(self.puts)
        self.session.dht_put_mutable_item(privateKey, publicKey, data, salt)
        return self._putDone(mutableTarget(publicKey, salt), seen, timeout)

    def _getDone(
        self, target: bytes, seen: int, timeout: float | None
    ) -> Deferred[FoundItem | None]:
        def done() -> tuple[bytes, FoundItem | None] | None:
            return next(
                (
                    alert
                    for alert in self.itemAlerts[seen:]
                    if alert[0] == target and (alert[1] is None or alert[1].authoritative)
                ),
                None,
            )

        def found(_: None) -> FoundItem | None:
            alert = done()
            assert alert is not None
            return alert[1]

        d = self.waitUntil(lambda: done() is not None, timeout, f"libtorrent get {target.hex()}")
        return d.addCallback(found)

    def getImmutable(
        self, target: bytes, timeout: float | None = None
    ) -> Deferred[FoundItem | None]:
        """``dht_get_immutable_item``: fires with the item found, or None (once libtorrent's
        lookup has finished)."""
        import libtorrent as lt

        if self.session is None:
            return defer.fail(DriverError("not started"))
        seen = len(self.itemAlerts)
        self.session.dht_get_immutable_item(lt.sha1_hash(target))
        return self._getDone(target, seen, timeout)

    def getMutable(
        self, publicKey: bytes, salt: bytes = b"", timeout: float | None = None
    ) -> Deferred[FoundItem | None]:
        """``dht_get_mutable_item``: fires with the item of the highest seq found (its
        authoritative alert, once the lookup has finished), or None."""
        if self.session is None:
            return defer.fail(DriverError("not started"))
        seen = len(self.itemAlerts)
        self.session.dht_get_mutable_item(publicKey, salt)
        return self._getDone(mutableTarget(publicKey, salt), seen, timeout)

    def liveNodes(self) -> Deferred[list[tuple[str, str, int]]]:
        """``dht_live_nodes``: the routing table as ``(idhex, host, port)`` tuples."""
        import libtorrent as lt

        if self.session is None or self.nodeId is None:
            return defer.fail(DriverError("not started"))
        d: Deferred[list[tuple[str, str, int]]] = Deferred(
            lambda d: self._liveNodes.remove(d) if d in self._liveNodes else None
        )
        self._liveNodes.append(d)
        self.session.dht_live_nodes(lt.sha1_hash(bytes.fromhex(self.nodeId)))
        return _bounded(d, self.timeout, self._reactor, "libtorrent liveNodes")

    def sampleInfoHashes(self, address: Address, target: bytes) -> Deferred[SampleAnswer]:
        """``dht_sample_infohashes`` (BEP 51) to one node; fires with its answer."""
        import libtorrent as lt

        if self.session is None:
            return defer.fail(DriverError("not started"))
        d: Deferred[SampleAnswer] = Deferred(
            lambda d: self._samples.remove((address, d)) if (address, d) in self._samples else None
        )
        self._samples.append((address, d))
        self.session.dht_sample_infohashes(address, lt.sha1_hash(target))
        return _bounded(d, self.timeout, self._reactor, "libtorrent sampleInfoHashes")

    def counters(self) -> Deferred[dict[str, int]]:
        """``post_session_stats``: the session's counters and gauges by name, e.g.
        ``dht.dht_immutable_data`` and ``dht.dht_mutable_data`` (the BEP 44 items it stores)
        or ``dht.dht_invalid_put`` (the put queries it rejected)."""
        if self.session is None:
            return defer.fail(DriverError("not started"))
        d: Deferred[dict[str, int]] = Deferred(
            lambda d: self._stats.remove(d) if d in self._stats else None
        )
        self._stats.append(d)
        self.session.post_session_stats()
        return _bounded(d, self.timeout, self._reactor, "libtorrent counters")

    def packetsWith(self, host: str, port: int) -> list[DHTPacket]:
        """The datagrams exchanged with one endpoint."""
        return [p for p in self.packets if p.host == host and p.port == port]

    def errorPackets(self) -> list[DHTPacket]:
        """Every KRPC error (``y: e``) libtorrent sent or received."""
        return [p for p in self.packets if p.kind == b"e"]

    def stop(self) -> Deferred[None]:
        """Stop polling, fail whatever still waits, and destroy the session."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        waiting: Sequence[Deferred[Any]] = [
            *(d for _, d in self._waiters),
            *(lookup.deferred for lookup in self._getPeers),
            *(d for _, d in self._announces),
            *self._liveNodes,
            *(d for _, d in self._samples),
            *self._stats,
        ]
        self._waiters, self._getPeers, self._announces, self._liveNodes = [], [], [], []
        self._samples, self._stats = [], []
        for d in waiting:
            if not d.called:
                d.errback(DriverError("libtorrent peer stopped"))
        session, self.session = self.session, None
        if session is not None:
            session.pause()
            session.apply_settings({"enable_dht": False})
            del session  # the destructor closes the sockets
        return defer.succeed(None)
