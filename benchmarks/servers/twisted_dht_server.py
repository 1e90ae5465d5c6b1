"""A twisted_dht DHTNode on 127.0.0.1 for the load benchmark (benchmarks/run.py starts it).

    python benchmarks/servers/twisted_dht_server.py --port P [--backend bencode2]
        [--routing 2000] [--profile FILE]

Binds one UDP port on 127.0.0.1, fills the IPv4 routing table with confirmed contacts at
public-looking addresses (so find_node and get_peers carry a full ``nodes``), does not
bootstrap, and prints ``ready PORT`` when listening. Peers are announced by the load
generator (``loadgen --prefill``) like for the other servers. Abuse limits are off.
Exits when stdin closes. With --profile, writes a cProfile of the run to FILE on exit.
"""

from __future__ import annotations

import argparse
import random
from typing import Any

from stdin_exit import exitWhenStdinCloses
from twisted.internet import reactor

from twisted_dht import bencoding
from twisted_dht.node import DHTNode


def benchmarkNode(reactor: Any, rng: random.Random, contacts: int = 2000) -> DHTNode:
    """A DHTNode on C{reactor} with its abuse limits off (the benchmark measures the hot
    path, not the limiter) and C{contacts} confirmed contacts at public-looking addresses
    offered to its IPv4 table; not started. Shared with ``benchmarks/inprocess.py``."""
    node = DHTNode(
        rng.randbytes(20),
        reactor=reactor,
        routers=[],
        ipRateLimit=0,
        uploadLimit=0,
        queryRateLimit=0,
    )
    table = familyOf(node)[1]
    for i in range(contacts):
        address = (
            f"{1 + i % 200}.{i // 200 % 250}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            6881,
        )
        table.nodeResponded(rng.randbytes(20), address)
    return node


def familyOf(node: Any) -> tuple[Any, Any]:
    """The IPv4 (protocol, routing table) of C{node}, in this tree's layout or the one
    before the redesign (``protocol4``/``table4``), so that ``inprocess.py --tree`` can
    compare the commits on either side of it."""
    family = getattr(node, "ipv4", None)
    if family is not None:
        return family.protocol, family.table
    return node.protocol4, node.table4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", default=bencoding.BACKENDS[0], choices=bencoding.BACKENDS)
    parser.add_argument("--routing", type=int, default=2000, help="contacts to offer the table")
    parser.add_argument("--profile", help="write a cProfile of the run to this file")
    options = parser.parse_args()
    bencoding.useBackend(options.backend)
    node = benchmarkNode(reactor, random.Random(7), options.routing)
    node.start(bootstrap=False)
    protocol, table = familyOf(node)
    reactor.listenUDP(options.port, protocol, interface="127.0.0.1")
    exitWhenStdinCloses()
    print(f"ready {options.port} backend={options.backend} table={len(table)}", flush=True)
    if options.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.runcall(reactor.run)
        profiler.dump_stats(options.profile)
    else:
        reactor.run()
    node.stop()


if __name__ == "__main__":
    main()
