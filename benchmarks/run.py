"""The load benchmark: twisted_dht against a Twisted echo, bittorrent-dht and libtorrent.

Run from the repository root (a few minutes; loopback only):

    python benchmarks/run.py [--rounds 3] [--duration 3] [--window 64] [--only NAME ...]

It builds ``benchmarks/loadgen.c`` with the system compiler (``cc -O2``), starts every
server as a subprocess on 127.0.0.1 (twisted_dht with each bencoding backend installed, a
minimal bencode2 ping handler on Twisted, a bare Twisted echo, a C echo, and, when
installed, webtorrent bittorrent-dht from
``tests/interop/node_modules`` and libtorrent with its DHT rate limits raised), fills each
DHT with 200 info_hashes x 50 peers through announce_peer (``loadgen --prefill``), then
measures them in alternation: every round runs every server once per mix, in a rotated
order, and the table gives the median of the rounds. Mixes: ``ping``, and ``get_peers mix``
(80% get_peers on the 200 info_hashes, 10% announce_peer with tokens from earlier replies,
10% find_node). The minimal handler and the echo servers answer ping only. Server CPU%
and RSS come from /proc. Finally ``benchmarks/peerstore_memory.py`` gives the RSS per
stored peer at 1M peers. Every process it starts is stopped by PID on exit.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "benchmarks"
NODE_MODULES = ROOT / "tests" / "interop" / "node_modules" / "bittorrent-dht"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

MIXES = {
    "ping": "ping=100",
    "get_peers mix": "get_peers=80,announce_peer=10,find_node=10",
}


@dataclass
class Server:
    name: str
    argv: list[str]
    echo: bool = False
    """The server echoes datagrams (loadgen --echo); it is measured on ping only."""
    pingOnly: bool = False
    """The server answers ping only."""
    tree: str = str(ROOT)
    """The checkout whose twisted_dht the server imports (``--baseline`` adds another)."""
    process: subprocess.Popen[str] | None = None
    results: dict[str, list[dict[str, float]]] = field(default_factory=dict)


def servers(
    python: str, loadgen: str, only: list[str] | None, baseline: str | None = None
) -> list[Server]:
    """Every server that can run here; ``only`` keeps those whose name contains a word.

    With ``baseline`` (another checkout, e.g. a ``git worktree`` of an older commit),
    twisted_dht from there runs too, with the first backend, for an A/B in one run.
    """
    from twisted_dht import bencoding

    script = str(HERE / "servers" / "twisted_dht_server.py")
    found = [
        Server(f"twisted_dht ({backend})", [python, script, "--backend", backend])
        for backend in bencoding.BACKENDS
    ]
    if baseline is not None:
        backend = bencoding.BACKENDS[0]
        found.insert(
            1,
            Server(
                f"baseline ({backend})",
                [python, script, "--backend", backend],
                tree=os.path.abspath(baseline),
            ),
        )
    try:
        import bencode2  # noqa: F401
    except ImportError:
        pass
    else:
        found.append(
            Server(
                "minimal ping handler",
                [python, str(HERE / "servers" / "minimal_ping.py")],
                pingOnly=True,
            )
        )
    found.append(Server("Twisted echo", [python, str(HERE / "servers" / "twisted_echo.py")], True))
    found.append(Server("C echo (loadgen check)", [loadgen, "--echo-server"], True))
    if shutil.which("node") and NODE_MODULES.exists():
        found.append(
            Server("bittorrent-dht 11", ["node", str(HERE / "servers" / "btdht_server.mjs")])
        )
    else:
        print("bittorrent-dht skipped: run npm install in tests/interop", file=sys.stderr)
    try:
        import libtorrent  # noqa: F401
    except ImportError:
        print("libtorrent skipped: pip install libtorrent==2.1.1", file=sys.stderr)
    else:
        found.append(
            Server("libtorrent 2.1", [python, str(HERE / "servers" / "libtorrent_server.py")])
        )
    if only:
        found = [s for s in found if any(word.lower() in s.name.lower() for word in only)]
    return found


def freePort() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(server: Server, port: int) -> None:
    argv = list(server.argv)
    argv += (
        [str(port)]
        if argv[0].endswith("node") or "--echo-server" in argv
        else [
            "--port",
            str(port),
        ]
    )
    env = dict(os.environ, PYTHONPATH=server.tree)
    server.process = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    deadline = time.monotonic() + 30
    assert server.process.stdout is not None
    line = ""
    while time.monotonic() < deadline:
        line = server.process.stdout.readline()
        if not line or line.startswith(("ready", "listening")):
            break
    if not line:
        raise RuntimeError(f"{server.name} did not start (exit code {server.process.poll()})")
    print(f"  started {server.name} (pid {server.process.pid}): {line.strip()}", flush=True)


def stop(server: Server) -> None:
    process, server.process = server.process, None
    if process is None:
        return
    try:
        if process.stdin:
            process.stdin.close()
        process.wait(3)
    except (subprocess.TimeoutExpired, OSError):
        pass
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(3)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def cpuSeconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def rssBytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE_SIZE


def loadgen(binary: str, port: int, *extra: str, timeout: float = 120) -> dict[str, float]:
    out = subprocess.run(
        [binary, "--port", str(port), *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def measure(server: Server, port: int, binary: str, mix: str, args: argparse.Namespace) -> None:
    assert server.process is not None
    pid = server.process.pid
    extra = ["--mix", MIXES[mix], "--duration", str(args.duration), "--window", str(args.window)]
    if server.echo:
        extra.append("--echo")
    cpu, wall = cpuSeconds(pid), time.monotonic()
    result = loadgen(binary, port, *extra)
    result["cpu_percent"] = 100 * (cpuSeconds(pid) - cpu) / (time.monotonic() - wall)
    result["rss_mib"] = rssBytes(pid) / 2**20
    server.results.setdefault(mix, []).append(result)
    print(
        f"    {server.name:24} {mix:14} {result['replies_per_s']:>9,.0f}/s"
        f"  p50 {result['p50_us']:>5} us  p99 {result['p99_us']:>6} us"
        f"  loss {result['loss']:.4f}  cpu {result['cpu_percent']:3.0f}%",
        flush=True,
    )


def median(server: Server, mix: str, key: str) -> float | None:
    runs = server.results.get(mix)
    return statistics.median(r[key] for r in runs) if runs else None


def peerstoreMemory(python: str) -> float | None:
    print("Peer store memory at 1M peers (benchmarks/peerstore_memory.py) ...", flush=True)
    out = subprocess.run(
        [python, str(HERE / "peerstore_memory.py"), "--skip-naive"],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        cwd=ROOT,
    ).stdout
    print("  " + out.strip().replace("\n", "\n  "))
    # The larger figure: after get_peers has read every swarm (what the reads keep).
    match = re.search(r"every swarm read\s+([\d.]+) bytes", out)
    return float(match.group(1)) if match else None


def report(found: list[Server], perPeer: float | None, args: argparse.Namespace) -> None:
    today = datetime.date.today().isoformat()
    print()
    print(
        f"{today}, {platform.node()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; loopback, window {args.window}, "
        f"{args.duration:g} s per run, median of {args.rounds} rounds"
    )
    header = (
        f"{'server':26} {'ping/s':>9} {'p50':>6} {'p99':>6} {'cpu':>5} "
        f"{'mix/s':>9} {'p50':>6} {'p99':>6} {'cpu':>5} {'RSS':>7}"
    )
    print(header)
    print("-" * len(header))

    def cell(value: float | None, fmt: str, width: int) -> str:
        return f"{'-':>{width}}" if value is None else f"{value:>{width}{fmt}}"

    for s in found:
        row = f"{s.name:26}"
        for mix in MIXES:
            row += " " + cell(median(s, mix, "replies_per_s"), ",.0f", 9)
            row += " " + cell(median(s, mix, "p50_us"), ".0f", 6)
            row += " " + cell(median(s, mix, "p99_us"), ".0f", 6)
            row += " " + cell(median(s, mix, "cpu_percent"), ".0f", 4) + "%"
        rss = max((median(s, mix, "rss_mib") or 0 for mix in MIXES), default=0)
        row += f" {rss:>4.0f}MiB"
        print(row)
    print("(latencies in microseconds; CPU of the server process; RSS after the runs)")
    if perPeer is not None:
        print(f"RSS per stored peer at 1M peers, every swarm read (PeerStore): {perPeer:.1f} B")

    byName = {s.name: s for s in found}
    ours = next((s for s in found if s.name.startswith("twisted_dht (bencode2")), None)
    ours = ours or next((s for s in found if s.name.startswith("twisted_dht")), None)
    if ours is None:
        return
    print()
    print(f"Targets ({ours.name}):")

    def ratio(label: str, mix: str, other: str, target: float) -> None:
        server = byName.get(other)
        a, b = median(ours, mix, "replies_per_s"), server and median(server, mix, "replies_per_s")
        if not a or not b:
            print(f"  {label:40} n/a")
            return
        value = a / b
        verdict = "met" if value >= target else f"MISSED by {100 * (1 - value / target):.0f}%"
        print(f"  {label:40} {value:5.2f}x  (target >= {target}x: {verdict})")

    ratio("ping vs bittorrent-dht", "ping", "bittorrent-dht 11", 1.5)
    ratio("get_peers mix vs bittorrent-dht", "get_peers mix", "bittorrent-dht 11", 2.0)
    ratio("ping vs libtorrent", "ping", "libtorrent 2.1", 0.6)
    ratio("get_peers mix vs libtorrent", "get_peers mix", "libtorrent 2.1", 0.75)
    ratio("ping vs the bare Twisted echo", "ping", "Twisted echo", 0.6)
    if perPeer is not None:
        verdict = "met" if perPeer <= 40 else f"MISSED by {perPeer - 40:.1f} B"
        print(f"  {'RSS per stored peer':40} {perPeer:5.1f} B  (target <= 40 B: {verdict})")
    baseline = next((s for s in found if s.name.startswith("baseline")), None)
    if baseline is not None:  # the same backend as ``ours``: an A/B of the two trees
        ratio("ping vs the baseline tree", "ping", baseline.name, 0.95)
        ratio("get_peers mix vs the baseline tree", "get_peers mix", baseline.name, 0.95)
    check = byName.get("C echo (loadgen check)")
    if check is not None:
        a, b = median(check, "ping", "replies_per_s"), median(ours, "ping", "replies_per_s")
        if a and b:
            print(f"  {'loadgen headroom: C echo / ours (ping)':40} {a / b:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per run")
    parser.add_argument("--window", type=int, default=64, help="outstanding queries")
    parser.add_argument("--only", nargs="*", help="servers whose name contains one of these")
    parser.add_argument("--skip-memory", action="store_true", help="skip peerstore_memory.py")
    parser.add_argument(
        "--baseline", help="also run twisted_dht from this checkout (an A/B of two commits)"
    )
    args = parser.parse_args()
    if sys.platform != "linux":
        sys.exit("Linux only (/proc, 127.0.0.0/8 on loopback)")
    python = sys.executable
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="dht-bench-") as tmp:
        binary = os.path.join(tmp, "loadgen")
        compiler = os.environ.get("CC", "cc")
        subprocess.run([compiler, "-O2", "-o", binary, str(HERE / "loadgen.c")], check=True)
        found = servers(python, binary, args.only, args.baseline)
        ports: dict[str, int] = {}
        try:
            print("Starting servers ...", flush=True)
            for server in found:
                ports[server.name] = freePort()
                start(server, ports[server.name])
                if not (server.echo or server.pingOnly):
                    filled = loadgen(binary, ports[server.name], "--prefill")
                    print(f"    prefilled {filled['prefilled']:,.0f} (info_hash, peer) pairs")
            for round in range(args.rounds):
                print(f"Round {round + 1} of {args.rounds}", flush=True)
                order = found[round % len(found) :] + found[: round % len(found)]
                for mix in MIXES:
                    for server in order:
                        if (server.echo or server.pingOnly) and mix != "ping":
                            continue
                        measure(server, ports[server.name], binary, mix, args)
        finally:
            for server in found:
                stop(server)
    perPeer = None if args.skip_memory else peerstoreMemory(python)
    report(found, perPeer, args)


if __name__ == "__main__":
    main()
