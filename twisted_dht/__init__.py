"""twisted_dht: a BitTorrent Mainline DHT node (BEP 5) for Twisted."""

from .addresses import Address
from .admission import AdmissionPolicy
from .bep44 import Item, SigningKey
from .bloom import BloomFilter
from .bootstrap import DEFAULT_ROUTERS, BootstrapResult
from .contacts import Contact, NodeState
from .controller import Controller
from .errors import (
    DropQuery,
    ErrorCode,
    KRPCError,
    MalformedMessage,
    ProtocolStopped,
    PutRefused,
    QueryDropped,
    QueryTimeout,
    SendFailed,
)
from .handlers import K, QueryHandlers
from .interfaces import IEncodedPeerSource, IItemStore, IKRPCController, IPeerStore
from .itemclient import GetResult, PutResult
from .items import ItemStore
from .krpc import VERSION, Error, Query, Response
from .lookup import Lookup, LookupResult
from .node import DHTNode
from .peers import PeerStore
from .protocol import KRPCProtocol
from .reply import Answer
from .routing import RoutingTable
from .sampling import SampleReply, SampleWalk, WalkResult
from .scrape import ScrapeResult
from .service import DHTService
from .state import SavedState
from .stats import NodeStats
from .tokens import TokenStore

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_ROUTERS",
    "VERSION",
    "Address",
    "AdmissionPolicy",
    "Answer",
    "BloomFilter",
    "BootstrapResult",
    "Contact",
    "Controller",
    "DHTNode",
    "DHTService",
    "DropQuery",
    "Error",
    "ErrorCode",
    "GetResult",
    "IEncodedPeerSource",
    "IItemStore",
    "IKRPCController",
    "IPeerStore",
    "Item",
    "ItemStore",
    "K",
    "KRPCError",
    "KRPCProtocol",
    "Lookup",
    "LookupResult",
    "MalformedMessage",
    "NodeState",
    "NodeStats",
    "PeerStore",
    "ProtocolStopped",
    "PutRefused",
    "PutResult",
    "Query",
    "QueryDropped",
    "QueryHandlers",
    "QueryTimeout",
    "Response",
    "RoutingTable",
    "SampleReply",
    "SampleWalk",
    "SavedState",
    "ScrapeResult",
    "SendFailed",
    "SigningKey",
    "TokenStore",
    "WalkResult",
    "__version__",
]
