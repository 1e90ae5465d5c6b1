"""QuerySender: our queries — paced, stamped with our id, sent from the right family's
socket — and what their replies teach us: our external IP (BEP 42) and the state of the
node asked (the routing table is told, and the contacts it wants pinged are pinged)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from . import bep42, ratelimit
from .addresses import Address, isIPv6
from .errors import QueryTimeout
from .family import NodeFamily
from .krpc import Response
from .nodeid import Identity
from .pacer import QueryPacer
from .ratelimit import TokenBucket
from .routing import RoutingTable


class QuerySender:
    """Sends our queries for every part of a node (lookups, joins, upkeep, the API).

    Within C{outgoingQueryRate} (queries per second, 0 for no limit) a query goes at
    once; beyond it, it waits in a queue of at most C{maxQueued} (then it fails with
    L{QueryDropped}). Between L{start} and L{stop} it also pings on its own the contacts
    a routing table wants confirmed; L{stop} cancels every query not yet answered.
    """

    log = Logger()

    def __init__(
        self,
        identity: Identity,
        ipv4: NodeFamily,
        ipv6: NodeFamily,
        *,
        reactor: IReactorTime,
        timeout: float = 5.0,
        outgoingQueryRate: float = ratelimit.DEFAULT_OUTGOING_QUERY_RATE,
        maxQueued: int = 1000,
    ) -> None:
        self.identity = identity
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.timeout = timeout
        bucket = TokenBucket(
            outgoingQueryRate,
            outgoingQueryRate * ratelimit.DEFAULT_OUTGOING_QUERY_BURST,
            reactor=reactor,
        )
        self.pacer = QueryPacer(self._sendNow, bucket, maxQueued, reactor)
        self.running = False
        self._inFlight: set[Deferred[Any]] = set()

    def familyFor(self, address: Address) -> NodeFamily:
        """The family of C{address}."""
        return self.ipv6 if isIPv6(address[0]) else self.ipv4

    def families(self) -> list[NodeFamily]:
        """The families bound to a socket, IPv4 first."""
        return [family for family in (self.ipv4, self.ipv6) if family.listening]

    def send(
        self,
        address: Address,
        method: bytes,
        args: dict[bytes, Any],
        timeout: float | None = None,
    ) -> Deferred[Response]:
        """Send one query with our id (see the class docstring for the pacing).

        @return: the Deferred of the L{Response}; it fails with L{KRPCError} (an error
            reply), L{QueryTimeout}, L{SendFailed} (a local error: no route, a bad
            address), L{QueryDropped} or L{ProtocolStopped}.
        """
        deferred = self.pacer.submit(address, method, args, timeout)
        if not deferred.called:
            self._inFlight.add(deferred)
            deferred.addBoth(self._forget, deferred)
        return deferred

    def _forget(self, result: object, deferred: Deferred[Any]) -> object:
        self._inFlight.discard(deferred)
        return result

    def _sendNow(
        self, address: Address, method: bytes, args: dict[bytes, Any], timeout: float | None
    ) -> Deferred[Response]:
        family = self.familyFor(address)
        deferred = family.protocol.query(
            address,
            method,
            {b"id": self.identity.nodeId, **args},
            self.timeout if timeout is None else timeout,
        )
        return deferred.addCallback(self._voteExternalIP, family, address)

    def ping(self, address: Address) -> Deferred[bytes]:
        """Ping C{address}; fires with its node id, which its routing table learns.

        Only a timeout counts against the node: a local send failure is ours.
        """
        table = self.familyFor(address).table

        def answered(response: Response) -> bytes:
            self.responded(table, response.nodeId, address)
            return response.nodeId

        def failed(failure: Failure) -> Failure:
            if failure.check(QueryTimeout):
                table.nodeFailed(address)
            return failure

        return self.send(address, b"ping", {}).addCallbacks(answered, failed)

    def responded(self, table: RoutingTable, nodeId: bytes, address: Address) -> None:
        """Tell C{table} that a node answered; ping the contact it wants confirmed."""
        questionable = table.nodeResponded(nodeId, address)
        if questionable is not None and self.running:
            self.ping(questionable.address).addErrback(lambda _: None)

    @property
    def queued(self) -> int:
        """How many queries wait for the outgoing query rate."""
        return len(self.pacer)

    def start(self) -> None:
        """Ping, from now on, the contacts the routing tables want confirmed."""
        self.running = True

    def stop(self) -> None:
        """Fail the waiting queries and cancel every query in flight."""
        self.running = False
        self.pacer.stop()
        while self._inFlight:
            self._inFlight.pop().cancel()

    # BEP 42 ----------------------------------------------------------------------

    def _voteExternalIP(
        self, response: Response, family: NodeFamily, address: Address
    ) -> Response:
        seen = response.ip
        if seen is not None:
            external = family.voter.vote(address[0], seen[0])
            if external is not None:
                self.externalIPChanged(external)
        return response

    def externalIPChanged(self, ip: str) -> None:
        """Our external IP is now C{ip}: take a BEP 42 id for it unless ours is valid.

        An IPv6 address only drives the id while no IPv4 address was voted.
        """
        if isIPv6(ip) and self.ipv4.voter.external is not None:
            return
        if bep42.verifyId(self.identity.nodeId, ip):
            return
        self.identity.set(bep42.generateId(ip))
        self.log.info(
            "External IP {ip}: new BEP 42 node id {nodeId}",
            ip=ip,
            nodeId=self.identity.nodeId.hex(),
        )
