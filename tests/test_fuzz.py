"""Property tests over the whole receive path of a DHTNode: random bytes, mutated valid
messages and valid queries with random arguments never raise, never log a failure, get
at most one reply each (valid KRPC, at most 1,024 bytes) and never grow state past a cap."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht import bencoding, krpc
from twisted_dht.addresses import Address
from twisted_dht.node import DHTNode
from twisted_dht.testing import FakeDatagramTransport

MAX_INFO_HASHES = 20
MAX_PEERS = 4
MAX_TRACKED = 16
MAX_QUEUED = 50
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

sources = st.tuples(
    st.sampled_from(["81.1.1.1", "81.1.2.1", "93.4.5.6", "10.0.0.7", "127.0.0.1", "1.0.0.1"])
    | st.builds(lambda a, b: f"95.{a}.{b}.1", st.integers(0, 255), st.integers(0, 255)),
    st.integers(1, 65535),
)

ids = st.binary(min_size=20, max_size=20)
leaves = (
    st.binary(max_size=40)
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([b"", b"n4", b"n6", b"\x00" * 20, b"\xff" * 26, b"x" * 38])
)
values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.binary(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
methods = st.sampled_from(
    [b"ping", b"find_node", b"get_peers", b"announce_peer", b"vote", b"sample_infohashes", b""]
) | st.binary(max_size=20)
argKeys = st.sampled_from(
    [b"id", b"target", b"info_hash", b"token", b"port", b"implied_port", b"want", b"seed"]
)


def validArgs(method: bytes, nodeId: bytes, key: bytes, port: int, token: bytes) -> dict:
    args: dict[bytes, Any] = {b"id": nodeId}
    if method == b"find_node":
        args[b"target"] = key
    elif method in (b"get_peers", b"announce_peer"):
        args[b"info_hash"] = key
    if method == b"announce_peer":
        args[b"port"] = port
        args[b"token"] = token
    return args


validMessages = st.builds(
    lambda method, tid, nodeId, key, port, token: {
        b"t": tid,
        b"y": b"q",
        b"q": method,
        b"a": validArgs(method, nodeId, key, port, token),
    },
    st.sampled_from([b"ping", b"find_node", b"get_peers", b"announce_peer"]),
    st.binary(min_size=1, max_size=4),
    ids,
    ids,
    st.integers(1, 65535),
    st.binary(min_size=8, max_size=8),
)


@st.composite
def mutatedMessages(draw: st.DrawFn) -> bytes:
    """A valid message with one structural and one byte-level mutation."""
    message = draw(validMessages)
    kind = draw(st.integers(0, 9))
    if kind == 0:  # wrong type or size for a known key
        message[draw(st.sampled_from([b"t", b"y", b"q", b"a", b"v", b"ro"]))] = draw(values)
    elif kind == 1:
        message[b"a"][draw(argKeys)] = draw(values)
    elif kind == 2:  # compact lists and a response shape
        message[b"y"] = b"r"
        message[b"r"] = {
            b"id": draw(st.binary(min_size=18, max_size=22)),
            b"nodes": draw(st.binary(max_size=100)),
            b"values": draw(st.lists(st.binary(max_size=20), max_size=5)),
            b"token": draw(st.binary(max_size=30)),
        }
        message[b"ip"] = draw(st.binary(max_size=20))
    elif kind == 3:
        message[b"y"] = b"e"
        message[b"e"] = draw(values)
    elif kind == 4:  # deep nesting inside the arguments
        depth = draw(st.integers(1, 400))
        data = bencoding.encode(message)
        return data[:-1] + b"1:z" + b"l" * depth + b"e" * depth + b"e"
    elif kind == 5:  # a huge declared length
        data = bencoding.encode(message)
        return data[:-1] + b"1:z" + str(draw(st.integers(10**3, 10**30))).encode() + b":ab" + b"e"
    elif kind == 6:
        del message[draw(st.sampled_from([b"t", b"y", b"q", b"a"]))]
    elif kind == 7:
        message[b"a"][b"port"] = draw(st.integers(-(2**64), 2**64))
        message[b"a"][b"implied_port"] = draw(values)
    data = bencoding.encode(message)
    mutation = draw(st.integers(0, 3))
    if mutation == 1:
        return data[: draw(st.integers(0, len(data)))]
    if mutation == 2:
        index = draw(st.integers(0, len(data) - 1))
        return data[:index] + bytes([draw(st.integers(0, 255))]) + data[index + 1 :]
    if mutation == 3:
        index = draw(st.integers(0, len(data)))
        return data[:index] + draw(st.binary(max_size=10)) + data[index:]
    return data


randomQueries = st.builds(
    lambda method, tid, nodeId, args: bencoding.encode(
        {b"t": tid, b"y": b"q", b"q": method, b"a": {**args, b"id": nodeId}}
    ),
    methods,
    st.binary(max_size=8),
    ids | st.binary(max_size=30),
    st.dictionaries(argKeys, values, max_size=6),
)


class ReceivePathFuzzTests(SynchronousTestCase):
    def makeNode(self) -> tuple[DHTNode, FakeDatagramTransport, Clock]:
        clock = Clock()
        node = DHTNode(
            b"\x11" * 20,
            reactor=clock,
            routers=[],
            maxInfoHashes=MAX_INFO_HASHES,
            maxPeersPerInfoHash=MAX_PEERS,
            maxQueuedQueries=MAX_QUEUED,
        )
        node.policy.blocker.maxTracked = MAX_TRACKED
        transport = FakeDatagramTransport(("81.0.0.1", 6881))
        node.ipv4.protocol.makeConnection(transport)  # type: ignore[arg-type]
        node.start(bootstrap=False)
        return node, transport, clock

    def deliver(self, datagrams: list[tuple[bytes, Address]], withTokens: bool = False) -> None:
        """Feed datagrams and check every property after each one."""
        node, transport, clock = self.makeNode()
        try:
            for data, address in datagrams:
                if withTokens:
                    data = self.withToken(node, data, address)
                before = len(transport.written)
                node.ipv4.protocol.datagramReceived(data, address)
                clock.advance(0.05)
                replies = 0
                for sent, destination in transport.written[before:]:
                    self.assertLessEqual(len(sent), krpc.MAX_REPLY_SIZE)
                    message = krpc.decodeMessage(sent)
                    if not isinstance(message, krpc.Query):
                        replies += 1
                        self.assertEqual(destination, address)
                self.assertLessEqual(replies, 1)
                self.assertEqual(self.flushLoggedErrors(), [])
                self.checkCaps(node)
        finally:
            node.stop()
            node.ipv4.protocol.stopProtocol()
        self.assertEqual(clock.getDelayedCalls(), [])

    @staticmethod
    def withToken(node: DHTNode, data: bytes, address: Address) -> bytes:
        """Give an announce_peer a valid token for its source, when it can be decoded."""
        try:
            message = bencoding.decode(data)
            args = message[b"a"]
            infoHash = args[b"info_hash"]
            if message[b"q"] == b"announce_peer" and isinstance(infoHash, bytes):
                args[b"token"] = node.tokenStore.generate(address[0], infoHash)
                return bencoding.encode(message)  # type: ignore[no-any-return]
        except Exception:
            pass
        return data

    def checkCaps(self, node: DHTNode) -> None:
        self.assertLessEqual(node.peerStore.infoHashCount(), MAX_INFO_HASHES)
        self.assertLessEqual(node.peerStore.peerCount(), MAX_INFO_HASHES * MAX_PEERS * 2)
        self.assertLessEqual(len(node.policy.blocker), MAX_TRACKED)
        self.assertLessEqual(node.queuedQueries, MAX_QUEUED)
        self.assertLessEqual(node.ipv4.protocol.pendingCount, 1000)
        self.assertLessEqual(len(node.ipv4.table), 160 * 8)

    @FUZZ
    @given(st.lists(st.tuples(st.binary(max_size=1500), sources), min_size=1, max_size=20))
    def test_randomBytes(self, datagrams: list[tuple[bytes, Address]]) -> None:
        """Random datagrams never raise, log failures or get more than one reply."""
        self.deliver(datagrams)

    @FUZZ
    @given(st.lists(st.tuples(mutatedMessages(), sources), min_size=1, max_size=20))
    def test_mutatedMessages(self, datagrams: list[tuple[bytes, Address]]) -> None:
        """Mutated valid messages (truncated, wrong types, huge lengths, deep nesting, bad
        ids, tokens, ports and compact lists) keep every receive-path property."""
        self.deliver(datagrams)

    @FUZZ
    @given(st.lists(st.tuples(randomQueries, sources), min_size=1, max_size=20))
    def test_randomArguments(self, datagrams: list[tuple[bytes, Address]]) -> None:
        """Queries with random argument values keep every receive-path property."""
        self.deliver(datagrams)

    @settings(max_examples=40, deadline=None)
    @given(
        st.lists(
            st.tuples(validMessages.map(bencoding.encode), sources), min_size=30, max_size=120
        )
    )
    def test_validTrafficStaysWithinCaps(self, datagrams: list[tuple[bytes, Address]]) -> None:
        """Valid queries, announces with valid tokens included, never exceed the peer
        store, tracker, queue or table caps."""
        self.deliver(datagrams, withTokens=True)
