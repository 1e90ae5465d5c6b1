"""Rotating-secret tokens for announce_peer (BEP 5).

A token is C{hash(secret || IP bytes || info_hash)} truncated to C{tokenLength} bytes, the
IP taken as its 4 (IPv4) or 16 (IPv6) raw bytes (L{packIP}: an IPv6 zone is ignored).
Binding the token to the info_hash, as libtorrent does, stops a node from using one token
to announce any info_hash. The secret is 32 random bytes that L{TokenStore.rotate}
replaces; tokens made with the current or the previous secret are accepted, so a token
rotated every C{interval} seconds is good for one to two intervals (5 to 10 minutes by
default).

The store keeps no timers: the node calls L{TokenStore.rotate} every
L{TokenStore.interval} seconds.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from os import urandom

from .addresses import packIP

SECRET_LENGTH = 32

DEFAULT_INTERVAL = 300.0
"""Seconds between rotations of the secret (libtorrent, and BEP 5's "five minutes")."""


def _sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


class TokenStore:
    """Generates and checks announce_peer tokens; L{rotate} replaces the secret (the
    node calls it every L{interval} seconds: the store keeps no timer, nor a clock)."""

    def __init__(
        self,
        *,
        interval: float = DEFAULT_INTERVAL,
        tokenLength: int = 8,
        hashFunction: Callable[[bytes], bytes] | None = None,
    ) -> None:
        """
        @param interval: seconds between the rotations the node runs (L{interval}).
        @param tokenLength: bytes of the hash kept as the token.
        @param hashFunction: the hash of C{secret || IP bytes || info_hash}, at least
            C{tokenLength} bytes long; SHA-1 by default.
        @raise ValueError: if C{interval} is not positive or C{tokenLength} below 1.
        """
        if not interval > 0:
            raise ValueError("interval must be positive")
        if tokenLength < 1:
            raise ValueError("tokenLength must be at least 1")
        self.interval = interval
        """Seconds between two calls of L{rotate}: the node's rotation period."""
        self.tokenLength = tokenLength
        self._hash = hashFunction if hashFunction is not None else _sha1
        self._current = urandom(SECRET_LENGTH)
        self._previous: bytes | None = None

    def _token(self, secret: bytes, address: bytes, infoHash: bytes) -> bytes:
        return self._hash(secret + address + infoHash)[: self.tokenLength]

    def generate(self, ip: str, infoHash: bytes) -> bytes:
        """The token to give C{ip} in a get_peers reply for C{infoHash}.

        @raise ValueError: if C{ip} is not an IPv4 or IPv6 literal.
        """
        return self._token(self._current, packIP(ip), infoHash)

    def validate(self, ip: str, infoHash: bytes, token: bytes) -> bool:
        """Whether C{token} was generated for C{ip} and C{infoHash} with the current or
        the previous secret; never raises."""
        if not isinstance(token, bytes) or len(token) != self.tokenLength:
            return False
        try:
            address = packIP(ip)
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
        self._current = urandom(SECRET_LENGTH)
