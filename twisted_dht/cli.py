"""C{python -m twisted_dht}: one-off DHT commands — lookup, announce, ping, find-node,
put, get, keygen, probe, state, and the surveys scrape and sample
(L{twisted_dht.surveys}).

Exit codes: 0 success; 1 a network failure, a timeout or an unreadable state file;
2 bad input (argparse's convention).
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import react

from .addresses import (
    Address,
    formatAddress,
    isIPLiteral,
    isIPv6,
)
from .bootstrap import DEFAULT_ROUTERS
from .console import (
    PROGRAM,
    Console,
    argumentType,
    hostPort,
    infoHash,
    ipv4Address,
    listenPort,
    peerPort,
    seconds,
)
from .errors import CommandFailed, KRPCError, ProtocolStopped, QueryTimeout, SendFailed
from .itemcli import addItemCommands, getItem, keygen, putItem
from .node import DHTNode
from .probecli import addProbeCommand, probeCommand
from .sockets import listenUDP6
from .state import StateError, readState
from .surveys import SURVEYS, addSurveyCommands

# Parsing ---------------------------------------------------------------------


def buildParser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    common = argparse.ArgumentParser(add_help=False)
    network = common.add_argument_group("network options")
    network.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        action="append",
        type=hostPort,
        help="a bootstrap router or node (repeatable; default: the public routers; "
        "IP literals are also pinged as nodes)",
    )
    network.add_argument(
        "--listen-port",
        metavar="PORT",
        type=argumentType(listenPort, "port"),
        default=0,
        help="our UDP port (default: 0, any free port)",
    )
    network.add_argument(
        "--interface",
        metavar="IPV4",
        type=argumentType(ipv4Address, "IPv4 address"),
        default="",
        help="the IPv4 address to bind (default: all)",
    )
    network.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=argumentType(seconds, "seconds"),
        default=60.0,
        help="give up after this many seconds (default: 60)",
    )
    network.add_argument(
        "--relax-local",
        action="store_true",
        help="allow many nodes per loopback or private IP (local test networks)",
    )
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", help="print one JSON document on stdout")

    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="One-off BitTorrent DHT (BEP 5) commands.",
        epilog="Exit codes: 0 success, 1 network failure or timeout, 2 bad input.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    lookup = commands.add_parser(
        "lookup", parents=[common, output], help="find the peers of an info_hash"
    )
    lookup.add_argument("infoHash", metavar="INFOHASH", type=infoHash, help="40 hex digits")
    announce = commands.add_parser(
        "announce", parents=[common, output], help="announce a peer of an info_hash"
    )
    announce.add_argument("infoHash", metavar="INFOHASH", type=infoHash, help="40 hex digits")
    which = announce.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--port",
        metavar="PORT",
        type=argumentType(peerPort, "port"),
        help="the peer port to announce",
    )
    which.add_argument(
        "--implied-port", action="store_true", help="announce our UDP source port instead"
    )
    announce.add_argument("--seed", action="store_true", help="announce a seed (BEP 33)")
    ping = commands.add_parser("ping", parents=[common, output], help="ping one DHT node")
    ping.add_argument("address", metavar="HOST:PORT", type=hostPort, help="the node to ping")
    findNode = commands.add_parser(
        "find-node", parents=[common, output], help="find the nodes closest to an id"
    )
    findNode.add_argument("target", metavar="ID", type=infoHash, help="40 hex digits")
    addProbeCommand(commands, output)
    addItemCommands(commands, common, output)
    addSurveyCommands(commands, [common, output], infoHash)
    state = commands.add_parser("state", parents=[output], help="print a state file")
    state.add_argument("path", metavar="FILE", help="the state file of a twistd dht node")
    return parser


def parseArguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    @raise SystemExit: with code 2 and a message on stderr, for bad input.
    """
    return buildParser().parse_args(argv)


# Output ----------------------------------------------------------------------


# Commands ----------------------------------------------------------------------


def showState(args: argparse.Namespace, console: Console) -> int:
    """Print a state file; changes nothing."""
    try:
        state = readState(args.path)
    except FileNotFoundError:
        console.progress(f"{PROGRAM}: no state file at {args.path}")
        return 1
    except StateError as e:
        console.progress(f"{PROGRAM}: {args.path} is not a valid state file: {e}")
        return 1
    console.document(state.toJSON())
    console.line(f"State file: {args.path}")
    console.line(f"Node id: {state.nodeId.hex()}")
    for title, nodes in (("IPv4", state.nodes), ("IPv6", state.nodes6)):
        console.line(f"{title} nodes: {len(nodes)}")
        for nodeId, address in nodes:
            console.line(f"  {nodeId.hex()} {formatAddress(address)}")
    return 0


class Session:
    """A short-lived node bound to UDP, running one command."""

    def __init__(self, reactor: Any, args: argparse.Namespace, console: Console) -> None:
        self.reactor = reactor
        self.args = args
        self.console = console
        self.routers: list[Address] = list(args.bootstrap or DEFAULT_ROUTERS)
        # Read-only (BEP 43): a node that lives for one command must not enter others' tables.
        self.node = DHTNode(
            reactor=reactor, routers=self.routers, relaxLocal=args.relax_local, readOnly=True
        )
        self.node.knownNodes = [a for a in self.routers if isIPLiteral(a[0])]
        self.ports: list[IListeningPort] = []
        self.peers: list[Address] = []

    def listen(self, ipv6: bool) -> None:
        """Bind IPv4 (and, when C{ipv6}, an IPv6 socket on any port)."""
        args = self.args
        try:
            self.ports.append(
                self.reactor.listenUDP(
                    args.listen_port, self.node.ipv4.protocol, interface=args.interface
                )
            )
        except CannotListenError as e:
            raise CommandFailed(
                f"cannot bind UDP port {args.listen_port}"
                f" on {args.interface or '0.0.0.0'}: {e.socketError}"
            ) from None
        if ipv6:
            try:
                self.ports.append(listenUDP6(self.reactor, 0, self.node.ipv6.protocol))
            except CannotListenError as e:
                self.console.progress(f"IPv6 unavailable: {e.socketError}")

    async def close(self) -> None:
        """Stop the node and close the sockets."""
        self.node.stop()
        ports, self.ports = self.ports, []
        for port in ports:
            stopping = port.stopListening()
            if stopping is not None:
                await stopping

    async def join(self) -> None:
        """Bootstrap through the --bootstrap addresses; fail when nobody answers."""
        console = self.console
        start = self.reactor.seconds()
        console.progress(
            "Joining the DHT through " + ", ".join(formatAddress(r) for r in self.routers)
        )
        result = await self.node.bootstrap()
        if not result.success:
            raise CommandFailed(
                "no DHT node answered: cannot join through "
                + ", ".join(formatAddress(r) for r in self.routers)
            )
        console.progress(
            f"Joined: {result.goodNodes} good nodes in {self.reactor.seconds() - start:.1f} s"
        )

    async def resolve(self, address: Address) -> Address:
        """An IP address for C{address}'s host."""
        host, port = address
        if isIPLiteral(host):
            return address
        try:
            return await self.reactor.resolve(host), port  # type: ignore[no-any-return]
        except Exception as e:
            raise CommandFailed(f"cannot resolve {host}: {e}") from None

    async def lookup(self) -> None:
        """lookup: print peers as they arrive, then a summary."""
        console, infoHash = self.console, self.args.infoHash
        await self.join()
        start = self.reactor.seconds()
        console.progress(f"Looking up {infoHash.hex()}")

        def onPeer(peer: Address) -> None:
            self.peers.append(peer)
            console.line(formatAddress(peer))

        await self.node.getPeers(infoHash, onPeer)
        console.document(self.lookupDocument())
        console.progress(
            f"Found {len(self.peers)} peers of {infoHash.hex()}"
            f" in {self.reactor.seconds() - start:.1f} s"
        )

    def lookupDocument(self) -> dict[str, Any]:
        """The JSON results of a lookup (so far)."""
        return {
            "infoHash": self.args.infoHash.hex(),
            "peers": [formatAddress(peer) for peer in self.peers],
        }

    async def announce(self) -> None:
        """announce: a lookup, then announce_peer to the closest nodes."""
        args, console = self.args, self.console
        await self.join()
        accepted = await self.node.announce(
            args.infoHash, args.port, impliedPort=args.implied_port, seed=args.seed
        )
        what = "the implied port" if args.implied_port else f"port {args.port}"
        if not accepted:
            raise CommandFailed(f"no node accepted the announce of {args.infoHash.hex()}")
        console.document(
            {
                "infoHash": args.infoHash.hex(),
                "port": args.port,
                "impliedPort": bool(args.implied_port),
                "seed": bool(args.seed),
                "accepted": accepted,
            }
        )
        seed = " as a seed" if args.seed else ""
        console.line(f"Announced {args.infoHash.hex()}{seed} with {what} to {accepted} nodes")

    async def ping(self) -> None:
        """ping: one query, its answer and round-trip time."""
        address = await self.resolve(self.args.address)
        start = self.reactor.seconds()
        try:
            nodeId = await self.node.ping(address)
        except QueryTimeout:
            raise CommandFailed(f"no reply from {formatAddress(address)}") from None
        except KRPCError as e:
            raise CommandFailed(f"{formatAddress(address)} answered with {e}") from None
        rtt = self.reactor.seconds() - start
        console = self.console
        console.document({"address": formatAddress(address), "nodeId": nodeId.hex(), "rtt": rtt})
        console.line(f"{formatAddress(address)}: node id {nodeId.hex()}, {rtt * 1000:.0f} ms")

    async def findNode(self) -> None:
        """find-node: the K closest nodes to an id."""
        target = self.args.target
        await self.join()
        nodes = await self.node.findNode(target)
        self.console.document(
            {
                "target": target.hex(),
                "nodes": [{"id": n.hex(), "address": formatAddress(a)} for n, a in nodes],
            }
        )
        for nodeId, address in nodes:
            self.console.line(f"{nodeId.hex()} {formatAddress(address)}")
        self.console.progress(f"Found {len(nodes)} nodes close to {target.hex()}")

    async def run(self) -> int:
        """Bind, run the command within --timeout, clean up; the exit code."""
        args, console = self.args, self.console
        talksTo = [*self.routers] + ([args.address] if args.command == "ping" else [])
        commands: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
            "lookup": self.lookup,
            "announce": self.announce,
            "ping": self.ping,
            "find-node": self.findNode,
            "put": functools.partial(putItem, self),
            "get": functools.partial(getItem, self),
        }
        command = commands.get(args.command) or functools.partial(SURVEYS[args.command], self)
        try:
            self.listen(ipv6=any(isIPv6(host) for host, _ in talksTo))
            self.node.start(bootstrap=False)
            running = Deferred.fromCoroutine(command())
            running.addTimeout(args.timeout, self.reactor)
            await running
        except CommandFailed as e:
            console.progress(f"{PROGRAM} {args.command}: {e}")
            return 1
        except TimeoutError:
            if args.command == "lookup":
                console.document(self.lookupDocument())
            console.progress(f"{PROGRAM} {args.command}: gave up after {args.timeout:g} s")
            return 1
        except (SendFailed, ProtocolStopped, OSError) as e:
            console.progress(f"{PROGRAM} {args.command}: network failure: {e}")
            return 1
        finally:
            await self.close()
        return 0


async def _main(reactor: Any, args: argparse.Namespace, console: Console) -> None:
    if args.command == "probe":
        code = await probeCommand(reactor, args, console)
    else:
        code = await Session(reactor, args, console).run()
    if code:
        raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the command line; exits with the command's code."""
    args = parseArguments(argv)
    console = Console(sys.stdout, sys.stderr, args.json)
    if args.command == "state":
        sys.exit(showState(args, console))
    if args.command == "keygen":
        sys.exit(keygen(args, console))
    react(_main, (args, console))
