"""Time RoutingTable.closest(): the bucket walk against a brute-force heapq.nsmallest.

Fills one table (random own id, 5,000 random confirmed inserts from distinct public IPv4
addresses), checks that both methods agree, and prints microseconds per call.

    PYTHONPATH=. python benchmarks/routing_closest.py [inserts] [queries]
"""

from __future__ import annotations

import heapq
import random
import sys
import time

from twisted.internet.task import Clock

from twisted_dht.contacts import Contact, NodeState
from twisted_dht.routing import RoutingTable


def bruteForce(table: RoutingTable, target: bytes, k: int, now: float) -> list[Contact]:
    """The k closest good contacts by a scan of the whole table."""
    t = int.from_bytes(target, "big")
    good = (c for c in table.contacts() if c.state(now) is NodeState.GOOD)
    return heapq.nsmallest(k, good, key=lambda c: c.idInt ^ t)


def main(inserts: int = 5000, queries: int = 20000) -> None:
    rng = random.Random(42)
    clock = Clock()
    table = RoutingTable(rng.randbytes(20), reactor=clock)
    for i in range(inserts):
        address = (f"{1 + i // 65536 % 200}.{i // 256 % 256}.{i % 256}.{rng.randrange(256)}", 6881)
        table.nodeResponded(rng.randbytes(20), address)
    targets = [rng.randbytes(20) for _ in range(queries)]
    now = clock.seconds()
    for target in targets[:1000]:
        assert table.closest(target) == bruteForce(table, target, 8, now)

    start = time.perf_counter()
    for target in targets:
        table.closest(target)
    walk = (time.perf_counter() - start) / queries * 1e6

    start = time.perf_counter()
    for target in targets:
        bruteForce(table, target, 8, now)
    brute = (time.perf_counter() - start) / queries * 1e6

    print(
        f"table: {len(table)} contacts ({table.goodCount()} good) in {len(table.buckets())}"
        f" buckets after {inserts} inserts; {queries} closest(k=8) queries"
    )
    print(f"bucket walk:         {walk:7.1f} us/call")
    print(f"heapq.nsmallest:     {brute:7.1f} us/call")
    print(f"speed-up:            {brute / walk:7.1f}x")


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:3]))
