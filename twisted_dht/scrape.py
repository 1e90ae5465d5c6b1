"""Scrape (BEP 33): how many seeds and peers a swarm has, estimated from the bloom
filters of the nodes closest to its info_hash.

A scrape is a get_peers lookup whose queries carry C{scrape=1}. Of the K closest nodes
that answered (in each address family), those that sent C{BFsd} and C{BFpe} have their
filters ORed together; those that only sent C{values} (nodes without BEP 33) have their
peers' IPs put into a local peer filter, unless the seed filters already hold them (the
BEP's rule for legacy replies: a seed is not counted again as a peer). The estimates are
BEP 33's, from each union's zero bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred

from . import krpc
from .addresses import Address, packIP
from .bloom import SIZE, BloomFilter
from .krpc import Response
from .lookup import GET_PEERS, LookupResult
from .nodeid import ID_LENGTH

if TYPE_CHECKING:
    from .search import Search

SCRAPE_ARGS = {b"scrape": 1}
"""What a scrape adds to every get_peers query."""


@dataclass(frozen=True)
class ScrapeResult:
    """What a scrape found about a swarm."""

    infoHash: bytes
    seeds: float
    """BEP 33's estimate of the distinct IPs announced as seeds."""
    peers: float
    """BEP 33's estimate of the distinct IPs announced as peers that are not seeds."""
    seedFilter: BloomFilter
    """The union of the seed filters."""
    peerFilter: BloomFilter
    """The union of the peer filters, and of the IPs of legacy C{values} replies."""
    responders: int
    """The closest nodes whose reply counted: it had filters, or values."""


def scrape(search: Search, infoHash: bytes) -> Deferred[ScrapeResult]:
    """Scrape C{infoHash}: a get_peers lookup with C{scrape=1} over every bound family.

    @raise ValueError: if C{infoHash} is not 20 bytes.
    """
    if len(infoHash) != ID_LENGTH:
        raise ValueError("an info_hash is 20 bytes")
    replies: dict[Address, tuple[BloomFilter, BloomFilter] | list[bytes]] = {}

    def onResponse(nodeId: bytes, address: Address, response: Response) -> None:
        values = response.values
        seeds, peers = values.get(b"BFsd"), values.get(b"BFpe")
        if (
            isinstance(seeds, bytes)
            and isinstance(peers, bytes)
            and len(seeds) == len(peers) == SIZE
        ):
            replies[address] = (BloomFilter(seeds), BloomFilter(peers))
            return
        ips = [packIP(host) for host, _ in krpc.responseValues(response)]
        if ips:
            replies[address] = ips

    def merge(found: list[LookupResult]) -> ScrapeResult:
        seedFilter, peerFilter = BloomFilter(), BloomFilter()
        legacy: list[bytes] = []
        responders = 0
        for result in found:
            for _, address in result.closest:
                reply = replies.get(address)
                if reply is None:
                    continue
                responders += 1
                if isinstance(reply, list):
                    legacy.extend(reply)
                else:
                    seedFilter.update(reply[0])
                    peerFilter.update(reply[1])
        for ip in legacy:
            if ip not in seedFilter:
                peerFilter.insertIP(ip)
        return ScrapeResult(
            infoHash,
            seeds=seedFilter.estimate(),
            peers=peerFilter.estimate(),
            seedFilter=seedFilter,
            peerFilter=peerFilter,
            responders=responders,
        )

    lookups = search.lookupAll(infoHash, GET_PEERS, extraArgs=SCRAPE_ARGS, onResponse=onResponse)
    return lookups.addCallback(merge)
