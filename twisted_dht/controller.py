"""Controller: what the wire protocols ask — the admission policy, the handler of a method,
and what to do once a query was answered (offer the querier to the routing table, and have
a newcomer verified)."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from .addresses import Address
from .admission import AdmissionPolicy
from .interfaces import Handler, IKRPCController
from .krpc import Query
from .routing import RoutingTable

RECENT_QUERIERS = 4096
"""Queriers remembered within one second of the clock (see L{Controller.queryAnswered})."""


@implementer(IKRPCController)
class Controller:
    """The controller of both families' protocols.

    @param handlers: objects whose C{krpc_<method>} methods answer queries, searched in
        order (L{addHandlers} adds more, e.g. for a BEP of an application's own).
    @param tableFor: the routing table of an address's family.
    @param verify: called with the address of a querier that just entered a routing table
        and was never asked anything, to confirm it (a ping), once its reply was sent.
    """

    def __init__(
        self,
        policy: AdmissionPolicy,
        handlers: list[object],
        tableFor: Callable[[Address], RoutingTable],
        *,
        reactor: IReactorTime,
        verify: Callable[[Address], object] | None = None,
    ) -> None:
        self.policy = policy
        self._handlers = list(handlers)
        self._tableFor = tableFor
        self._clock = reactor
        self.verify = verify
        self._recent: dict[Address, bytes] = {}
        self._recentSecond = -1

    def addHandlers(self, handlers: object) -> None:
        """Answer the methods of C{handlers} too (before those already there)."""
        self._handlers.insert(0, handlers)

    def handlerFor(self, method: bytes) -> Handler | None:
        """The first C{krpc_<method>} of the handler objects, or None."""
        name = "krpc_" + method.decode("ascii", "replace")
        for handlers in self._handlers:
            handler: Handler | None = getattr(handlers, name, None)
            if handler is not None:
                return handler
        return None

    def queryAnswered(self, query: Query, address: Address) -> None:
        """Offer the querier to its routing table, unless it is read-only (BEP 43) or was
        offered already in this second of the clock from this address with this id (a
        node queries in bursts, and its state only needs its last query to the minute);
        a querier that became a contact and was never asked anything is verified."""
        if query.readOnly:
            return
        second = int(self._clock.seconds())
        recent = self._recent
        if second != self._recentSecond or len(recent) >= RECENT_QUERIERS:
            recent.clear()
            self._recentSecond = second
        nodeId = query.nodeId
        if recent.get(address) == nodeId:
            return
        recent[address] = nodeId
        contact = self._tableFor(address).nodeQueried(nodeId, address)
        if (
            contact is not None
            and contact.lastResponse is None
            and contact.lastPinged is None
            and self.verify is not None
        ):
            contact.lastPinged = self._clock.seconds()
            self.verify(address)
