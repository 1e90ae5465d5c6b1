"""The BEP 5 routing table: buckets, node states, replacement caches and closest().

Pure logic: no I/O, and all time comes from an injected L{IReactorTime}. The node keeps
one table per address family. Callers report what happened to a node:

  - L{RoutingTable.nodeResponded}: it answered one of our queries ("confirmed");
  - L{RoutingTable.nodeQueried}: it sent us a query ("heard from", possibly spoofed);
  - L{RoutingTable.nodeFailed}: our query to it timed out.

Only confirmed nodes evict or replace anyone; heard-from nodes only fill free room.
When a confirmed newcomer waits for the slot of a questionable contact,
L{RoutingTable.nodeResponded} returns that contact: the caller pings it and reports the
outcome. The table itself never touches the network.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence

from twisted.internet.interfaces import IReactorTime

from .addresses import Address, packIP, subnetOf
from .closest import ClosestCache, closestGood
from .contacts import Bucket, Contact, NodeState
from .iprules import IPRules
from .nodeid import ID_BITS, ID_LENGTH, toInt

REFRESH_INTERVAL = 15 * 60.0
"""A bucket unchanged for this long should be refreshed (BEP 5)."""

PING_THROTTLE = 60.0
"""A questionable contact is pinged at most once per this many seconds on insertion pressure."""

_ID_SPACE = 1 << ID_BITS


class RoutingTable:
    """A BEP 5 routing table for one address family, with libtorrent's IP hygiene."""

    def __init__(
        self,
        ownId: bytes,
        *,
        k: int = 8,
        replacements: int = 8,
        maxFailures: int = 2,
        restrictIPs: bool = True,
        relaxLocal: bool = False,
        admit: Callable[[bytes, Address], bool] | None = None,
        reactor: IReactorTime,
    ) -> None:
        """
        @param ownId: our node id; never inserted, and the only bucket holding it splits.
        @param k: bucket size and the default count of L{closest}.
        @param replacements: size of each bucket's replacement cache.
        @param maxFailures: consecutive failures that make a contact bad.
        @param restrictIPs: one live entry per IP, two per /24 (/64) per bucket.
        @param relaxLocal: exempt local addresses (L{isLocal}) from C{restrictIPs}.
        @param admit: C{admit(nodeId, address)} is False for nodes that must not enter
            the table (e.g. ids failing BEP 42); None admits everyone.
        """
        if len(ownId) != ID_LENGTH:
            raise ValueError(f"own id must be {ID_LENGTH} bytes, got {len(ownId)}")
        if k < 1 or replacements < 0 or maxFailures < 1:
            raise ValueError("need k >= 1, replacements >= 0 and maxFailures >= 1")
        self._reactor = reactor
        self.k = k
        self.replacements = replacements
        self.maxFailures = maxFailures
        self.restrictIPs = restrictIPs
        self.relaxLocal = relaxLocal
        self.admit = admit
        self._reset(ownId, self._reactor.seconds())

    def _reset(self, ownId: bytes, now: float) -> None:
        self._ownId = ownId
        self._ownInt = toInt(ownId)
        self._buckets: list[Bucket] = [Bucket(0, _ID_SPACE, now)]
        self._lows: list[int] = [0]
        self._byAddress: dict[Address, Contact] = {}
        self._byId: dict[bytes, Contact] = {}
        self._cachedByAddress: dict[Address, Contact] = {}
        self._rules = IPRules(self.restrictIPs, self.relaxLocal)
        self._version = 0
        """Bumped by every change that can alter what L{closest} returns, other than time
        passing: a live contact added or removed, or one that may become good (touched
        while not good, or with the clock stepped back) or bad (a failure)."""
        self._closestCache = ClosestCache()

    @property
    def ownId(self) -> bytes:
        """Our node id (change it with L{setOwnId})."""
        return self._ownId

    def setOwnId(self, newId: bytes) -> None:
        """Adopt a new own id and rebuild the buckets around it, keeping the contacts.

        Live contacts are re-inserted good ones first; those that no longer fit go to the
        replacement caches (bounded as usual). A contact with the new id is dropped.
        """
        if len(newId) != ID_LENGTH:
            raise ValueError(f"own id must be {ID_LENGTH} bytes, got {len(newId)}")
        now = self._reactor.seconds()
        order = {NodeState.GOOD: 0, NodeState.QUESTIONABLE: 1, NodeState.BAD: 2}
        live = sorted(
            (c for b in self._buckets for c in b.contacts),
            key=lambda c: (order[c.state(now)], -c.lastSeen()),
        )
        cached = [c for b in self._buckets for c in b.replacements]
        self._reset(newId, now)
        for contact in live:
            if contact.nodeId != newId:
                self._keep(contact, now)
        for contact in sorted(cached, key=Contact.lastSeen):
            if contact.nodeId != newId and contact.nodeId not in self._byId:
                self._keep(contact, now)
        for bucket in self._buckets:
            bucket.contacts.sort(key=Contact.lastSeen)

    def _keep(self, contact: Contact, now: float) -> None:
        """Re-insert a contact for L{setOwnId}: live, else cached. L{_place} alone would
        drop one that the subnet rule keeps out of a bucket with room (its new bucket
        holds the contacts of buckets that merged)."""
        self._place(contact, now)
        address = contact.address
        if address not in self._byAddress and address not in self._cachedByAddress:
            self._addCached(self._bucketFor(contact.idInt), contact)

    # Reporting events

    def nodeResponded(self, nodeId: bytes, address: Address) -> Contact | None:
        """A node answered one of our queries: confirm it, inserting it if possible.

        @return: a questionable contact to ping, because this node waits for its slot
            (report the outcome with L{nodeResponded} or L{nodeFailed}); None mostly.
        """
        return self._seen(nodeId, address, confirmed=True)

    def nodeQueried(self, nodeId: bytes, address: Address) -> Contact | None:
        """A node sent us a query: refresh it, or insert it only where there is room.

        @return: its live contact afterwards, if it has one.
        """
        # The two common cases first: a live contact, or a cached one in a bucket that
        # has no room for it, querying again from the same address with the same id.
        known = self._byAddress.get(address)
        if known is not None:
            if known.nodeId == nodeId:
                self._refreshLive(known, self._reactor.seconds(), confirmed=False)
                return known
        else:
            cached = self._cachedByAddress.get(address)
            if cached is not None and cached.nodeId == nodeId and self._refreshCached(cached):
                return None
        self._seen(nodeId, address, confirmed=False)
        contact = self._byAddress.get(address)
        # Not the contact of another id at this address (a query that evicts nobody).
        return contact if contact is not None and contact.nodeId == nodeId else None

    def nodeFailed(self, address: Address) -> None:
        """Our query to C{address} timed out.

        A contact that never answered goes at once; a bad one goes when a replacement can
        take its slot, and otherwise stays (so an outage of our own network does not
        empty the table). A failed replacement-cache entry is dropped.
        """
        contact = self._byAddress.get(address)
        if contact is None:
            cached = self._cachedByAddress.get(address)
            if cached is not None:
                self._dropCached(self._bucketFor(cached.idInt), cached)
            return
        contact.failures += 1
        self._version += 1
        bucket = self._bucketFor(contact.idInt)
        now = self._reactor.seconds()
        if contact.lastResponse is None:
            self._removeLive(bucket, contact)
            self._refill(bucket, now)
        elif contact.state(now) is NodeState.BAD:
            candidate = self._pickReplacement(bucket, contact)
            if candidate is not None:
                self._removeLive(bucket, contact)
                self._promote(bucket, candidate, now)

    # Queries

    def get(self, address: Address) -> Contact | None:
        """The live contact at C{address}, if any (replacement-cache entries excluded)."""
        return self._byAddress.get(address)

    def contacts(self) -> list[Contact]:
        """Every contact in the live buckets, in bucket order."""
        return [c for b in self._buckets for c in b.contacts]

    def goodCount(self) -> int:
        """How many live contacts are good now."""
        now = self._reactor.seconds()
        return sum(c.state(now) is NodeState.GOOD for b in self._buckets for c in b.contacts)

    def __len__(self) -> int:
        """How many contacts the live buckets hold."""
        return len(self._byAddress)

    def buckets(self) -> Sequence[Bucket]:
        """The buckets, in id order."""
        return tuple(self._buckets)

    def staleBuckets(self, interval: float = REFRESH_INTERVAL) -> list[Bucket]:
        """The buckets that have not changed for C{interval} seconds, to be refreshed."""
        now = self._reactor.seconds()
        return [b for b in self._buckets if now - b.lastChanged >= interval]

    def questionable(self) -> list[Contact]:
        """The live contacts that are not good, least recently seen first, to be pinged.

        Bad contacts kept for want of a replacement are included: a ping that succeeds
        revives them after an outage of our own network.
        """
        now = self._reactor.seconds()
        found = [
            c for b in self._buckets for c in b.contacts if c.state(now) is not NodeState.GOOD
        ]
        found.sort(key=Contact.lastSeen)
        return found

    def closest(self, target: bytes, k: int | None = None) -> list[Contact]:
        """The C{k} (default: the table's k) good contacts closest to C{target}, nearest
        first (see L{closestGood})."""
        if k is None:
            k = self.k
        return self._closest(target, k, self._reactor.seconds())

    def closestCompact(self, target: bytes, k: int) -> bytes:
        """The compact node infos of C{closest(target, k)}, concatenated (a C{nodes} or
        C{nodes6} value), from a L{ClosestCache} while the answer holds."""
        now = self._reactor.seconds()
        key = (target, k)
        compact = self._closestCache.get(key, self._version, now)
        if compact is None:
            compact = self._closestCache.put(
                key, self._version, now, self._closest(target, k, now)
            )
        return compact

    def _closest(self, target: bytes, k: int, now: float) -> list[Contact]:
        t = toInt(target)
        return closestGood(self._buckets, self._bucketIndex(t), t, k, now)

    # Internals

    def _bucketIndex(self, idInt: int) -> int:
        return bisect.bisect_right(self._lows, idInt) - 1

    def _bucketFor(self, idInt: int) -> Bucket:
        return self._buckets[bisect.bisect_right(self._lows, idInt) - 1]

    def _seen(self, nodeId: bytes, address: Address, confirmed: bool) -> Contact | None:
        if nodeId == self._ownId:
            return None
        now = self._reactor.seconds()
        known = self._byAddress.get(address)
        if known is not None:
            if known.nodeId == nodeId:
                self._refreshLive(known, now, confirmed)
                return None
            if self.admit is not None and not self.admit(nodeId, address):
                return None
            if not confirmed:
                # An unsolicited query may be spoofed: it must not evict anyone.
                return None
            # Same ip:port, new id: evict the old entry, then treat this as a newcomer.
            self._removeLive(self._bucketFor(known.idInt), known)
        elif self.admit is not None and not self.admit(nodeId, address):
            return None
        toPing = self._insert(nodeId, address, now, confirmed)
        if known is not None:
            self._refill(self._bucketFor(known.idInt), now)
        return toPing

    def _refreshLive(self, known: Contact, now: float, confirmed: bool) -> None:
        """A live contact was heard from again: touch it, and make it its bucket's newest."""
        if now < known.lastSeen() or known.state(now) is not NodeState.GOOD:
            self._version += 1  # it may become good, or stop being good sooner
        self._touch(known, now, confirmed)
        bucket = self._bucketFor(known.idInt)
        bucket.contacts.remove(known)
        bucket.contacts.append(known)
        bucket.lastChanged = now

    def _refreshCached(self, cached: Contact) -> bool:
        """A cached contact queried again: when its bucket is full and cannot split,
        C{_place} would only re-cache it, and last-seen times rank the cache, so moving
        its C{lastQuery} is all it takes, unless its IP went live since (the only rule
        that can newly exclude it: the other entries were allowed in against it), which
        drops it. Returns False, doing nothing, when the general path must run instead
        (room in the bucket, or its id live at another address)."""
        bucket = self._bucketFor(cached.idInt)
        if len(bucket.contacts) < self.k or self._canSplit(bucket) or cached.nodeId in self._byId:
            return False
        cached.lastQuery = self._reactor.seconds()
        if cached._ip in self._rules.liveIPs and not self._rules.exempt(cached):
            self._dropCached(bucket, cached)
        return True

    def _insert(
        self, nodeId: bytes, address: Address, now: float, confirmed: bool
    ) -> Contact | None:
        """Insert a node not live at C{address}; return a contact to ping, if any."""
        if nodeId in self._byId:
            return None  # a known id at another address: do not let a new IP hijack it
        contact: Contact | None = None
        cached = self._cachedByAddress.get(address)
        if cached is not None:
            bucket = self._bucketFor(cached.idInt)
            self._dropCached(bucket, cached)
            if cached.nodeId == nodeId:
                contact = cached
        if contact is None:
            idInt = toInt(nodeId)
            bucket = self._bucketFor(idInt)
            if not confirmed and not self._mayCache(bucket, address):
                return None
            if any(c.nodeId == nodeId for c in bucket.replacements):
                return None  # the same rule in the replacement cache
            contact = Contact(nodeId, address, maxFailures=self.maxFailures)
        self._touch(contact, now, confirmed)
        return self._place(contact, now, confirmed)

    @staticmethod
    def _touch(contact: Contact, now: float, confirmed: bool) -> None:
        if confirmed:
            contact.lastResponse = now
            contact.failures = 0
        else:
            contact.lastQuery = now

    def _place(self, contact: Contact, now: float, evict: bool = False) -> Contact | None:
        """Put a contact in a live bucket (splitting ours if needed) or a replacement cache.

        With C{evict} (a confirmed newcomer) it may replace a bad contact; returns the
        questionable contact that should be pinged to make room for it, if any.
        """
        split: list[Bucket] = []
        try:
            return self._placeIn(contact, now, evict, split)
        finally:
            # Fill the room a split made from the caches, after the newcomer had its turn.
            for bucket in split:
                if self._bucketFor(bucket.low) is bucket:
                    self._refill(bucket, now)

    def _placeIn(
        self, contact: Contact, now: float, evict: bool, split: list[Bucket]
    ) -> Contact | None:
        while True:
            index = self._bucketIndex(contact.idInt)
            bucket = self._buckets[index]
            if len(bucket.contacts) < self.k:
                if self._rules.allowedLive(bucket, contact):
                    self._addLive(bucket, contact, now)
                return None
            if not self._canSplit(bucket):
                break
            split.extend(self._split(index))
        if evict:
            for old in bucket.contacts:
                if old.state(now) is NodeState.BAD and self._rules.allowedLive(
                    bucket, contact, old
                ):
                    self._removeLive(bucket, old)
                    self._addLive(bucket, contact, now)
                    return None
        if not self._addCached(bucket, contact) or not evict:
            return None
        for old in bucket.contacts:  # least recently seen first
            if old.state(now) is NodeState.QUESTIONABLE:
                if old.lastPinged is None or now - old.lastPinged >= PING_THROTTLE:
                    old.lastPinged = now
                    return old
                return None
        return None

    def _canSplit(self, bucket: Bucket) -> bool:
        return bucket.low <= self._ownInt < bucket.high and bucket.high - bucket.low > 2

    def _split(self, index: int) -> tuple[Bucket, Bucket]:
        bucket = self._buckets[index]
        middle = (bucket.low + bucket.high) // 2
        lower = Bucket(bucket.low, middle, bucket.lastChanged)
        upper = Bucket(middle, bucket.high, bucket.lastChanged)
        for contact in bucket.contacts:
            (lower if contact.idInt < middle else upper).contacts.append(contact)
        for contact in bucket.replacements:
            (lower if contact.idInt < middle else upper).replacements.append(contact)
        self._buckets[index : index + 1] = [lower, upper]
        self._lows.insert(index + 1, middle)
        self._version += 1
        return lower, upper

    def _mayCache(self, bucket: Bucket, address: Address) -> bool:
        """For a heard-from newcomer at C{address}: False when C{bucket} is full and
        cannot split, so only its cache could take the newcomer, and the IP rules refuse
        it there. Checked before a L{Contact} is made: a busy node hears from many
        nodes its full buckets have no room for."""
        if (
            len(bucket.contacts) < self.k
            or self._canSplit(bucket)
            or not self.restrictIPs
            or self.relaxLocal  # whether it is exempt needs the full parse: decide later
            or self.replacements == 0
        ):
            return True
        ip = packIP(address[0])
        return self._rules.cacheAdmits(bucket, ip, subnetOf(ip))

    def _addLive(self, bucket: Bucket, contact: Contact, now: float) -> None:
        self._version += 1
        bucket.contacts.append(contact)
        bucket.lastChanged = now
        self._byAddress[contact.address] = contact
        self._byId[contact.nodeId] = contact
        self._rules.added(contact)

    def _removeLive(self, bucket: Bucket, contact: Contact) -> None:
        self._version += 1
        bucket.contacts.remove(contact)
        del self._byAddress[contact.address]
        del self._byId[contact.nodeId]
        self._rules.removed(contact)

    def _addCached(self, bucket: Bucket, contact: Contact) -> bool:
        if self.replacements == 0 or not self._rules.allowedCached(bucket, contact):
            return False
        if len(bucket.replacements) >= self.replacements:
            self._dropCached(bucket, min(bucket.replacements, key=Contact.lastSeen))
        bucket.replacements.append(contact)
        self._cachedByAddress[contact.address] = contact
        return True

    def _dropCached(self, bucket: Bucket, contact: Contact) -> None:
        bucket.replacements.remove(contact)
        del self._cachedByAddress[contact.address]

    def _pickReplacement(self, bucket: Bucket, replacing: Contact | None) -> Contact | None:
        """The cached contact to promote: the most recently seen confirmed one, else the
        most recently seen."""
        candidates = sorted(
            bucket.replacements, key=lambda c: (c.lastResponse is None, -c.lastSeen())
        )
        for candidate in candidates:
            if self._rules.allowedLive(bucket, candidate, replacing):
                return candidate
        return None

    def _promote(self, bucket: Bucket, contact: Contact, now: float) -> None:
        self._dropCached(bucket, contact)
        self._addLive(bucket, contact, now)

    def _refill(self, bucket: Bucket, now: float) -> None:
        """Fill free room in C{bucket} from its replacement cache."""
        while len(bucket.contacts) < self.k:
            candidate = self._pickReplacement(bucket, None)
            if candidate is None:
                return
            self._promote(bucket, candidate, now)
