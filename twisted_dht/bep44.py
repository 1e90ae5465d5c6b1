"""BEP 44 items: targets, the signed buffer, ed25519 signing and verification.

An immutable item is a bencoded value stored under the SHA-1 of its bencoding. A mutable
item is stored under the SHA-1 of its public key and salt; it carries a sequence number
and an ed25519 signature over ``4:salt<len>:<salt>3:seqi<seq>e1:v<bencoded v>`` (the salt
part absent when there is no salt, an empty salt counting as none).

Keys are 32-byte ed25519 seeds, as ``cryptography`` and PyNaCl use them. libtorrent's
64-byte "expanded" private key (the form of the BEP's test-vector key) is
L{SigningKey.expandedKey}: SHA-512 of the seed, its first half clamped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from . import bencoding

MAX_VALUE_SIZE = 1000
"""The most bytes the bencoded C{v} of an item may take (error 205 beyond)."""

MAX_SALT_SIZE = 64
"""The most bytes a salt may take (error 207 beyond)."""

KEY_SIZE = 32
SIGNATURE_SIZE = 64


def immutableTarget(encodedValue: bytes) -> bytes:
    """The target of an immutable item: SHA-1 of its bencoded value."""
    return hashlib.sha1(encodedValue).digest()


def mutableTarget(publicKey: bytes, salt: bytes = b"") -> bytes:
    """The target of a mutable item: SHA-1 of its public key and salt."""
    return hashlib.sha1(publicKey + salt).digest()


def signedBuffer(encodedValue: bytes, seq: int, salt: bytes = b"") -> bytes:
    """What a mutable item's signature covers."""
    saltPart = b"4:salt%d:%s" % (len(salt), salt) if salt else b""
    return b"%s3:seqi%de1:v%s" % (saltPart, seq, encodedValue)


def verify(publicKey: bytes, signature: bytes, buffer: bytes) -> bool:
    """Whether C{signature} by C{publicKey} over C{buffer} is valid."""
    if len(publicKey) != KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(publicKey).verify(signature, buffer)
    except (InvalidSignature, ValueError):
        return False
    return True


class SigningKey:
    """An ed25519 key pair from a 32-byte seed."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != KEY_SIZE:
            raise ValueError(f"an ed25519 seed is {KEY_SIZE} bytes, not {len(seed)}")
        self.seed = seed
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.publicKey = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def generate(cls) -> SigningKey:
        """A new random key."""
        seed = Ed25519PrivateKey.generate().private_bytes(
            Encoding.Raw, PrivateFormat.Raw, NoEncryption()
        )
        return cls(seed)

    def sign(self, buffer: bytes) -> bytes:
        return self._key.sign(buffer)

    def expandedKey(self) -> bytes:
        """libtorrent's 64-byte private key form: SHA-512 of the seed, the first half
        clamped (what C{dht_put_mutable_item} takes)."""
        digest = bytearray(hashlib.sha512(self.seed).digest())
        digest[0] &= 248
        digest[31] &= 127
        digest[31] |= 64
        return bytes(digest)


@dataclass(frozen=True)
class Item:
    """A BEP 44 item: an immutable one has no C{publicKey}."""

    value: Any
    """The decoded value (bytes, int, list or dict)."""
    encoded: bytes
    """The value's canonical bencoding: what the target or signature covers."""
    publicKey: bytes | None = None
    salt: bytes = b""
    seq: int = 0
    signature: bytes | None = None

    @property
    def mutable(self) -> bool:
        return self.publicKey is not None

    @property
    def target(self) -> bytes:
        if self.publicKey is None:
            return immutableTarget(self.encoded)
        return mutableTarget(self.publicKey, self.salt)

    @classmethod
    def immutable(cls, value: Any) -> Item:
        """An immutable item of C{value}.

        @raise ValueError: when its bencoding is over L{MAX_VALUE_SIZE} bytes.
        """
        encoded = _encodeValue(value)
        return cls(value, encoded)

    @classmethod
    def signed(cls, value: Any, key: SigningKey, seq: int, salt: bytes = b"") -> Item:
        """A mutable item of C{value}, signed by C{key}.

        @raise ValueError: for a value over L{MAX_VALUE_SIZE} bytes, a salt over
            L{MAX_SALT_SIZE} bytes or a negative C{seq}.
        """
        encoded = _encodeValue(value)
        if len(salt) > MAX_SALT_SIZE:
            raise ValueError(f"the salt is over {MAX_SALT_SIZE} bytes")
        if seq < 0:
            raise ValueError("seq cannot be negative")
        signature = key.sign(signedBuffer(encoded, seq, salt))
        return cls(value, encoded, key.publicKey, salt, seq, signature)

    def verified(self) -> bool:
        """Whether a mutable item's signature is valid (True for an immutable one)."""
        if self.publicKey is None:
            return True
        if self.signature is None:
            return False
        return verify(
            self.publicKey, self.signature, signedBuffer(self.encoded, self.seq, self.salt)
        )


def _encodeValue(value: Any) -> bytes:
    encoded = bencoding.encode(value)
    if len(encoded) > MAX_VALUE_SIZE:
        raise ValueError(f"the bencoded value is {len(encoded)} bytes, over {MAX_VALUE_SIZE}")
    return encoded
