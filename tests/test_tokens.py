"""Tests for twisted_dht.tokens: generation, validation and rotation of tokens."""

from __future__ import annotations

import hashlib

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht import tokens
from twisted_dht.periodic import Periodic
from twisted_dht.tokens import TokenStore

IP = "192.168.1.1"
OTHER_IP = "192.168.1.2"
INFO_HASH = b"\x11" * 20
OTHER_HASH = b"\x22" * 20
ROTATION = 300.0


class TokenStoreTests(SynchronousTestCase):
    """TokenStore with a fake clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.store = TokenStore(interval=ROTATION)

    # construction --------------------------------------------------------------

    def test_defaults(self) -> None:
        """By default the rotation interval is 300 s and tokens are 8 bytes."""
        store = TokenStore()
        self.assertEqual(store.interval, 300.0)
        self.assertEqual(store.tokenLength, 8)

    def test_intervalMustBePositive(self) -> None:
        """A rotation interval that is not positive is refused."""
        self.assertRaises(ValueError, TokenStore, interval=0)
        self.assertRaises(ValueError, TokenStore, interval=-1)

    def test_keepsNoClock(self) -> None:
        """The store takes no reactor and keeps none: the node runs the rotation."""
        self.assertRaises(TypeError, TokenStore, reactor=self.clock)

    # generate ------------------------------------------------------------------

    def test_consistentForSameIP(self) -> None:
        """The same IP and info_hash get the same token twice."""
        self.assertEqual(self.store.generate(IP, INFO_HASH), self.store.generate(IP, INFO_HASH))

    def test_differsPerIP(self) -> None:
        """Different IPs get different tokens."""
        self.assertNotEqual(
            self.store.generate(IP, INFO_HASH), self.store.generate(OTHER_IP, INFO_HASH)
        )

    def test_differsPerIPv6Host(self) -> None:
        """Different IPv6 hosts get different tokens (they are not all mapped to zeros)."""
        self.assertNotEqual(
            self.store.generate("2001:db8::1", INFO_HASH),
            self.store.generate("2001:db8::2", INFO_HASH),
        )

    def test_tokenLength(self) -> None:
        """Tokens are tokenLength bytes: 8 by default, as configured otherwise."""
        self.assertEqual(len(self.store.generate("10.0.0.1", INFO_HASH)), 8)
        longStore = TokenStore(tokenLength=20)
        self.assertEqual(len(longStore.generate("10.0.0.1", INFO_HASH)), 20)

    def test_tokenLengthMustBePositive(self) -> None:
        """A token length below 1 is refused."""
        self.assertRaises(ValueError, TokenStore, tokenLength=0)

    # validate ------------------------------------------------------------------

    def test_validWithCurrentSecret(self) -> None:
        """A token made with the current secret validates."""
        token = self.store.generate(IP, INFO_HASH)
        self.assertTrue(self.store.validate(IP, INFO_HASH, token))

    def test_validAfterOneRotation(self) -> None:
        """A token made with the previous secret still validates."""
        token = self.store.generate(IP, INFO_HASH)
        self.store.rotate()
        self.assertTrue(self.store.validate(IP, INFO_HASH, token))

    def test_invalidAfterTwoRotations(self) -> None:
        """A token is rejected once its secret is two rotations old."""
        token = self.store.generate(IP, INFO_HASH)
        self.store.rotate()
        self.assertTrue(self.store.validate(IP, INFO_HASH, token))
        self.store.rotate()
        self.assertFalse(self.store.validate(IP, INFO_HASH, token))

    def test_wrongIP(self) -> None:
        """A token given to one IP does not validate for another."""
        token = self.store.generate(IP, INFO_HASH)
        self.assertFalse(self.store.validate(OTHER_IP, INFO_HASH, token))

    def test_wrongInfoHash(self) -> None:
        """A token given for one info_hash does not validate for another."""
        token = self.store.generate(IP, INFO_HASH)
        self.assertFalse(self.store.validate(IP, OTHER_HASH, token))

    def test_garbageToken(self) -> None:
        """A garbage token of the right or wrong length is rejected."""
        self.assertFalse(self.store.validate(IP, INFO_HASH, b"\xff" * 8))
        self.assertFalse(self.store.validate(IP, INFO_HASH, b"\xff" * 20))

    def test_truncatedToken(self) -> None:
        """A prefix of a valid token is rejected."""
        token = self.store.generate(IP, INFO_HASH)
        self.assertFalse(self.store.validate(IP, INFO_HASH, token[:4]))

    def test_emptyToken(self) -> None:
        """An empty token is rejected."""
        self.assertFalse(self.store.validate(IP, INFO_HASH, b""))

    # rotate --------------------------------------------------------------------

    def test_rotateChangesCurrent(self) -> None:
        """Rotation changes the token given out."""
        before = self.store.generate(IP, INFO_HASH)
        self.store.rotate()
        self.assertNotEqual(before, self.store.generate(IP, INFO_HASH))

    def test_rotatePreservesPrevious(self) -> None:
        """After a rotation both the old and the new token validate."""
        old = self.store.generate(IP, INFO_HASH)
        self.store.rotate()
        new = self.store.generate(IP, INFO_HASH)
        self.assertTrue(self.store.validate(IP, INFO_HASH, old))
        self.assertTrue(self.store.validate(IP, INFO_HASH, new))

    # rotation driven by the node ---------------------------------------------

    def test_rotationDrivenPeriodically(self) -> None:
        """Rotated as the node does, by a Periodic of rotate every interval on the same
        Clock, a token is accepted for one to two intervals and refused after."""
        job = Periodic(self.store.rotate, self.store.interval, self.clock, "Token rotation")
        job.start()
        self.addCleanup(job.stop)
        self.clock.advance(ROTATION / 2)
        token = self.store.generate(IP, INFO_HASH)
        self.clock.advance(ROTATION / 2)  # first rotation: token made with the previous
        self.assertNotEqual(token, self.store.generate(IP, INFO_HASH))
        self.assertTrue(self.store.validate(IP, INFO_HASH, token))
        self.clock.advance(ROTATION - 1)
        self.assertTrue(self.store.validate(IP, INFO_HASH, token))
        self.clock.advance(1)  # second rotation
        self.assertFalse(self.store.validate(IP, INFO_HASH, token))
        self.assertEqual(job.failures, 0)

    # edge cases ----------------------------------------------------------------

    def test_invalidIP(self) -> None:
        """An unparsable IP is refused by generate and never validates, without raising."""
        self.assertRaises(ValueError, self.store.generate, "invalid", INFO_HASH)
        self.assertFalse(self.store.validate("invalid", INFO_HASH, b"\x00" * 8))
        self.assertFalse(self.store.validate("", INFO_HASH, b"\x00" * 8))
        self.assertFalse(self.store.validate("1.2.3.256", INFO_HASH, b"\x00" * 8))

    def test_IPv6(self) -> None:
        """IPv6 addresses get tokens that validate, for that address only."""
        token = self.store.generate("::1", INFO_HASH)
        self.assertEqual(len(token), 8)
        self.assertTrue(self.store.validate("::1", INFO_HASH, token))
        self.assertFalse(self.store.validate("::2", INFO_HASH, token))

    def test_IPv6Zone(self) -> None:
        """A link-local IPv6 address with a zone suffix is handled like the bare address,
        both ways."""
        token = self.store.generate("fe80::1%eth0", INFO_HASH)
        self.assertTrue(self.store.validate("fe80::1", INFO_HASH, token))
        self.assertEqual(token, self.store.generate("fe80::1", INFO_HASH))
        self.assertTrue(self.store.validate("fe80::1%eth1", INFO_HASH, token))

    def test_hostnameRefused(self) -> None:
        """A hostname is not an IP: generate refuses it and validate says no."""
        self.assertRaises(ValueError, self.store.generate, "example.com", INFO_HASH)
        self.assertFalse(self.store.validate("example.com", INFO_HASH, b"\x00" * 8))

    def test_hashesRawIPBytes(self) -> None:
        """The hash is fed the 4 (IPv4) or 16 (IPv6) raw bytes of the IP."""
        seen: list[bytes] = []

        def record(data: bytes) -> bytes:
            seen.append(data)
            return bytes(20)

        store = TokenStore(hashFunction=record)
        store.generate("1.2.3.4", INFO_HASH)
        store.generate("::1", INFO_HASH)
        self.assertEqual(seen[0][32:-20], b"\x01\x02\x03\x04")
        self.assertEqual(seen[1][32:-20], b"\x00" * 15 + b"\x01")

    def test_defaultIsSHA1(self) -> None:
        """The default token is SHA-1 over the secret, the raw IP and the info_hash."""
        secrets = [bytes([n]) * 32 for n in (1, 2)]
        self.patch(tokens, "urandom", lambda size: secrets.pop(0)[:size])
        store = TokenStore()
        expected = hashlib.sha1(b"\x01" * 32 + b"\xc0\xa8\x01\x01" + INFO_HASH).digest()
        self.assertEqual(store.generate(IP, INFO_HASH), expected[:8])
        store.rotate()
        expected = hashlib.sha1(b"\x02" * 32 + b"\xc0\xa8\x01\x01" + INFO_HASH).digest()
        self.assertEqual(store.generate(IP, INFO_HASH), expected[:8])

    def test_hashFunctionHook(self) -> None:
        """A custom hashFunction is called on secret, IP bytes and info_hash."""
        seen: list[bytes] = []

        def fake(data: bytes) -> bytes:
            seen.append(data)
            return bytes(range(20))

        store = TokenStore(hashFunction=fake)
        self.assertEqual(store.generate(IP, INFO_HASH), bytes(range(8)))
        [data] = seen
        self.assertEqual(len(data), 32 + 4 + 20)
        self.assertTrue(data.endswith(b"\xc0\xa8\x01\x01" + INFO_HASH))
