"""The state file: our node id and the good nodes of both routing tables, across restarts.

A small versioned JSON document (like libtorrent's dht_state)::

    {"version": 1,
     "nodeId": "<40 hex digits>",
     "nodes": [["<40 hex digits>", "1.2.3.4", 6881], ...],
     "nodes6": [["<40 hex digits>", "2001:db8::1", 6881], ...]}

It is written atomically (L{saveState}); a missing file means a fresh start, and a corrupt
one is moved aside, never lost, never fatal (L{loadState}). Only a regular file of at most
L{MAX_STATE_BYTES} is read, and at most L{MAX_SAVED_NODES} nodes per family are kept, so
that neither a bad file nor a huge one can block, exhaust or flood the node at start.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import stat
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from .addresses import Address
from .contacts import NodeState
from .nodeid import ID_LENGTH

if TYPE_CHECKING:
    from .node import DHTNode

VERSION = 1
"""The version of the state file format this module writes and reads."""

MAX_STATE_BYTES = 4 * 1024 * 1024
"""The largest state file read; a larger one is treated as corrupt. A full file of
L{MAX_SAVED_NODES} per family is about 50 KB: this leaves room for hand-made ones."""

MAX_SAVED_NODES = 300
"""Nodes kept per family, the first (best) ones: more than a full routing table holds in
practice (some 20 buckets of 8), few enough that pinging them all at start is cheap."""

log = Logger()

_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)  # a FIFO opens at once instead of waiting for a writer
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)

SavedNode = tuple[bytes, Address]


class StateError(ValueError):
    """A state file that cannot be read or is not a valid state document."""


@dataclass(frozen=True)
class SavedState:
    """What a node keeps across restarts: its id and the nodes it knew, per family.

    Only the first L{MAX_SAVED_NODES} nodes of each family are kept.
    """

    nodeId: bytes
    nodes: tuple[SavedNode, ...] = field(default=())
    nodes6: tuple[SavedNode, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes[:MAX_SAVED_NODES]))
        object.__setattr__(self, "nodes6", tuple(self.nodes6[:MAX_SAVED_NODES]))

    def addresses(self) -> list[Address]:
        """Every saved node's address, IPv4 first."""
        return [address for _, address in (*self.nodes, *self.nodes6)]

    def toJSON(self) -> dict[str, Any]:
        """The JSON document of this state."""
        return {
            "version": VERSION,
            "nodeId": self.nodeId.hex(),
            "nodes": [[nodeId.hex(), host, port] for nodeId, (host, port) in self.nodes],
            "nodes6": [[nodeId.hex(), host, port] for nodeId, (host, port) in self.nodes6],
        }

    @classmethod
    def fromJSON(cls, document: object) -> SavedState:
        """Validate a decoded JSON document; nodes beyond the first L{MAX_SAVED_NODES}
        of a family are ignored unchecked.

        @raise StateError: saying what is wrong with it.
        """
        if not isinstance(document, dict):
            raise StateError("not a JSON object")
        version = document.get("version")
        if type(version) is not int:
            raise StateError("missing or non-integer version")
        if version != VERSION:
            raise StateError(f"unsupported version {version} (this program reads {VERSION})")
        return cls(
            nodeId=_hexId(document.get("nodeId"), "nodeId"),
            nodes=_nodes(document.get("nodes", []), "nodes", 4),
            nodes6=_nodes(document.get("nodes6", []), "nodes6", 6),
        )


def _hexId(value: object, where: str) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * ID_LENGTH:
        raise StateError(f"{where}: expected {2 * ID_LENGTH} hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise StateError(f"{where}: not hexadecimal") from None


def _nodes(value: object, where: str, family: int) -> tuple[SavedNode, ...]:
    if not isinstance(value, list):
        raise StateError(f"{where}: not a list")
    nodes = []
    for index, entry in enumerate(value[:MAX_SAVED_NODES]):
        here = f"{where}[{index}]"
        if not isinstance(entry, list) or len(entry) != 3:
            raise StateError(f"{here}: expected [id, host, port]")
        hexId, host, port = entry
        nodeId = _hexId(hexId, here)
        if not isinstance(host, str):
            raise StateError(f"{here}: host is not a string")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise StateError(f"{here}: {host!r} is not an IP address") from None
        if ip.version != family:
            raise StateError(f"{here}: {host!r} is not an IPv{family} address")
        if type(port) is not int or not 0 < port < 65536:
            raise StateError(f"{here}: invalid port {port!r}")
        nodes.append((nodeId, (host, port)))
    return tuple(nodes)


def readState(path: str) -> SavedState:
    """Read and validate a state file, changing nothing.

    @raise FileNotFoundError: when there is no file at C{path}.
    @raise StateError: when it cannot be read, is not a regular file (a FIFO, a device...;
        never read, so never blocking), is larger than L{MAX_STATE_BYTES} or is not a
        valid state document.
    """
    try:
        data = _readRegularFile(path)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise StateError(f"cannot read it: {e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise StateError(f"not UTF-8 text: {e}") from None
    try:
        document = json.loads(text)
    except ValueError as e:
        raise StateError(f"invalid JSON: {e}") from None
    return SavedState.fromJSON(document)


def _readRegularFile(path: str) -> bytes:
    """The content of the regular file at C{path}, reading at most one byte too many."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StateError(f"not a regular file but {_kind(info.st_mode)}")
        data = b""
        while info.st_size <= MAX_STATE_BYTES and len(data) <= MAX_STATE_BYTES:
            chunk = os.read(fd, MAX_STATE_BYTES + 1 - len(data))
            if not chunk:
                return data
            data += chunk
    finally:
        os.close(fd)
    raise StateError(f"larger than {MAX_STATE_BYTES} bytes")


def _kind(mode: int) -> str:
    """What a non-regular file is, for a log line."""
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "a special file"


def _isSpecial(path: str) -> bool:
    """Whether C{path} itself (not a symlink's target) is a FIFO, a device or a socket:
    not ours to move or replace (think C{/dev/null})."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode))


def loadState(path: str) -> SavedState | None:
    """The state saved at C{path}; None to start fresh.

    A missing file gives None. A corrupt, unreadable, too large or invalid one logs one
    warning, is moved aside to C{path + ".corrupt"} (or C{".corrupt.1"}, ... when that
    exists), and gives None; so is a symlink to a FIFO or a device (the link is moved, not
    its target). A FIFO, device or socket at C{path} itself logs one warning and gives
    None, but stays where it is (L{saveState} will not replace it either). Never raises.
    """
    try:
        return readState(path)
    except FileNotFoundError:
        return None
    except StateError as e:
        reason = str(e)
    except Exception as e:  # never crash the node over its state file
        reason = f"{type(e).__name__}: {e}"
    if _isSpecial(path):
        log.warn(
            "Ignoring the state file {path} ({reason}); leaving it in place, the state will "
            "not be saved there; starting with a fresh state",
            path=path,
            reason=reason,
        )
        return None
    try:
        aside = _moveAside(path)
    except OSError as e:
        log.warn(
            "Ignoring the invalid state file {path} ({reason}); could not move it aside: "
            "{error}; starting with a fresh state",
            path=path,
            reason=reason,
            error=e,
        )
    else:
        log.warn(
            "Ignoring the invalid state file {path} ({reason}); moved it to {aside} and "
            "starting with a fresh state",
            path=path,
            reason=reason,
            aside=aside,
        )
    return None


def _moveAside(path: str) -> str:
    """Rename C{path} to the first free name of C{path.corrupt}, C{path.corrupt.1}, ..."""
    base = path + ".corrupt"
    candidate, n = base, 0
    while os.path.lexists(candidate):
        n += 1
        candidate = f"{base}.{n}"
    os.rename(path, candidate)
    return candidate


def saveState(path: str, state: SavedState) -> None:
    """Write C{state} to C{path} atomically: a temporary file in the same directory,
    flushed and fsynced, then renamed over C{path}; the directory is fsynced too. A
    symlink at C{path} is replaced, never written through.

    @raise OSError: when it cannot be written, or C{path} is a FIFO, a device or a socket;
        C{path} is then unchanged.
    """
    if _isSpecial(path):
        raise OSError(f"{path} is not a regular file: not replacing it")
    data = json.dumps(state.toJSON(), indent=1).encode("utf-8") + b"\n"
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(
        prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory
    )
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsyncDirectory(directory)


def _fsyncDirectory(directory: str) -> None:
    """Make a rename in C{directory} durable, where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def stateOf(node: DHTNode) -> SavedState:
    """The state to save for C{node}: its id and the contacts that answered it and are not
    bad, good ones first, most recently seen first (the first L{MAX_SAVED_NODES})."""
    now = node.reactor.seconds()

    def saved(contacts: list[Any]) -> tuple[SavedNode, ...]:
        kept = [
            c for c in contacts if c.lastResponse is not None and c.state(now) is not NodeState.BAD
        ]
        kept.sort(key=lambda c: (c.state(now) is not NodeState.GOOD, -c.lastSeen()))
        return tuple((c.nodeId, c.address) for c in kept[:MAX_SAVED_NODES])

    return SavedState(
        nodeId=node.nodeId,
        nodes=saved(node.ipv4.table.contacts()),
        nodes6=saved(node.ipv6.table.contacts()),
    )


def applyState(node: DHTNode, state: SavedState) -> None:
    """Make C{node} ping the saved nodes first when it bootstraps (routers are the fallback):
    at most L{MAX_SAVED_NODES} per family, through the node's outgoing query rate.

    The node id is chosen when the node is built: pass C{state.nodeId} to L{DHTNode}.
    """
    node.knownNodes = state.addresses()
