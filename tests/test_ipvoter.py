"""Tests for twisted_dht.ipvoter: learning our external IP from the replies' ip field."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht.ipvoter import IPVoter

OURS = "81.1.1.1"
OTHER = "82.2.2.2"


def voter(n: int) -> str:
    """The n-th distinct global voter IP."""
    return f"93.{n // 256}.{n % 256}.7"


class IPVoterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.voter = IPVoter(reactor=self.clock)

    def test_tenVotesNeeded(self) -> None:
        """The external IP changes only at the 10th independent vote."""
        results = [self.voter.vote(voter(i), OURS) for i in range(10)]
        self.assertEqual(results, [None] * 9 + [OURS])
        self.assertEqual(self.voter.external, OURS)

    def test_oneVotePerSource(self) -> None:
        """The same voter IP counts once, however many replies it sends."""
        for _ in range(100):
            self.assertIsNone(self.voter.vote(voter(1), OURS))
        self.assertIsNone(self.voter.external)
        self.assertEqual(self.voter.voters, 1)

    def test_marginOverRunnerUp(self) -> None:
        """The winner needs more than 1.5 times the runner-up's votes."""
        for i in range(8):
            self.voter.vote(voter(100 + i), OTHER)
        for i in range(12):
            self.assertIsNone(self.voter.vote(voter(i), OURS))
        self.assertEqual(self.voter.vote(voter(12), OURS), OURS)

    def test_localVotersIgnored(self) -> None:
        """Votes from local or loopback voters, and claims of local addresses, do not count."""
        for i in range(20):
            self.voter.vote(f"10.0.{i}.1", OURS)
            self.voter.vote("127.0.0.1", OURS)
            self.voter.vote(f"fd00::{i + 1:x}", "2a00::1")
            self.voter.vote(voter(i), "192.168.1.1")
        self.assertIsNone(self.voter.external)
        self.assertEqual(self.voter.voters, 0)

    def test_familyMismatchIgnored(self) -> None:
        """An IPv4 voter claiming an IPv6 address does not count."""
        for i in range(20):
            self.voter.vote(voter(i), "2a00::1")
        self.assertIsNone(self.voter.external)

    def test_newRoundLetsAChangedAddressWin(self) -> None:
        """After the round ends (50 votes), the same voters can elect a new address."""
        for i in range(50):
            self.voter.vote(voter(i), OURS)
        self.assertEqual(self.voter.external, OURS)
        changed = [self.voter.vote(voter(i), OTHER) for i in range(10)]
        self.assertEqual(changed[-1], OTHER)

    def test_roundExpiresAfterFiveMinutes(self) -> None:
        """A round also ends after 300 s, so old votes stop counting."""
        for i in range(9):
            self.voter.vote(voter(i), OURS)
        self.clock.advance(300)
        self.assertIsNone(self.voter.vote(voter(100), OURS))
        self.assertEqual(self.voter.voters, 1)

    def test_candidatesBounded(self) -> None:
        """At most maxCandidates distinct claims are counted in a round."""
        for i in range(49):
            self.voter.vote(voter(i), f"85.0.{i}.1")
        self.assertLessEqual(len(self.voter._votes), self.voter.maxCandidates)

    def test_unchangedWinnerNotReported(self) -> None:
        """Further votes for the current external IP do not report a change."""
        for i in range(10):
            self.voter.vote(voter(i), OURS)
        self.assertIsNone(self.voter.vote(voter(10), OURS))
