"""C{twistd dht}: the command-line options and the service they build."""

from __future__ import annotations

import ipaddress
import os
from typing import Any

from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.python import usage

from .addresses import Address, isIPLiteral, parseAnnounce, parseHostPort
from .admission import AMPLIFICATION
from .bootstrap import DEFAULT_ROUTERS
from .items import MAX_ITEMS
from .nodeid import parseHex
from .ratelimit import (
    DEFAULT_IP_RATE,
    DEFAULT_OUTGOING_QUERY_RATE,
    DEFAULT_QUERY_RATE,
    DEFAULT_UPLOAD_LIMIT,
)
from .service import METRICS_EXTRA, DHTService, WebListenError, metricsAvailable


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


_count.coerceDoc = "Must be a positive integer."  # type: ignore[attr-defined]


def _nonNegative(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"must be a non-negative number, got {text}")
    return value


_nonNegative.coerceDoc = "A non-negative number; 0 turns it off."  # type: ignore[attr-defined]


def _nodeId(text: str) -> bytes:
    return parseHex(text)


_nodeId.coerceDoc = "40 hexadecimal digits."  # type: ignore[attr-defined]


class Options(usage.Options):
    """Options of C{twistd dht}."""

    synopsis = "[options]"
    longdesc = (
        "Run a BitTorrent Mainline DHT node (BEP 5) on UDP, over IPv4 and, when it can "
        "bind it, IPv6. The node id and the nodes it knows are kept in a state file across "
        "restarts."
    )

    optFlags = [
        ["no-ipv6", None, "Do not bind an IPv6 socket."],
        [
            "no-bootstrap",
            None,
            "Do not join the DHT at start: use no router and wait to be contacted "
            "(the first node of a private network).",
        ],
        ["read-only", None, "BEP 43 read-only node: send ro=1 and answer no queries."],
        [
            "relax-local",
            None,
            "Allow many nodes per loopback or private IP in the routing table "
            "(local test networks).",
        ],
        [
            "enforce-node-id",
            None,
            "Keep nodes whose id is not valid for their IP (BEP 42) out of the routing "
            "table (they are still answered).",
        ],
    ]

    optParameters = [
        ["port", "p", 6881, "The UDP port to listen on (0: any free port).", usage.portCoerce],
        ["interface", None, "", "The IPv4 address to bind (default: all)."],
        ["interface6", None, "::", "The IPv6 address to bind."],
        ["state", None, "dht.state", "The state file (node id and known nodes)."],
        ["node-id", None, None, "Our node id (default: the state file's, else random)", _nodeId],
        ["max-peers-per-torrent", None, 100, "Peers stored per info_hash.", _count],
        ["max-torrents", None, 10000, "Info_hashes stored.", _count],
        ["max-items", None, MAX_ITEMS,
         "BEP 44 items stored of each kind (immutable, mutable).", _count],
        ["stats-interval", None, 300.0, "Seconds between two stats log lines.", _nonNegative],
        ["ip-rate-limit", None, DEFAULT_IP_RATE,
         "Datagrams/s one IP may send (over 10 s) before it is ignored for 5 minutes.",
         _nonNegative],
        ["upload-limit", None, DEFAULT_UPLOAD_LIMIT,
         "Bytes/s the node sends; replies that do not fit are dropped.", _nonNegative],
        ["query-rate-limit", None, DEFAULT_QUERY_RATE,
         "Incoming queries/s answered in all; the excess is dropped.", _nonNegative],
        ["outgoing-query-rate", None, DEFAULT_OUTGOING_QUERY_RATE,
         "Queries/s the node sends; the excess waits in a bounded queue.", _nonNegative],
        ["amplification", None, AMPLIFICATION,
         "A reply to an unverified requester is at most this many times its query's size.",
         _nonNegative],
        ["metrics", None, None,
         "Serve Prometheus /metrics, a status page at / and /status.json on this Twisted "
         "endpoint, e.g. tcp:9100:interface=127.0.0.1 (needs the metrics extra)."],
    ]  # fmt: skip

    compData = usage.Completions(
        optActions={
            "state": usage.CompleteFiles(),
            "interface": usage.CompleteNetInterfaces(),
        }
    )

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self["bootstrap"] = []
        self["announce"] = []

    def opt_bootstrap(self, value: str) -> None:
        """Bootstrap router or node HOST:PORT, [IPV6]:PORT (repeatable; default: the public routers; IP literals are also pinged as nodes)"""  # noqa: E501
        try:
            self["bootstrap"].append(parseHostPort(value))
        except ValueError as e:
            raise usage.UsageError(f"--bootstrap: {e}") from None

    def opt_announce(self, value: str) -> None:
        """INFOHASH[:PORT]: keep announcing this info_hash with this peer port (default: implied, our UDP port; repeatable)"""  # noqa: E501
        try:
            self["announce"].append(parseAnnounce(value))
        except ValueError as e:
            raise usage.UsageError(f"--announce: {e}") from None

    def postOptions(self) -> None:
        """Check the values that the coercers cannot: addresses, the state path, conflicts."""
        _checkAddress(self["interface"], 4, "--interface")
        _checkAddress(self["interface6"], 6, "--interface6")
        if self["no-bootstrap"] and self["bootstrap"]:
            raise usage.UsageError("--bootstrap and --no-bootstrap contradict each other")
        _checkStatePath(self["state"])
        if self["metrics"] is not None:
            _checkMetrics(self["metrics"])

    def routers(self) -> list[Address]:
        """The bootstrap routers: the --bootstrap addresses, else the public routers."""
        if self["no-bootstrap"]:
            return []
        return list(self["bootstrap"]) or list(DEFAULT_ROUTERS)


def _checkAddress(value: str, family: int, option: str) -> None:
    if value == "":
        return
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise usage.UsageError(f"{option}: {value!r} is not an IP address") from None
    if address.version != family:
        raise usage.UsageError(f"{option}: {value!r} is not an IPv{family} address")


def _checkStatePath(path: str) -> None:
    if not path:
        raise usage.UsageError("--state: the path is empty")
    if os.path.isdir(path):
        raise usage.UsageError(f"--state: {path!r} is a directory")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise usage.UsageError(f"--state: the directory {directory!r} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise usage.UsageError(f"--state: the directory {directory!r} is not writable")
    if os.path.exists(path) and not os.access(path, os.R_OK):
        raise usage.UsageError(f"--state: {path!r} is not readable")


def _checkMetrics(description: str) -> None:
    if not metricsAvailable():
        raise usage.UsageError(f"--metrics needs prometheus_client: {METRICS_EXTRA}")
    try:
        endpoint = serverFromString(None, description)
    except (ValueError, TypeError, KeyError) as e:
        raise usage.UsageError(
            f"--metrics: {description!r} is not a server endpoint "
            f"(such as tcp:9100:interface=127.0.0.1): {e}"
        ) from None
    port = getattr(endpoint, "_port", 0)
    if isinstance(port, int) and not 0 <= port <= 65535:
        raise usage.UsageError(f"--metrics: port {port} is out of range")


class CommandLineService(DHTService):
    """The service C{twistd dht} runs: a port it cannot bind ends twistd with one line.

    (A L{DHTService} composed into an application raises L{CannotListenError} instead.)
    """

    def privilegedStartService(self) -> None:
        """Bind, or exit with a one-line message and status 1."""
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            raise SystemExit(f"twistd dht: {_bindFailure(e)}") from None

    def startService(self) -> None:
        """Start, or exit with a one-line message and status 1."""
        try:
            super().startService()
        except CannotListenError as e:
            raise SystemExit(f"twistd dht: {_bindFailure(e)}") from None


def _bindFailure(error: CannotListenError) -> str:
    if isinstance(error, WebListenError):
        return str(error)
    reason = getattr(error.socketError, "strerror", None) or error.socketError
    return f"cannot listen on UDP {error.interface or '0.0.0.0'}:{error.port}: {reason}"


def makeService(config: Options, reactor: Any = None) -> DHTService:
    """The L{DHTService} that C{config} describes."""
    routers = config.routers()
    return CommandLineService(
        port=config["port"],
        interface=config["interface"],
        interface6=config["interface6"],
        ipv6=not config["no-ipv6"],
        routers=routers,
        nodes=[address for address in config["bootstrap"] if isIPLiteral(address[0])],
        bootstrap=not config["no-bootstrap"],
        statePath=os.path.abspath(config["state"]),
        nodeId=config["node-id"],
        announces=config["announce"],
        statsInterval=config["stats-interval"],
        reactor=reactor,
        readOnly=config["read-only"],
        maxPeersPerInfoHash=config["max-peers-per-torrent"],
        maxInfoHashes=config["max-torrents"],
        maxItems=config["max-items"],
        relaxLocal=config["relax-local"],
        ipRateLimit=config["ip-rate-limit"],
        uploadLimit=config["upload-limit"],
        queryRateLimit=config["query-rate-limit"],
        outgoingQueryRate=config["outgoing-query-rate"],
        amplification=config["amplification"],
        enforceNodeId=config["enforce-node-id"],
        metrics=config["metrics"],
    )


__all__ = ["Options", "makeService"]
