"""What every command of C{python -m twisted_dht} shares: its output and argument types."""

from __future__ import annotations

import argparse
import ipaddress
import json
from typing import Any, TextIO

from .addresses import parseHostPort, parseInfoHash, parsePort

PROGRAM = "python -m twisted_dht"


class Console:
    """Where a command writes: results on C{out}, progress and errors on C{err}."""

    def __init__(self, out: TextIO, err: TextIO, asJSON: bool) -> None:
        self.out = out
        self.err = err
        self.asJSON = asJSON

    def line(self, text: str) -> None:
        """A line of results (only without --json)."""
        if not self.asJSON:
            self.out.write(text + "\n")
            self.out.flush()

    def document(self, value: object) -> None:
        """The JSON document of the results (only with --json)."""
        if self.asJSON:
            self.out.write(json.dumps(value, indent=2) + "\n")
            self.out.flush()

    def progress(self, text: str) -> None:
        """A progress or summary line on stderr."""
        self.err.write(text + "\n")
        self.err.flush()


# Argument types -----------------------------------------------------------------


def argumentType(parse: Any, name: str) -> Any:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = name
    return convert


def listenPort(text: str) -> int:
    return parsePort(text, allowZero=True)


def peerPort(text: str) -> int:
    return parsePort(text)


def ipv4Address(text: str) -> str:
    if text and not isinstance(ipaddress.ip_address(text), ipaddress.IPv4Address):
        raise ValueError(f"{text!r} is not an IPv4 address")
    return text


def count(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 10000:
        raise ValueError(f"invalid count {text!r}: must be 0 to 10000")
    return value


def seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise ValueError(f"invalid timeout {text!r}: must be a positive number of seconds")
    return value


hostPort = argumentType(parseHostPort, "HOST:PORT")
infoHash = argumentType(parseInfoHash, "40 hex digits")
