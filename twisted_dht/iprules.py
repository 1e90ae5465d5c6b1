"""IPRules: libtorrent's IP hygiene for a routing table — one live entry per IP, and at
most two per /24 (IPv4) or /64 (IPv6) in each bucket and in each replacement cache."""

from __future__ import annotations

from collections import Counter

from .contacts import Bucket, Contact

SUBNET_LIMIT = 2
"""At most this many entries of one /24 (IPv4) or /64 (IPv6) per bucket list."""


class IPRules:
    """The IP rules of one table, and the count of its live contacts per IP.

    @param restrictIPs: apply the rules at all.
    @param relaxLocal: exempt local addresses (L{twisted_dht.addresses.isLocal}).
    """

    def __init__(self, restrictIPs: bool, relaxLocal: bool) -> None:
        self.restrictIPs = restrictIPs
        self.relaxLocal = relaxLocal
        self.liveIPs: Counter[bytes] = Counter()
        """Live contacts per packed IP; an IP whose count falls to 0 is deleted, so reads
        test membership (a Counter's missing-key lookup calls Python code)."""

    def added(self, contact: Contact) -> None:
        """C{contact} went live."""
        self.liveIPs[contact._ip] += 1

    def removed(self, contact: Contact) -> None:
        """C{contact} is no longer live."""
        live = self.liveIPs
        live[contact._ip] -= 1
        if not live[contact._ip]:
            del live[contact._ip]

    def exempt(self, contact: Contact) -> bool:
        """Whether no rule applies to C{contact}."""
        return not self.restrictIPs or (self.relaxLocal and contact._local)

    def allowedLive(
        self, bucket: Bucket, contact: Contact, replacing: Contact | None = None
    ) -> bool:
        """Whether the rules let C{contact} into C{bucket} (in place of C{replacing})."""
        if self.exempt(contact):
            return True
        sameIP = self.liveIPs.get(contact._ip, 0)
        if replacing is not None and replacing._ip == contact._ip:
            sameIP -= 1
        if sameIP > 0:
            return False
        sameSubnet = sum(
            c._subnet == contact._subnet and c is not replacing for c in bucket.contacts
        )
        return sameSubnet < SUBNET_LIMIT

    def allowedCached(self, bucket: Bucket, contact: Contact) -> bool:
        """Whether the rules let C{contact} into C{bucket}'s replacement cache."""
        return self.exempt(contact) or self.cacheAdmits(bucket, contact._ip, contact._subnet)

    def cacheAdmits(self, bucket: Bucket, ip: bytes, subnet: bytes) -> bool:
        """Whether the rules let an entry of this IP and subnet into C{bucket}'s cache."""
        if ip in self.liveIPs:
            return False
        sameSubnet = 0
        for cached in bucket.replacements:  # one pass: this runs for most unknown queriers
            if cached._ip == ip:
                return False
            sameSubnet += cached._subnet == subnet
        return sameSubnet < SUBNET_LIMIT
