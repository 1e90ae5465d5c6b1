"""A bounded soak test: a flood of one million announces for random info_hashes from
65,536 source addresses, through the real receive path, on a Clock.

Runs in about 20 s, so it is in the default suite; C{SOAK_ANNOUNCES} changes the count.
Bound: the process RSS grows by less than L{RSS_BOUND_MB} during the flood (the peer store
holds at most 10,000 info_hashes; measured growth is under 10 MB).
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht import krpc
from twisted_dht.node import DHTNode
from twisted_dht.ratelimit import DEFAULT_MAX_TRACKED
from twisted_dht.testing import FakeDatagramTransport

ANNOUNCES = int(os.environ.get("SOAK_ANNOUNCES", "1000000"))
SOURCES = 65536
RSS_BOUND_MB = 64
MAX_INFO_HASHES = 10000


def rssMB() -> float:
    """The resident set size of this process, in MB (0 where /proc is missing)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class CountingTransport(FakeDatagramTransport):
    """Counts datagrams instead of keeping them; keeps the last two."""

    def __init__(self, address: Any) -> None:
        super().__init__(address)
        self.count = 0
        self.recent: deque[bytes] = deque(maxlen=2)

    def record(self, packet: bytes, addr: Any) -> None:
        self.count += 1
        self.recent.append(packet)


class AnnounceFloodTests(SynchronousTestCase):
    def test_millionAnnounces(self) -> None:
        """A million valid announces leave the peer store and the per-IP tracker at their
        caps, RSS within its bound, and a ping is still answered at once."""
        clock = Clock()
        node = DHTNode(os.urandom(20), reactor=clock, routers=[], maxInfoHashes=MAX_INFO_HASHES)
        transport = CountingTransport(("81.0.0.1", 6881))
        node.ipv4.protocol.makeConnection(transport)  # type: ignore[arg-type]
        node.start(bootstrap=False)
        ips = [f"{81 + i // 65536}.{i // 256 % 256}.{i % 256}.7" for i in range(SOURCES)]
        generate = node.tokenStore.generate
        receive = node.ipv4.protocol.datagramReceived
        peerId = os.urandom(20)
        before = rssMB()
        peak = 0.0
        for i in range(ANNOUNCES):
            ip = ips[i % SOURCES]
            infoHash = os.urandom(20)
            receive(
                b"d1:ad2:id20:" + peerId + b"9:info_hash20:" + infoHash
                + b"4:porti6881e5:token8:" + generate(ip, infoHash)
                + b"e1:q13:announce_peer1:t2:aa1:y1:qe",
                (ip, 6881),
            )  # fmt: skip
            if i % 100 == 99:
                clock.advance(0.25)  # 400 announces/s: within the default budgets
            if i % 100000 == 99999:
                peak = max(peak, rssMB() - before)
                self.assertLessEqual(node.peerStore.infoHashCount(), MAX_INFO_HASHES)
                self.assertEqual(len(node.policy.blocker), DEFAULT_MAX_TRACKED)
        counters = node.ipv4.protocol.counters
        self.assertEqual(counters["responsesSent"], ANNOUNCES)
        self.assertEqual(node.peerStore.infoHashCount(), MAX_INFO_HASHES)
        self.assertEqual(len(node.policy.blocker), DEFAULT_MAX_TRACKED)
        self.assertLess(peak, RSS_BOUND_MB)
        sent = transport.count
        receive(krpc.encodeQuery(b"pp", b"ping", {b"id": b"\x22" * 20}), ("99.9.9.9", 6881))
        # The reply, and (perhaps) our ping confirming the new querier.
        self.assertIn(transport.count - sent, (1, 2))
        recent = [krpc.decodeMessage(packet) for packet in transport.recent]
        replies = [m for m in recent[-(transport.count - sent) :] if isinstance(m, krpc.Response)]
        self.assertEqual([reply.tid for reply in replies], [b"pp"])
        node.stop()
        node.ipv4.protocol.stopProtocol()
        self.assertEqual(clock.getDelayedCalls(), [])
