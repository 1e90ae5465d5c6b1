"""Rotating-secret tokens for announce_peer (BEP 5).

A token is C{hash(secret || IP bytes || info_hash)} truncated to C{tokenLength} bytes, the
IP taken as its 4 (IPv4) or 16 (IPv6) raw bytes. Binding the token to the info_hash, as
libtorrent does, stops a node from using one token to announce any info_hash. The secret
is 32 random bytes that L{TokenStore.rotate} replaces every C{rotationInterval} seconds;
tokens made with the current or the previous secret are accepted, so a token is good for
one to two intervals (5 to 10 minutes by default).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime

from .periodic import Periodic

SECRET_LENGTH = 32


def _sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


def ipBytes(host: str) -> bytes:
    """The raw 4- or 16-byte form of an IP literal; an IPv6 zone (C{%eth0}) is ignored.

    @raise ValueError: if C{host} is not an IPv4 or IPv6 literal.
    """
    if ":" in host:
        family, host = socket.AF_INET6, host.partition("%")[0]
    else:
        family = socket.AF_INET
    try:
        return socket.inet_pton(family, host)
    except OSError:
        raise ValueError(f"not an IP address: {host!r}") from None


class TokenStore:
    """Generates and checks announce_peer tokens.

    Call L{start} to rotate the secret on the reactor's clock, L{stop} to stop.
    """

    def __init__(
        self,
        *,
        rotationInterval: float = 300.0,
        tokenLength: int = 8,
        hashFunction: Callable[[bytes], bytes] | None = None,
        reactor: IReactorTime | None = None,
    ) -> None:
        if rotationInterval <= 0:
            raise ValueError("rotationInterval must be positive")
        if tokenLength < 1:
            raise ValueError("tokenLength must be at least 1")
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor  # type: ignore[assignment]
        self.reactor: IReactorTime = reactor  # type: ignore[assignment]
        self.rotationInterval = rotationInterval
        self.tokenLength = tokenLength
        self._hash = hashFunction if hashFunction is not None else _sha1
        self._current = os.urandom(SECRET_LENGTH)
        self._previous: bytes | None = None
        self._periodic = Periodic(
            self.rotate, rotationInterval, self.reactor, "Token secret rotation"
        )

    def _token(self, secret: bytes, address: bytes, infoHash: bytes) -> bytes:
        return self._hash(secret + address + infoHash)[: self.tokenLength]

    def generate(self, ip: str, infoHash: bytes) -> bytes:
        """The token to give C{ip} in a get_peers reply for C{infoHash}.

        @raise ValueError: if C{ip} is not an IPv4 or IPv6 literal.
        """
        return self._token(self._current, ipBytes(ip), infoHash)

    def validate(self, ip: str, infoHash: bytes, token: bytes) -> bool:
        """Whether C{token} was generated for C{ip} and C{infoHash} with the current or
        the previous secret; never raises."""
        if not isinstance(token, bytes) or len(token) != self.tokenLength:
            return False
        try:
            address = ipBytes(ip)
        except ValueError:
            return False
        valid = hmac.compare_digest(self._token(self._current, address, infoHash), token)
        if self._previous is not None:
            previous = self._token(self._previous, address, infoHash)
            valid = hmac.compare_digest(previous, token) or valid
        return valid

    def rotate(self) -> None:
        """Replace the secret, keeping the current one as the previous."""
        self._previous = self._current
        self._current = os.urandom(SECRET_LENGTH)

    @property
    def running(self) -> bool:
        """Whether the secret rotates periodically."""
        return self._periodic.running

    def start(self) -> None:
        """Rotate every C{rotationInterval} seconds from now on; does nothing if running."""
        self._periodic.start()

    def stop(self) -> None:
        """Stop rotating; does nothing if not running."""
        self._periodic.stop()
