"""External IP voting (BEP 42): learn our address from the C{ip} field of replies.

Each responder's IP votes once per round for the address it saw us at. A claim becomes
our external IP when it has at least C{minVotes} votes and more than C{margin} times the
votes of the runner-up (libtorrent's C{ip_voter}: 3/2). A round ends after C{roundVotes}
votes or C{roundTime} seconds, so a changed address can win later. Votes from local or
loopback responders, and claims of non-global addresses, are ignored
(L{twisted_dht.addresses.isGlobal}).
"""

from __future__ import annotations

from collections import Counter

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from .addresses import isGlobal


class IPVoter:
    """Counts votes for our external IP of one address family."""

    log = Logger()

    def __init__(
        self,
        *,
        reactor: IReactorTime,
        minVotes: int = 10,
        margin: float = 1.5,
        roundVotes: int = 50,
        roundTime: float = 300.0,
        maxCandidates: int = 20,
    ) -> None:
        """
        @param reactor: the clock that times rounds.
        @param minVotes: votes a claim needs to win.
        @param margin: how many times the runner-up's votes the winner needs, strictly.
        @param roundVotes: voters after which a new round starts.
        @param roundTime: seconds after which a new round starts.
        @param maxCandidates: distinct claims counted in a round; more are ignored.
        @raise ValueError: for inconsistent thresholds.
        """
        if minVotes < 1 or margin < 1 or roundVotes < minVotes or maxCandidates < 2:
            raise ValueError(
                "need minVotes >= 1, margin >= 1, roundVotes >= minVotes, maxCandidates >= 2"
            )
        self.reactor = reactor
        self.minVotes = minVotes
        self.margin = margin
        self.roundVotes = roundVotes
        self.roundTime = roundTime
        self.maxCandidates = maxCandidates
        self.external: str | None = None
        """The winning address, None until one has won."""
        self._votes: Counter[str] = Counter()
        self._voters: set[str] = set()
        self._roundStart = self.reactor.seconds()

    @property
    def voters(self) -> int:
        """How many IPs voted in this round (at most C{roundVotes})."""
        return len(self._voters)

    def vote(self, voter: str, claimed: str) -> str | None:
        """Record that C{voter} saw us at C{claimed}; return the new external IP if this
        vote changed it, else None."""
        if not isGlobal(voter) or not isGlobal(claimed):
            return None
        if (":" in voter) != (":" in claimed):
            return None
        now = self.reactor.seconds()
        if len(self._voters) >= self.roundVotes or now - self._roundStart >= self.roundTime:
            self._votes.clear()
            self._voters.clear()
            self._roundStart = now
        if voter in self._voters:
            return None
        votes = self._votes
        if claimed not in votes and len(votes) >= self.maxCandidates:
            return None
        self._voters.add(voter)
        votes[claimed] += 1
        top = votes.most_common(2)
        winner, count = top[0]
        runnerUp = top[1][1] if len(top) > 1 else 0
        if winner == self.external or count < self.minVotes or count <= self.margin * runnerUp:
            return None
        self.external = winner
        self.log.info(
            "External IP is now {ip} ({votes} votes, runner-up {runnerUp})",
            ip=winner,
            votes=count,
            runnerUp=runnerUp,
        )
        return winner
