"""Search: the lookups of a node over both families — find_node, get_peers, and announces
(kept announced on a timer)."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from .addresses import Address
from .deferreds import firstFailure, results, settle
from .family import NodeFamily
from .handlers import K
from .krpc import Response
from .lookup import FIND_NODE, GET_PEERS, Lookup, LookupResult
from .nodeid import ID_LENGTH, Identity, distance, toInt
from .sender import QuerySender

Eligible = Callable[[bytes, Address], bool]


class Search:
    """Iterative lookups (libtorrent's "traversals") seeded from the routing tables.

    @param routerNodes: routers that answered, by address: lookups use them as seeds but
        never report them to a routing table.
    @param eligible: whether a responder counts for termination and is an announce
        target (BEP 42 compliance).
    """

    log = Logger()

    def __init__(
        self,
        identity: Identity,
        sender: QuerySender,
        routerNodes: dict[Address, bytes],
        *,
        reactor: IReactorTime,
        alpha: int = 3,
        queryTimeout: float = 5.0,
        shortTimeout: float = 1.0,
        restrictSubnets: bool = True,
        relaxLocal: bool = False,
        eligible: Eligible | None = None,
        announceInterval: tuple[float, float] = (900.0, 1800.0),
    ) -> None:
        self.identity = identity
        self.sender = sender
        self.routerNodes = routerNodes
        self.clock = reactor
        self.alpha = alpha
        self.queryTimeout = queryTimeout
        self.shortTimeout = shortTimeout
        self.restrictSubnets = restrictSubnets
        self.relaxLocal = relaxLocal
        self.eligible = eligible
        self.announceInterval = announceInterval
        self.lookupsStarted = 0
        self.lookupsSucceeded = 0
        """Lookups that heard from at least one eligible node."""
        self._lookups: set[Deferred[Any]] = set()
        self._announcing: dict[bytes, tuple[int | None, bool, IDelayedCall | None]] = {}

    def stop(self) -> None:
        """Cancel every lookup and stop re-announcing."""
        for infoHash in list(self._announcing):
            self.stopAnnouncing(infoHash)
        while self._lookups:
            self._lookups.pop().cancel()

    # Lookups -----------------------------------------------------------------

    def lookup(
        self,
        target: bytes,
        method: bytes,
        family: NodeFamily,
        onPeer: Callable[[Address], object] | None = None,
        seeds: Iterable[tuple[bytes, Address]] = (),
        extraArgs: Mapping[bytes, Any] | None = None,
        onResponse: Callable[[bytes, Address, Response], object] | None = None,
    ) -> Deferred[LookupResult]:
        """One iterative lookup over one family, seeded with C{seeds} and the table
        (C{extraArgs} and C{onResponse}: see L{Lookup})."""
        traversal = Lookup(
            target,
            self.identity.nodeId,
            self.sender.send,
            _Reporter(self.sender, family, self.routerNodes),
            method=method,
            ipv6=family.ipv6,
            k=K,
            alpha=self.alpha,
            shortTimeout=self.shortTimeout,
            timeout=self.queryTimeout,
            restrictSubnets=self.restrictSubnets,
            relaxLocal=self.relaxLocal,
            eligible=self.eligible,
            onPeer=onPeer,
            extraArgs=extraArgs,
            onResponse=onResponse,
            reactor=self.clock,
        )
        self.lookupsStarted += 1
        deferred = traversal.start([*seeds, *_seedsFor(family, target)])
        deferred.addCallback(self._finished)
        if not deferred.called:
            self._lookups.add(deferred)
            deferred.addBoth(self._forget, deferred)
        return deferred

    def _forget(self, result: object, deferred: Deferred[Any]) -> object:
        self._lookups.discard(deferred)
        return result

    def _finished(self, result: LookupResult) -> LookupResult:
        if result.closest:
            self.lookupsSucceeded += 1
        return result

    @property
    def lookupsActive(self) -> int:
        """Lookups running now."""
        return len(self._lookups)

    def lookupAll(
        self,
        target: bytes,
        method: bytes,
        onPeer: Callable[[Address], object] | None = None,
        extraArgs: Mapping[bytes, Any] | None = None,
        onResponse: Callable[[bytes, Address, Response], object] | None = None,
    ) -> Deferred[list[LookupResult]]:
        """One lookup per bound family; cancelling it cancels them all."""
        lookups = [
            self.lookup(target, method, family, onPeer, (), extraArgs, onResponse)
            for family in self.sender.families()
        ]

        def merged(outcomes: list[tuple[bool, Any]]) -> list[LookupResult]:
            failure = firstFailure(outcomes)
            if failure is not None:
                failure.raiseException()
            return results(outcomes)

        return settle(lookups).addCallback(merged)

    def findNode(self, target: bytes) -> Deferred[list[tuple[bytes, Address]]]:
        """The K closest live nodes to C{target} (both families)."""
        _checkId(target, "a target")

        def merge(found: list[LookupResult]) -> list[tuple[bytes, Address]]:
            nodes = [node for result in found for node in result.closest]
            return heapq.nsmallest(K, nodes, key=lambda node: distance(node[0], target))

        return self.lookupAll(target, FIND_NODE).addCallback(merge)

    def getPeers(
        self, infoHash: bytes, onPeer: Callable[[Address], object] | None = None
    ) -> Deferred[list[Address]]:
        """Peers of C{infoHash}, de-duplicated; C{onPeer} gets each one as it arrives."""
        _checkId(infoHash, "an info_hash")
        seen: set[Address] = set()

        def newPeer(peer: Address) -> None:
            if peer not in seen:
                seen.add(peer)
                if onPeer is not None:
                    onPeer(peer)

        def merge(found: list[LookupResult]) -> list[Address]:
            peers: dict[Address, None] = {}
            for result in found:
                peers.update(dict.fromkeys(result.peers))
            return list(peers)

        return self.lookupAll(infoHash, GET_PEERS, newPeer).addCallback(merge)

    # Announces ---------------------------------------------------------------

    def announce(
        self,
        infoHash: bytes,
        port: int | None = None,
        impliedPort: bool = False,
        seed: bool = False,
    ) -> Deferred[int]:
        """Announce that we are a peer of C{infoHash}; fires with how many nodes accepted.

        A get_peers lookup, then announce_peer to the K closest nodes that gave a token.
        With no C{port}, the UDP source port is announced (C{implied_port}).
        """
        _checkId(infoHash, "an info_hash")
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"invalid port: {port}")

        def announceAll(found: list[LookupResult]) -> Deferred[int]:
            sends = [
                self._announceTo(address, infoHash, token, port, impliedPort, seed)
                for result in found
                for _, address, token in result.tokens
            ]
            return settle(sends).addCallback(lambda outcomes: sum(results(outcomes)))

        return self.lookupAll(infoHash, GET_PEERS).addCallback(announceAll)

    def _announceTo(
        self,
        address: Address,
        infoHash: bytes,
        token: bytes,
        port: int | None,
        impliedPort: bool,
        seed: bool,
    ) -> Deferred[int]:
        args: dict[bytes, Any] = {
            b"info_hash": infoHash,
            b"port": port if port is not None else self.sender.familyFor(address).port or 1,
            b"token": token,
        }
        if impliedPort or port is None:
            args[b"implied_port"] = 1
        if seed:
            args[b"seed"] = 1
        return self.sender.send(address, b"announce_peer", args).addCallbacks(
            lambda _: 1, lambda _: 0
        )

    def keepAnnounced(
        self, infoHash: bytes, port: int | None = None, seed: bool = False
    ) -> Deferred[int]:
        """Announce now and again every 15-30 minutes until L{stopAnnouncing}."""
        self.stopAnnouncing(infoHash)
        self._announcing[infoHash] = (port, seed, None)
        return self._reannounce(infoHash)

    def stopAnnouncing(self, infoHash: bytes) -> None:
        """Stop re-announcing C{infoHash}."""
        entry = self._announcing.pop(infoHash, None)
        if entry is not None and entry[2] is not None and entry[2].active():
            entry[2].cancel()

    def announcing(self) -> list[bytes]:
        """The info_hashes kept announced."""
        return list(self._announcing)

    def _reannounce(self, infoHash: bytes) -> Deferred[int]:
        entry = self._announcing.get(infoHash)
        if entry is None:
            return succeed(0)
        port, seed, _ = entry

        def reschedule(accepted: int) -> int:
            if infoHash in self._announcing:
                delay = random.uniform(*self.announceInterval)
                timer = self.clock.callLater(delay, self._reannounce, infoHash)
                self._announcing[infoHash] = (port, seed, timer)
            self.log.info(
                "Announced {infoHash} to {accepted} nodes",
                infoHash=infoHash.hex(),
                accepted=accepted,
            )
            return accepted

        return self.announce(infoHash, port, seed=seed).addCallback(reschedule)


def _checkId(value: bytes, what: str) -> None:
    if len(value) != ID_LENGTH:
        raise ValueError(f"{what} is 20 bytes")


def _seedsFor(family: NodeFamily, target: bytes) -> list[tuple[bytes, Address]]:
    """The table's closest contacts to C{target}; any 2K when it has fewer good ones."""
    contacts = family.table.closest(target, K)
    if len(contacts) < K:
        targetInt = toInt(target)
        contacts = heapq.nsmallest(
            2 * K, family.table.contacts(), key=lambda c: c.idInt ^ targetInt
        )
    return [(c.nodeId, c.address) for c in contacts]


class _Reporter:
    """What a lookup tells a family's routing table; routers are kept out of it."""

    def __init__(
        self, sender: QuerySender, family: NodeFamily, routers: dict[Address, bytes]
    ) -> None:
        self.sender = sender
        self.table = family.table
        self.routers = routers

    def nodeResponded(self, nodeId: bytes, address: Address) -> None:
        if address not in self.routers:
            self.sender.responded(self.table, nodeId, address)

    def nodeFailed(self, address: Address) -> None:
        if address not in self.routers:
            self.table.nodeFailed(address)
