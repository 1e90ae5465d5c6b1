"""Shared by the Twisted benchmark servers: stop the reactor when stdin closes."""

from __future__ import annotations

from twisted.internet import reactor, stdio
from twisted.internet.protocol import Protocol


class _ExitOnClose(Protocol):
    def connectionLost(self, reason: object = None) -> None:
        if reactor.running:
            reactor.stop()


def exitWhenStdinCloses() -> None:
    """Stop the reactor once our parent (benchmarks/run.py) closes our stdin."""
    stdio.StandardIO(_ExitOnClose())
