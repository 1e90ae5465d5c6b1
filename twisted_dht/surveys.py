"""C{python -m twisted_dht scrape} and C{sample}: the commands that survey the DHT — how
many seeds and peers a swarm has (BEP 33), which info_hashes nodes store (BEP 51)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from .addresses import Address, formatAddress
from .errors import CommandFailed
from .sampling import DEFAULT_RATE

if TYPE_CHECKING:
    from .cli import Session

SAMPLE_MARGIN = 0.5
"""Seconds before --timeout (the sample command's time budget) at which its walk ends,
leaving the time to print what it found."""

PROGRESS_INTERVAL = 5.0
"""Seconds between two progress lines of the sample command."""


def _positive(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"invalid rate {text!r}: must be a positive number")
    return value


def _atLeastOne(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: must be at least 1")
    return value


def addSurveyCommands(
    commands: Any,
    parents: list[argparse.ArgumentParser],
    infoHash: Any,
) -> None:
    """Add C{scrape} and C{sample} to the C{commands} subparsers."""
    scrape = commands.add_parser(
        "scrape", parents=parents, help="estimate the seeds and peers of an info_hash (BEP 33)"
    )
    scrape.add_argument("infoHash", metavar="INFOHASH", type=infoHash, help="40 hex digits")
    sample = commands.add_parser(
        "sample",
        parents=parents,
        help="collect the info_hashes DHT nodes store (BEP 51), politely",
        description="Walk the keyspace with sample_infohashes, never asking a node again "
        "before the interval it gave, at most --rate queries per second, until --count "
        "info_hashes, --max-queries queries or --timeout seconds.",
    )
    sample.add_argument(
        "--count",
        metavar="N",
        type=_atLeastOne,
        help="stop after N distinct info_hashes (default: no limit)",
    )
    sample.add_argument(
        "--rate",
        metavar="QPS",
        type=_positive,
        default=DEFAULT_RATE,
        help=f"sample_infohashes queries per second (default: {DEFAULT_RATE:g})",
    )
    sample.add_argument(
        "--max-queries",
        metavar="N",
        type=_atLeastOne,
        help="stop after N queries (default: no limit)",
    )


async def scrapeCommand(session: Session) -> None:
    """scrape: BEP 33's estimates of a swarm's seeds and peers."""
    console, infoHash = session.console, session.args.infoHash
    await session.join()
    console.progress(f"Scraping {infoHash.hex()}")
    result = await session.node.scrape(infoHash)
    seeds, peers = round(result.seeds), round(result.peers)
    console.document(
        {"infoHash": infoHash.hex(), "seeds": seeds, "peers": peers, "nodes": result.responders}
    )
    console.line(f"{infoHash.hex()}: about {seeds} seeds and {peers} peers")
    console.progress(f"Estimated from the filters and values of {result.responders} nodes")


async def sampleCommand(session: Session) -> None:
    """sample: info_hashes as they arrive, a progress line on stderr every few seconds."""
    args, console, reactor = session.args, session.console, session.reactor
    deadline = reactor.seconds() + args.timeout
    await session.join()
    found: list[tuple[bytes, Address]] = []
    sources: set[Address] = set()
    start = lastProgress = reactor.seconds()

    def onSample(infoHash: bytes, source: Address) -> None:
        nonlocal lastProgress
        found.append((infoHash, source))
        sources.add(source)
        console.line(infoHash.hex())
        now = reactor.seconds()
        if now - lastProgress >= PROGRESS_INTERVAL:
            lastProgress = now
            console.progress(
                f"{len(found)} info_hashes from {len(sources)} nodes in {now - start:.0f} s"
            )

    console.progress(f"Sampling at {args.rate:g} queries/s")
    result = await session.node.walkSamples(
        onSample,
        rate=args.rate,
        maxQueries=args.max_queries,
        maxInfoHashes=args.count,
        duration=max(deadline - SAMPLE_MARGIN - reactor.seconds(), 0.0),
    )
    console.document(
        {
            "infoHashes": [
                {"infoHash": infoHash.hex(), "source": formatAddress(source)}
                for infoHash, source in found
            ],
            "queries": result.queries,
            "replies": result.replies,
            "nodes": result.nodes,
            "reason": result.reason,
        }
    )
    console.progress(
        f"Found {result.infoHashes} info_hashes with {result.queries} queries"
        f" ({result.replies} answered) in {reactor.seconds() - start:.1f} s: {result.reason}"
    )
    if not result.replies:
        raise CommandFailed("no node answered sample_infohashes")


SURVEYS: dict[str, Callable[[Session], Coroutine[Any, Any, None]]] = {
    "scrape": scrapeCommand,
    "sample": sampleCommand,
}
"""The commands of this module, by name."""
