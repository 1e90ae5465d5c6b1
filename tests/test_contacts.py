"""Tests for twisted_dht.contacts: a contact's BEP 5 state, and buckets as id blocks."""

from __future__ import annotations

import random

from twisted.trial.unittest import SynchronousTestCase

from twisted_dht import nodeid
from twisted_dht.contacts import GOOD_INTERVAL, Bucket, Contact, NodeState
from twisted_dht.krpc import packNode
from twisted_dht.nodeid import toInt

from .routingsupport import FIFTEEN_MINUTES, addr, covers, far


class ContactTests(SynchronousTestCase):
    """A contact's fields and state, without a table."""

    def test_goodInterval(self) -> None:
        """A node stays good for BEP 5's 15 minutes."""
        self.assertEqual(GOOD_INTERVAL, FIFTEEN_MINUTES)

    def test_lastSeen(self) -> None:
        """lastSeen is the later of the last answer and the last query; -inf if neither."""
        contact = Contact(far(1), addr(1))
        self.assertEqual(contact.lastSeen(), float("-inf"))
        for response, query, expected in [
            (5.0, None, 5.0),
            (None, 7.0, 7.0),
            (5.0, 7.0, 7.0),
            (9.0, 7.0, 9.0),
        ]:
            contact.lastResponse, contact.lastQuery = response, query
            self.assertEqual(contact.lastSeen(), expected)

    def test_state(self) -> None:
        """Good while it answered within GOOD_INTERVAL, or answered ever and queried within
        it; bad from maxFailures failures on, whatever it did; questionable otherwise."""
        contact = Contact(far(1), addr(1))
        self.assertIs(contact.state(0.0), NodeState.QUESTIONABLE)
        contact.lastQuery = 0.0
        self.assertIs(contact.state(0.0), NodeState.QUESTIONABLE)  # never answered
        contact.lastResponse = 0.0
        self.assertIs(contact.state(GOOD_INTERVAL - 1), NodeState.GOOD)
        self.assertIs(contact.state(GOOD_INTERVAL), NodeState.QUESTIONABLE)
        contact.lastQuery = 100.0
        self.assertIs(contact.state(GOOD_INTERVAL + 99), NodeState.GOOD)
        self.assertIs(contact.state(GOOD_INTERVAL + 100), NodeState.QUESTIONABLE)
        contact.failures = 1
        self.assertIs(contact.state(1.0), NodeState.GOOD)
        contact.failures = 2
        self.assertIs(contact.state(1.0), NodeState.BAD)

    def test_maxFailures(self) -> None:
        """maxFailures sets how many failures make a contact bad."""
        contact = Contact(far(1), addr(1), maxFailures=3)
        contact.lastResponse = 0.0
        contact.failures = 2
        self.assertIs(contact.state(0.0), NodeState.GOOD)
        contact.failures = 3
        self.assertIs(contact.state(0.0), NodeState.BAD)

    def test_contactFields(self) -> None:
        """A contact keeps its id as bytes and int, and its compact node info."""
        contact = Contact(far(5), ("1.2.3.4", 0x1AE1))
        self.assertEqual(contact.idInt, toInt(far(5)))
        self.assertEqual(contact.compact, far(5) + b"\x01\x02\x03\x04\x1a\xe1")
        self.assertEqual(
            (contact.lastResponse, contact.lastQuery, contact.lastPinged, contact.failures),
            (None,) * 3 + (0,),
        )
        self.assertFalse(hasattr(contact, "__dict__"))

    def test_compactIPv6(self) -> None:
        """An IPv6 contact's compact form is a 38-byte nodes6 entry."""
        contact = Contact(far(5), ("2001:db8::1", 6881))
        self.assertEqual(contact.compact, packNode(far(5), ("2001:db8::1", 6881)))
        self.assertEqual(len(contact.compact), 38)

    def test_contactValidation(self) -> None:
        """A contact needs a 20-byte id and an IP literal."""
        self.assertRaises(ValueError, Contact, b"short", ("1.2.3.4", 1))
        self.assertRaises(ValueError, Contact, far(1), ("example.com", 1))

    def test_repr(self) -> None:
        """The repr names the id, the address and the failures."""
        contact = Contact(far(5), ("1.2.3.4", 6881))
        contact.failures = 1
        self.assertEqual(repr(contact), f"<Contact {far(5).hex()} 1.2.3.4:6881 failures=1>")


class BucketTests(SynchronousTestCase):
    """A bucket is an aligned power-of-two block of ids."""

    def test_depth(self) -> None:
        """The depth is the length of the id prefix the block covers."""
        self.assertEqual(Bucket(0, 2**160, 0.0).depth, 0)
        self.assertEqual(Bucket(2**159, 2**160, 0.0).depth, 1)
        self.assertEqual(Bucket(2**158, 2**159, 0.0).depth, 2)
        self.assertEqual(Bucket(0, 2, 0.0).depth, 159)

    def test_mask(self) -> None:
        """The mask clears the bits that vary inside the block."""
        bucket = Bucket(2**158, 2**159, 0.0)
        for value in (2**158, 2**158 + 12345, 2**159 - 1):
            self.assertEqual(value & bucket.mask, 2**158)

    def test_randomIdInBucket(self) -> None:
        """A bucket's random id lies in its range."""
        self.patch(nodeid, "random", random.Random(4))
        buckets = [
            Bucket(0, 2**160, 0.0),
            Bucket(2**159, 2**160, 0.0),
            Bucket(2**158, 2**159, 0.0),
            Bucket(0, 2, 0.0),
        ]
        for bucket in buckets:
            for _ in range(20):
                self.assertTrue(covers(bucket, toInt(bucket.randomId())))

    def test_newBucket(self) -> None:
        """A new bucket is empty and remembers when it last changed."""
        bucket = Bucket(2**159, 2**160, 7.0)
        self.assertEqual(len(bucket), 0)
        self.assertEqual((bucket.contacts, bucket.replacements, bucket.lastChanged), ([], [], 7.0))
        bucket.contacts.append(Contact(far(1), addr(1)))
        self.assertEqual(len(bucket), 1)
        self.assertEqual(
            repr(bucket), f"<Bucket depth=1 low={2**159:#042x} contacts=1 replacements=0>"
        )
