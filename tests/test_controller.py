"""Tests for twisted_dht.controller: handler lookup, and what follows an answered query."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_dht.addresses import Address
from twisted_dht.admission import AdmissionPolicy
from twisted_dht.contacts import Contact
from twisted_dht.controller import RECENT_QUERIERS, Controller
from twisted_dht.interfaces import IKRPCController
from twisted_dht.krpc import Query
from twisted_dht.routing import RoutingTable

OUR_ID = b"\x11" * 20
THEIR_ID = b"\x22" * 20
QUERIER: Address = ("10.0.0.2", 6881)
QUERIER6: Address = ("2001:db8::2", 6881)


class First:
    """Handlers answering ping and find_node."""

    def krpc_ping(self, query: Query, address: Address) -> bytes:
        return b"first ping"

    def krpc_find_node(self, query: Query, address: Address) -> bytes:
        return b"first find_node"


class Second:
    """Handlers answering ping and get_peers."""

    def krpc_ping(self, query: Query, address: Address) -> bytes:
        return b"second ping"

    def krpc_get_peers(self, query: Query, address: Address) -> bytes:
        return b"second get_peers"


def ping(nodeId: bytes = THEIR_ID, readOnly: bool = False) -> Query:
    """A ping from C{nodeId}."""
    return Query(b"aa", b"ping", {b"id": nodeId}, readOnly=readOnly, size=56)


class ControllerTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(10.2)
        self.table4 = RoutingTable(OUR_ID, reactor=self.clock)
        self.table6 = RoutingTable(OUR_ID, reactor=self.clock)
        self.verified: list[Address] = []
        self.policy = AdmissionPolicy(reactor=self.clock)
        self.controller = Controller(
            self.policy,
            [First(), Second()],
            self.tableFor,
            reactor=self.clock,
            verify=self.verified.append,
        )

    def tableFor(self, address: Address) -> RoutingTable:
        return self.table6 if ":" in address[0] else self.table4

    def answer(self, method: bytes) -> Any:
        """What the handler of C{method} answers."""
        handler = self.controller.handlerFor(method)
        assert handler is not None
        return handler(ping(), QUERIER)

    def contact(self, address: Address = QUERIER) -> Contact:
        contact = self.tableFor(address).get(address)
        assert contact is not None
        return contact


class HandlerForTests(ControllerTestCase):
    def test_provides(self) -> None:
        """A Controller provides IKRPCController and exposes its policy."""
        self.assertTrue(verifyObject(IKRPCController, self.controller))
        self.assertIs(self.controller.policy, self.policy)

    def test_searchOrder(self) -> None:
        """The handler objects are searched in order: the first krpc_<method> wins."""
        self.assertEqual(self.answer(b"ping"), b"first ping")
        self.assertEqual(self.answer(b"find_node"), b"first find_node")
        self.assertEqual(self.answer(b"get_peers"), b"second get_peers")

    def test_addHandlersTakePrecedence(self) -> None:
        """Handlers added later answer before those already there, and the others stay."""

        class Mine:
            def krpc_ping(self, query: Query, address: Address) -> bytes:
                return b"my ping"

            def krpc_vote(self, query: Query, address: Address) -> bytes:
                return b"my vote"

        self.controller.addHandlers(Mine())
        self.assertEqual(self.answer(b"ping"), b"my ping")
        self.assertEqual(self.answer(b"vote"), b"my vote")
        self.assertEqual(self.answer(b"find_node"), b"first find_node")
        self.assertEqual(self.answer(b"get_peers"), b"second get_peers")

    def test_unknown(self) -> None:
        """A method no handler object answers, or not ASCII, has no handler."""
        for method in (b"vote", b"", b"\xff\xfe", b"ping\x00"):
            self.assertIsNone(self.controller.handlerFor(method), method)

    def test_handlersListCopied(self) -> None:
        """The list given is copied: changing it later changes nothing."""
        handlers: list[object] = [Second()]
        controller = Controller(self.policy, handlers, self.tableFor, reactor=self.clock)
        handlers.insert(0, First())
        handler = controller.handlerFor(b"ping")
        assert handler is not None
        self.assertEqual(handler(ping(), QUERIER), b"second ping")


class QueryAnsweredTests(ControllerTestCase):
    def test_querierOffered(self) -> None:
        """A querier is offered to the routing table of its family, as heard from."""
        self.controller.queryAnswered(ping(), QUERIER)
        self.controller.queryAnswered(ping(), QUERIER6)
        self.assertEqual(self.contact().nodeId, THEIR_ID)
        self.assertEqual(self.contact().lastQuery, 10.2)
        self.assertIsNone(self.contact().lastResponse)
        self.assertEqual(self.contact(QUERIER6).nodeId, THEIR_ID)
        self.assertEqual((len(self.table4), len(self.table6)), (1, 1))

    def test_readOnlySkipped(self) -> None:
        """A read-only querier (BEP 43) is neither offered nor verified."""
        self.controller.queryAnswered(ping(readOnly=True), QUERIER)
        self.assertIsNone(self.table4.get(QUERIER))
        self.assertEqual(self.verified, [])

    def test_oncePerSecond(self) -> None:
        """A querier querying again in the same second of the clock is not offered again;
        in the next second it is."""
        self.controller.queryAnswered(ping(), QUERIER)
        self.clock.advance(0.5)
        self.controller.queryAnswered(ping(), QUERIER)
        self.assertEqual(self.contact().lastQuery, 10.2)
        self.clock.advance(0.5)
        self.controller.queryAnswered(ping(), QUERIER)
        self.assertEqual(self.contact().lastQuery, 11.2)

    def test_otherIdOrAddressOffered(self) -> None:
        """Within the second, another address, or another id from the same address, is
        offered as usual."""
        other: Address = ("10.0.0.3", 6881)
        self.controller.queryAnswered(ping(), QUERIER)
        self.controller.queryAnswered(ping(b"\x24" * 20), other)
        self.assertEqual(self.contact(other).nodeId, b"\x24" * 20)
        self.table4.nodeFailed(QUERIER)  # it never answered: removed at once
        self.assertIsNone(self.table4.get(QUERIER))
        self.controller.queryAnswered(ping(b"\x23" * 20), QUERIER)
        self.assertEqual(self.contact().nodeId, b"\x23" * 20)

    def test_memoryBounded(self) -> None:
        """However many queriers come in one second, only RECENT_QUERIERS are remembered:
        past that, an early querier is offered again within the same second."""
        self.controller.queryAnswered(ping(), QUERIER)
        self.clock.advance(0.5)
        for i in range(RECENT_QUERIERS):
            self.controller.queryAnswered(ping(), (f"10.{i // 256}.{i % 256}.9", 1))
        self.controller.queryAnswered(ping(), QUERIER)
        self.assertEqual(self.contact().lastQuery, 10.7)

    def test_newcomerVerifiedOnce(self) -> None:
        """A querier that just became a contact is verified, once; its later queries are
        not, however much later."""
        self.controller.queryAnswered(ping(), QUERIER)
        self.assertEqual(self.verified, [QUERIER])
        self.assertEqual(self.contact().lastPinged, 10.2)
        for _ in range(5):
            self.clock.advance(30)
            self.controller.queryAnswered(ping(), QUERIER)
        self.assertEqual(self.verified, [QUERIER])

    def test_responderNotVerified(self) -> None:
        """A contact that already answered one of our queries is not verified."""
        self.table4.nodeResponded(THEIR_ID, QUERIER)
        self.controller.queryAnswered(ping(), QUERIER)
        self.assertEqual(self.verified, [])

    def test_notAContactNotVerified(self) -> None:
        """A querier that did not enter the table (our own id) is not verified."""
        self.controller.queryAnswered(ping(OUR_ID), QUERIER)
        self.assertIsNone(self.table4.get(QUERIER))
        self.assertEqual(self.verified, [])

    def test_withoutVerify(self) -> None:
        """Without a verify callable, newcomers are offered and nothing else happens."""
        controller = Controller(self.policy, [], self.tableFor, reactor=self.clock)
        controller.queryAnswered(ping(), QUERIER)
        self.assertIsNone(self.contact().lastPinged)
