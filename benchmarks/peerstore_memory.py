"""Memory and speed of PeerStore at a million (info_hash, peer) pairs, against a naive store.

Run from the repository root: python -m benchmarks.peerstore_memory [--info-hashes 10000]
[--peers 100] (or with PYTHONPATH=. python benchmarks/peerstore_memory.py).

Prints, for PeerStore and for a naive dict of dicts ({info_hash: {compact address:
announce time}}), the RSS growth per stored peer (from /proc/self/statm, after
gc.collect) once filled and again after get_peers has read every swarm (what the reads
keep), and the time per addPeer and per getCompactPeers(limit=50). Linux only.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
from collections.abc import Callable
from typing import Protocol

from twisted.internet.task import Clock

from twisted_dht.addresses import Address, packAddress
from twisted_dht.peers import PeerStore

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class _Store(Protocol):
    def addPeer(self, infoHash: bytes, address: Address, seed: bool = False) -> None: ...

    def getCompactPeers(
        self, infoHash: bytes, ipv6: bool = False, limit: int | None = None
    ) -> list[bytes]: ...

    def getEncodedPeers(
        self, infoHash: bytes, ipv6: bool = False, limit: int | None = None
    ) -> bytes: ...


class NaiveStore:
    """The obvious store: a dict of dicts keyed by compact address, no caps, no expiry."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.swarms: dict[bytes, dict[bytes, float]] = {}

    def addPeer(self, infoHash: bytes, address: Address, seed: bool = False) -> None:
        self.swarms.setdefault(infoHash, {})[packAddress(address)] = self.clock.seconds()

    def getCompactPeers(
        self, infoHash: bytes, ipv6: bool = False, limit: int | None = None
    ) -> list[bytes]:
        peers = list(self.swarms.get(infoHash, {}))
        if limit is not None and limit < len(peers):
            return random.sample(peers, limit)
        return peers

    def getEncodedPeers(
        self, infoHash: bytes, ipv6: bool = False, limit: int | None = None
    ) -> bytes:
        return b"".join(b"6:" + peer for peer in self.getCompactPeers(infoHash, ipv6, limit))


def rss() -> int:
    """Resident set size of this process in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


def address(i: int, j: int) -> Address:
    """The j-th peer of the i-th info_hash: distinct hosts and ports."""
    return (f"10.{j}.{i >> 8 & 255}.{i & 255}", 1024 + (i * 7 + j) % 60000)


def measure(
    name: str, make: Callable[[Clock], _Store], infoHashes: list[bytes], peers: int
) -> None:
    clock = Clock()
    clock.advance(1_700_000_000)
    gc.collect()
    before = rss()
    store = make(clock)
    started = time.perf_counter()
    for j in range(peers):
        for i, infoHash in enumerate(infoHashes):
            store.addPeer(infoHash, address(i, j), seed=j % 4 == 0)
        clock.advance(1)
    fill = time.perf_counter() - started
    gc.collect()
    grown = rss() - before
    pairs = len(infoHashes) * peers
    for infoHash in infoHashes:  # as get_peers does, with room for every peer
        store.getEncodedPeers(infoHash, limit=peers)
    gc.collect()
    grownRead = rss() - before

    # Timed separately, on inputs built beforehand: refreshes of stored peers, and new
    # peers (each replacing the oldest peer of a full info_hash for PeerStore).
    rng = random.Random(5)
    sample = 100_000
    refresh = [(rng.randrange(len(infoHashes)), rng.randrange(peers)) for _ in range(sample)]
    refreshInputs = [(infoHashes[i], address(i, j)) for i, j in refresh]
    newInputs = [(infoHashes[i], address(i, peers + n % 100)) for n, (i, _) in enumerate(refresh)]
    timings = []
    for inputs in (refreshInputs, newInputs):
        started = time.perf_counter()
        for infoHash, peer in inputs:
            store.addPeer(infoHash, peer)
        timings.append((time.perf_counter() - started) / sample)
    lookups = [infoHashes[i] for i, _ in refresh]
    started = time.perf_counter()
    for infoHash in lookups:
        store.getCompactPeers(infoHash, limit=50)
    get = (time.perf_counter() - started) / sample

    print(f"{name}:")
    print(f"  RSS growth        {grown / 2**20:8.1f} MiB for {pairs:,} pairs")
    print(f"  per stored peer   {grown / pairs:8.1f} bytes")
    print(f"  every swarm read  {grownRead / pairs:8.1f} bytes per stored peer")
    print(f"  fill              {fill / pairs * 1e6:8.2f} us per addPeer (incl. making input)")
    print(f"  addPeer refresh   {timings[0] * 1e6:8.2f} us")
    print(f"  addPeer new       {timings[1] * 1e6:8.2f} us")
    print(f"  getCompactPeers   {get * 1e6:8.2f} us (limit=50)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--info-hashes", type=int, default=10_000)
    parser.add_argument("--peers", type=int, default=100, help="peers per info_hash")
    parser.add_argument("--skip-naive", action="store_true", help="only measure PeerStore")
    options = parser.parse_args(argv)
    rng = random.Random(1)
    infoHashes = [rng.randbytes(20) for _ in range(options.info_hashes)]
    print(
        f"Python {sys.version.split()[0]}, {options.info_hashes:,} info_hashes x "
        f"{options.peers} peers"
    )
    stores: list[tuple[str, Callable[[Clock], _Store]]] = [
        (
            "PeerStore",
            lambda clock: PeerStore(
                maxPeersPerInfoHash=options.peers,
                maxInfoHashes=options.info_hashes,
                reactor=clock,
            ),
        )
    ]
    if not options.skip_naive:
        stores.append(("naive dict of dicts", NaiveStore))
    for name, make in stores:
        # Each store is measured in a forked child, so that neither inherits memory the
        # other freed (the allocators keep some of it and RSS would not grow).
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            try:
                measure(name, make, infoHashes, options.peers)
            finally:
                sys.stdout.flush()
                os._exit(0)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
