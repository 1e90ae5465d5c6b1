"""listenUDP6: an IPv6 UDP socket that can sit next to an IPv4 one on the same port."""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IReactorSocket, IReactorUDP
from twisted.internet.protocol import DatagramProtocol

MAX_PACKET_SIZE = 8192
"""The largest datagram read: KRPC messages are at most about 1,500 bytes."""


def listenUDP6(
    reactor: Any, port: int, protocol: DatagramProtocol, interface: str = "::"
) -> IListeningPort:
    """Bind C{protocol} to an IPv6-only UDP socket on C{interface} and C{port}.

    Linux binds C{[::]} dual-stack by default, so a plain C{listenUDP(port,
    interface="::")} fails with "address in use" next to an IPv4 socket on the same port.
    With a reactor that can adopt sockets (L{IReactorSocket}) this binds a socket with
    C{IPV6_V6ONLY} set; otherwise it falls back to C{listenUDP}.

    @raise CannotListenError: when the socket cannot be bound.
    """
    if not IReactorSocket.providedBy(reactor):
        udp: IListeningPort = IReactorUDP(reactor).listenUDP(
            port, protocol, interface=interface, maxPacketSize=MAX_PACKET_SIZE
        )
        return udp
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((interface, port))
        sock.setblocking(False)
        adopted: IListeningPort = reactor.adoptDatagramPort(
            sock.fileno(), socket.AF_INET6, protocol, MAX_PACKET_SIZE
        )
        return adopted
    except OSError as e:
        raise CannotListenError(interface, port, e) from e
    finally:
        sock.close()
