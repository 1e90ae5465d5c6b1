"""A bare Twisted DatagramProtocol that echoes every datagram: the ceiling for twisted_dht.

    python benchmarks/servers/twisted_echo.py --port P

Prints ``ready PORT`` when listening; exits when stdin closes.
"""

from __future__ import annotations

from stdin_exit import serveUDP
from twisted.internet.protocol import DatagramProtocol


class Echo(DatagramProtocol):
    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        self.transport.write(datagram, addr)


if __name__ == "__main__":
    serveUDP(Echo(), __doc__.splitlines()[0])
