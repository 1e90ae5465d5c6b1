"""Maintenance: the routing tables' upkeep — pinging questionable contacts, refreshing stale
buckets, and rejoining when no contact is left."""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from .bootstrap import Joiner
from .handlers import K
from .lookup import FIND_NODE
from .periodic import Periodic
from .search import Search
from .sender import QuerySender

MAX_REFRESHES = 2
"""Bucket refresh lookups that may run at once."""


class Maintenance:
    """Every C{interval} seconds: rejoin if every contact went bad, ping up to K
    questionable contacts per family, and look up a random id in each bucket unchanged
    for C{refreshInterval} seconds (at most L{MAX_REFRESHES} at a time)."""

    def __init__(
        self,
        sender: QuerySender,
        search: Search,
        joiner: Joiner,
        *,
        reactor: IReactorTime,
        interval: float = 60.0,
        refreshInterval: float = 900.0,
    ) -> None:
        self.sender = sender
        self.search = search
        self.joiner = joiner
        self.clock = reactor
        self.refreshInterval = refreshInterval
        self.refreshing = 0
        self._loop = Periodic(self.maintain, interval, reactor, "Routing table maintenance")

    def start(self) -> None:
        """Run L{maintain} now and every interval."""
        self._loop.start()

    def stop(self) -> None:
        """Stop the loop (the lookups it started are the search's to cancel)."""
        self._loop.stop()

    def maintain(self) -> None:
        """One round of upkeep (see the class docstring)."""
        self.joiner.rejoinIfLost()
        if self.joiner.joining:
            return
        for family in self.sender.families():
            for contact in family.table.questionable()[:K]:
                self.sender.ping(contact.address).addErrback(lambda _: None)
            for bucket in family.table.staleBuckets(self.refreshInterval):
                if self.refreshing >= MAX_REFRESHES:
                    break
                self.refreshing += 1
                bucket.lastChanged = self.clock.seconds()
                self.search.lookup(bucket.randomId(), FIND_NODE, family).addBoth(self._refreshed)

    def _refreshed(self, result: object) -> None:
        self.refreshing -= 1
