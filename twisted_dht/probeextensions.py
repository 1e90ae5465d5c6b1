"""The checks of L{twisted_dht.probe} beyond BEP 5's basics: reply sizes and amplification,
BEP 32 (want), BEP 42 (ip, node id), BEP 43 (read-only), BEP 51 (sampling), the version,
and the opt-in burst."""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.defer import Deferred, gatherResults

from . import bencoding, bep42, krpc
from .addresses import formatAddress, isLocal, packIP
from .krpc import Response
from .probe import (
    MAX_REPLY,
    SILENCE_WAIT,
    CheckFailed,
    NotSupported,
    Probe,
    ProbeSocket,
    announceArgs,
    nodesOf,
    responseOf,
    valuesOf,
)

MAX_AMPLIFICATION = 10.0
"""The most reply bytes per query byte the amplification check accepts: a ~100-byte
query and the 1,024-byte reply cap."""

STORED_PEERS = 100
"""Announcers the reply-size check uses on loopback (one loopback IP each)."""

CLIENTS = {
    b"LT": "libtorrent",
    b"UT": "uTorrent",
    b"TD": "twisted_dht",
    b"TR": "Transmission",
    b"ML": "mldht",
    b"GR": "GetRight",
    b"RS": "Rufus",
    b"lt": "rTorrent (libTorrent)",
}


# Sizes and amplification ------------------------------------------------------------


async def checkReplySize(probe: Probe) -> str:
    infoHash = os.urandom(20)
    announced = 0
    if probe.spareLoopback(1) is not None:
        sockets = [probe.open(probe.spareLoopback(1) or "") for _ in range(STORED_PEERS)]

        async def announceFrom(socket: ProbeSocket) -> bool:
            reply = await socket.query(b"get_peers", {b"info_hash": infoHash}, probe.timeout)
            token = reply.values.get(b"token") if isinstance(reply, Response) else None
            if not isinstance(token, bytes):
                return False
            args = announceArgs(infoHash, token, 6881)
            return isinstance(await socket.query(b"announce_peer", args, probe.timeout), Response)

        for start in range(0, len(sockets), 20):
            batch = sockets[start : start + 20]
            done = await gatherResults([Deferred.fromCoroutine(announceFrom(s)) for s in batch])
            announced += sum(done)
        reply = await probe.askResponse(
            b"get_peers", {b"info_hash": infoHash, b"want": [b"n4", b"n6"]}
        )
        values = len(valuesOf(reply))
        evidence = f"{announced} peers announced, get_peers gave {values} values; "
    else:
        evidence = ""
    # Once the announcers answered its pings, a node's table may hold them too.
    await probe.askResponse(b"find_node", {b"target": os.urandom(20), b"want": [b"n4", b"n6"]})
    largest = max((len(d) for d in probe.received()), default=0)
    if largest > MAX_REPLY:
        raise CheckFailed(f"{evidence}a reply of {largest} bytes (over {MAX_REPLY})")
    return f"{evidence}largest reply {largest} bytes"


async def checkAmplification(probe: Probe) -> str:
    spare = probe.spareLoopback(2)
    socket = probe.open(spare) if spare is not None else probe.main
    worst, evidence = 0.0, ""
    for method, key in ((b"find_node", b"target"), (b"get_peers", b"info_hash")):
        tid = os.urandom(4)
        args = {b"id": socket.nodeId, key: os.urandom(20), b"want": [b"n4", b"n6"]}
        data = krpc.encodeQuery(tid, method, args)
        before = len(socket.received)
        reply = await socket.request(data, tid, probe.timeout)
        if reply is None:
            raise CheckFailed(f"no reply to {method.decode()}")
        size = len(socket.received[before])
        if size / len(data) > worst:
            worst = size / len(data)
            evidence = f"{method.decode()}: {size} bytes for a {len(data)}-byte query"
    if worst > MAX_AMPLIFICATION:
        raise CheckFailed(f"{worst:.1f}x ({evidence}; at most {MAX_AMPLIFICATION:g}x)")
    return f"{worst:.1f}x at most ({evidence})"


# BEP 32, 42, 43, 51 ---------------------------------------------------------------


async def checkWant(probe: Probe) -> str:
    args = {b"target": os.urandom(20), b"want": [b"n4", b"n6"]}
    reply = await probe.askResponse(b"find_node", args)
    if b"nodes6" not in reply.values:
        raise NotSupported("want n4+n6 gave no nodes6 (no IPv6 contacts, or no BEP 32)")
    return f"{len(nodesOf(reply))} nodes and {len(nodesOf(reply, b'nodes6'))} nodes6"


async def checkIPField(probe: Probe) -> str:
    reply = await probe.askResponse(b"ping", {})
    if reply.ip is None:
        if b"ip" in reply.values or b"ip" in _topLevel(probe, reply):
            raise CheckFailed("the ip field is not a compact address")
        raise NotSupported("no ip field (BEP 42)")
    ours = probe.main.address
    if probe.loopback and (packIP(reply.ip[0]), reply.ip[1]) != (packIP(ours[0]), ours[1]):
        raise CheckFailed(f"ip says {formatAddress(reply.ip)}, we are {formatAddress(ours)}")
    return f"ip {formatAddress(reply.ip)}"


def _topLevel(probe: Probe, reply: Response) -> dict[bytes, Any]:
    for datagram in reversed(list(probe.received())):
        try:
            message = bencoding.decode(datagram)
        except Exception:
            continue
        if isinstance(message, dict) and message.get(b"t") == reply.tid:
            return message
    return {}


async def checkNodeId(probe: Probe) -> str:
    if probe.targetId is None:
        probe.targetId = responseOf(await probe.ask(b"ping", {}), "ping").values[b"id"]
    host = probe.target[0]
    if isLocal(host):
        return f"{host} is a local address: BEP 42 exempts it"
    if bep42.verifyId(probe.targetId, host):
        return f"the id is BEP 42-valid for {host}"
    raise NotSupported(f"the id is not BEP 42-valid for {host}")


async def checkReadOnly(probe: Probe) -> str:
    readOnlyIP, normalIP = probe.spareLoopback(4), probe.spareLoopback(5)
    if readOnlyIP is None or normalIP is None:
        raise NotSupported("needs spare loopback addresses (a node on 127.0.0.0/8)")
    readOnly = probe.open(readOnlyIP, readOnly=True)
    normal = probe.open(normalIP)
    for socket in (readOnly, normal):
        await probe.askResponse(b"ping", {}, socket)
        await probe.askResponse(b"find_node", {b"target": os.urandom(20)}, socket)
    await probe.wait(SILENCE_WAIT)
    for socket in (readOnly, normal):
        await probe.askResponse(b"ping", {}, socket)

    async def visible(socket: ProbeSocket) -> bool:
        reply = await probe.askResponse(b"find_node", {b"target": socket.nodeId})
        return any(nodeId == socket.nodeId for nodeId, _ in nodesOf(reply))

    if await visible(readOnly):
        raise CheckFailed("a read-only (ro=1) querier entered the routing table")
    if not await visible(normal):
        raise NotSupported("no querier became visible in find_node replies")
    return "a read-only querier stayed out of the table; an ordinary one entered it"


async def checkSampleInfohashes(probe: Probe) -> str:
    args = {b"target": os.urandom(20)}
    reply = await probe.main.query(b"sample_infohashes", args, probe.timeout)
    if reply is None:
        raise NotSupported("no reply (BEP 51 not implemented)")
    if isinstance(reply, krpc.Error):
        raise NotSupported(f"error {reply.code} (BEP 51 not implemented)")
    values = responseOf(reply, "sample_infohashes").values
    samples, interval, num = values.get(b"samples"), values.get(b"interval"), values.get(b"num")
    if not isinstance(samples, bytes) or len(samples) % 20:
        raise CheckFailed(f"samples is not a list of 20-byte hashes: {samples!r:.60}")
    if not isinstance(interval, int) or not isinstance(num, int):
        raise CheckFailed("interval or num missing")
    return f"{len(samples) // 20} samples of {num}, interval {interval} s"


async def checkVersion(probe: Probe) -> str:
    if probe.version is None and probe.targetId is None:
        probe.version = (await probe.askResponse(b"ping", {})).version
    version = probe.version
    if not version:
        raise NotSupported("no v field")
    return describeVersion(version)


def describeVersion(version: bytes) -> str:
    """A person's reading of a C{v} field: client and version, or the raw bytes."""
    if len(version) != 4:
        return repr(version)
    client = CLIENTS.get(version[:2], version[:2].decode("latin-1"))
    if version[:2] == b"LT":  # major, then minor and tiny in a nibble each (LT 2.1.1: 02 11)
        number = f"{version[2]}.{version[3] >> 4}.{version[3] & 15}"
    else:
        number = f"{version[2]}.{version[3]}"
    return f"{client} {number} ({version!r})"


async def checkBurst(probe: Probe) -> str:
    if probe.burst <= 0:
        raise NotSupported("not asked for (--burst N)")
    socket = probe.main
    pings = [socket.query(b"ping", {}, probe.timeout) for _ in range(probe.burst)]
    answered = sum(isinstance(r, Response) for r in await gatherResults(pings))
    if not answered:
        raise CheckFailed(f"none of a burst of {probe.burst} pings answered")
    return f"{answered} of a burst of {probe.burst} pings answered"
