"""C{python -m twisted_dht probe}: its arguments, its table and its exit code."""

from __future__ import annotations

import argparse
from typing import Any

from twisted.internet.error import CannotListenError

from .addresses import isIPLiteral
from .console import PROGRAM, Console, argumentType, count, hostPort, seconds
from .probe import FAIL, PASS, UNSUPPORTED, ProbeReport, runProbe


def addProbeCommand(commands: Any, output: argparse.ArgumentParser) -> None:
    """Add C{probe} to the subcommands."""
    probe = commands.add_parser(
        "probe", parents=[output], help="check that a DHT node speaks the protocol correctly"
    )
    probe.add_argument("address", metavar="HOST:PORT", type=hostPort, help="the node to probe")
    probe.add_argument(
        "--checks",
        metavar="LIST",
        type=lambda text: [name for name in text.split(",") if name],
        help="comma-separated checks to run (default: all but burst)",
    )
    probe.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=argumentType(seconds, "seconds"),
        default=2.0,
        help="how long to wait for each reply (default: 2)",
    )
    probe.add_argument(
        "--source-ip",
        metavar="IP",
        action="append",
        default=[],
        help="a local address to probe from (repeatable; two test token binding)",
    )
    probe.add_argument(
        "--burst",
        metavar="N",
        type=argumentType(count, "count"),
        default=0,
        help="also send a burst of N pings to see the node's rate limiting (default: off)",
    )


def formatReport(report: ProbeReport) -> list[str]:
    """The report as a table for a person: check, result, evidence; then a summary."""
    width = max((len(r.name) for r in report.results), default=5)
    lines = [f"{'check':{width}}  {'result':13}  evidence"]
    lines += [f"{r.name:{width}}  {r.status:13}  {r.evidence}" for r in report.results]
    counts = report.counts()
    lines.append(
        f"{report.target}: {counts[PASS]} passed, {counts[FAIL]} failed, "
        f"{counts[UNSUPPORTED]} not supported; {report.datagramsSent} datagrams sent"
    )
    return lines


async def probeCommand(reactor: Any, args: argparse.Namespace, console: Console) -> int:
    """probe: the conformance report of one node; 0 when every supported check passed."""
    host, port = args.address
    try:
        if not isIPLiteral(host):
            host = await reactor.resolve(host)
        report = await runProbe(
            reactor,
            (host, port),
            checks=args.checks,
            timeout=args.timeout,
            sourceIPs=args.source_ip,
            burst=args.burst,
        )
    except ValueError as e:
        console.progress(f"{PROGRAM} probe: {e}")
        return 2
    except (CannotListenError, OSError) as e:
        console.progress(f"{PROGRAM} probe: network failure: {e}")
        return 1
    console.document(report.toJSON())
    for line in formatReport(report):
        console.line(line)
    return 0 if report.passed else 1
