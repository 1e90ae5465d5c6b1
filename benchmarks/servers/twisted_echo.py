"""A bare Twisted DatagramProtocol that echoes every datagram: the ceiling for twisted_dht.

    python benchmarks/servers/twisted_echo.py --port P

Prints ``ready PORT`` when listening; exits when stdin closes.
"""

from __future__ import annotations

import argparse

from stdin_exit import exitWhenStdinCloses
from twisted.internet import reactor
from twisted.internet.protocol import DatagramProtocol


class Echo(DatagramProtocol):
    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        self.transport.write(datagram, addr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    reactor.listenUDP(options.port, Echo(), interface="127.0.0.1")
    exitWhenStdinCloses()
    print(f"ready {options.port}", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
