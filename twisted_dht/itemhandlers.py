"""ItemHandlers: BEP 44's get and put, answered from an L{IItemStore}.

A put is checked in libtorrent's order, with its error codes: the bencoded ``v`` empty or
over 1,000 bytes (205), a salt over 64 bytes (207), a bad token (203: tokens are bound to
the requester's IP and the item's target), a negative ``seq`` (203), a bad signature
(206), ``cas`` not the stored ``seq`` (301), a stored ``seq`` newer than the put's (302).
A non-canonical bencoding never gets this far: the decoder drops the datagram as malformed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import bencoding, krpc
from .addresses import Address
from .admission import AdmissionPolicy
from .bep44 import (
    KEY_SIZE,
    MAX_SALT_SIZE,
    MAX_VALUE_SIZE,
    SIGNATURE_SIZE,
    Item,
    immutableTarget,
    mutableTarget,
    signedBuffer,
    verify,
)
from .errors import ErrorCode, KRPCError
from .interfaces import IItemStore
from .krpc import Query
from .nodeid import Identity
from .reply import ITEM_REPLY_SIZE, Answer
from .tokens import TokenStore

WithNodes = Callable[[dict[bytes, Any], bytes, Query, Address], Answer]
"""C{withNodes(fields, target, query, address)}: an answer of C{fields} and the closest
nodes to C{target} of the families the query wants."""


def _missing(name: str) -> KRPCError:
    return KRPCError(ErrorCode.PROTOCOL, f"missing argument: {name}")


def _required(query: Query, key: bytes, length: int | None = None) -> bytes:
    value = krpc.bytesArg(query, key, length)
    if value is None:
        raise _missing(key.decode())
    return value


class ItemHandlers:
    """C{krpc_get} and C{krpc_put} (see the module docstring)."""

    def __init__(
        self,
        identity: Identity,
        tokens: TokenStore,
        items: IItemStore,
        policy: AdmissionPolicy,
        withNodes: WithNodes,
    ) -> None:
        self.identity = identity
        self.tokens = tokens
        self.items = items
        self.policy = policy
        self.withNodes = withNodes

    def krpc_get(self, query: Query, address: Address) -> Answer:
        """get: a token for the target, the closest nodes, and the item if we hold it
        (for a mutable item asked with ``seq``: only its ``seq`` unless ours is newer)."""
        target = krpc.queryTarget(query)
        if target is None:
            raise _missing("target")
        seq = krpc.intArg(query, b"seq")
        fields: dict[bytes, Any] = {
            b"id": self.identity.nodeId,
            b"token": self.tokens.generate(address[0], target),
        }
        item: Item | None = self.items.get(target)
        if item is not None:
            if item.publicKey is None:
                fields[b"v"] = item.value
            else:
                fields[b"seq"] = item.seq
                if seq is None or seq < item.seq:
                    fields.update({b"k": item.publicKey, b"sig": item.signature, b"v": item.value})
        answer = self.withNodes(fields, target, query, address)
        if item is not None:
            answer.limit = ITEM_REPLY_SIZE
        return answer

    def krpc_put(self, query: Query, address: Address) -> bytes:
        """put: check the item (see the module docstring), then store it."""
        if b"v" not in query.args:
            raise _missing("v")
        value = query.args[b"v"]
        encoded = bencoding.encode(value)
        if not encoded or len(encoded) > MAX_VALUE_SIZE:
            raise KRPCError(ErrorCode.MESSAGE_TOO_BIG, "message (v field) too big")
        publicKey = krpc.bytesArg(query, b"k", KEY_SIZE)
        salt = krpc.bytesArg(query, b"salt") or b""
        if len(salt) > MAX_SALT_SIZE:
            raise KRPCError(ErrorCode.SALT_TOO_BIG, "salt too big")
        target = immutableTarget(encoded) if publicKey is None else mutableTarget(publicKey, salt)
        token = _required(query, b"token")
        if not self.tokens.validate(address[0], target, token):
            raise KRPCError(ErrorCode.PROTOCOL, "invalid token")
        if publicKey is None:
            item = Item(value, encoded)
        else:
            item = self._checkedMutable(query, value, encoded, publicKey, salt, target)
        self.policy.markVerified(address[0])
        self.items.put(item, address[0])
        return bencoding.encode({b"id": self.identity.nodeId})

    def _checkedMutable(
        self,
        query: Query,
        value: Any,
        encoded: bytes,
        publicKey: bytes,
        salt: bytes,
        target: bytes,
    ) -> Item:
        seq = krpc.intArg(query, b"seq")
        if seq is None:
            raise _missing("seq")
        if seq < 0:
            raise KRPCError(ErrorCode.PROTOCOL, "invalid argument: seq cannot be negative")
        signature = _required(query, b"sig", SIGNATURE_SIZE)
        if not verify(publicKey, signature, signedBuffer(encoded, seq, salt)):
            raise KRPCError(ErrorCode.INVALID_SIGNATURE, "invalid signature")
        stored: Item | None = self.items.get(target)
        if stored is not None:
            cas = krpc.intArg(query, b"cas")
            if cas is not None and cas != stored.seq:
                raise KRPCError(ErrorCode.CAS_MISMATCH, "the CAS hash mismatched")
            if stored.seq > seq:
                raise KRPCError(ErrorCode.SEQUENCE_TOO_OLD, "sequence number less than current")
        return Item(value, encoded, publicKey, salt, seq, signature)
