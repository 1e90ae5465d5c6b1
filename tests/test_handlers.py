"""Tests for twisted_dht.handlers: the query handlers (the spec's phase 3), through the wire.

Every test sends real bencoded datagrams to KRPC protocols wired to the handlers, the
controller, the admission policy, the routing tables and the stores as a node wires them,
and decodes what the protocols sent: the path a query takes in production.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht import bencoding, krpc
from twisted_dht.addresses import Address, packAddress, packIP
from twisted_dht.admission import AMPLIFICATION, AdmissionPolicy
from twisted_dht.bloom import BloomFilter
from twisted_dht.contacts import Contact
from twisted_dht.controller import Controller
from twisted_dht.errors import ErrorCode
from twisted_dht.handlers import MAX_SAMPLES, SAMPLE_INTERVAL, QueryHandlers
from twisted_dht.nodeid import Identity
from twisted_dht.peers import PeerStore
from twisted_dht.protocol import KRPCProtocol
from twisted_dht.routing import RoutingTable
from twisted_dht.testing import FakeDatagramTransport
from twisted_dht.tokens import TokenStore

LOCAL_ID = b"\x11" * 20
REMOTE_ID = b"\x22" * 20
TARGET = b"\x33" * 20
INFO_HASH = b"\x44" * 20
HOST4: Address = ("192.168.1.1", 6881)
HOST6: Address = ("2001:db8::1", 6881)
REQUESTER: Address = ("192.168.1.100", 6881)
"""A local IPv4 requester: trusted with full-size replies."""
REQUESTER6: Address = ("2001:db8::100", 6881)
"""A public IPv6 requester, unverified until it announces."""
PUBLIC: Address = ("203.0.113.5", 6881)
"""A public IPv4 requester, unverified."""
ZONED: Address = ("fe80::1%eth0", 6881)


class HandlerTestCase(SynchronousTestCase):
    """A node's parts wired as DHTNode wires them, one protocol per family, on a Clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.wire()

    def wire(
        self,
        *,
        version: bytes | None = krpc.VERSION,
        ipRateLimit: float = 0,
        queryRateLimit: float = 0,
        uploadLimit: float = 0,
        amplification: float = AMPLIFICATION,
    ) -> None:
        """Build (again) the node's parts; the limits are off unless given."""
        clock = self.clock
        self.identity = Identity(LOCAL_ID)
        self.table4 = RoutingTable(LOCAL_ID, reactor=clock)
        self.table6 = RoutingTable(LOCAL_ID, reactor=clock)
        self.identity.onChange(self.table4.setOwnId)
        self.identity.onChange(self.table6.setOwnId)
        self.tokens = TokenStore()
        self.peers = PeerStore(reactor=clock)
        self.policy = AdmissionPolicy(
            reactor=clock,
            ipRateLimit=ipRateLimit,
            queryRateLimit=queryRateLimit,
            uploadLimit=uploadLimit,
            amplification=amplification,
            isResponder=self.isResponder,
        )
        self.handlers = QueryHandlers(
            self.identity,
            self.table4,
            self.table6,
            self.tokens,
            self.peers,
            self.policy,
            reactor=clock,
        )
        self.verified: list[tuple[Address, list[bytes]]] = []
        """Each address verified, with the datagrams sent to it by then."""
        self.controller = Controller(
            self.policy, [self.handlers], self.tableFor, reactor=clock, verify=self.verify
        )
        self.transport4 = FakeDatagramTransport(HOST4)
        self.transport6 = FakeDatagramTransport(HOST6)
        self.protocol4 = KRPCProtocol(self.controller, reactor=clock, version=version)
        self.protocol6 = KRPCProtocol(self.controller, reactor=clock, version=version)
        self.protocol4.makeConnection(self.transport4)
        self.protocol6.makeConnection(self.transport6)

    def tableFor(self, address: Address) -> RoutingTable:
        return self.table6 if ":" in address[0] else self.table4

    def isResponder(self, address: Address) -> bool:
        contact = self.tableFor(address).get(address)
        return contact is not None and contact.lastResponse is not None

    def verify(self, address: Address) -> None:
        transport = self.transport6 if ":" in address[0] else self.transport4
        self.verified.append((address, [data for data, to in transport.written if to == address]))

    def transportFor(self, address: Address) -> FakeDatagramTransport:
        return self.transport6 if ":" in address[0] else self.transport4

    def encode(
        self, method: bytes, args: dict[bytes, Any], tid: bytes = b"\xaa\xbb", **extra: Any
    ) -> bytes:
        """A query datagram (C{extra} are top-level keys)."""
        message = {b"t": tid, b"y": b"q", b"q": method, b"a": args}
        message.update({key.encode(): value for key, value in extra.items()})
        return bencoding.encode(message)

    def query(
        self, method: bytes, args: dict[bytes, Any], source: Address = REQUESTER, **kw: Any
    ) -> tuple[bytes, list[tuple[bytes, Address]]]:
        """Send one query from C{source}; return it and every datagram sent back."""
        transport = self.transportFor(source)
        other = self.transport4 if transport is self.transport6 else self.transport6
        before, otherBefore = len(transport.written), len(other.written)
        query = self.encode(method, args, **kw)
        protocol = self.protocol6 if transport is self.transport6 else self.protocol4
        protocol.datagramReceived(query, source)
        self.assertEqual(len(other.written), otherBefore)
        return query, transport.written[before:]

    def send(
        self, method: bytes, args: dict[bytes, Any], source: Address = REQUESTER, **kw: Any
    ) -> tuple[bytes, bytes]:
        """Send one query from C{source}; return it and the one datagram sent back."""
        query, sent = self.query(method, args, source, **kw)
        self.assertEqual(len(sent), 1)
        data, destination = sent[0]
        self.assertEqual(destination, source)
        self.assertLessEqual(len(data), krpc.MAX_REPLY_SIZE)
        return query, data

    def ask(
        self,
        method: bytes,
        args: dict[bytes, Any],
        source: Address = REQUESTER,
        tid: bytes = b"\xaa\xbb",
        **extra: Any,
    ) -> krpc.Message:
        """Send one query (C{extra} are top-level keys) and return the single reply."""
        _, data = self.send(method, args, source, tid=tid, **extra)
        reply = krpc.decodeMessage(data)
        self.assertEqual(reply.tid, tid)
        return reply

    def response(self, method: bytes, args: dict[bytes, Any], **kw: Any) -> krpc.Response:
        reply = self.ask(method, args, **kw)
        assert isinstance(reply, krpc.Response), reply
        self.assertEqual(reply.nodeId, LOCAL_ID)
        return reply

    def error(self, method: bytes, args: dict[bytes, Any], **kw: Any) -> krpc.Error:
        reply = self.ask(method, args, **kw)
        assert isinstance(reply, krpc.Error), reply
        return reply

    def addNodes(self, count: int, ipv6: bool = False) -> list[tuple[bytes, Address]]:
        """Put C{count} confirmed nodes into a table, each in a subnet of its own."""
        nodes = []
        for i in range(count):
            address = (f"2001:db8:{i + 1:x}::1", 7000) if ipv6 else (f"10.0.{i}.1", 7000)
            nodeId = bytes([0x30 + i]) * 20
            (self.table6 if ipv6 else self.table4).nodeResponded(nodeId, address)
            nodes.append((nodeId, address))
        return nodes

    def token(self, source: Address = REQUESTER, infoHash: bytes = INFO_HASH) -> bytes:
        reply = self.response(
            b"get_peers", {b"id": REMOTE_ID, b"info_hash": infoHash}, source=source
        )
        token = krpc.responseToken(reply)
        assert token is not None
        return token

    def contact(self, address: Address = REQUESTER) -> Contact:
        contact = self.tableFor(address).get(address)
        assert contact is not None
        return contact


class PingTests(HandlerTestCase):
    def test_respondsWithOwnId(self) -> None:
        """A ping is answered with our node id."""
        self.response(b"ping", {b"id": REMOTE_ID})

    def test_newIdAnswered(self) -> None:
        """After our id changes, ping and announce_peer replies carry the new one."""
        self.response(b"ping", {b"id": REMOTE_ID})
        token = self.token()
        self.identity.set(NEW_ID := b"\x55" * 20)
        queries: list[tuple[bytes, dict[bytes, Any]]] = [
            (b"ping", {b"id": REMOTE_ID}),
            (
                b"announce_peer",
                {b"id": REMOTE_ID, b"info_hash": INFO_HASH, b"port": 1, b"token": token},
            ),
            (b"find_node", {b"id": REMOTE_ID, b"target": TARGET}),
        ]
        for method, args in queries:
            reply = self.ask(method, args)
            assert isinstance(reply, krpc.Response), reply
            self.assertEqual(reply.nodeId, NEW_ID)

    def test_offersNodeToTable(self) -> None:
        """The pinging node is offered to the routing table as heard from."""
        self.response(b"ping", {b"id": REMOTE_ID})
        self.assertEqual(self.contact().nodeId, REMOTE_ID)
        self.assertIsNone(self.contact().lastResponse)

    def test_missingId(self) -> None:
        """A ping without an id gets error 203."""
        self.assertEqual(self.error(b"ping", {}).code, ErrorCode.PROTOCOL)

    def test_malformedIdNotAdded(self) -> None:
        """A query with a malformed id gets 203 and does not enter the table."""
        self.assertEqual(self.error(b"ping", {b"id": b"short"}).code, ErrorCode.PROTOCOL)
        self.assertEqual(len(self.table4), 0)

    def test_readOnlyNotAdded(self) -> None:
        """A read-only querier (ro=1, BEP 43) is answered but not added to the table."""
        self.response(b"ping", {b"id": REMOTE_ID}, ro=1)
        self.assertIsNone(self.table4.get(REQUESTER))

    def test_ipAndVersion(self) -> None:
        """Responses carry the requester's address as ip (BEP 42) and our version."""
        reply = self.response(b"ping", {b"id": REMOTE_ID})
        self.assertEqual(reply.ip, REQUESTER)
        self.assertEqual(reply.version, krpc.VERSION)

    def test_ipv6Requester(self) -> None:
        """An IPv6 requester is added to the IPv6 table and gets its 18-byte ip back."""
        reply = self.response(b"ping", {b"id": REMOTE_ID}, source=REQUESTER6)
        self.assertEqual(reply.ip, REQUESTER6)
        self.assertIsNotNone(self.table6.get(REQUESTER6))
        self.assertEqual(len(self.table4), 0)


class FindNodeTests(HandlerTestCase):
    def test_closestNodes(self) -> None:
        """find_node returns the closest nodes of the routing table, closest first."""
        nodes = self.addNodes(3)
        reply = self.response(b"find_node", {b"id": REMOTE_ID, b"target": TARGET})
        found = krpc.responseNodes(reply)
        self.assertEqual(found[0], (b"\x32" * 20, ("10.0.2.1", 7000)))
        self.assertEqual(sorted(found), sorted(nodes))

    def test_seesTableChanges(self) -> None:
        """A node added, failed or aged out after a find_node shows in the next one."""
        nodes = self.addNodes(2)
        ask = {b"id": REMOTE_ID, b"target": TARGET}
        self.assertEqual(len(krpc.responseNodes(self.response(b"find_node", ask))), 2)
        self.addNodes(3)
        self.assertEqual(len(krpc.responseNodes(self.response(b"find_node", ask))), 3)
        self.table4.nodeFailed(nodes[0][1])
        self.table4.nodeFailed(nodes[0][1])
        found = krpc.responseNodes(self.response(b"find_node", ask))
        self.assertNotIn(nodes[0], found)
        self.clock.advance(15 * 60.0)
        self.assertEqual(krpc.responseNodes(self.response(b"find_node", ask)), [])

    def test_atMostK(self) -> None:
        """find_node returns at most 8 nodes."""
        self.addNodes(12)
        reply = self.response(b"find_node", {b"id": REMOTE_ID, b"target": TARGET})
        self.assertEqual(len(krpc.responseNodes(reply)), 8)

    def test_offersNodeToTable(self) -> None:
        """The querying node is offered to the routing table."""
        self.response(b"find_node", {b"id": REMOTE_ID, b"target": TARGET})
        self.assertIsNotNone(self.table4.get(REQUESTER))

    def test_missingTarget(self) -> None:
        """find_node without a target gets error 203 naming the field."""
        error = self.error(b"find_node", {b"id": REMOTE_ID})
        self.assertEqual(error.code, ErrorCode.PROTOCOL)
        self.assertIn(b"target", error.message)

    def test_wrongTargetType(self) -> None:
        """find_node with a target that is not 20 bytes gets error 203."""
        for target in (5, b"short"):
            self.assertEqual(
                self.error(b"find_node", {b"id": REMOTE_ID, b"target": target}).code,
                ErrorCode.PROTOCOL,
            )

    def test_wantBoth(self) -> None:
        """want=[n4, n6] returns both nodes and nodes6 (BEP 32)."""
        self.addNodes(2)
        self.addNodes(2, ipv6=True)
        reply = self.response(
            b"find_node", {b"id": REMOTE_ID, b"target": TARGET, b"want": [b"n4", b"n6"]}
        )
        self.assertEqual(len(krpc.responseNodes(reply)), 2)
        self.assertEqual(len(krpc.responseNodes(reply, ipv6=True)), 2)

    def test_defaultFamilyFollowsTransport(self) -> None:
        """Without want, an IPv6 requester gets nodes6 and no nodes, an IPv4 one the
        reverse."""
        self.addNodes(2)
        self.addNodes(2, ipv6=True)
        reply = self.response(
            b"find_node", {b"id": REMOTE_ID, b"target": TARGET}, source=REQUESTER6
        )
        self.assertNotIn(b"nodes", reply.values)
        self.assertEqual(len(krpc.responseNodes(reply, ipv6=True)), 2)
        reply = self.response(b"find_node", {b"id": REMOTE_ID, b"target": TARGET})
        self.assertNotIn(b"nodes6", reply.values)
        self.assertEqual(len(krpc.responseNodes(reply)), 2)

    def test_wantOnlyN6OverIPv4(self) -> None:
        """want=[n6] over IPv4 returns nodes6 only."""
        self.addNodes(2, ipv6=True)
        reply = self.response(
            b"find_node", {b"id": REMOTE_ID, b"target": TARGET, b"want": [b"n6"]}
        )
        self.assertNotIn(b"nodes", reply.values)
        self.assertIn(b"nodes6", reply.values)

    def test_wantUnknownFamiliesOnly(self) -> None:
        """want naming no known family answers in the requester's family."""
        self.addNodes(2)
        reply = self.response(
            b"find_node", {b"id": REMOTE_ID, b"target": TARGET, b"want": [b"n9"]}
        )
        self.assertEqual(len(krpc.responseNodes(reply)), 2)

    def test_wantMalformed(self) -> None:
        """A want that is not a list of strings gets 203."""
        error = self.error(b"find_node", {b"id": REMOTE_ID, b"target": TARGET, b"want": 4})
        self.assertEqual(error.code, ErrorCode.PROTOCOL)


class GetPeersTests(HandlerTestCase):
    def test_token(self) -> None:
        """get_peers always returns a token."""
        self.assertTrue(self.token())

    def test_peersWhenKnown(self) -> None:
        """get_peers returns the stored peers as values."""
        self.peers.addPeer(INFO_HASH, ("10.0.0.1", 6881))
        self.peers.addPeer(INFO_HASH, ("10.0.0.2", 6882))
        reply = self.response(b"get_peers", {b"id": REMOTE_ID, b"info_hash": INFO_HASH})
        self.assertEqual(
            sorted(krpc.responseValues(reply)), [("10.0.0.1", 6881), ("10.0.0.2", 6882)]
        )

    def test_seesPeerChanges(self) -> None:
        """A peer announced, refreshed or expired after a get_peers shows in the next one."""
        ask = {b"id": REMOTE_ID, b"info_hash": INFO_HASH}
        self.peers.addPeer(INFO_HASH, ("10.0.0.1", 6881))
        self.clock.advance(60.0)
        self.peers.addPeer(INFO_HASH, ("10.0.0.2", 6882))
        values = krpc.responseValues(self.response(b"get_peers", ask))
        self.assertEqual(values, [("10.0.0.1", 6881), ("10.0.0.2", 6882)])
        self.clock.advance(60.0)
        self.peers.addPeer(INFO_HASH, ("10.0.0.1", 6881))
        values = krpc.responseValues(self.response(b"get_peers", ask))
        self.assertEqual(values, [("10.0.0.2", 6882), ("10.0.0.1", 6881)])
        self.peers.addPeer(INFO_HASH, ("10.0.0.3", 6883))
        self.assertEqual(len(krpc.responseValues(self.response(b"get_peers", ask))), 3)
        self.clock.advance(1800.0 - 60.0)  # the announce of 10.0.0.2 expires
        values = krpc.responseValues(self.response(b"get_peers", ask))
        self.assertEqual(values, [("10.0.0.1", 6881), ("10.0.0.3", 6883)])

    def test_nodesWithValues(self) -> None:
        """get_peers returns nodes alongside values, as libtorrent and jech do."""
        self.addNodes(3)
        self.peers.addPeer(INFO_HASH, ("10.0.0.1", 6881))
        reply = self.response(b"get_peers", {b"id": REMOTE_ID, b"info_hash": INFO_HASH})
        self.assertEqual(len(krpc.responseValues(reply)), 1)
        self.assertEqual(len(krpc.responseNodes(reply)), 3)

    def test_closestNodesWhenNoPeers(self) -> None:
        """Without peers, get_peers returns closest nodes and no values."""
        self.addNodes(1)
        reply = self.response(b"get_peers", {b"id": REMOTE_ID, b"info_hash": INFO_HASH})
        self.assertNotIn(b"values", reply.values)
        self.assertEqual(len(krpc.responseNodes(reply)), 1)

    def test_missingInfoHash(self) -> None:
        """get_peers without info_hash gets error 203 naming the field."""
        error = self.error(b"get_peers", {b"id": REMOTE_ID})
        self.assertEqual(error.code, ErrorCode.PROTOCOL)
        self.assertIn(b"info_hash", error.message)

    def test_valuesFitReplyBudget(self) -> None:
        """With many peers and full node lists, the reply stays within 1,024 bytes."""
        self.addNodes(8)
        self.addNodes(8, ipv6=True)
        for i in range(100):
            self.peers.addPeer(INFO_HASH, (f"10.1.{i}.1", 6881))
        reply = self.response(
            b"get_peers",
            {b"id": REMOTE_ID, b"info_hash": INFO_HASH, b"want": [b"n4", b"n6"]},
            tid=b"x" * 32,
        )
        self.assertGreater(len(krpc.responseValues(reply)), 10)
        self.assertEqual(len(krpc.responseNodes(reply)), 8)
        self.assertEqual(len(krpc.responseNodes(reply, ipv6=True)), 8)

    def test_about50IPv4Values(self) -> None:
        """A reply with 8 IPv4 nodes carries dozens of values (a random sample), not all 100."""
        self.addNodes(8)
        for i in range(100):
            self.peers.addPeer(INFO_HASH, (f"10.1.{i}.1", 6881))
        reply = self.response(b"get_peers", {b"id": REMOTE_ID, b"info_hash": INFO_HASH})
        count = len(krpc.responseValues(reply))
        self.assertTrue(50 <= count < 100, count)
        self.assertEqual(len(krpc.responseNodes(reply)), 8)

    def test_ipv6ValuesAreAUniformSampleWithinBudget(self) -> None:
        """More IPv6 peers than fit (21 bytes each): every reply to a verified requester
        carries distinct stored peers up to the full budget, and over replies every
        stored peer comes up."""
        self.addNodes(8, ipv6=True)
        token = self.token(source=REQUESTER6)
        announce = {b"id": REMOTE_ID, b"info_hash": INFO_HASH, b"port": 6881, b"token": token}
        self.response(b"announce_peer", announce, source=REQUESTER6)  # now verified
        stored = {(f"2001:db8::{i + 1:x}", 6881) for i in range(99)} | {REQUESTER6}
        for address in stored:
            self.peers.addPeer(INFO_HASH, address)
        seen: set[Address] = set()
        for _ in range(60):
            reply = self.response(
                b"get_peers", {b"id": REMOTE_ID, b"info_hash": INFO_HASH}, source=REQUESTER6
            )
            values = krpc.responseValues(reply)
            self.assertGreater(len(values), 25)
            self.assertEqual(len(set(values)), len(values))
            self.assertLessEqual(set(values), stored)
            seen.update(values)
        # About 30 of 100 per reply: a peer misses all 60 with probability 0.7**60 ~ 5e-10.
        self.assertEqual(seen, stored)

    def test_valuesFollowTransportFamily(self) -> None:
        """An IPv6 requester gets IPv6 peers only; an IPv4 requester IPv4 peers only."""
        self.peers.addPeer(INFO_HASH, ("10.0.0.1", 6881))
        self.peers.addPeer(INFO_HASH, ("2001:db8::1", 6881))
        reply = self.response(b"get_peers", {b"id": REMOTE_ID, b"info_hash": INFO_HASH})
        self.assertEqual(krpc.responseValues(reply), [("10.0.0.1", 6881)])
        reply6 = self.response(
            b"get_peers", {b"id": REMOTE_ID, b"info_hash": INFO_HASH}, source=REQUESTER6
        )
        self.assertEqual(krpc.responseValues(reply6), [("2001:db8::1", 6881)])

    def test_bootstrapFlagAccepted(self) -> None:
        """libtorrent's bootstrap get_peers with bs=1 is answered normally."""
        self.response(b"get_peers", {b"id": REMOTE_ID, b"info_hash": INFO_HASH, b"bs": 1})


class AnnouncePeerTests(HandlerTestCase):
    def announce(self, source: Address = REQUESTER, **args: Any) -> krpc.Message:
        base: dict[bytes, Any] = {b"id": REMOTE_ID, b"info_hash": INFO_HASH}
        base.update({key.encode(): value for key, value in args.items()})
        return self.ask(b"announce_peer", base, source=source)

    def test_storesPeer(self) -> None:
        """A valid announce stores the source IP with the given port."""
        reply = self.announce(port=6881, token=self.token())
        self.assertIsInstance(reply, krpc.Response)
        self.assertEqual(self.peers.getPeers(INFO_HASH), [(REQUESTER[0], 6881)])

    def test_impliedPort(self) -> None:
        """implied_port=1 stores the UDP source port, ignoring port."""
        source = (REQUESTER[0], 12345)
        token = self.token(source)
        self.assertIsInstance(
            self.announce(source, port=6881, implied_port=1, token=token), krpc.Response
        )
        self.assertEqual(self.peers.getPeers(INFO_HASH), [(REQUESTER[0], 12345)])

    def test_impliedPortWithoutPort(self) -> None:
        """implied_port=1 needs no port argument."""
        self.assertIsInstance(self.announce(implied_port=1, token=self.token()), krpc.Response)
        self.assertEqual(self.peers.getPeers(INFO_HASH), [REQUESTER])

    def test_impliedPortZeroUsesPort(self) -> None:
        """implied_port=0 stores the given port."""
        self.announce(port=6889, implied_port=0, token=self.token())
        self.assertEqual(self.peers.getPeers(INFO_HASH), [(REQUESTER[0], 6889)])

    def test_invalidToken(self) -> None:
        """An invalid token gets error 203 and stores nothing."""
        reply = self.announce(port=6881, token=b"\xff" * 8)
        assert isinstance(reply, krpc.Error)
        self.assertEqual((reply.code, reply.message), (203, b"invalid token"))
        self.assertEqual(self.peers.getPeers(INFO_HASH), [])

    def test_tokenOfAnotherIP(self) -> None:
        """A token given to another IP is rejected."""
        token = self.token(("192.168.1.101", 6881))
        reply = self.announce(port=6881, token=token)
        assert isinstance(reply, krpc.Error)
        self.assertEqual(reply.code, ErrorCode.PROTOCOL)

    def test_tokenOfAnotherInfoHash(self) -> None:
        """A token for one info_hash cannot announce another."""
        token = self.token(infoHash=b"\x55" * 20)
        reply = self.announce(port=6881, token=token)
        assert isinstance(reply, krpc.Error)
        self.assertEqual(reply.code, ErrorCode.PROTOCOL)

    def test_tokenExpiresAfterTwoRotations(self) -> None:
        """A token stays valid across one rotation and is rejected after two."""
        token = self.token()
        self.tokens.rotate()
        self.assertIsInstance(self.announce(port=6881, token=token), krpc.Response)
        self.tokens.rotate()
        self.assertIsInstance(self.announce(port=6881, token=token), krpc.Error)

    def test_missingToken(self) -> None:
        """An announce without a token gets 203 naming the field."""
        reply = self.announce(port=6881)
        assert isinstance(reply, krpc.Error)
        self.assertEqual(reply.code, ErrorCode.PROTOCOL)
        self.assertIn(b"token", reply.message)

    def test_missingPort(self) -> None:
        """An announce without port and without implied_port gets 203 naming the field."""
        reply = self.announce(token=self.token())
        assert isinstance(reply, krpc.Error)
        self.assertEqual(reply.code, ErrorCode.PROTOCOL)
        self.assertIn(b"port", reply.message)

    def test_missingInfoHash(self) -> None:
        """An announce without info_hash gets 203 naming the field."""
        reply = self.ask(b"announce_peer", {b"id": REMOTE_ID, b"port": 1, b"token": b"x"})
        assert isinstance(reply, krpc.Error)
        self.assertEqual(reply.code, ErrorCode.PROTOCOL)
        self.assertIn(b"info_hash", reply.message)

    def test_portZero(self) -> None:
        """Port 0 is rejected with 203."""
        reply = self.announce(port=0, token=self.token())
        assert isinstance(reply, krpc.Error)
        self.assertEqual(reply.code, ErrorCode.PROTOCOL)

    def test_portTooLarge(self) -> None:
        """A port above 65535 is rejected with 203."""
        reply = self.announce(port=70000, token=self.token())
        assert isinstance(reply, krpc.Error)
        self.assertEqual(reply.code, ErrorCode.PROTOCOL)

    def test_portWrongType(self) -> None:
        """A port that is not an integer is rejected with 203."""
        reply = self.announce(port=b"6881", token=self.token())
        assert isinstance(reply, krpc.Error)
        self.assertEqual(reply.code, ErrorCode.PROTOCOL)
        self.assertEqual(self.peers.getPeers(INFO_HASH), [])

    def test_seedFlagStored(self) -> None:
        """seed=1 (BEP 33) is stored with the peer."""
        self.announce(port=6881, token=self.token(), seed=1)
        compact = packAddress((REQUESTER[0], 6881))
        self.assertEqual(self.peers.getSeedsAndPeers(INFO_HASH, False), ([compact], []))

    def test_ipv6Announce(self) -> None:
        """An IPv6 announce stores an IPv6 peer, returned to IPv6 requesters."""
        token = self.token(REQUESTER6)
        self.assertIsInstance(self.announce(REQUESTER6, port=6881, token=token), krpc.Response)
        self.assertEqual(self.peers.getPeers(INFO_HASH, ipv6=True), [(REQUESTER6[0], 6881)])

    def test_allIPv6HostsGetDistinctTokens(self) -> None:
        """Two IPv6 hosts get different tokens (the spec's zero-mapping flaw is fixed)."""
        self.assertNotEqual(self.token(REQUESTER6), self.token(("2001:db8::101", 6881)))

    def test_validTokenVerifies(self) -> None:
        """A requester that announced with a valid token is verified: its replies get
        the full budget; an invalid token verifies nothing."""
        self.assertFalse(self.policy.isVerified(PUBLIC))
        self.announce(PUBLIC, port=6881, token=b"\xff" * 8)
        self.assertFalse(self.policy.isVerified(PUBLIC))
        self.announce(PUBLIC, port=6881, token=self.token(PUBLIC))
        self.assertTrue(self.policy.isVerified(PUBLIC))


class RoutingOfQueriesTests(HandlerTestCase):
    def test_unknownMethod(self) -> None:
        """An unknown method gets error 204."""
        self.assertEqual(self.error(b"foobar", {b"id": REMOTE_ID}).code, ErrorCode.METHOD_UNKNOWN)

    def test_eachMethodRouted(self) -> None:
        """ping, find_node, get_peers, sample_infohashes and announce_peer each get a
        response."""
        self.response(b"ping", {b"id": REMOTE_ID})
        self.response(b"find_node", {b"id": REMOTE_ID, b"target": TARGET})
        self.response(b"sample_infohashes", {b"id": REMOTE_ID, b"target": TARGET})
        token = self.token()
        self.response(
            b"announce_peer",
            {b"id": REMOTE_ID, b"info_hash": INFO_HASH, b"port": 6881, b"token": token},
        )

    def test_noReplyToResponsesOrErrors(self) -> None:
        """Responses and errors are never answered, whatever they contain."""
        self.protocol4.datagramReceived(krpc.encodeResponse(b"zz", {b"id": REMOTE_ID}), REQUESTER)
        self.protocol4.datagramReceived(krpc.encodeError(b"zz", 203, "bad"), REQUESTER)
        self.assertEqual(self.transport4.written, [])

    def test_zonedIPv6Requester(self) -> None:
        """A requester with a zoned IPv6 address (fe80::1%eth0) is answered: ping,
        find_node, get_peers and an announce with its token, its ip echoed without the
        zone."""
        self.addNodes(2, ipv6=True)
        ping = self.response(b"ping", {b"id": REMOTE_ID}, source=ZONED)
        self.assertEqual(ping.ip, ("fe80::1", 6881))
        found = self.response(b"find_node", {b"id": REMOTE_ID, b"target": TARGET}, source=ZONED)
        self.assertEqual(len(krpc.responseNodes(found, ipv6=True)), 2)
        token = self.token(ZONED)
        reply = self.ask(
            b"announce_peer",
            {b"id": REMOTE_ID, b"info_hash": INFO_HASH, b"port": 6881, b"token": token},
            source=ZONED,
        )
        self.assertIsInstance(reply, krpc.Response)
        self.assertEqual(self.peers.getPeers(INFO_HASH, ipv6=True), [("fe80::1", 6881)])
        self.assertEqual(self.flushLoggedErrors(), [])


class QuerierOfferTests(HandlerTestCase):
    """Queriers are offered to the routing table once per second of the clock, and a
    newcomer is verified once its reply was sent."""

    def test_repeatWithinSecondOfferedOnce(self) -> None:
        """A node querying again in the same second is answered without a table update;
        in the next second it is offered again."""
        self.clock.advance(10.2)
        self.response(b"ping", {b"id": REMOTE_ID})
        self.assertEqual(self.contact().lastQuery, 10.2)
        self.clock.advance(0.5)
        self.response(b"ping", {b"id": REMOTE_ID})
        self.assertEqual(self.contact().lastQuery, 10.2)
        self.clock.advance(0.5)
        self.response(b"ping", {b"id": REMOTE_ID})
        self.assertEqual(self.contact().lastQuery, 11.2)

    def test_otherIdOrAddressOffered(self) -> None:
        """Within the second, other addresses, and another id from the same address, are
        offered as usual."""
        other: Address = ("192.168.1.101", 6881)
        self.response(b"ping", {b"id": REMOTE_ID})
        self.response(b"ping", {b"id": b"\x24" * 20}, source=other)
        self.assertIsNot(self.table4.get(other), None)
        self.table4.nodeFailed(REQUESTER)  # never answered: removed at once
        self.response(b"ping", {b"id": b"\x23" * 20})
        self.assertEqual(self.contact().nodeId, b"\x23" * 20)

    def test_readOnlyNeverOffered(self) -> None:
        """A read-only querier (BEP 43) stays out of the table and is not verified."""
        self.response(b"ping", {b"id": REMOTE_ID}, ro=1)
        self.assertIsNone(self.table4.get(REQUESTER))
        self.assertEqual(self.verified, [])

    def test_newcomerVerifiedAfterItsReply(self) -> None:
        """A newcomer is verified once, after its reply was sent, whatever it asked."""
        self.addNodes(3)
        for source, method, args in [
            (REQUESTER, b"ping", {b"id": REMOTE_ID}),
            (REQUESTER6, b"find_node", {b"id": REMOTE_ID, b"target": TARGET}),
            (PUBLIC, b"get_peers", {b"id": b"\x23" * 20, b"info_hash": INFO_HASH}),
            (("10.9.9.9", 1), b"vote", {b"id": b"\x24" * 20}),
        ]:
            _, data = self.send(method, args, source)
            address, sentBefore = self.verified[-1]
            self.assertEqual(address, source)
            self.assertEqual(sentBefore, [data])
        self.clock.advance(5)
        self.response(b"ping", {b"id": REMOTE_ID})
        self.assertEqual(len(self.verified), 4)

    def test_responderNotVerified(self) -> None:
        """A contact that answered one of our queries is not verified when it queries."""
        self.table4.nodeResponded(REMOTE_ID, REQUESTER)
        self.response(b"ping", {b"id": REMOTE_ID})
        self.assertEqual(self.verified, [])


class ScrapeTests(HandlerTestCase):
    """BEP 33 on get_peers: bloom filters with scrape=1, non-seeds first with noseed=1."""

    def store(self, seeds: int, others: int, ipv6: bool = False) -> tuple[list[str], list[str]]:
        """Store C{seeds} seeds then C{others} other peers; their IPs."""
        hosts = [
            f"2001:db8:5::{i + 1:x}" if ipv6 else f"10.5.{i}.1" for i in range(seeds + others)
        ]
        for i, host in enumerate(hosts):
            self.peers.addPeer(INFO_HASH, (host, 6881), seed=i < seeds)
        return hosts[:seeds], hosts[seeds:]

    def scrape(self, source: Address = REQUESTER, **args: Any) -> krpc.Response:
        base: dict[bytes, Any] = {b"id": REMOTE_ID, b"info_hash": INFO_HASH, b"scrape": 1}
        base.update({key.encode(): value for key, value in args.items()})
        return self.response(b"get_peers", base, source=source)

    def test_filters(self) -> None:
        """scrape=1 adds BFsd and BFpe, the 256-byte filters of the stored seeds and other
        peers of the requester's family, next to the token, nodes and values."""
        self.addNodes(8)
        seeds, others = self.store(3, 5)
        self.store(4, 4, ipv6=True)
        reply = self.scrape()
        self.assertEqual(reply.values[b"BFsd"], BloomFilter.ofIPs(map(packIP, seeds)).toBytes())
        self.assertEqual(reply.values[b"BFpe"], BloomFilter.ofIPs(map(packIP, others)).toBytes())
        self.assertEqual(len(krpc.responseValues(reply)), 8)
        self.assertEqual(len(krpc.responseNodes(reply)), 8)
        self.assertIsNotNone(krpc.responseToken(reply))

    def test_ipv6Filters(self) -> None:
        """An IPv6 requester (verified by its announce) gets the filters of the IPv6
        peers, its own announce among them."""
        self.store(2, 2)
        seeds, others = self.store(1, 6, ipv6=True)
        token = self.token(source=REQUESTER6)
        announce = {b"id": REMOTE_ID, b"info_hash": INFO_HASH, b"port": 6881, b"token": token}
        self.response(b"announce_peer", announce, source=REQUESTER6)
        others.append(REQUESTER6[0])
        reply = self.scrape(source=REQUESTER6)
        self.assertEqual(reply.values[b"BFsd"], BloomFilter.ofIPs(map(packIP, seeds)).toBytes())
        self.assertEqual(reply.values[b"BFpe"], BloomFilter.ofIPs(map(packIP, others)).toBytes())

    def test_nothingStoredNoFilters(self) -> None:
        """Without entries of the requester's family, a scrape gets no filters."""
        self.store(2, 2, ipv6=True)
        reply = self.scrape()
        self.assertNotIn(b"BFsd", reply.values)
        self.assertNotIn(b"BFpe", reply.values)
        self.assertNotIn(b"values", reply.values)

    def test_withoutScrapeNoFilters(self) -> None:
        """A plain get_peers, or scrape=0, gets no filters."""
        self.store(2, 2)
        reply = self.scrape(scrape=0)
        self.assertNotIn(b"BFsd", reply.values)
        self.assertEqual(len(krpc.responseValues(reply)), 4)

    def test_noSeedPrefersOthers(self) -> None:
        """noseed=1 fills values with non-seeds first, then seeds."""
        self.addNodes(8)
        seeds, others = self.store(60, 40)
        hosts = [host for host, _ in krpc.responseValues(self.scrape(scrape=0, noseed=1))]
        self.assertGreater(len(hosts), 40)
        self.assertEqual(set(hosts[:40]), set(others))
        self.assertLessEqual(set(hosts[40:]), set(seeds))
        reply = self.scrape(noseed=1)
        hosts = [host for host, _ in krpc.responseValues(reply)]
        self.assertGreater(len(hosts), 5)
        self.assertLessEqual(set(hosts), set(others))
        self.assertIn(b"BFsd", reply.values)

    def test_fullReplyFits(self) -> None:
        """With 100 peers, both node lists and a 32-byte tid, a scrape reply keeps its
        filters and its family's 8 nodes within 1,024 bytes."""
        self.addNodes(8)
        self.addNodes(8, ipv6=True)
        self.store(50, 50)
        reply = self.scrape(want=[b"n4", b"n6"], tid=b"x" * 32)
        self.assertEqual(len(reply.values[b"BFsd"]), 256)
        self.assertEqual(len(reply.values[b"BFpe"]), 256)
        self.assertEqual(len(krpc.responseNodes(reply)), 8)

    def test_nodesTrimmedBeforeFilters(self) -> None:
        """When the filters do not fit with every node, nodes are dropped to make room."""
        self.wire(amplification=7)
        self.addNodes(8)
        self.store(5, 5)
        query, data = self.send(
            b"get_peers",
            {b"id": REMOTE_ID, b"info_hash": INFO_HASH, b"scrape": 1},
            source=PUBLIC,
        )
        self.assertLessEqual(len(data), 7 * len(query))
        reply = krpc.decodeMessage(data)
        assert isinstance(reply, krpc.Response)
        self.assertIn(b"BFsd", reply.values)
        self.assertTrue(0 < len(krpc.responseNodes(reply)) < 8)

    def test_filtersDroppedWhenTheyCannotFit(self) -> None:
        """An unverified requester's 4x budget cannot hold the filters: they go, and the
        nodes all stay."""
        self.addNodes(8)
        self.store(5, 5)
        query, data = self.send(
            b"get_peers",
            {b"id": REMOTE_ID, b"info_hash": INFO_HASH, b"scrape": 1},
            source=PUBLIC,
        )
        self.assertLessEqual(len(data), 4 * len(query))
        reply = krpc.decodeMessage(data)
        assert isinstance(reply, krpc.Response)
        self.assertNotIn(b"BFsd", reply.values)
        self.assertEqual(len(krpc.responseNodes(reply)), 8)

    def test_badFlags(self) -> None:
        """A scrape or noseed that is not an integer gets error 203."""
        for flag in (b"scrape", b"noseed"):
            error = self.error(
                b"get_peers", {b"id": REMOTE_ID, b"info_hash": INFO_HASH, flag: b"yes"}
            )
            self.assertEqual(error.code, ErrorCode.PROTOCOL)


class SampleInfoHashesTests(HandlerTestCase):
    def sample(self, source: Address = REQUESTER) -> krpc.Response:
        return self.response(
            b"sample_infohashes", {b"id": REMOTE_ID, b"target": TARGET}, source=source
        )

    def store(self, count: int) -> list[bytes]:
        hashes = [bytes([i]) * 20 for i in range(1, count + 1)]
        for infoHash in hashes:
            self.peers.addPeer(infoHash, ("10.0.0.1", 6881))
        return hashes

    def test_samplesNumIntervalNodes(self) -> None:
        """BEP 51: samples of stored info_hashes, num, interval and the closest nodes."""
        hashes = self.store(5)
        self.addNodes(3)
        reply = self.sample()
        samples = reply.values[b"samples"]
        self.assertEqual(sorted(samples[i : i + 20] for i in range(0, len(samples), 20)), hashes)
        self.assertEqual(reply.values[b"num"], 5)
        self.assertEqual(reply.values[b"interval"], SAMPLE_INTERVAL)
        self.assertEqual(SAMPLE_INTERVAL, 21600)
        self.assertEqual(len(krpc.responseNodes(reply)), 3)

    def test_emptyStoreStillSendsSamples(self) -> None:
        """With nothing stored, samples is present and empty, so support is visible."""
        reply = self.sample()
        self.assertEqual((reply.values[b"samples"], reply.values[b"num"]), (b"", 0))

    def test_atMost20Samples(self) -> None:
        """A sample holds at most 20 info_hashes, and num counts them all."""
        self.store(50)
        reply = self.sample()
        self.assertEqual(MAX_SAMPLES, 20)
        self.assertEqual(len(reply.values[b"samples"]), 20 * 20)
        self.assertEqual(reply.values[b"num"], 50)

    def test_sampleStandsForTheInterval(self) -> None:
        """The same sample is given out until the interval passes, then a new one."""
        self.store(60)
        first = self.sample().values[b"samples"]
        self.clock.advance(21599)
        self.assertEqual(self.sample().values[b"samples"], first)
        self.clock.advance(2)
        self.peers.addPeer(b"\xee" * 20, ("10.0.0.2", 6881))
        self.assertNotEqual(self.sample().values[b"samples"], first)

    def test_shortSampleFollowsGrowth(self) -> None:
        """A sample short of 20 is drawn again as soon as the store has grown past it (for
        a requester that was not answered within the interval)."""
        self.store(2)
        self.assertEqual(len(self.sample().values[b"samples"]), 40)
        self.peers.addPeer(b"\xee" * 20, ("10.0.0.2", 6881))
        self.assertEqual(len(self.sample(("192.168.1.101", 6881)).values[b"samples"]), 60)

    def test_repeatGetsTheCachedSample(self) -> None:
        """An IP asking again within the interval gets the sample it had, even though the
        store has grown since, and counts as cached."""
        self.store(2)
        first = self.sample().values[b"samples"]
        self.peers.addPeer(b"\xee" * 20, ("10.0.0.2", 6881))
        self.clock.advance(60)
        self.assertEqual(self.sample().values[b"samples"], first)
        self.assertEqual(self.handlers.sampleRepeats, {"cached": 1, "dropped": 0})

    def test_fasterThanTheIntervalGetsNothing(self) -> None:
        """After its one cached repeat, an IP asking again within the interval gets no
        reply (counted as dropped), whatever its port; other IPs are answered, and so is
        it once the interval has passed since its first answer."""
        self.store(5)
        self.sample()
        self.sample()
        for port in (6881, 7000):
            _, sent = self.query(
                b"sample_infohashes",
                {b"id": REMOTE_ID, b"target": TARGET},
                (REQUESTER[0], port),
            )
            self.assertEqual(sent, [])
        self.assertEqual(self.handlers.sampleRepeats, {"cached": 1, "dropped": 2})
        self.sample(("192.168.1.101", 6881))
        self.clock.advance(SAMPLE_INTERVAL)
        self.assertEqual(len(self.sample().values[b"samples"]), 100)
        self.assertEqual(self.handlers.sampleRepeats, {"cached": 1, "dropped": 2})

    def test_missingTargetBeforeTheLimit(self) -> None:
        """A query without a target is an error however often its IP asks."""
        for _ in range(4):
            self.assertEqual(self.error(b"sample_infohashes", {b"id": REMOTE_ID}).code, 203)
        self.assertEqual(self.handlers.sampleRepeats, {"cached": 0, "dropped": 0})

    def test_fullReplyFits(self) -> None:
        """20 samples with nodes and nodes6 and a 32-byte tid stay within 1,024 bytes."""
        self.store(40)
        self.addNodes(8)
        self.addNodes(8, ipv6=True)
        reply = self.response(
            b"sample_infohashes",
            {b"id": REMOTE_ID, b"target": TARGET, b"want": [b"n4", b"n6"]},
            tid=b"x" * 32,
        )
        self.assertGreater(len(reply.values[b"samples"]), 0)
        self.assertEqual(len(reply.values[b"samples"]) % 20, 0)

    def test_missingTarget(self) -> None:
        """sample_infohashes without a target gets error 203."""
        error = self.error(b"sample_infohashes", {b"id": REMOTE_ID})
        self.assertEqual(error.code, ErrorCode.PROTOCOL)

    def test_unverifiedRequesterTrimmed(self) -> None:
        """A public requester we have not verified gets at most 4x its query's size."""
        self.store(40)
        self.addNodes(8)
        query, data = self.send(
            b"sample_infohashes", {b"id": REMOTE_ID, b"target": TARGET}, source=PUBLIC
        )
        self.assertLessEqual(len(data), 4 * len(query))
        reply = krpc.decodeMessage(data)
        assert isinstance(reply, krpc.Response)
        self.assertIn(b"samples", reply.values)


class AmplificationTests(HandlerTestCase):
    """Replies to unverified requesters stay within 4x their query; nodes of the other
    family go first, then the requester's, and values get what room is left."""

    def setUp(self) -> None:
        super().setUp()
        self.addNodes(8)
        self.addNodes(8, ipv6=True)
        for i in range(50):
            self.peers.addPeer(INFO_HASH, (f"10.1.{i}.1", 6881))
            self.peers.addPeer(INFO_HASH, (f"2001:db8:1::{i + 1:x}", 6881))

    def findBoth(self, source: Address) -> tuple[bytes, krpc.Response]:
        query, data = self.send(
            b"find_node",
            {b"id": REMOTE_ID, b"target": TARGET, b"want": [b"n4", b"n6"]},
            source=source,
        )
        reply = krpc.decodeMessage(data)
        assert isinstance(reply, krpc.Response)
        self.assertLessEqual(len(data), 4 * len(query))
        return query, reply

    def test_otherFamilyTrimmedFirst(self) -> None:
        """An unverified IPv4 requester keeps its 8 IPv4 nodes and loses IPv6 ones; an
        unverified IPv6 requester the reverse."""
        _, reply = self.findBoth(PUBLIC)
        self.assertEqual(len(krpc.responseNodes(reply)), 8)
        self.assertLess(len(krpc.responseNodes(reply, ipv6=True)), 8)
        _, reply = self.findBoth(REQUESTER6)
        self.assertEqual(len(krpc.responseNodes(reply, ipv6=True)), 8)
        self.assertLess(len(krpc.responseNodes(reply)), 8)

    def test_getPeersValuesLast(self) -> None:
        """An unverified requester's get_peers keeps its nodes; values fill what is
        left of its budget."""
        query, data = self.send(
            b"get_peers", {b"id": REMOTE_ID, b"info_hash": INFO_HASH}, source=PUBLIC
        )
        self.assertLessEqual(len(data), 4 * len(query))
        reply = krpc.decodeMessage(data)
        assert isinstance(reply, krpc.Response)
        self.assertEqual(len(krpc.responseNodes(reply)), 8)
        self.assertLess(len(krpc.responseValues(reply)), 50)
        self.assertGreater(len(data) + 8, 4 * len(query))  # one more value would not fit

    def test_verifiedGetsFullReply(self) -> None:
        """Local requesters, announcers with a valid token and contacts that answered
        us get the full 1,024 bytes."""
        self.response(
            b"announce_peer",
            {b"id": REMOTE_ID, b"info_hash": INFO_HASH, b"port": 1, b"token": self.token(PUBLIC)},
            source=PUBLIC,
        )
        responder: Address = ("198.51.100.7", 6881)
        self.table4.nodeResponded(b"\x77" * 20, responder)
        for source in (REQUESTER, PUBLIC, responder):
            reply = self.response(
                b"find_node",
                {b"id": REMOTE_ID, b"target": TARGET, b"want": [b"n4", b"n6"]},
                source=source,
            )
            self.assertEqual(len(krpc.responseNodes(reply)), 8, source)
            self.assertEqual(len(krpc.responseNodes(reply, ipv6=True)), 8, source)

    def test_amplificationOff(self) -> None:
        """With amplification 0 an unverified requester gets the full reply."""
        self.wire(amplification=0)
        self.addNodes(8)
        self.addNodes(8, ipv6=True)
        query, data = self.send(
            b"find_node",
            {b"id": REMOTE_ID, b"target": TARGET, b"want": [b"n4", b"n6"]},
            source=PUBLIC,
        )
        reply = krpc.decodeMessage(data)
        assert isinstance(reply, krpc.Response)
        self.assertEqual(len(krpc.responseNodes(reply, ipv6=True)), 8)
        self.assertGreater(len(data), 4 * len(query))


class LongVersionTests(HandlerTestCase):
    """A custom version of any length never makes a reply oversized or a 202."""

    def check(self, version: bytes) -> list[krpc.Response]:
        """Ask every kind of query, from every kind of requester, of a node whose version
        is C{version}, with full tables and many peers; return the responses."""
        self.wire(version=version)
        self.addNodes(8)
        self.addNodes(8, ipv6=True)
        for i in range(100):
            self.peers.addPeer(INFO_HASH, (f"10.1.{i}.1", 6881))
            self.peers.addPeer(INFO_HASH, (f"2001:db8:1::{i + 1:x}", 6881))
        both = [b"n4", b"n6"]
        queries: list[tuple[bytes, dict[bytes, Any]]] = [
            (b"ping", {b"id": REMOTE_ID}),
            (b"find_node", {b"id": REMOTE_ID, b"target": TARGET, b"want": both}),
            (b"get_peers", {b"id": REMOTE_ID, b"info_hash": INFO_HASH, b"want": both}),
            (b"get_peers", {b"id": REMOTE_ID, b"info_hash": INFO_HASH}),
            (b"sample_infohashes", {b"id": REMOTE_ID, b"target": TARGET, b"want": both}),
        ]
        responses = []
        for source in (REQUESTER, PUBLIC, REQUESTER6):
            for method, args in queries:
                for tid in (b"\xaa\xbb", b"x" * 32):
                    query, data = self.send(method, args, source, tid=tid)
                    self.assertLessEqual(len(data), krpc.MAX_REPLY_SIZE)
                    reply = krpc.decodeMessage(data)
                    assert isinstance(reply, krpc.Response), (method, source, reply)
                    if method != b"ping" and source != REQUESTER:
                        self.assertLessEqual(len(data), 4 * len(query), (method, source))
                    responses.append(reply)
        self.assertEqual(self.flushLoggedErrors(), [])
        return responses

    def test_200Bytes(self) -> None:
        """A 200-byte version is sent, and a full reply still carries values."""
        version = b"V" * 200
        self.check(version)
        reply = self.response(
            b"get_peers", {b"id": REMOTE_ID, b"info_hash": INFO_HASH, b"want": [b"n4", b"n6"]}
        )
        self.assertEqual(reply.version, version)
        self.assertEqual(len(krpc.responseNodes(reply, ipv6=True)), 8)
        self.assertGreater(len(krpc.responseValues(reply)), 10)

    def test_1000Bytes(self) -> None:
        """A 1,000-byte version, which no reply can carry, is left out, and the replies
        are what they would be without it."""
        for reply in self.check(b"V" * 1000):
            self.assertIsNone(reply.version)
        reply = self.response(
            b"find_node", {b"id": REMOTE_ID, b"target": TARGET, b"want": [b"n4", b"n6"]}
        )
        self.assertEqual(len(krpc.responseNodes(reply)), 8)
        self.assertEqual(len(krpc.responseNodes(reply, ipv6=True)), 8)
        reply = self.response(b"get_peers", {b"id": REMOTE_ID, b"info_hash": INFO_HASH})
        self.assertGreater(len(krpc.responseValues(reply)), 50)

    def test_errorsKeepTheirMessage(self) -> None:
        """With a 1,000-byte version, an error still carries its code and message."""
        self.wire(version=b"V" * 1000)
        error = self.error(
            b"announce_peer",
            {b"id": REMOTE_ID, b"info_hash": INFO_HASH, b"port": 1, b"token": b"\xff" * 8},
        )
        self.assertEqual((error.code, error.message), (203, b"invalid token"))


class RuntimeLimitTests(HandlerTestCase):
    """The node's limits, off when wired, apply once set on the policy."""

    def pings(self, count: int, source: Address = PUBLIC) -> int:
        """How many of C{count} pings from C{source}, all now, are answered."""
        before = len(self.transport4.written)
        for _ in range(count):
            self.protocol4.datagramReceived(self.encode(b"ping", {b"id": REMOTE_ID}), source)
        return len(self.transport4.written) - before

    def test_limitsSetWhileRunning(self) -> None:
        """ipRateLimit, queryRateLimit and uploadLimit each take effect when set."""
        self.assertEqual(self.pings(30), 30)
        self.policy.ipRateLimit = 1.0
        self.assertEqual(self.pings(30), 10)
        self.policy.ipRateLimit = 0
        self.policy.queryRateLimit = 1.0
        self.assertEqual(self.pings(30, REQUESTER), 2)
        self.policy.queryRateLimit = 0
        self.policy.uploadLimit = 100.0
        self.assertLess(self.pings(30, REQUESTER), 6)
        counters = self.policy.counters
        self.assertEqual((counters["rateLimit"], counters["queryLimit"]), (20, 28))
        self.assertGreater(counters["uploadLimit"], 24)
