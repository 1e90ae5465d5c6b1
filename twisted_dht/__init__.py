"""twisted_dht: a BitTorrent Mainline DHT node (BEP 5) for Twisted."""

from .errors import (
    ErrorCode,
    KRPCError,
    MalformedMessage,
    ProtocolStopped,
    QueryDropped,
    QueryTimeout,
)
from .interfaces import IKRPCController, IPeerStore
from .krpc import VERSION, Address, Error, Query, Response
from .lookup import Lookup, LookupResult
from .node import DEFAULT_ROUTERS, BootstrapResult, DHTNode
from .peers import PeerStore
from .protocol import KRPCProtocol
from .routing import Contact, NodeState, RoutingTable
from .server import DHTServer, K
from .service import DHTService
from .tokens import TokenStore

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_ROUTERS",
    "VERSION",
    "Address",
    "BootstrapResult",
    "Contact",
    "DHTNode",
    "DHTServer",
    "DHTService",
    "Error",
    "ErrorCode",
    "IKRPCController",
    "IPeerStore",
    "K",
    "KRPCError",
    "KRPCProtocol",
    "Lookup",
    "LookupResult",
    "MalformedMessage",
    "NodeState",
    "PeerStore",
    "ProtocolStopped",
    "Query",
    "QueryDropped",
    "QueryTimeout",
    "Response",
    "RoutingTable",
    "TokenStore",
    "__version__",
]
