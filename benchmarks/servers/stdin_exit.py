"""Shared by the Twisted benchmark servers: stop the reactor when stdin closes, and the
whole main of a server that is one DatagramProtocol."""

from __future__ import annotations

import argparse
from contextlib import suppress

from twisted.internet import reactor, stdio
from twisted.internet.error import ReactorNotRunning
from twisted.internet.protocol import DatagramProtocol, Protocol


class _ExitOnClose(Protocol):
    def connectionLost(self, reason: object = None) -> None:
        with suppress(ReactorNotRunning):  # already stopping, e.g. on SIGTERM
            reactor.stop()


def exitWhenStdinCloses() -> None:
    """Stop the reactor once our parent (benchmarks/run.py) closes our stdin."""
    stdio.StandardIO(_ExitOnClose())


def serveUDP(protocol: DatagramProtocol, description: str) -> None:
    """Parse C{--port P}, listen on 127.0.0.1:P with C{protocol}, print ``ready P``, and
    run the reactor until stdin closes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    reactor.listenUDP(options.port, protocol, interface="127.0.0.1")
    exitWhenStdinCloses()
    print(f"ready {options.port}", flush=True)
    reactor.run()
