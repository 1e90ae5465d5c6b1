"""ItemStore: the BEP 44 items this node stores for others, bounded like the peer store.

Items expire L{ITEM_LIFETIME} seconds after their last put (a put of the same item, or of
a mutable item's same C{seq}, refreshes it without replacing the value). Immutable and
mutable items are capped separately (L{MAX_ITEMS} each, as libtorrent); when a table is
full, the item with the lowest ``putters // 5 - distance`` goes first (libtorrent's rule:
far from our id and put by few distinct IPs; every five putters are worth one bit of
XOR distance). Distinct putters are counted in a 128-bit bloom filter per item.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from .addresses import packIP
from .bep44 import Item
from .interfaces import IItemStore

ITEM_LIFETIME = 7200.0
"""Seconds an item lives after its last put (BEP 44: two hours)."""

MAX_ITEMS = 700
"""Immutable items kept, and mutable items kept (libtorrent's C{dht_max_dht_items})."""

_BLOOM_BITS = 128


class _Stored:
    __slots__ = ("item", "lastPut", "putters")

    def __init__(self, item: Item, lastPut: float) -> None:
        self.item = item
        self.lastPut = lastPut
        self.putters = 0
        """A bloom filter (k = 2, m = 128) of the IPs that put this item."""

    def addPutter(self, host: str) -> None:
        digest = hashlib.sha1(packIP(host)).digest()
        self.putters |= (1 << digest[0] % _BLOOM_BITS) | (1 << digest[1] % _BLOOM_BITS)

    def putterCount(self) -> int:
        """The estimated number of distinct IPs that put the item."""
        bits = self.putters.bit_count()
        if bits >= _BLOOM_BITS:
            return 1000
        return round(math.log(1 - bits / _BLOOM_BITS) / (2 * math.log(1 - 1 / _BLOOM_BITS)))


@implementer(IItemStore)
class ItemStore:
    """The items stored here (see the module docstring); the time of a put comes from
    C{reactor}, and the node calls L{removeExpired} periodically.

    @param ownId: our node id now (it decides which items are far, for eviction).
    """

    def __init__(
        self,
        ownId: Callable[[], bytes],
        *,
        reactor: IReactorTime,
        maxItems: int = MAX_ITEMS,
        lifetime: float = ITEM_LIFETIME,
    ) -> None:
        if maxItems < 1 or lifetime <= 0:
            raise ValueError("maxItems and lifetime must be positive")
        self.clock = reactor
        self.ownId = ownId
        self.maxItems = maxItems
        self.lifetime = lifetime
        self._immutable: dict[bytes, _Stored] = {}
        self._mutable: dict[bytes, _Stored] = {}
        self.evictions = 0
        """Items dropped to make room for another."""

    def get(self, target: bytes) -> Item | None:
        stored = self._immutable.get(target) or self._mutable.get(target)
        return None if stored is None else stored.item

    def put(self, item: Item, putter: str) -> None:
        """Store C{item} put by C{putter}, or refresh the stored one when it has the
        same C{seq} (the caller has refused older ones)."""
        now = self.clock.seconds()
        table = self._mutable if item.mutable else self._immutable
        target = item.target
        stored = table.get(target)
        if stored is None:
            if len(table) >= self.maxItems:
                self._evictFrom(table)
            stored = table[target] = _Stored(item, now)
        elif item.seq > stored.item.seq:
            stored.item = item
        stored.lastPut = now
        stored.addPutter(putter)

    def putterCount(self, target: bytes) -> int:
        """About how many distinct IPs put the item at C{target} (0 if none is stored)."""
        stored = self._immutable.get(target) or self._mutable.get(target)
        return 0 if stored is None else stored.putterCount()

    def _evictFrom(self, table: dict[bytes, _Stored]) -> None:
        own = int.from_bytes(self.ownId(), "big")

        def worth(entry: tuple[bytes, _Stored]) -> int:
            target, stored = entry
            distance = (int.from_bytes(target, "big") ^ own).bit_length()
            return stored.putterCount() // 5 - distance

        target, _ = min(table.items(), key=worth)
        del table[target]
        self.evictions += 1

    def removeExpired(self) -> int:
        """Drop the items not put for L{lifetime} seconds; how many went."""
        now = self.clock.seconds()
        removed = 0
        for table in (self._immutable, self._mutable):
            expired = [t for t, s in table.items() if now - s.lastPut >= self.lifetime]
            for target in expired:
                del table[target]
            removed += len(expired)
        return removed

    def immutableCount(self) -> int:
        return len(self._immutable)

    def mutableCount(self) -> int:
        return len(self._mutable)
