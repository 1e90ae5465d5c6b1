"""The closest good contacts of a routing table to a target, and the cache of their
compact form that find_node and get_peers replies are built from."""

from __future__ import annotations

from collections import OrderedDict

from .contacts import GOOD_INTERVAL, Bucket, Contact, NodeState

CLOSEST_CACHE_SIZE = 256
"""Targets whose L{RoutingTable.closestCompact} string is kept (an LRU)."""


def closestGood(
    buckets: list[Bucket], index: int, target: int, k: int, now: float
) -> list[Contact]:
    """The C{k} good contacts of C{buckets} closest to C{target}, nearest first;
    C{index} is the bucket holding C{target}.

    Each bucket is an aligned block of ids, and XOR with the target maps it onto another
    aligned block, so the buckets sort by that block's start and every contact of a later
    bucket is farther than every contact of an earlier one: the walk stops as soon as k
    good contacts are found.
    """
    if k <= 0:
        return []
    good = NodeState.GOOD

    def goodByDistance(bucket: Bucket) -> list[Contact]:
        # Sorting (distance, contact) pairs spares a key call per contact; distances
        # differ (ids are unique), so contacts are never compared.
        inBucket = [(c.idInt ^ target, c) for c in bucket.contacts if c.state(now) is good]
        inBucket.sort()
        return [c for _, c in inBucket]

    # The target's own bucket comes first (its XOR block starts at 0), and in a full
    # table it alone holds k good contacts: the other buckets are sorted only if not.
    found = goodByDistance(buckets[index])
    if len(found) < k and len(buckets) > 1:
        others = sorted(
            buckets[:index] + buckets[index + 1 :], key=lambda b: (b.low ^ target) & b.mask
        )
        for bucket in others:
            found += goodByDistance(bucket)
            if len(found) >= k:
                break
    del found[k:]
    return found


class ClosestCache:
    """The last L{CLOSEST_CACHE_SIZE} compact answers by (target, k).

    Each is kept until the table's version changes (an event that could alter it) or one
    of its contacts stops being good with time: a contact is good while C{now -
    max(lastResponse, lastQuery)} is under L{GOOD_INTERVAL}, so the answer holds while
    that is true of its least recently seen contact (the arithmetic of
    L{Contact.state}). Contacts that were not chosen only matter if they become good,
    which takes an event that bumps the version.
    """

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[bytes, int], tuple[int, float, float, bytes]]
        self._entries = OrderedDict()
        """(version, computed at, oldest last-seen time of the contacts, compact string)."""

    def get(self, key: tuple[bytes, int], version: int, now: float) -> bytes | None:
        """The cached answer for C{key}, if it still holds."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        cachedVersion, computedAt, oldest, compact = entry
        if cachedVersion != version or computedAt > now or now - oldest >= GOOD_INTERVAL:
            return None
        self._entries.move_to_end(key)
        return compact

    def put(self, key: tuple[bytes, int], version: int, now: float, found: list[Contact]) -> bytes:
        """Cache and return the compact form of C{found}."""
        compact = b"".join([c.compact for c in found])
        oldest = min([c.lastSeen() for c in found], default=now)
        entries = self._entries
        entries[key] = (version, now, oldest, compact)
        entries.move_to_end(key)
        if len(entries) > CLOSEST_CACHE_SIZE:
            entries.popitem(last=False)
        return compact
