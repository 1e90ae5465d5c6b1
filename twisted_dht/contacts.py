"""Contacts and buckets of a routing table: a node's BEP 5 state, and a block of ids."""

from __future__ import annotations

from enum import Enum

from . import krpc
from .addresses import Address, isLocal, subnetOf
from .nodeid import ID_BITS, ID_LENGTH, randomIdInRange, toInt

GOOD_INTERVAL = 15 * 60.0
"""A node is good while it answered (or, having answered once, queried us) this recently."""

_NEVER = float("-inf")


class NodeState(Enum):
    """BEP 5 node states."""

    GOOD = "good"
    QUESTIONABLE = "questionable"
    BAD = "bad"


class Contact:
    """A node known to the routing table: id, address and what we heard from it."""

    __slots__ = (
        "_ip",
        "_localCache",
        "_subnet",
        "address",
        "compact",
        "failures",
        "idInt",
        "lastPinged",
        "lastQuery",
        "lastResponse",
        "maxFailures",
        "nodeId",
    )

    def __init__(self, nodeId: bytes, address: Address, *, maxFailures: int = 2) -> None:
        """
        @raise ValueError: if the id is not 20 bytes or the address is not an IP literal.
        """
        if len(nodeId) != ID_LENGTH:
            raise ValueError(f"node id must be {ID_LENGTH} bytes, got {len(nodeId)}")
        self.nodeId = nodeId
        self.idInt = toInt(nodeId)
        self.address = address
        self.compact = krpc.packNode(nodeId, address)
        self.lastResponse: float | None = None
        """When it last answered one of our queries."""
        self.lastQuery: float | None = None
        """When it last sent us a query."""
        self.lastPinged: float | None = None
        """When the table last asked for it to be pinged."""
        self.failures = 0
        """Consecutive failed queries."""
        self.maxFailures = maxFailures
        # The raw IP, sliced out of the compact form: no second parse of the address.
        packed = self.compact[ID_LENGTH:-2]
        self._ip = packed
        self._subnet = subnetOf(packed)
        self._localCache: bool | None = None

    @property
    def _local(self) -> bool:
        """Whether the IP is local (L{isLocal}); worked out on first use only (with
        C{relaxLocal}), as most contacts never need it."""
        local = self._localCache
        if local is None:
            local = self._localCache = isLocal(self._ip)
        return local

    def state(self, now: float) -> NodeState:
        """This contact's BEP 5 state at time C{now}."""
        if self.failures >= self.maxFailures:
            return NodeState.BAD
        lastResponse = self.lastResponse
        if lastResponse is not None and (
            now - lastResponse < GOOD_INTERVAL
            or (self.lastQuery is not None and now - self.lastQuery < GOOD_INTERVAL)
        ):
            return NodeState.GOOD
        return NodeState.QUESTIONABLE

    def lastSeen(self) -> float:
        """When we last heard from it at all (answer or query); -inf if never."""
        response, query = self.lastResponse, self.lastQuery
        if response is None:
            return _NEVER if query is None else query
        return response if query is None or response >= query else query

    def __repr__(self) -> str:
        return (
            f"<Contact {self.nodeId.hex()} {self.address[0]}:{self.address[1]}"
            f" failures={self.failures}>"
        )


class Bucket:
    """The contacts with C{low <= idInt < high}, an aligned power-of-two block of ids.

    C{contacts} is ordered least recently seen first; C{replacements} (the replacement
    cache) is unordered: a cached node that queries again only has its C{lastQuery}
    moved, and L{Contact.lastSeen} decides which entry goes or gets promoted. Both lists
    belong to the table: read them, do not mutate them.
    """

    __slots__ = ("contacts", "high", "lastChanged", "low", "mask", "replacements")

    def __init__(self, low: int, high: int, lastChanged: float) -> None:
        self.low = low
        self.high = high
        self.mask = ~(high - low - 1)
        """Clears the bits that vary inside the block."""
        self.lastChanged = lastChanged
        self.contacts: list[Contact] = []
        self.replacements: list[Contact] = []

    @property
    def depth(self) -> int:
        """The length of the id prefix this bucket covers (0 for the whole space)."""
        return ID_BITS - (self.high - self.low).bit_length() + 1

    def randomId(self) -> bytes:
        """A random id in this bucket's range, the target of a refresh lookup."""
        return randomIdInRange(self.low, self.high)

    def __len__(self) -> int:
        return len(self.contacts)

    def __repr__(self) -> str:
        return (
            f"<Bucket depth={self.depth} low={self.low:#042x} contacts={len(self.contacts)}"
            f" replacements={len(self.replacements)}>"
        )
