"""ItemClient: BEP 44 get and put over the DHT (the client side of L{ItemHandlers}).

A get runs a ``get`` lookup toward the target and keeps what verifies: for an immutable
item, a value whose bencoding hashes to the target; for a mutable one, the valid
signature with the highest ``seq``. A put runs the same lookup first (to learn the tokens
and, for a mutable item, the highest ``seq``), then sends ``put`` to the K closest nodes
that gave a token, and fires with a L{PutResult}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from . import bencoding
from .addresses import Address
from .bep44 import (
    KEY_SIZE,
    MAX_SALT_SIZE,
    SIGNATURE_SIZE,
    Item,
    SigningKey,
    immutableTarget,
    mutableTarget,
)
from .deferreds import results, settle
from .errors import ErrorCode, KRPCError, MalformedMessage, PutRefused
from .krpc import Response
from .lookup import GET, LookupResult
from .search import Search

_REFUSALS = (ErrorCode.CAS_MISMATCH, ErrorCode.SEQUENCE_TOO_OLD)

REPUBLISH_INTERVAL = 3600.0
"""Seconds between two puts of an item kept alive (items expire two hours after their
last put; Pkarr users' first complaint is records that vanish)."""


@dataclass
class GetResult:
    """What a get found: the item (None if no node had a valid one), and the tokens of
    the closest nodes (what a put needs)."""

    target: bytes
    item: Item | None = None
    tokens: list[tuple[bytes, Address, bytes]] = field(default_factory=list)


@dataclass
class PutResult:
    """How a put went: the item put, how many nodes accepted it, and the error codes of
    those that refused it."""

    item: Item
    accepted: int
    refused: dict[int, int] = field(default_factory=dict)


class _Collector:
    """Keeps the best verified item among a get's replies."""

    def __init__(self, target: bytes, publicKey: bytes | None, salt: bytes) -> None:
        self.target = target
        self.publicKey = publicKey
        self.salt = salt
        self.best: Item | None = None

    def __call__(self, nodeId: bytes, address: Address, response: Response) -> None:
        values = response.values
        if b"v" not in values:
            return
        value = values[b"v"]
        encoded = bencoding.encode(value)
        if self.publicKey is None:
            if immutableTarget(encoded) == self.target and self.best is None:
                self.best = Item(value, encoded)
            return
        seq, signature, key = values.get(b"seq"), values.get(b"sig"), values.get(b"k")
        if not isinstance(seq, int) or seq < 0 or key != self.publicKey:
            return
        if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
            return
        if self.best is not None and self.best.seq >= seq:
            return
        item = Item(value, encoded, self.publicKey, self.salt, seq, signature)
        if item.verified():
            self.best = item


class ItemClient:
    """BEP 44 get and put through C{search}'s lookups and C{search.sender}."""

    log = Logger()

    def __init__(self, search: Search, republishInterval: float = REPUBLISH_INTERVAL) -> None:
        self.search = search
        self.clock = search.clock
        self.republishInterval = republishInterval
        self._kept: dict[bytes, tuple[Item, IDelayedCall]] = {}

    # Keeping items alive -----------------------------------------------------------

    def keepPut(
        self,
        value: Any,
        key: SigningKey | None = None,
        *,
        salt: bytes = b"",
        seq: int | None = None,
    ) -> Deferred[PutResult]:
        """L{put} now, then put the very same item again every L{republishInterval}
        seconds until L{stopPutting}; a refusal (a newer item is out) ends it."""

        def keep(result: PutResult) -> PutResult:
            self._schedule(result.item)
            return result

        return self.put(value, key, salt=salt, seq=seq).addCallback(keep)

    def kept(self) -> list[bytes]:
        """The targets of the items kept alive."""
        return list(self._kept)

    def stopPutting(self, target: bytes) -> None:
        """Stop republishing the item at C{target}."""
        entry = self._kept.pop(target, None)
        if entry is not None and entry[1].active():
            entry[1].cancel()

    def stop(self) -> None:
        """Stop republishing everything."""
        for target in list(self._kept):
            self.stopPutting(target)

    def _schedule(self, item: Item) -> None:
        self.stopPutting(item.target)
        call = self.clock.callLater(self.republishInterval, self._republish, item)
        self._kept[item.target] = (item, call)

    def _republish(self, item: Item) -> None:
        found = (
            self.get(item.target)
            if item.publicKey is None
            else self.get(publicKey=item.publicKey, salt=item.salt)
        )

        def refused(failure: Any) -> None:
            if failure.check(PutRefused):
                self.log.warn(
                    "A newer item replaced ours at {target}: no longer republished",
                    target=item.target.hex(),
                )
                self._kept.pop(item.target, None)
                return
            self.log.failure("Republishing {target} failed", failure, target=item.target.hex())
            self._schedule(item)

        found.addCallback(lambda result: self._putTo(item, result, None)).addCallbacks(
            lambda _: self._schedule(item), refused
        )

    # Get and put -------------------------------------------------------------------

    def get(
        self,
        target: bytes | None = None,
        *,
        publicKey: bytes | None = None,
        salt: bytes = b"",
        seq: int | None = None,
    ) -> Deferred[GetResult]:
        """Get the immutable item at C{target}, or the mutable item of C{publicKey} and
        C{salt}; with C{seq}, nodes send the value only when theirs is newer."""
        if publicKey is not None:
            if len(publicKey) != KEY_SIZE or len(salt) > MAX_SALT_SIZE:
                raise ValueError("a public key is 32 bytes and a salt at most 64")
            target = mutableTarget(publicKey, salt)
        if target is None or len(target) != 20:
            raise ValueError("a get needs a 20-byte target or a public key")
        collector = _Collector(target, publicKey, salt)
        extra = {b"seq": seq} if seq is not None else None

        def done(found: list[LookupResult]) -> GetResult:
            tokens = [token for result in found for token in result.tokens]
            return GetResult(target, collector.best, tokens)

        return self.search.lookupAll(target, GET, None, extra, collector).addCallback(done)

    def put(
        self,
        value: Any,
        key: SigningKey | None = None,
        *,
        salt: bytes = b"",
        seq: int | None = None,
        cas: int | None = None,
    ) -> Deferred[PutResult]:
        """Put C{value}: immutable without C{key}; mutable with it, at C{seq} (default:
        one more than the highest found, 1 if none).

        @raise ValueError: for a value over 1,000 bytes bencoded or a salt over 64.
        @return: a Deferred firing with a L{PutResult}, or failing with L{PutRefused}
            when a node refused with 301 or 302 (it holds a newer item: get, then put
            again).
        """
        if key is None:
            item = Item.immutable(value)
            return self.get(item.target).addCallback(lambda found: self._putTo(item, found, cas))

        def signAndPut(found: GetResult) -> Deferred[PutResult]:
            nextSeq = seq
            if nextSeq is None:
                nextSeq = found.item.seq + 1 if found.item is not None else 1
            return self._putTo(Item.signed(value, key, nextSeq, salt), found, cas)

        Item.signed(value, key, seq or 0, salt)  # refuse a bad value or salt before the lookup
        return self.get(publicKey=key.publicKey, salt=salt).addCallback(signAndPut)

    def _putTo(self, item: Item, found: GetResult, cas: int | None) -> Deferred[PutResult]:
        args: dict[bytes, Any] = {b"v": item.value}
        if item.publicKey is not None:
            args.update({b"k": item.publicKey, b"seq": item.seq, b"sig": item.signature})
            if item.salt:
                args[b"salt"] = item.salt
            if cas is not None:
                args[b"cas"] = cas
        refused: dict[int, int] = {}

        def sent(response: Response) -> int:
            return 1

        def failed(failure: Any) -> int:
            if failure.check(KRPCError):
                code = failure.value.code
                refused[code] = refused.get(code, 0) + 1
            elif not failure.check(MalformedMessage):
                self.log.debug("A put failed: {error}", error=failure.value)
            return 0

        sends = [
            self.search.sender.send(address, b"put", {**args, b"token": token}).addCallbacks(
                sent, failed
            )
            for _, address, token in found.tokens
        ]

        def outcome(outcomes: list[tuple[bool, Any]]) -> PutResult:
            accepted = sum(results(outcomes))
            for code in _REFUSALS:
                if refused.get(code):
                    raise PutRefused(code, refused[code], accepted)
            return PutResult(item, accepted, refused)

        return settle(sends).addCallback(outcome)
