"""The BEP 5 checks of L{twisted_dht.probe}, and the registry of every check.

Each check takes the L{Probe} and returns its evidence, or raises L{CheckFailed} or
L{NotSupported}; the checks of sizes and of BEP 32/42/43/51 are in
L{twisted_dht.probeextensions}."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet.defer import Deferred, gatherResults

from . import bencoding, krpc
from .errors import MalformedMessage
from .krpc import Response
from .probe import (
    SILENCE_WAIT,
    CheckFailed,
    NotSupported,
    Probe,
    announceArgs,
    nodesOf,
    responseOf,
    storedPeers,
    tokenFor,
)
from .probe44 import checkBadToken as checkItemBadToken
from .probe44 import checkImmutable, checkMutable
from .probeextensions import (
    checkAmplification,
    checkBurst,
    checkIPField,
    checkNodeId,
    checkReadOnly,
    checkReplySize,
    checkSampleInfohashes,
    checkVersion,
    checkWant,
)

Check = Callable[[Probe], Awaitable[str]]

TOKEN_WAIT = 3.0
"""Seconds between getting a token and using it in the token-lifetime check."""


# BEP 5 basics -----------------------------------------------------------------


async def checkPing(probe: Probe) -> str:
    start = probe.reactor.seconds()
    reply = responseOf(await probe.ask(b"ping", {}), "ping")
    nodeId = reply.values.get(b"id")
    if not isinstance(nodeId, bytes) or len(nodeId) != 20:
        raise CheckFailed(f"the reply's id is not 20 bytes: {nodeId!r}")
    probe.targetId, probe.version = nodeId, reply.version
    return f"id {nodeId.hex()}, {(probe.reactor.seconds() - start) * 1000:.0f} ms"


async def checkTidLengths(probe: Probe) -> str:
    socket = probe.main

    async def echoed(length: int) -> str | None:
        tid = os.urandom(length)
        reply = await socket.query(b"ping", {}, probe.timeout, tid=tid)
        return None if isinstance(reply, Response) else f"{length}-byte tid not echoed"

    problems = [
        p
        for p in await gatherResults([Deferred.fromCoroutine(echoed(n)) for n in (1, 2, 4, 8)])
        if p
    ]
    if problems:
        others = [m.tid.hex() for m in socket.unmatched]
        raise CheckFailed(
            "; ".join(problems) + (f" (replies with tids {others})" if others else "")
        )
    return "1, 2, 4 and 8-byte tids echoed"


async def checkFindNode(probe: Probe) -> str:
    reply = await probe.askResponse(b"find_node", {b"target": os.urandom(20)})
    if b"nodes" not in reply.values and b"nodes6" not in reply.values:
        raise CheckFailed("no nodes in the reply")
    nodes = nodesOf(reply) + nodesOf(reply, b"nodes6")
    return f"{len(nodes)} well-formed nodes"


async def checkGetPeers(probe: Probe) -> str:
    reply = await probe.askResponse(b"get_peers", {b"info_hash": os.urandom(20)})
    token = reply.values.get(b"token")
    if not isinstance(token, bytes) or not token:
        raise CheckFailed("no token")
    nodes = nodesOf(reply) + nodesOf(reply, b"nodes6")
    if not nodes and b"values" not in reply.values:
        raise CheckFailed("neither nodes nor values")
    return f"a {len(token)}-byte token and {len(nodes)} nodes"


async def checkAnnounce(probe: Probe) -> str:
    infoHash, port = os.urandom(20), 20000 + int.from_bytes(os.urandom(2), "big") % 40000
    token = await tokenFor(probe, infoHash)
    await probe.askResponse(b"announce_peer", announceArgs(infoHash, token, port))
    peers = await storedPeers(probe, infoHash)
    if not any(peer[1] == port for peer in peers):
        raise CheckFailed(f"get_peers did not return the announced port {port}: {peers}")
    return f"announced port {port} returned by get_peers"


async def checkImpliedPort(probe: Probe) -> str:
    infoHash = os.urandom(20)
    token = await tokenFor(probe, infoHash)
    await probe.askResponse(b"announce_peer", announceArgs(infoHash, token, 1, implied=True))
    ourPort = probe.main.address[1]
    peers = await storedPeers(probe, infoHash)
    if not any(peer[1] == ourPort for peer in peers):
        raise CheckFailed(f"get_peers did not return our source port {ourPort}: {peers}")
    return f"implied_port stored our source port {ourPort}"


def _errorCheck(code: int, build: Callable[[Probe], Awaitable[tuple[bytes, Any]]]) -> Check:
    async def check(probe: Probe) -> str:
        method, args = await build(probe)
        reply = await probe.main.query(method, args, probe.timeout, withId=False)
        if reply is None:
            raise CheckFailed(f"no reply within {probe.timeout:g} s (expected error {code})")
        if isinstance(reply, Response):
            raise CheckFailed(f"answered with a response (expected error {code})")
        assert isinstance(reply, krpc.Error)
        message = reply.message.decode("utf-8", "replace")
        if reply.code != code:
            raise CheckFailed(f"error {reply.code} {message!r} (expected {code})")
        return f"error {code} {message!r}"

    return check


def _withId(method: bytes, **args: Any) -> Callable[[Probe], Awaitable[tuple[bytes, Any]]]:
    async def build(probe: Probe) -> tuple[bytes, Any]:
        return method, {b"id": probe.main.nodeId, **{k.encode(): v for k, v in args.items()}}

    return build


def _announceWith(**change: Any) -> Callable[[Probe], Awaitable[tuple[bytes, Any]]]:
    """An announce_peer with a valid token, then C{change}d (None removes a key)."""

    async def build(probe: Probe) -> tuple[bytes, Any]:
        infoHash = os.urandom(20)
        args = {
            b"id": probe.main.nodeId,
            **announceArgs(infoHash, await tokenFor(probe, infoHash), 6881),
        }
        for key, value in change.items():
            if value is None:
                del args[key.encode()]
            else:
                args[key.encode()] = value
        return b"announce_peer", args

    return build


async def _noId(probe: Probe) -> tuple[bytes, Any]:
    return b"ping", {}


async def checkSilenceOnGarbage(probe: Probe) -> str:
    return await _silence(probe, b"\x00\xffnot bencode" + os.urandom(16), "garbage")


async def checkSilenceOnStrayResponse(probe: Probe) -> str:
    stray = krpc.encodeResponse(os.urandom(4), {b"id": probe.main.nodeId})
    return await _silence(probe, stray, "a response to no query")


async def _silence(probe: Probe, data: bytes, what: str) -> str:
    socket = probe.main
    before = len(socket.received)
    socket.send(data)
    await probe.wait(SILENCE_WAIT)
    replies = []
    for datagram in socket.received[before:]:
        try:
            if not isinstance(krpc.decodeMessage(datagram), krpc.Query):
                replies.append(datagram)
        except MalformedMessage:
            replies.append(datagram)
    if replies:
        raise CheckFailed(f"answered {what} with {replies[0][:80]!r}")
    return f"no reply to {what} in {SILENCE_WAIT:g} s"


async def checkUnknownKeys(probe: Probe) -> str:
    tid = os.urandom(4)
    data = bencoding.encode(
        {b"t": tid, b"y": b"q", b"q": b"ping", b"zz": 1,
         b"a": {b"id": probe.main.nodeId, b"zz_future": b"x", b"want": [b"n4", b"n5"]}}
    )  # fmt: skip
    reply = await probe.main.request(data, tid, probe.timeout)
    if reply is None:
        raise CheckFailed("a ping with unknown keys got no reply")
    responseOf(reply, "a ping with unknown keys")
    return "a ping with unknown keys answered"


# Tokens -------------------------------------------------------------------------


async def checkTokenIP(probe: Probe) -> str:
    other = probe.otherSource()
    if other is None:
        raise NotSupported("needs a second local address (--source-ip, twice)")
    infoHash = os.urandom(20)
    token = await tokenFor(probe, infoHash)
    reply = await other.query(b"announce_peer", announceArgs(infoHash, token, 7000), probe.timeout)
    stored = await storedPeers(probe, infoHash)
    if isinstance(reply, Response) or any(peer[0] == other.address[0] for peer in stored):
        raise CheckFailed(
            f"a token given to {probe.main.address[0]} was accepted from {other.address[0]}"
        )
    return "a token used from another IP was refused" + (
        f" (error {reply.code})" if isinstance(reply, krpc.Error) else " (no reply)"
    )


async def checkTokenInfoHash(probe: Probe) -> str:
    first, second = os.urandom(20), os.urandom(20)
    token = await tokenFor(probe, first)
    reply = await probe.main.query(
        b"announce_peer", announceArgs(second, token, 7001), probe.timeout
    )
    if isinstance(reply, Response) or await storedPeers(probe, second):
        raise CheckFailed("a token given for one info_hash was accepted for another")
    return "a token used for another info_hash was refused"


async def checkTokenLifetime(probe: Probe) -> str:
    infoHash = os.urandom(20)
    token = await tokenFor(probe, infoHash)
    await probe.wait(TOKEN_WAIT)
    await probe.askResponse(b"announce_peer", announceArgs(infoHash, token, 7002))
    return f"a token was still valid after {TOKEN_WAIT:g} s"


CHECKS: dict[str, Check] = {
    "ping": checkPing,
    "tid-lengths": checkTidLengths,
    "find-node": checkFindNode,
    "get-peers": checkGetPeers,
    "announce": checkAnnounce,
    "announce-implied-port": checkImpliedPort,
    "error-missing-id": _errorCheck(203, _noId),
    "error-short-id": _errorCheck(203, _withId(b"ping", id=b"short")),
    "error-missing-target": _errorCheck(203, _withId(b"find_node")),
    "error-missing-info-hash": _errorCheck(203, _withId(b"get_peers")),
    "error-missing-port": _errorCheck(203, _announceWith(port=None)),
    "error-missing-token": _errorCheck(203, _announceWith(token=None)),
    "error-bad-token": _errorCheck(203, _announceWith(token=b"not-a-token")),
    "error-port-zero": _errorCheck(203, _announceWith(port=0)),
    "error-unknown-method": _errorCheck(204, _withId(b"frobnicate")),
    "silence-garbage": checkSilenceOnGarbage,
    "silence-stray-response": checkSilenceOnStrayResponse,
    "unknown-keys": checkUnknownKeys,
    "token-ip": checkTokenIP,
    "token-info-hash": checkTokenInfoHash,
    "token-lifetime": checkTokenLifetime,
    "reply-size": checkReplySize,
    "amplification": checkAmplification,
    "want-n4-n6": checkWant,
    "bep42-ip": checkIPField,
    "bep42-node-id": checkNodeId,
    "read-only": checkReadOnly,
    "sample-infohashes": checkSampleInfohashes,
    "version": checkVersion,
    "bep44-immutable": checkImmutable,
    "bep44-mutable": checkMutable,
    "bep44-bad-token": checkItemBadToken,
    "burst": checkBurst,
}
"""Every check by name, in the order they run."""

DEFAULT_CHECKS = [name for name in CHECKS if name != "burst"]
"""What runs when no checks are named: all but the opt-in burst."""
