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
    """IPVoter on a Clock, with the default thresholds (10 votes, margin 1.5)."""

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
        """Once maxCandidates distinct claims have votes in a round, votes for a new claim
        are ignored (and their voters not counted), while the known claims still count."""
        voter3 = IPVoter(reactor=self.clock, minVotes=3, maxCandidates=3)
        for i, claim in enumerate(("85.0.0.1", "85.0.0.2", "85.0.0.3")):
            voter3.vote(voter(i), claim)
        for i in range(3, 13):
            self.assertIsNone(voter3.vote(voter(i), OTHER))
        self.assertEqual(voter3.voters, 3)
        self.assertIsNone(voter3.external)
        voter3.vote(voter(20), "85.0.0.1")
        self.assertEqual(voter3.vote(voter(21), "85.0.0.1"), "85.0.0.1")

    def test_ipv6Wins(self) -> None:
        """IPv6 voters elect an IPv6 external address the same way."""
        results = [self.voter.vote(f"2a01::{i + 1:x}", "2a00::1") for i in range(10)]
        self.assertEqual(results[-1], "2a00::1")
        self.assertEqual(self.voter.external, "2a00::1")

    def test_nonGlobalIgnored(self) -> None:
        """Zoned link-local, documentation, multicast and unspecified voters or claims do
        not count (addresses.isGlobal)."""
        for i in range(20):
            self.voter.vote(f"fe80::{i + 1:x}%eth0", "2a00::1")
            self.voter.vote(f"2001:db8::{i + 1:x}", "2a00::1")
            self.voter.vote(voter(i), "224.0.0.1")
            self.voter.vote(voter(i), "0.0.0.0")
            self.voter.vote(voter(i), "not an address")
        self.assertIsNone(self.voter.external)
        self.assertEqual(self.voter.voters, 0)

    def test_reactorRequired(self) -> None:
        """The reactor is a required keyword: no global reactor is picked up."""
        self.assertRaises(TypeError, IPVoter)

    def test_invalidSettings(self) -> None:
        """Inconsistent thresholds are refused."""
        for settings in (
            {"minVotes": 0},
            {"margin": 0.5},
            {"roundVotes": 5, "minVotes": 10},
            {"maxCandidates": 1},
        ):
            self.assertRaises(ValueError, IPVoter, reactor=self.clock, **settings)

    def test_unchangedWinnerNotReported(self) -> None:
        """Further votes for the current external IP do not report a change."""
        for i in range(10):
            self.voter.vote(voter(i), OURS)
        self.assertIsNone(self.voter.vote(voter(10), OURS))
