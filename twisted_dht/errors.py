"""Exceptions and KRPC error codes."""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """KRPC error codes (BEP 5, with BEP 44's additions)."""

    GENERIC = 201
    SERVER = 202
    PROTOCOL = 203
    METHOD_UNKNOWN = 204
    MESSAGE_TOO_BIG = 205
    INVALID_SIGNATURE = 206
    SALT_TOO_BIG = 207
    CAS_MISMATCH = 301
    SEQUENCE_TOO_OLD = 302


class MalformedMessage(ValueError):
    """Input that is not a valid KRPC message (or a valid argument of one).

    C{queryTid} is the transaction id of a malformed *query* when it could be read, so
    that the query can be answered with error 203; None otherwise.
    """

    def __init__(self, reason: str, queryTid: bytes | None = None) -> None:
        super().__init__(reason)
        self.queryTid = queryTid


class KRPCError(Exception):
    """A KRPC error: received from a remote node, or raised by a handler to answer with one."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"KRPC error {self.code}: {self.message}"


class DropQuery(Exception):
    """Raised by a query handler to send no reply at all: the query is dropped silently
    (its querier is still offered to the routing table, as for any well-formed query)."""


class CommandFailed(Exception):
    """A C{python -m twisted_dht} command could not do its job (exit code 1); the message
    says why."""


class QueryTimeout(Exception):
    """An outgoing query got no reply in time."""


class ProtocolStopped(Exception):
    """The KRPC protocol stopped while a query was pending."""


class QueryDropped(ProtocolStopped):
    """An outgoing query was not sent: too many queries wait for the query-rate limit.

    A L{ProtocolStopped}, so that lookups treat it as "not sent" rather than as a node
    failure.
    """


class SendFailed(Exception):
    """An outgoing query could not be sent: a local failure (no route, a full socket
    buffer, an address of the wrong family, a datagram too large), not the remote node's.

    C{address} is where it was going; C{reason} the exception the send raised.
    """

    def __init__(self, address: tuple[str, int], reason: Exception) -> None:
        super().__init__(address, reason)
        self.address = address
        self.reason = reason

    def __str__(self) -> str:
        host, port = self.address
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        reason = getattr(self.reason, "strerror", None) or self.reason
        return f"cannot send to {where}: {reason}"


class PutRefused(Exception):
    """Nodes refused a BEP 44 put with C{code} (301: the C{cas} was not their C{seq};
    302: they hold a newer C{seq}): get the item, then put again. C{accepted} nodes
    took it all the same (nodes that held no item)."""

    def __init__(self, code: int, refusals: int, accepted: int = 0) -> None:
        super().__init__(code, refusals, accepted)
        self.code = code
        self.refusals = refusals
        self.accepted = accepted

    def __str__(self) -> str:
        why = "CAS mismatch" if self.code == ErrorCode.CAS_MISMATCH else "a newer seq is stored"
        return f"the put was refused by {self.refusals} nodes: {why} (error {self.code})"
