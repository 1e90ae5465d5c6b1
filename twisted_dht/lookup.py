"""Iterative Kademlia lookups (traversals) for find_node and get_peers.

A L{Lookup} walks the id space towards a target: it keeps the contacts it has heard of
sorted by XOR distance, keeps C{alpha} queries in flight to the closest ones not yet asked,
and stops when the C{k} closest eligible contacts have all answered. It follows
libtorrent's C{traversal_algorithm}: a query that has not answered after C{shortTimeout}
is "slow" and frees its slot for another query, but its reply is still used if it comes
before the final C{timeout}.

The lookup knows nothing of the node, the protocol or the routing table: it sends through a
L{SendQuery} callable and reports who answered (and who timed out) to a
L{LookupReporter}, normally the routing table of the lookup's address family.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from . import krpc
from .addresses import Address
from .candidates import Candidate, Candidates
from .errors import KRPCError, MalformedMessage, ProtocolStopped, QueryTimeout, SendFailed
from .interfaces import LookupReporter, SendQuery
from .krpc import Response
from .nodeid import ID_LENGTH

FIND_NODE = b"find_node"
GET_PEERS = b"get_peers"
GET = b"get"
"""BEP 44's get: a lookup like get_peers whose replies carry items instead of peers."""

_TOKENS = (GET_PEERS, GET)
"""The methods whose replies carry a token."""

_QUIET_FAILURES = (KRPCError, ProtocolStopped, CancelledError, SendFailed)
"""Failures of a query that end it without a log line: only a timeout counts against the
node, and a local send error (L{SendFailed}) is ours, not the remote node's."""

_log = Logger()


@dataclass
class LookupResult:
    """What a finished lookup found."""

    target: bytes
    closest: list[tuple[bytes, Address]] = field(default_factory=list)
    """The C{k} closest eligible nodes that answered, nearest first."""
    peers: list[Address] = field(default_factory=list)
    """get_peers only: the peers found, de-duplicated, in order of arrival."""
    tokens: list[tuple[bytes, Address, bytes]] = field(default_factory=list)
    """get_peers and get: (id, address, token) of the C{k} closest eligible responders
    that gave a token, nearest first: the targets of an announce or a put."""
    queries: int = 0
    """Queries sent."""
    responses: int = 0
    """Replies received (malformed ones included; errors and timeouts excluded)."""
    roundTrips: int = 0
    """The largest hop count among C{closest}: seeds are hop 1, a node learned from a
    hop-n reply is hop n+1."""


class _Pending:
    """One query in flight."""

    __slots__ = ("candidate", "deferred", "slow", "timer")

    def __init__(self, candidate: Candidate, deferred: Deferred[Response]) -> None:
        self.candidate = candidate
        self.deferred = deferred
        self.timer: IDelayedCall | None = None
        self.slow = False


class Lookup:
    """One iterative lookup of C{target}; run it once with L{start}.

    @param target: the 20-byte id or info_hash looked up.
    @param ownId: our node id, never queried.
    @param send: how queries are sent (see L{SendQuery}).
    @param reporter: told about replies and final timeouts; None to tell nobody.
    @param method: C{b"find_node"} or C{b"get_peers"}.
    @param ipv6: an IPv6 lookup: only IPv6 contacts are used, replies' C{nodes6} are read
        instead of C{nodes}, and queries carry C{want: [n6]}.
    @param k: how many closest nodes the lookup must hear from.
    @param alpha: how many queries may be in flight and not yet slow.
    @param shortTimeout: seconds after which an unanswered query is slow and frees its slot.
    @param timeout: the final timeout of each query, given to C{send}.
    @param maxQueries: the most queries this lookup sends.
    @param maxCandidates: the most contacts kept; the farthest not yet queried are dropped.
    @param restrictSubnets: at most one contact per /24 (IPv4) or /64 (IPv6).
    @param relaxLocal: exempt loopback and private addresses from the one-contact-per-IP
        and subnet rules (local test networks run many nodes on one IP).
    @param eligible: C{eligible(nodeId, address)} after a reply: False (e.g. a node id that
        fails BEP 42) means its nodes are used, but it does not count for termination and
        is in neither C{closest} nor C{tokens}. None: every responder is eligible.
    @param onPeer: called once for each new peer of a get_peers lookup, as it arrives.
    @param extraArgs: more arguments for every query (BEP 33's C{scrape}).
    @param onResponse: C{onResponse(nodeId, address, response)} for every well-formed
        reply, once its nodes, values and token parsed (a scrape reads its filters).
    @param reactor: the time source of the short timeouts.
    """

    def __init__(
        self,
        target: bytes,
        ownId: bytes,
        send: SendQuery,
        reporter: LookupReporter | None,
        *,
        reactor: IReactorTime,
        method: bytes = FIND_NODE,
        ipv6: bool = False,
        k: int = 8,
        alpha: int = 3,
        shortTimeout: float = 1.0,
        timeout: float = 5.0,
        maxQueries: int = 250,
        maxCandidates: int = 100,
        restrictSubnets: bool = False,
        relaxLocal: bool = False,
        eligible: Callable[[bytes, Address], bool] | None = None,
        onPeer: Callable[[Address], object] | None = None,
        extraArgs: Mapping[bytes, Any] | None = None,
        onResponse: Callable[[bytes, Address, Response], object] | None = None,
    ) -> None:
        if method not in (FIND_NODE, GET_PEERS, GET):
            raise ValueError(f"cannot look up with {method!r}")
        if len(target) != ID_LENGTH:
            raise ValueError("the target must be 20 bytes")
        if k < 1 or alpha < 1 or maxCandidates < 1:
            raise ValueError("k, alpha and maxCandidates must be positive")
        self.reactor = reactor
        self.target = target
        self.ownId = ownId
        self.method = method
        self.ipv6 = ipv6
        self.k = k
        self.alpha = alpha
        self.shortTimeout = shortTimeout
        self.timeout = timeout
        self.maxQueries = maxQueries
        self.maxCandidates = maxCandidates
        self.restrictSubnets = restrictSubnets
        self.relaxLocal = relaxLocal
        self._send = send
        self._reporter = reporter
        self._eligible = eligible
        self._onPeer = onPeer
        self._onResponse = onResponse
        args: dict[bytes, Any] = {(b"info_hash" if method == GET_PEERS else b"target"): target}
        if extraArgs:
            args.update(extraArgs)
        if ipv6:
            args[b"want"] = [b"n6"]
        self._args = args

        self._candidates = Candidates(
            target,
            ownId,
            ipv6=ipv6,
            limit=maxCandidates,
            restrictSubnets=restrictSubnets,
            relaxLocal=relaxLocal,
        )
        self._pending: dict[Address, _Pending] = {}
        self._active = 0
        """Queries in flight that are not slow: the ones holding a slot."""
        self._peers: list[Address] = []
        self._peerSet: set[Address] = set()
        self._queries = 0
        self._responses = 0
        self._deferred: Deferred[LookupResult] | None = None
        self._finished = False
        self._stepping = False
        self._again = False

    # Public -------------------------------------------------------------------

    def start(self, seeds: Iterable[tuple[bytes, Address]]) -> Deferred[LookupResult]:
        """Start the lookup from known contacts.

        @return: a Deferred firing with the L{LookupResult}; it fails only when it is
            cancelled (with L{CancelledError}), which also cancels every query in flight.
        """
        if self._deferred is not None:
            raise RuntimeError("a Lookup can only be started once")
        self._deferred = Deferred(self._cancel)
        for nodeId, address in seeds:
            self._candidates.add(nodeId, address, 1)
        self._step()
        return self._deferred

    @property
    def finished(self) -> bool:
        """Whether the lookup is over (finished or cancelled)."""
        return self._finished

    # The traversal ------------------------------------------------------------

    def _step(self) -> None:
        """Send what can be sent, or finish; safe against replies that fire synchronously."""
        if self._stepping:
            self._again = True
            return
        self._stepping = True
        try:
            while not self._finished:
                self._again = False
                self._stepOnce()
                if not self._again:
                    break
        finally:
            self._stepping = False

    def _stepOnce(self) -> None:
        wanted = self.k
        busy = False  # something among the closest is in flight or not yet queried
        toSend: list[Candidate] = []
        slots = self.alpha - self._active
        budget = self.maxQueries - self._queries
        for candidate in self._candidates:
            if wanted == 0:
                break
            if candidate.failed:
                continue
            if candidate.responded:
                if candidate.eligible:
                    wanted -= 1
                continue
            busy = True
            if not candidate.queried and len(toSend) < min(slots, budget):
                toSend.append(candidate)
        if (wanted == 0 and not busy) or (not toSend and not self._pending):
            self._finish()
            return
        for candidate in toSend:
            if self._finished:  # cancelled by a callback of a synchronous reply
                return
            self._query(candidate)

    def _query(self, candidate: Candidate) -> None:
        candidate.queried = True
        self._queries += 1
        try:
            deferred = self._send(candidate.address, self.method, dict(self._args), self.timeout)
        except Exception:
            deferred = fail()
        pending = _Pending(candidate, deferred)
        self._pending[candidate.address] = pending
        self._active += 1
        pending.timer = self.reactor.callLater(self.shortTimeout, self._slow, pending)
        deferred.addCallbacks(
            self._gotResponse,
            self._gotFailure,
            callbackArgs=(pending,),
            errbackArgs=(pending,),
        )

    def _slow(self, pending: _Pending) -> None:
        pending.timer = None
        pending.slow = True
        self._active -= 1
        self._step()

    def _release(self, pending: _Pending) -> None:
        del self._pending[pending.candidate.address]
        if pending.timer is not None:
            pending.timer.cancel()
            pending.timer = None
        if not pending.slow:
            self._active -= 1

    def _gotResponse(self, response: Response, pending: _Pending) -> None:
        if self._finished:
            return
        self._release(pending)
        self._responses += 1
        candidate = pending.candidate
        address = candidate.address
        try:
            nodes = krpc.responseNodes(response, self.ipv6)
            peers = krpc.responseValues(response) if self.method == GET_PEERS else []
            token = krpc.responseToken(response) if self.method in _TOKENS else None
        except MalformedMessage as e:
            _log.debug("Malformed reply from {address}: {error}", address=address, error=e)
            candidate.failed = True
            self._step()
            return
        nodeId = response.nodeId
        if nodeId != candidate.nodeId and not self._candidates.rekey(candidate, nodeId):
            candidate.failed = True
            self._step()
            return
        self._report("nodeResponded", nodeId, address)
        candidate.responded = True
        candidate.token = token
        if self._eligible is not None:
            try:
                candidate.eligible = bool(self._eligible(nodeId, address))
            except Exception:
                _log.failure("The eligibility check failed on {address}", address=address)
                candidate.eligible = False
        for peer in peers:
            self._gotPeer(peer)
        if self._onResponse is not None:
            try:
                self._onResponse(nodeId, address, response)
            except Exception:
                _log.failure("onResponse failed on {address}", address=address)
        hop = candidate.hop + 1
        for newId, newAddress in nodes:
            self._candidates.add(newId, newAddress, hop)
        self._step()

    def _gotPeer(self, peer: Address) -> None:
        if peer in self._peerSet:
            return
        self._peerSet.add(peer)
        self._peers.append(peer)
        if self._onPeer is not None:
            try:
                self._onPeer(peer)
            except Exception:
                _log.failure("onPeer failed on {peer}", peer=peer)

    def _gotFailure(self, failure: Failure, pending: _Pending) -> None:
        if self._finished:
            return
        self._release(pending)
        candidate = pending.candidate
        candidate.failed = True
        error = failure.value
        if isinstance(error, QueryTimeout):
            self._report("nodeFailed", candidate.address)
        elif not isinstance(error, _QUIET_FAILURES):
            _log.failure(
                "Unexpected failure of a query to {address}", failure, address=candidate.address
            )
        self._step()

    def _report(self, event: str, *args: Any) -> None:
        if self._reporter is None:
            return
        try:
            getattr(self._reporter, event)(*args)
        except Exception:
            _log.failure("The lookup reporter failed on {event}", event=event)

    # Ending -------------------------------------------------------------------

    def _stopQueries(self) -> None:
        self._finished = True
        pending = list(self._pending.values())
        self._pending.clear()
        self._active = 0
        for entry in pending:
            if entry.timer is not None:
                entry.timer.cancel()
                entry.timer = None
        for entry in pending:
            entry.deferred.cancel()

    def _finish(self) -> None:
        self._stopQueries()
        assert self._deferred is not None
        self._deferred.callback(self._result())

    def _cancel(self, deferred: Deferred[LookupResult]) -> None:
        if not self._finished:
            self._stopQueries()

    def _result(self) -> LookupResult:
        closest: list[tuple[bytes, Address]] = []
        tokens: list[tuple[bytes, Address, bytes]] = []
        roundTrips = 0
        for candidate in self._candidates:
            if not candidate.responded or not candidate.eligible:
                continue
            if len(closest) < self.k:
                closest.append((candidate.nodeId, candidate.address))
                roundTrips = max(roundTrips, candidate.hop)
            if candidate.token is not None and len(tokens) < self.k:
                tokens.append((candidate.nodeId, candidate.address, candidate.token))
            if len(closest) >= self.k and len(tokens) >= self.k:
                break
        return LookupResult(
            target=self.target,
            closest=closest,
            peers=list(self._peers),
            tokens=tokens,
            queries=self._queries,
            responses=self._responses,
            roundTrips=roundTrips,
        )
