"""The BEP 44 checks of L{twisted_dht.probe}: an immutable and a mutable put and get round
trip, and a put with a wrong token. A node that answers C{get} with error 204 (method
unknown), or without a token, does not support BEP 44: the checks say so, they do not fail.
On loopback each check queries from a socket on a spare loopback IP of its own, so that
its queries do not count against the main socket's per-IP budget at the target."""

from __future__ import annotations

import os
from typing import Any

from . import bencoding, krpc
from .bep44 import SigningKey, immutableTarget, mutableTarget, signedBuffer, verify
from .probe import CheckFailed, NotSupported, Probe, ProbeSocket

METHOD_UNKNOWN = 204
BAD_TOKEN = 203


def _socket(probe: Probe) -> ProbeSocket:
    """A socket on a spare loopback IP when the target is on loopback, else the main one."""
    interface = probe.spareLoopback(2)
    return probe.main if interface is None else probe.open(interface)


async def _ask(
    probe: Probe, socket: ProbeSocket, method: bytes, args: dict[bytes, Any]
) -> krpc.Response:
    """A BEP 44 query that must get a response; error 204 means BEP 44 is not supported."""
    reply = await probe.ask(method, args, socket)
    if isinstance(reply, krpc.Error):
        if reply.code == METHOD_UNKNOWN:
            raise NotSupported(f"{method.decode()} answered with error 204 (method unknown)")
        raise CheckFailed(f"{method.decode()} answered with error {reply.code}")
    assert isinstance(reply, krpc.Response)
    return reply


async def _token(probe: Probe, socket: ProbeSocket, target: bytes) -> bytes:
    """The write token of a get of C{target}."""
    reply = await _ask(probe, socket, b"get", {b"target": target})
    token = reply.values.get(b"token")
    if not isinstance(token, bytes) or not token:
        raise NotSupported("get gave no token")
    return token


async def checkImmutable(probe: Probe) -> str:
    value = b"twisted_dht probe " + os.urandom(8).hex().encode()
    target = immutableTarget(bencoding.encode(value))
    socket = _socket(probe)
    token = await _token(probe, socket, target)
    await _ask(probe, socket, b"put", {b"v": value, b"token": token})
    got = (await _ask(probe, socket, b"get", {b"target": target})).values.get(b"v")
    if got != value:
        raise CheckFailed(f"get after put gave v={got!r}, not the value put")
    return "put with a token, then get gave the value back"


async def checkMutable(probe: Probe) -> str:
    key = SigningKey(os.urandom(32))
    salt, seq, value = b"probe", 1, b"twisted_dht probe, mutable"
    target = mutableTarget(key.publicKey, salt)
    socket = _socket(probe)
    token = await _token(probe, socket, target)
    signature = key.sign(signedBuffer(bencoding.encode(value), seq, salt))
    args = {
        b"v": value,
        b"k": key.publicKey,
        b"salt": salt,
        b"seq": seq,
        b"sig": signature,
        b"token": token,
    }
    await _ask(probe, socket, b"put", args)
    got = (await _ask(probe, socket, b"get", {b"target": target})).values
    if (got.get(b"v"), got.get(b"seq"), got.get(b"k")) != (value, seq, key.publicKey):
        raise CheckFailed("get after a signed put did not give its v, seq and k back")
    sig = got.get(b"sig")
    buffer = signedBuffer(bencoding.encode(value), seq, salt)
    if not isinstance(sig, bytes) or not verify(key.publicKey, sig, buffer):
        raise CheckFailed("get after a signed put gave a signature that does not verify")
    return "signed put with a salt, then get gave v, seq and a valid sig"


async def checkBadToken(probe: Probe) -> str:
    value = b"twisted_dht probe, bad token " + os.urandom(8).hex().encode()
    socket = _socket(probe)
    await _token(probe, socket, immutableTarget(bencoding.encode(value)))
    reply = await probe.ask(b"put", {b"v": value, b"token": b"not-a-token"}, socket)
    if isinstance(reply, krpc.Error) and reply.code == METHOD_UNKNOWN:
        raise NotSupported("put answered with error 204 (method unknown)")
    if not isinstance(reply, krpc.Error):
        raise CheckFailed("a put with a wrong token was accepted")
    if reply.code != BAD_TOKEN:
        raise CheckFailed(f"a put with a wrong token got error {reply.code}, not 203")
    return "a put with a wrong token got error 203"
