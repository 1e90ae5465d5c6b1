"""Shared by the Twisted benchmark servers: stop the reactor when stdin closes."""

from __future__ import annotations

from contextlib import suppress

from twisted.internet import reactor, stdio
from twisted.internet.error import ReactorNotRunning
from twisted.internet.protocol import Protocol


class _ExitOnClose(Protocol):
    def connectionLost(self, reason: object = None) -> None:
        with suppress(ReactorNotRunning):  # already stopping, e.g. on SIGTERM
            reactor.stop()


def exitWhenStdinCloses() -> None:
    """Stop the reactor once our parent (benchmarks/run.py) closes our stdin."""
    stdio.StandardIO(_ExitOnClose())
