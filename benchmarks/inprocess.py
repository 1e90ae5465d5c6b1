"""Microseconds of Python per query on the server's hot path, without sockets.

    python benchmarks/inprocess.py [--tree PATH] [--layout spread|samebucket]

Feeds real KRPC datagrams to ``KRPCProtocol.datagramReceived`` of a ``DHTNode`` set up
like the load benchmark's (``servers/twisted_dht_server.py``: 2,000 contacts offered to
the IPv4 table, 200 info_hashes x 50 peers, abuse limits off) and a transport whose
``sendto`` does nothing, and prints the best of 7 repeats per kind of query:

- ``ping``, ``get_peers`` (the 200 info_hashes), ``find_node`` (200 targets, answered from
  the closest-nodes cache) and ``find_node random`` (1,000 targets, cache misses);
- ``mix``: per 10 queries, 8 get_peers, 1 announce_peer with a token from an earlier
  reply, 1 find_node, as the load benchmark's get_peers mix.

Five sources at 127.0.0.20-24 send the queries. The clock stands still, so a source is
offered to the routing table on its first query only (``Controller.queryAnswered``), as
under load, where each is offered once a second. ``--layout samebucket`` gives them ids
in one full bucket, where the /24 rule lets two into the replacement cache and refuses
three on every query (what the load generator's sources often meet); ``spread`` (the
default) draws their ids at random. ``--tree`` imports twisted_dht from another checkout,
for A/B comparisons of two commits (alternate the runs: the machine is noisy).
"""

from __future__ import annotations

import argparse
import random
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tree", default=str(ROOT), help="import twisted_dht from this checkout (default: ours)"
    )
    parser.add_argument("--layout", choices=("spread", "samebucket"), default="spread")
    options = parser.parse_args()
    sys.path.insert(0, options.tree)
    from twisted.internet import udp
    from twisted.internet.task import Clock

    sys.path.insert(1, str(ROOT / "benchmarks" / "servers"))
    from twisted_dht_server import benchmarkNode, familyOf

    from twisted_dht import bencoding

    class NullSocket:
        last = b""

        def sendto(self, data: bytes, address: object) -> int:
            NullSocket.last = data
            return len(data)

    class NullPort(udp.Port):
        def __init__(self) -> None:  # no real socket: KRPCProtocol replies via .socket
            self.socket = NullSocket()

    rng = random.Random(7)
    clock = Clock()
    clock.advance(1000)
    node = benchmarkNode(clock, rng)
    node.start(bootstrap=False)
    protocol = familyOf(node)[0]
    protocol.makeConnection(NullPort())
    receive = protocol.datagramReceived

    sources = [(f"127.0.0.{20 + i}", 40000 + i) for i in range(5)]
    if options.layout == "samebucket":
        far = 0x80 ^ (node.nodeId[0] & 0x80)
        ids = [bytes([far | (i * 8)]) + rng.randbytes(19) for i in range(5)]
    else:
        ids = [rng.randbytes(20) for _ in sources]
    infoHashes = [rng.randbytes(20) for _ in range(200)]
    for infoHash in infoHashes:
        for j in range(50):
            node.peerStore.addPeer(infoHash, (f"10.0.{j}.{rng.randrange(1, 255)}", 1000 + j))

    def query(i: int, method: bytes, **args: object) -> tuple[bytes, tuple[str, int]]:
        arguments = {b"id": ids[i % 5], **{k.encode(): v for k, v in args.items()}}
        message = {b"t": b"aa", b"y": b"q", b"q": method, b"a": arguments}
        return bencoding.encode(message), sources[i % 5]

    pings = [query(i, b"ping") for i in range(5)]
    getPeers = [query(i, b"get_peers", info_hash=infoHashes[i]) for i in range(200)]
    findNodes = [query(i, b"find_node", target=infoHashes[i]) for i in range(200)]
    randomFindNodes = [query(i, b"find_node", target=rng.randbytes(20)) for i in range(1000)]
    tokens = []
    for datagram, source in getPeers:
        receive(datagram, source)
        tokens.append(bencoding.decode(NullSocket.last)[b"r"][b"token"])
    announces = [
        query(i, b"announce_peer", info_hash=infoHashes[i], port=1000 + i % 50, token=tokens[i])
        for i in range(200)
    ]
    mix = []
    for i in range(200):
        mix += [getPeers[(i * 8 + j) % 200] for j in range(8)]
        mix += [announces[i], findNodes[i]]

    def runner(datagrams: list[tuple[bytes, tuple[str, int]]]) -> Callable[[], None]:
        def run() -> None:
            for datagram, source in datagrams:
                receive(datagram, source)

        return run

    print(f"twisted_dht from {sys.modules['twisted_dht'].__file__}, layout {options.layout}")
    for name, datagrams in [
        ("ping", pings),
        ("get_peers", getPeers),
        ("find_node", findNodes),
        ("find_node random", randomFindNodes),
        ("mix", mix),
    ]:
        run = runner(datagrams)
        run()
        repeats = max(1, 20000 // len(datagrams))
        best = min(timeit.repeat(run, number=repeats, repeat=7))
        print(f"  {name:18} {best / repeats / len(datagrams) * 1e6:6.2f} us per query")
    if protocol.counters["errorsSent"] or protocol.counters["malformed"]:
        sys.exit(f"unexpected errors: {protocol.counters}")


if __name__ == "__main__":
    main()
