"""Print how a DHTNode with its default protections fares against attack mixes.

For each mix, a fresh node (default limits) on an in-memory transport and a Clock gets
50,000 datagrams spread over 60 simulated seconds, and the table shows: queries that
survived the limits (reached a handler), replies sent, bytes in and out (out includes
the node's own confirmation pings), the largest reply, and the amplification ratio.

    python benchmarks/abuse_report.py [DATAGRAMS]
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable, Iterator
from typing import Any

from twisted.internet.task import Clock

from twisted_dht import bencoding, bep42
from twisted_dht.addresses import isLocal
from twisted_dht.node import DHTNode
from twisted_dht.testing import FakeDatagramTransport

SECONDS = 60.0
INFO_HASH = b"\x44" * 20


class MeasuringTransport(FakeDatagramTransport):
    """Counts what the node sends, and the largest reply."""

    def __init__(self, address: Any) -> None:
        super().__init__(address)
        self.replies = 0
        self.bytesOut = 0
        self.maxReply = 0

    def record(self, packet: bytes, addr: Any) -> None:
        self.bytesOut += len(packet)
        if packet[-4:] != b"1:qe":  # not one of our own queries
            self.replies += 1
            self.maxReply = max(self.maxReply, len(packet))


def randomIP(rng: random.Random) -> str:
    while True:
        octets = (
            rng.randrange(1, 224),
            rng.randrange(256),
            rng.randrange(256),
            rng.randrange(1, 255),
        )
        ip = ".".join(map(str, octets))
        if not isLocal(ip):
            return ip


def q(method: bytes, args: dict[bytes, Any], tid: bytes = b"aa") -> bytes:
    return bencoding.encode({b"t": tid, b"y": b"q", b"q": method, b"a": args})


Mix = Callable[[DHTNode, random.Random, int], Iterator[tuple[bytes, str]]]


def garbage(node: DHTNode, rng: random.Random, n: int) -> Iterator[tuple[bytes, str]]:
    for _ in range(n):
        yield rng.randbytes(rng.randrange(1, 1400)), randomIP(rng)


def pingFlood(node: DHTNode, rng: random.Random, n: int) -> Iterator[tuple[bytes, str]]:
    data = q(b"ping", {b"id": os.urandom(20)})
    for _ in range(n):
        yield data, "93.184.216.34"


def spoofedFlood(node: DHTNode, rng: random.Random, n: int) -> Iterator[tuple[bytes, str]]:
    for _ in range(n):
        yield (
            q(b"find_node", {b"id": rng.randbytes(20), b"target": rng.randbytes(20)}),
            randomIP(rng),
        )


def amplification(node: DHTNode, rng: random.Random, n: int) -> Iterator[tuple[bytes, str]]:
    data = q(
        b"get_peers",
        {b"id": os.urandom(20), b"info_hash": INFO_HASH, b"want": [b"n4", b"n6"]},
        b"",
    )
    for _ in range(n):
        yield data, randomIP(rng)


def announceFlood(node: DHTNode, rng: random.Random, n: int) -> Iterator[tuple[bytes, str]]:
    peerId = os.urandom(20)
    for _ in range(n):
        ip, infoHash = randomIP(rng), rng.randbytes(20)
        token = node.tokenStore.generate(ip, infoHash)
        args = {b"id": peerId, b"info_hash": infoHash, b"port": 6881, b"token": token}
        yield q(b"announce_peer", args), ip


MIXES: list[tuple[str, Mix]] = [
    ("garbage", garbage),
    ("ping flood, one IP", pingFlood),
    ("spoofed many-IP find_node", spoofedFlood),
    ("get_peers amplification", amplification),
    ("announce flood (valid tokens)", announceFlood),
]


def populate(node: DHTNode) -> None:
    """Full node lists of both families and 100 peers for INFO_HASH: the worst case."""
    for i in range(8):
        ip, ip6 = f"85.0.{i}.1", f"2a00:{i + 1:x}::1"
        node.ipv4.table.nodeResponded(bep42.generateId(ip), (ip, 7000))
        node.ipv6.table.nodeResponded(bep42.generateId(ip6), (ip6, 7000))
    for i in range(100):
        node.peerStore.addPeer(INFO_HASH, (f"86.1.{i}.1", 6881))


def run(mix: Mix, count: int) -> dict[str, Any]:
    clock = Clock()
    node = DHTNode(os.urandom(20), reactor=clock, routers=[])
    transport = MeasuringTransport(("81.0.0.1", 6881))
    node.ipv4.protocol.makeConnection(transport)  # type: ignore[arg-type]
    node.start(bootstrap=False)
    populate(node)
    rng = random.Random(7)
    bytesIn = 0
    step = SECONDS / count
    for data, ip in mix(node, rng, count):
        bytesIn += len(data)
        node.ipv4.protocol.datagramReceived(data, (ip, 6881))
        clock.advance(step)
    survived = sum(node.ipv4.protocol.queriesIn.values())
    node.stop()
    node.ipv4.protocol.stopProtocol()
    return {
        "survived": survived,
        "replies": transport.replies,
        "in": bytesIn,
        "out": transport.bytesOut,
        "maxReply": transport.maxReply,
        "ratio": transport.bytesOut / bytesIn,
    }


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
    print(f"{count} datagrams per mix over {SECONDS:.0f} simulated seconds, default limits\n")
    header = (
        f"{'attack mix':32} {'survived':>9} {'replies':>8} {'bytes in':>11}"
        f" {'bytes out':>10} {'max reply':>9} {'out/in':>7}"
    )
    print(header)
    print("-" * len(header))
    for name, mix in MIXES:
        r = run(mix, count)
        print(
            f"{name:32} {r['survived']:>9} {r['replies']:>8} {r['in']:>11} {r['out']:>10}"
            f" {r['maxReply']:>9} {r['ratio']:>7.3f}"
        )


if __name__ == "__main__":
    main()
