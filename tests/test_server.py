"""Tests for twisted_dht.server: the query handlers (the spec's phase 3), through the wire."""

from __future__ import annotations

import hashlib
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht import krpc
from twisted_dht.errors import ErrorCode
from twisted_dht.krpc import Address
from twisted_dht.peers import PeerStore
from twisted_dht.protocol import KRPCProtocol
from twisted_dht.server import RECENT_QUERIERS, DHTServer
from twisted_dht.testing import FakeDatagramTransport
from twisted_dht.tokens import TokenStore

LOCAL_ID = b"\x11" * 20
REMOTE_ID = b"\x22" * 20
TARGET = b"\x33" * 20
INFO_HASH = b"\x44" * 20
REQUESTER: Address = ("192.168.1.100", 6881)
REQUESTER6: Address = ("2001:db8::100", 6881)


def sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


class ServerTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.server = DHTServer(
            LOCAL_ID,
            reactor=self.clock,
            tokenStore=TokenStore(hashFunction=sha1, reactor=self.clock),
            peerStore=PeerStore(reactor=self.clock),
        )
        self.protocol = KRPCProtocol(self.server, reactor=self.clock)
        self.transport = FakeDatagramTransport(("192.168.1.1", 6881))
        self.protocol.makeConnection(self.transport)  # type: ignore[arg-type]

    def ask(
        self,
        method: bytes,
        args: dict[bytes, Any],
        source: Address = REQUESTER,
        tid: bytes = b"\xaa\xbb",
        **extra: Any,
    ) -> krpc.Message:
        """Send one query (C{extra} are top-level keys) and return the single reply."""
        before = len(self.transport.written)
        message = {b"t": tid, b"y": b"q", b"q": method, b"a": args}
        message.update({key.encode(): value for key, value in extra.items()})
        self.protocol.datagramReceived(krpc.bencoding.encode(message), source)
        sent = self.transport.written[before:]
        self.assertEqual(len(sent), 1)
        data, destination = sent[0]
        self.assertEqual(destination, source)
        self.assertLessEqual(len(data), krpc.MAX_REPLY_SIZE)
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
        """Put C{count} confirmed nodes into a table."""
        nodes = []
        for i in range(count):
            address = (f"2001:db8::{i + 1:x}", 7000) if ipv6 else (f"10.0.{i}.1", 7000)
            nodeId = bytes([0x30 + i]) * 20
            (self.server.table6 if ipv6 else self.server.table4).nodeResponded(nodeId, address)
            nodes.append((nodeId, address))
        return nodes

    def token(self, source: Address = REQUESTER, infoHash: bytes = INFO_HASH) -> bytes:
        reply = self.response(
            b"get_peers", {b"id": REMOTE_ID, b"info_hash": infoHash}, source=source
        )
        token = krpc.responseToken(reply)
        assert token is not None
        return token


class PingTests(ServerTestCase):
    def test_respondsWithOwnId(self) -> None:
        """A ping is answered with our node id."""
        self.response(b"ping", {b"id": REMOTE_ID})

    def test_newIdAnswered(self) -> None:
        """After our id changes, ping and announce_peer replies carry the new one."""
        self.response(b"ping", {b"id": REMOTE_ID})
        token = self.token()
        self.server.nodeId = NEW_ID = b"\x55" * 20
        for method, args in [
            (b"ping", {b"id": REMOTE_ID}),
            (
                b"announce_peer",
                {b"id": REMOTE_ID, b"info_hash": INFO_HASH, b"port": 1, b"token": token},
            ),
        ]:
            reply = self.ask(method, args)
            assert isinstance(reply, krpc.Response), reply
            self.assertEqual(reply.nodeId, NEW_ID)

    def test_offersNodeToTable(self) -> None:
        """The pinging node is offered to the routing table as heard from."""
        self.response(b"ping", {b"id": REMOTE_ID})
        contact = self.server.table4.get(REQUESTER)
        assert contact is not None
        self.assertEqual(contact.nodeId, REMOTE_ID)

    def test_missingId(self) -> None:
        """A ping without an id gets error 203."""
        self.assertEqual(self.error(b"ping", {}).code, ErrorCode.PROTOCOL)

    def test_malformedIdNotAdded(self) -> None:
        """A query with a malformed id gets 203 and does not enter the table."""
        self.assertEqual(self.error(b"ping", {b"id": b"short"}).code, ErrorCode.PROTOCOL)
        self.assertEqual(len(self.server.table4), 0)

    def test_readOnlyNotAdded(self) -> None:
        """A read-only querier (ro=1, BEP 43) is answered but not added to the table."""
        self.response(b"ping", {b"id": REMOTE_ID}, ro=1)
        self.assertIsNone(self.server.table4.get(REQUESTER))

    def test_ipAndVersion(self) -> None:
        """Responses carry the requester's address as ip (BEP 42) and our version."""
        reply = self.response(b"ping", {b"id": REMOTE_ID})
        self.assertEqual(reply.ip, REQUESTER)
        self.assertEqual(reply.version, krpc.VERSION)

    def test_ipv6Requester(self) -> None:
        """An IPv6 requester is added to the IPv6 table and gets its 18-byte ip back."""
        reply = self.response(b"ping", {b"id": REMOTE_ID}, source=REQUESTER6)
        self.assertEqual(reply.ip, REQUESTER6)
        self.assertIsNotNone(self.server.table6.get(REQUESTER6))
        self.assertEqual(len(self.server.table4), 0)


class FindNodeTests(ServerTestCase):
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
        self.server.table4.nodeFailed(nodes[0][1])
        self.server.table4.nodeFailed(nodes[0][1])
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
        self.assertIsNotNone(self.server.table4.get(REQUESTER))

    def test_missingTarget(self) -> None:
        """find_node without a target gets error 203 naming the field."""
        error = self.error(b"find_node", {b"id": REMOTE_ID})
        self.assertEqual(error.code, ErrorCode.PROTOCOL)
        self.assertIn(b"target", error.message)

    def test_wrongTargetType(self) -> None:
        """find_node with a target that is not 20 bytes gets error 203."""
        self.assertEqual(
            self.error(b"find_node", {b"id": REMOTE_ID, b"target": 5}).code, ErrorCode.PROTOCOL
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
        """Without want, an IPv6 requester gets nodes6 and no nodes."""
        self.addNodes(2)
        self.addNodes(2, ipv6=True)
        reply = self.response(
            b"find_node", {b"id": REMOTE_ID, b"target": TARGET}, source=REQUESTER6
        )
        self.assertNotIn(b"nodes", reply.values)
        self.assertEqual(len(krpc.responseNodes(reply, ipv6=True)), 2)

    def test_wantOnlyN6OverIPv4(self) -> None:
        """want=[n6] over IPv4 returns nodes6 only."""
        self.addNodes(2, ipv6=True)
        reply = self.response(
            b"find_node", {b"id": REMOTE_ID, b"target": TARGET, b"want": [b"n6"]}
        )
        self.assertNotIn(b"nodes", reply.values)
        self.assertIn(b"nodes6", reply.values)


class GetPeersTests(ServerTestCase):
    def test_token(self) -> None:
        """get_peers always returns a token."""
        self.assertTrue(self.token())

    def test_peersWhenKnown(self) -> None:
        """get_peers returns the stored peers as values."""
        self.server.peerStore.addPeer(INFO_HASH, ("10.0.0.1", 6881))
        self.server.peerStore.addPeer(INFO_HASH, ("10.0.0.2", 6882))
        reply = self.response(b"get_peers", {b"id": REMOTE_ID, b"info_hash": INFO_HASH})
        self.assertEqual(
            sorted(krpc.responseValues(reply)), [("10.0.0.1", 6881), ("10.0.0.2", 6882)]
        )

    def test_seesPeerChanges(self) -> None:
        """A peer announced, refreshed or expired after a get_peers shows in the next one."""
        ask = {b"id": REMOTE_ID, b"info_hash": INFO_HASH}
        self.server.peerStore.addPeer(INFO_HASH, ("10.0.0.1", 6881))
        self.clock.advance(60.0)
        self.server.peerStore.addPeer(INFO_HASH, ("10.0.0.2", 6882))
        values = krpc.responseValues(self.response(b"get_peers", ask))
        self.assertEqual(values, [("10.0.0.1", 6881), ("10.0.0.2", 6882)])
        self.clock.advance(60.0)
        self.server.peerStore.addPeer(INFO_HASH, ("10.0.0.1", 6881))
        values = krpc.responseValues(self.response(b"get_peers", ask))
        self.assertEqual(values, [("10.0.0.2", 6882), ("10.0.0.1", 6881)])
        self.server.peerStore.addPeer(INFO_HASH, ("10.0.0.3", 6883))
        self.assertEqual(len(krpc.responseValues(self.response(b"get_peers", ask))), 3)
        self.clock.advance(1800.0 - 60.0)  # the announce of 10.0.0.2 expires
        values = krpc.responseValues(self.response(b"get_peers", ask))
        self.assertEqual(values, [("10.0.0.1", 6881), ("10.0.0.3", 6883)])

    def test_nodesWithValues(self) -> None:
        """get_peers returns nodes alongside values, as libtorrent and jech do."""
        self.addNodes(3)
        self.server.peerStore.addPeer(INFO_HASH, ("10.0.0.1", 6881))
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
            self.server.peerStore.addPeer(INFO_HASH, (f"10.1.{i}.1", 6881))
        reply = self.response(
            b"get_peers",
            {b"id": REMOTE_ID, b"info_hash": INFO_HASH, b"want": [b"n4", b"n6"]},
            tid=b"x" * 32,
        )
        self.assertGreater(len(krpc.responseValues(reply)), 10)

    def test_about50IPv4Values(self) -> None:
        """A reply with 8 IPv4 nodes carries dozens of values (a random sample), not all 100."""
        self.addNodes(8)
        for i in range(100):
            self.server.peerStore.addPeer(INFO_HASH, (f"10.1.{i}.1", 6881))
        reply = self.response(b"get_peers", {b"id": REMOTE_ID, b"info_hash": INFO_HASH})
        count = len(krpc.responseValues(reply))
        self.assertTrue(50 <= count < 100, count)

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
            self.server.peerStore.addPeer(INFO_HASH, address)
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
        self.server.peerStore.addPeer(INFO_HASH, ("10.0.0.1", 6881))
        self.server.peerStore.addPeer(INFO_HASH, ("2001:db8::1", 6881))
        reply = self.response(b"get_peers", {b"id": REMOTE_ID, b"info_hash": INFO_HASH})
        self.assertEqual(krpc.responseValues(reply), [("10.0.0.1", 6881)])
        reply6 = self.response(
            b"get_peers", {b"id": REMOTE_ID, b"info_hash": INFO_HASH}, source=REQUESTER6
        )
        self.assertEqual(krpc.responseValues(reply6), [("2001:db8::1", 6881)])

    def test_bootstrapFlagAccepted(self) -> None:
        """libtorrent's bootstrap get_peers with bs=1 is answered normally."""
        self.response(b"get_peers", {b"id": REMOTE_ID, b"info_hash": INFO_HASH, b"bs": 1})


class AnnouncePeerTests(ServerTestCase):
    def announce(self, source: Address = REQUESTER, **args: Any) -> krpc.Message:
        base: dict[bytes, Any] = {b"id": REMOTE_ID, b"info_hash": INFO_HASH}
        base.update({key.encode(): value for key, value in args.items()})
        return self.ask(b"announce_peer", base, source=source)

    def test_storesPeer(self) -> None:
        """A valid announce stores the source IP with the given port."""
        reply = self.announce(port=6881, token=self.token())
        self.assertIsInstance(reply, krpc.Response)
        self.assertEqual(self.server.peerStore.getPeers(INFO_HASH), [(REQUESTER[0], 6881)])

    def test_impliedPort(self) -> None:
        """implied_port=1 stores the UDP source port, ignoring port."""
        source = (REQUESTER[0], 12345)
        token = self.token(source)
        self.assertIsInstance(
            self.announce(source, port=6881, implied_port=1, token=token), krpc.Response
        )
        self.assertEqual(self.server.peerStore.getPeers(INFO_HASH), [(REQUESTER[0], 12345)])

    def test_impliedPortWithoutPort(self) -> None:
        """implied_port=1 needs no port argument."""
        self.assertIsInstance(self.announce(implied_port=1, token=self.token()), krpc.Response)

    def test_invalidToken(self) -> None:
        """An invalid token gets error 203 and stores nothing."""
        reply = self.announce(port=6881, token=b"\xff" * 8)
        assert isinstance(reply, krpc.Error)
        self.assertEqual((reply.code, reply.message), (203, b"invalid token"))
        self.assertEqual(self.server.peerStore.getPeers(INFO_HASH), [])

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
        self.server.tokenStore.rotate()
        self.assertIsInstance(self.announce(port=6881, token=token), krpc.Response)
        self.server.tokenStore.rotate()
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
        self.assertIn(b"port", reply.message)

    def test_missingInfoHash(self) -> None:
        """An announce without info_hash gets 203 naming the field."""
        reply = self.ask(b"announce_peer", {b"id": REMOTE_ID, b"port": 1, b"token": b"x"})
        assert isinstance(reply, krpc.Error)
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

    def test_seedFlagStored(self) -> None:
        """seed=1 (BEP 33) is stored with the peer."""
        self.announce(port=6881, token=self.token(), seed=1)
        self.assertEqual(self.server.peerStore.seedCount(INFO_HASH), 1)

    def test_ipv6Announce(self) -> None:
        """An IPv6 announce stores an IPv6 peer, returned to IPv6 requesters."""
        token = self.token(REQUESTER6)
        self.assertIsInstance(self.announce(REQUESTER6, port=6881, token=token), krpc.Response)
        self.assertEqual(
            self.server.peerStore.getPeers(INFO_HASH, ipv6=True), [(REQUESTER6[0], 6881)]
        )

    def test_allIPv6HostsGetDistinctTokens(self) -> None:
        """Two IPv6 hosts get different tokens (the spec's zero-mapping flaw is fixed)."""
        self.assertNotEqual(self.token(REQUESTER6), self.token(("2001:db8::101", 6881)))


class RoutingOfQueriesTests(ServerTestCase):
    def test_unknownMethod(self) -> None:
        """An unknown method gets error 204."""
        self.assertEqual(self.error(b"foobar", {b"id": REMOTE_ID}).code, ErrorCode.METHOD_UNKNOWN)

    def test_eachMethodRouted(self) -> None:
        """ping, find_node, get_peers and announce_peer each get a response."""
        self.response(b"ping", {b"id": REMOTE_ID})
        self.response(b"find_node", {b"id": REMOTE_ID, b"target": TARGET})
        token = self.token()
        self.response(
            b"announce_peer",
            {b"id": REMOTE_ID, b"info_hash": INFO_HASH, b"port": 6881, b"token": token},
        )

    def test_noReplyToResponsesOrErrors(self) -> None:
        """Responses and errors are never answered, whatever they contain."""
        self.protocol.datagramReceived(krpc.encodeResponse(b"zz", {b"id": REMOTE_ID}), REQUESTER)
        self.protocol.datagramReceived(krpc.encodeError(b"zz", 203, "bad"), REQUESTER)
        self.assertEqual(self.transport.written, [])


class QuerierOfferTests(ServerTestCase):
    """Queriers are offered to the routing table once per second of the clock."""

    def contact(self, address: Address = REQUESTER) -> Any:
        contact = self.server.table4.get(address)
        assert contact is not None
        return contact

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
        self.assertIsNot(self.server.table4.get(other), None)
        self.server.table4.nodeFailed(REQUESTER)  # never answered: removed at once
        self.response(b"ping", {b"id": b"\x23" * 20})
        self.assertEqual(self.contact().nodeId, b"\x23" * 20)

    def test_readOnlyNeverOffered(self) -> None:
        """A read-only querier (BEP 43) stays out of the table."""
        self.response(b"ping", {b"id": REMOTE_ID}, ro=1)
        self.assertIsNone(self.server.table4.get(REQUESTER))

    def test_memoryBounded(self) -> None:
        """However many queriers come in one second, at most RECENT_QUERIERS are kept."""
        for i in range(RECENT_QUERIERS + 10):
            self.server.offerQuerier(
                krpc.Query(b"t", b"ping", {b"id": REMOTE_ID}), (f"10.{i // 256}.{i % 256}.1", 1)
            )
        self.assertLessEqual(len(self.server._recentQueriers), RECENT_QUERIERS)


class SampleInfoHashesTests(ServerTestCase):
    def sample(self, **args: Any) -> krpc.Response:
        return self.response(b"sample_infohashes", {b"id": REMOTE_ID, b"target": TARGET, **args})

    def store(self, count: int) -> list[bytes]:
        hashes = [bytes([i]) * 20 for i in range(1, count + 1)]
        for infoHash in hashes:
            self.server.peerStore.addPeer(infoHash, ("10.0.0.1", 6881))
        return hashes

    def test_samplesNumIntervalNodes(self) -> None:
        """BEP 51: samples of stored info_hashes, num, interval and the closest nodes."""
        hashes = self.store(5)
        self.addNodes(3)
        reply = self.sample()
        samples = reply.values[b"samples"]
        self.assertEqual(sorted(samples[i : i + 20] for i in range(0, len(samples), 20)), hashes)
        self.assertEqual(reply.values[b"num"], 5)
        self.assertEqual(reply.values[b"interval"], 21600)
        self.assertEqual(len(krpc.responseNodes(reply)), 3)

    def test_emptyStoreStillSendsSamples(self) -> None:
        """With nothing stored, samples is present and empty, so support is visible."""
        reply = self.sample()
        self.assertEqual((reply.values[b"samples"], reply.values[b"num"]), (b"", 0))

    def test_atMost20Samples(self) -> None:
        """A sample holds at most 20 info_hashes, and num counts them all."""
        self.store(50)
        reply = self.sample()
        self.assertEqual(len(reply.values[b"samples"]), 20 * 20)
        self.assertEqual(reply.values[b"num"], 50)

    def test_sampleStandsForTheInterval(self) -> None:
        """The same sample is given out until the interval passes, then a new one."""
        self.store(60)
        first = self.sample().values[b"samples"]
        self.clock.advance(21599)
        self.assertEqual(self.sample().values[b"samples"], first)
        self.clock.advance(2)
        self.server.peerStore.addPeer(b"\xee" * 20, ("10.0.0.2", 6881))
        self.assertNotEqual(self.sample().values[b"samples"], first)

    def test_shortSampleFollowsGrowth(self) -> None:
        """A sample short of 20 is drawn again as soon as the store has grown past it."""
        self.store(2)
        self.assertEqual(len(self.sample().values[b"samples"]), 40)
        self.server.peerStore.addPeer(b"\xee" * 20, ("10.0.0.2", 6881))
        self.assertEqual(len(self.sample().values[b"samples"]), 60)

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

    def test_missingTarget(self) -> None:
        """sample_infohashes without a target gets error 203."""
        error = self.error(b"sample_infohashes", {b"id": REMOTE_ID})
        self.assertEqual(error.code, ErrorCode.PROTOCOL)

    def test_unverifiedRequesterTrimmed(self) -> None:
        """A public requester we have not verified gets at most 4x its query's size."""
        self.store(40)
        self.addNodes(8)
        args = {b"id": REMOTE_ID, b"target": TARGET}
        query = krpc.bencoding.encode(
            {b"t": b"\xaa\xbb", b"y": b"q", b"q": b"sample_infohashes", b"a": args}
        )
        reply = self.ask(b"sample_infohashes", args, source=("203.0.113.5", 1))
        assert isinstance(reply, krpc.Response)
        self.assertLessEqual(len(self.transport.written[-1][0]), 4 * len(query))
        self.assertIn(b"samples", reply.values)
