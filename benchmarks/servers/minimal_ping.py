"""Twisted + bencode2 with a minimal ping handler: what decoding, checking the fields,
encoding and sending cost with nothing else (a reference row of the issue's table).

    python benchmarks/servers/minimal_ping.py --port P

Answers well-formed pings only (no routing table, no counters, no limits); prints
``ready PORT`` when listening; exits when stdin closes.
"""

from __future__ import annotations

import os

from bencode2 import BencodeDecodeError, bdecode, bencode
from stdin_exit import serveUDP
from twisted.internet.protocol import DatagramProtocol

NODE_ID = os.urandom(20)


class MinimalPing(DatagramProtocol):
    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        try:
            message = bdecode(datagram)
        except BencodeDecodeError:
            return
        if type(message) is not dict or message.get(b"y") != b"q":
            return
        tid, args = message.get(b"t"), message.get(b"a")
        if type(tid) is not bytes or type(args) is not dict or message.get(b"q") != b"ping":
            return
        nodeId = args.get(b"id")
        if type(nodeId) is not bytes or len(nodeId) != 20:
            return
        reply = bencode({b"t": tid, b"y": b"r", b"r": {b"id": NODE_ID}})
        self.transport.socket.sendto(reply, addr)


if __name__ == "__main__":
    serveUDP(MinimalPing(), __doc__.splitlines()[0])
