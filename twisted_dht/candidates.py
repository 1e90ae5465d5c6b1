"""The contacts one lookup has heard of, sorted by XOR distance to its target."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from twisted.logger import Logger

from .addresses import Address, isIPv6, isLocal, packIP, subnetOf
from .nodeid import ID_LENGTH

_log = Logger()


class Candidate:
    """A contact of a lookup, with its state in the traversal."""

    __slots__ = (
        "address",
        "distance",
        "eligible",
        "failed",
        "hop",
        "nodeId",
        "queried",
        "responded",
        "token",
    )

    def __init__(self, nodeId: bytes, address: Address, distance: int, hop: int) -> None:
        self.nodeId = nodeId
        self.address = address
        self.distance = distance
        self.hop = hop
        self.queried = False
        self.responded = False
        self.failed = False
        self.eligible = True
        self.token: bytes | None = None


class Candidates:
    """At most C{limit} contacts, nearest to C{target} first, each id and address once.

    Refused: our own id, a port outside 1-65535, the other family, and a second contact
    on an IP (or, with C{restrictSubnets}, on a /24 or /64), unless C{relaxLocal} and the
    IP is local. Beyond C{limit}, the farthest contacts never queried are dropped.
    """

    def __init__(
        self,
        target: bytes,
        ownId: bytes,
        *,
        ipv6: bool,
        limit: int,
        restrictSubnets: bool,
        relaxLocal: bool,
    ) -> None:
        self.ownId = ownId
        self.ipv6 = ipv6
        self.limit = limit
        self.restrictSubnets = restrictSubnets
        self.relaxLocal = relaxLocal
        self._target = int.from_bytes(target, "big")
        # Ids are unique here, so are distances: the two lists stay in step.
        self._candidates: list[Candidate] = []
        self._distances: list[int] = []
        self._ids: set[bytes] = set()
        self._addresses: set[tuple[bytes, int]] = set()
        self._ips: set[bytes] = set()
        self._subnets: set[bytes] = set()

    def __iter__(self) -> Iterator[Candidate]:
        return iter(self._candidates)

    def __len__(self) -> int:
        return len(self._candidates)

    def add(self, nodeId: bytes, address: Address, hop: int) -> None:
        """Add a contact learned at C{hop}, unless the rules above refuse it."""
        if not self._acceptsId(nodeId):
            return
        host, port = address
        if not 0 < port < 65536 or isIPv6(host) != self.ipv6:
            return
        try:
            ip = packIP(host)
        except ValueError:
            _log.debug("Lookup ignores the invalid address {address!r}", address=address)
            return
        key = (ip, port)
        if key in self._addresses:
            return
        subnet = subnetOf(ip)
        if not (self.relaxLocal and isLocal(ip)) and (
            ip in self._ips or (self.restrictSubnets and subnet in self._subnets)
        ):
            return
        self._addresses.add(key)
        self._ips.add(ip)
        self._subnets.add(subnet)
        self._ids.add(nodeId)
        self._insert(Candidate(nodeId, address, self._distance(nodeId), hop))
        if len(self._candidates) > self.limit:
            self._prune()

    def rekey(self, candidate: Candidate, nodeId: bytes) -> bool:
        """Move a contact that answered with another id than we knew to its real place;
        False (and nothing moved) if that id is not acceptable."""
        if not self._acceptsId(nodeId):
            return False
        self._remove(candidate)
        self._ids.discard(candidate.nodeId)
        self._ids.add(nodeId)
        candidate.nodeId = nodeId
        candidate.distance = self._distance(nodeId)
        self._insert(candidate)
        return True

    def _acceptsId(self, nodeId: bytes) -> bool:
        return len(nodeId) == ID_LENGTH and nodeId != self.ownId and nodeId not in self._ids

    def _distance(self, nodeId: bytes) -> int:
        return int.from_bytes(nodeId, "big") ^ self._target

    def _insert(self, candidate: Candidate) -> None:
        index = bisect_left(self._distances, candidate.distance)
        self._distances.insert(index, candidate.distance)
        self._candidates.insert(index, candidate)

    def _remove(self, candidate: Candidate) -> None:
        index = bisect_left(self._distances, candidate.distance)
        del self._distances[index]
        del self._candidates[index]

    def _prune(self) -> None:
        candidates = self._candidates
        index = len(candidates) - 1
        while len(candidates) > self.limit and index >= 0:
            if not candidates[index].queried:
                del candidates[index]
                del self._distances[index]
            index -= 1
