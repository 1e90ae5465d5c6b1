"""Lookup efficiency on an in-memory network: queries and round trips per lookup.

Builds N DHTNodes on a MemoryNetwork driven by a Clock, gives every node a routing
table as a converged DHT would have (its XOR neighbours plus a random sample of the
network, all confirmed), then measures:

* findNode: queries and round trips per lookup (median, p95) and how often the result is
  exactly the true K closest nodes (brute force);
* announce then getPeers from another random node: the success rate.

    PYTHONPATH=. python benchmarks/lookups.py [N ...]      (default: 1000 10000)
"""

from __future__ import annotations

import heapq
import random
import statistics
import sys
import time
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from twisted_dht.lookup import LookupResult
from twisted_dht.node import DHTNode
from twisted_dht.nodeid import distance
from twisted_dht.testing import MemoryNetwork

K = 8
LOOKUPS = 200
ANNOUNCES = 50


def addressOf(index: int) -> tuple[str, int]:
    """A distinct /24 per node, so that the routing tables' subnet limits do not bind."""
    return (f"10.{index // 256}.{index % 256}.1", 6881)


def build(count: int, rng: random.Random) -> tuple[Clock, list[DHTNode]]:
    clock = Clock()
    network = MemoryNetwork(clock, seed=rng.randrange(1 << 30))
    nodes = [DHTNode(rng.randbytes(20), reactor=clock, routers=[]) for _ in range(count)]
    for index, node in enumerate(nodes):
        network.listen(node.ipv4.protocol, addressOf(index))
    order = sorted(range(count), key=lambda i: nodes[i].nodeId)
    for position, index in enumerate(order):
        node = nodes[index]
        neighbours = order[max(0, position - 12) : position + 13]
        sample = rng.sample(range(count), min(count, 120))
        for other in (*neighbours, *sample):
            if other != index:
                node.ipv4.table.nodeResponded(nodes[other].nodeId, addressOf(other))
    return clock, nodes


def wait(clock: Clock, deferred: Deferred[Any]) -> Any:
    results: list[Any] = []
    deferred.addBoth(results.append)
    while not results:
        clock.advance(0.01)
    return results[0]


def percentile(values: list[int], fraction: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))])


def measure(count: int) -> dict[str, float]:
    rng = random.Random(count)
    started = time.perf_counter()
    clock, nodes = build(count, rng)
    built = time.perf_counter() - started
    ids = [node.nodeId for node in nodes]
    queries, roundTrips, exact = [], [], 0
    for _ in range(LOOKUPS):
        target = rng.randbytes(20)
        origin = rng.choice(nodes)
        result: LookupResult = wait(clock, origin.lookup(target, b"find_node", False))
        queries.append(result.queries)
        roundTrips.append(result.roundTrips)
        truth = heapq.nsmallest(
            K, (i for i in ids if i != origin.nodeId), key=lambda i: distance(i, target)
        )
        exact += [nodeId for nodeId, _ in result.closest] == truth
    found = 0
    for _ in range(ANNOUNCES):
        infoHash = rng.randbytes(20)
        announcer, looker = rng.sample(range(count), 2)
        wait(clock, nodes[announcer].announce(infoHash, 7000))
        peers = wait(clock, nodes[looker].getPeers(infoHash))
        found += (addressOf(announcer)[0], 7000) in peers
    return {
        "nodes": count,
        "build s": built,
        "queries p50": statistics.median(queries),
        "queries p95": percentile(queries, 0.95),
        "round trips p50": statistics.median(roundTrips),
        "round trips p95": percentile(roundTrips, 0.95),
        "exact K closest %": 100.0 * exact / LOOKUPS,
        "getPeers success %": 100.0 * found / ANNOUNCES,
    }


def main(sizes: list[int]) -> None:
    rows = [measure(size) for size in sizes]
    keys = list(rows[0])
    print(" | ".join(f"{key:>18}" for key in keys))
    for row in rows:
        print(" | ".join(f"{row[key]:>18.1f}" for key in keys))


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [1000, 10000])
