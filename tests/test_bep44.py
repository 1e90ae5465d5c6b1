"""Tests for twisted_dht.bep44: the BEP's test vectors, signing and verification."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht import bencoding
from twisted_dht.bep44 import (
    MAX_VALUE_SIZE,
    Item,
    SigningKey,
    immutableTarget,
    mutableTarget,
    signedBuffer,
    verify,
)

PUBLIC_KEY = bytes.fromhex("77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548")
SIG_NO_SALT = bytes.fromhex(
    "305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff"
    "1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01"
)
SIG_SALT = bytes.fromhex(
    "6834284b6b24c3204eb2fea824d82f88883a3d95e8b4a21b8c0ded553d17d17d"
    "df9a8a7104b1258f30bed3787e6cb896fca78c58f8e03b5f18f14951a87d9a08"
)
SIG_LT = bytes.fromhex(
    "aeaa269b37bab7f87126c8d0cc31fb9c88ea81f0d0d5338166d103be8ea16f16"
    "2d017ce812926a24dc697beb6915bec986e9eb0a37f262150cd90f2add54f805"
)
HELLO = b"12:Hello World!"


class VectorTests(SynchronousTestCase):
    """BEP 44's test vectors, and libtorrent's."""

    def test_mutableWithoutSalt(self) -> None:
        buffer = signedBuffer(HELLO, 1)
        self.assertEqual(buffer, b"3:seqi1e1:v12:Hello World!")
        self.assertTrue(verify(PUBLIC_KEY, SIG_NO_SALT, buffer))
        self.assertEqual(
            mutableTarget(PUBLIC_KEY).hex(), "4a533d47ec9c7d95b1ad75f576cffc641853b750"
        )

    def test_mutableWithSalt(self) -> None:
        buffer = signedBuffer(HELLO, 1, b"foobar")
        self.assertEqual(buffer, b"4:salt6:foobar3:seqi1e1:v12:Hello World!")
        self.assertTrue(verify(PUBLIC_KEY, SIG_SALT, buffer))
        self.assertEqual(
            mutableTarget(PUBLIC_KEY, b"foobar").hex(), "411eba73b6f087ca51a3795d9c8c938d365e32c1"
        )

    def test_immutable(self) -> None:
        self.assertEqual(immutableTarget(HELLO).hex(), "e5f96f6f38320f0f33959cb4d3d656452117aadb")
        self.assertEqual(Item.immutable(b"Hello World!").target, immutableTarget(HELLO))

    def test_libtorrentVectors(self) -> None:
        """libtorrent's binding tests: salt b"salt", v b"test"; and {test: test}."""
        buffer = signedBuffer(b"4:test", 1, b"salt")
        self.assertTrue(verify(PUBLIC_KEY, SIG_LT, buffer))
        self.assertEqual(
            mutableTarget(PUBLIC_KEY, b"salt").hex(), "6c1a73a41dbd4412ac81dac66d95b5c33ec83e30"
        )
        self.assertEqual(
            Item.immutable({b"test": b"test"}).target.hex(),
            "3b60e3333982ff82c9bdee8194f61353db611051",
        )

    def test_vectorItemsVerify(self) -> None:
        item = Item(b"Hello World!", HELLO, PUBLIC_KEY, b"foobar", 1, SIG_SALT)
        self.assertTrue(item.verified())
        self.assertFalse(Item(b"Hello World!", HELLO, PUBLIC_KEY, b"", 1, SIG_SALT).verified())


class SigningTests(SynchronousTestCase):
    def test_seedSize(self) -> None:
        self.assertRaises(ValueError, SigningKey, b"short")

    def test_expandedKey(self) -> None:
        """libtorrent's form: SHA-512 of the seed, the scalar half clamped."""
        seed = bytes(range(32))
        expanded = SigningKey(seed).expandedKey()
        digest = hashlib.sha512(seed).digest()
        self.assertEqual(len(expanded), 64)
        self.assertEqual(expanded[32:], digest[32:])
        self.assertEqual(expanded[0] & 7, 0)
        self.assertEqual(expanded[31] & 0xC0, 0x40)
        self.assertEqual(expanded[1:31], digest[1:31])

    def test_limits(self) -> None:
        key = SigningKey.generate()
        self.assertRaises(ValueError, Item.immutable, b"x" * MAX_VALUE_SIZE)
        self.assertRaises(ValueError, Item.signed, b"v", key, 1, b"s" * 65)
        self.assertRaises(ValueError, Item.signed, b"v", key, -1)

    def test_badKeyOrSignatureLength(self) -> None:
        self.assertFalse(verify(b"k" * 31, SIG_NO_SALT, b""))
        self.assertFalse(verify(PUBLIC_KEY, SIG_NO_SALT[:63], b""))


values = st.recursive(
    st.binary(max_size=40) | st.integers(-(2**63), 2**63),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.binary(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


class PropertyTests(SynchronousTestCase):
    key = SigningKey(bytes(range(32)))

    @given(value=values, salt=st.binary(max_size=64), seq=st.integers(0, 2**63))
    def test_roundTrip(self, value: object, salt: bytes, seq: int) -> None:
        """Any value, salt and seq signs, and the item verifies under its key."""
        item = Item.signed(value, self.key, seq, salt)
        self.assertTrue(item.verified())
        self.assertEqual(bencoding.decode(item.encoded), value)
        self.assertEqual(item.target, mutableTarget(self.key.publicKey, salt))

    @given(
        value=st.binary(min_size=1, max_size=40),
        salt=st.binary(min_size=1, max_size=64),
        seq=st.integers(0, 2**32),
        field=st.sampled_from(["v", "salt", "seq", "sig"]),
        index=st.integers(0, 1000),
        flip=st.integers(1, 255),
    )
    def test_anyByteChangeRejected(
        self, value: bytes, salt: bytes, seq: int, field: str, index: int, flip: int
    ) -> None:
        """Changing one byte of v, salt, seq or sig makes the signature invalid."""
        item = Item.signed(value, self.key, seq, salt)
        assert item.signature is not None
        encoded, signature = item.encoded, item.signature

        def changed(data: bytes) -> bytes:
            at = index % len(data)
            return data[:at] + bytes([data[at] ^ flip]) + data[at + 1 :]

        if field == "v":
            encoded = bencoding.encode(changed(value))
        elif field == "salt":
            salt = changed(salt)
        elif field == "seq":
            seq ^= flip
        else:
            signature = changed(signature)
        self.assertFalse(verify(self.key.publicKey, signature, signedBuffer(encoded, seq, salt)))
