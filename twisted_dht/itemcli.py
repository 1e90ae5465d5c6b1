"""C{python -m twisted_dht put | get | keygen}: BEP 44 items from the command line.

C{put VALUE} stores VALUE's UTF-8 bytes as a bencoded byte string (so the target is the
SHA-1 of ``<len>:<value>``; C{--bencoded} takes VALUE as bencoding instead), signed with
C{--key KEYFILE} for a mutable item. C{get} takes a target, or C{--public-key} (and
C{--salt}). C{keygen KEYFILE} writes a new 32-byte ed25519 seed as 64 hex digits (mode
0600, never over an existing file) and prints the public key.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from . import bencoding
from .bep44 import SigningKey
from .console import Console, argumentType
from .errors import MalformedMessage, PutRefused
from .nodeid import parseHex

if TYPE_CHECKING:
    from .cli import Session


def _nonNegative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"{text!r} is negative")
    return value


def addItemCommands(
    commands: Any, common: argparse.ArgumentParser, output: argparse.ArgumentParser
) -> None:
    """Add C{put}, C{get} and C{keygen} to the subcommands."""
    number = argumentType(_nonNegative, "a number >= 0")
    put = commands.add_parser(
        "put", parents=[common, output], help="store a BEP 44 item (immutable, or --key)"
    )
    put.add_argument("value", metavar="VALUE", help="the value (UTF-8 text, or --bencoded)")
    put.add_argument("--bencoded", action="store_true", help="VALUE is bencoding")
    put.add_argument("--key", metavar="KEYFILE", help="sign a mutable item with this key")
    put.add_argument("--salt", default="", help="the mutable item's salt (UTF-8)")
    put.add_argument("--seq", type=number, help="its seq (default: one more than found)")
    put.add_argument("--cas", type=number, help="put only over this seq (BEP 44 cas)")
    get = commands.add_parser("get", parents=[common, output], help="fetch a BEP 44 item")
    which = get.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "target",
        metavar="TARGET",
        nargs="?",
        type=argumentType(lambda text: parseHex(text, 20), "40 hex digits"),
        help="an immutable item's target",
    )
    which.add_argument(
        "--public-key",
        metavar="HEX",
        type=argumentType(lambda text: parseHex(text, 32), "64 hex digits"),
        help="a mutable item's public key",
    )
    get.add_argument("--salt", default="", help="the mutable item's salt (UTF-8)")
    keygen = commands.add_parser(
        "keygen", parents=[output], help="make an ed25519 key for mutable items"
    )
    keygen.add_argument("path", metavar="KEYFILE", help="where to write it (never overwritten)")


def keygen(args: argparse.Namespace, console: Console) -> int:
    """keygen: write a new seed to a new file; print its public key."""
    key = SigningKey.generate()
    try:
        fd = os.open(args.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        console.progress(f"cannot create {args.path}: {e.strerror}")
        return 1
    with os.fdopen(fd, "w") as f:
        f.write(key.seed.hex() + "\n")
    console.document({"path": args.path, "publicKey": key.publicKey.hex()})
    console.line(key.publicKey.hex())
    return 0


def readKey(path: str) -> SigningKey:
    """The key in C{path} (64 hex digits on one line).

    @raise ValueError: when it cannot be read or is not a key.
    """
    try:
        with open(path) as f:
            text = f.read(200).strip()
    except OSError as e:
        raise ValueError(f"cannot read the key file {path}: {e.strerror}") from None
    try:
        return SigningKey(parseHex(text, 32))
    except ValueError:
        raise ValueError(f"{path} does not hold a key (64 hex digits)") from None


def _value(args: argparse.Namespace) -> Any:
    data = args.value.encode("utf-8")
    if not args.bencoded:
        return data
    try:
        return bencoding.decode(data)
    except MalformedMessage as e:
        raise ValueError(f"VALUE is not bencoding: {e}") from None


def describe(value: Any) -> Any:
    """A value for a person or a JSON document: text when it is UTF-8, else hex."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.hex()
    if isinstance(value, list):
        return [describe(item) for item in value]
    if isinstance(value, dict):
        return {describe(k): describe(v) for k, v in value.items()}
    return value


async def putItem(session: Session) -> None:
    """put: a get traversal, then put to the closest nodes that gave a token."""
    from .errors import CommandFailed

    args, console = session.args, session.console
    try:
        key = readKey(args.key) if args.key else None
        value = _value(args)
        salt = args.salt.encode("utf-8")
        await session.join()
        putting = session.node.put(value, key, salt=salt, seq=args.seq, cas=args.cas)
    except ValueError as e:
        raise CommandFailed(str(e)) from None
    try:
        result = await putting
    except PutRefused as e:
        raise CommandFailed(str(e)) from None
    if not result.accepted:
        raise CommandFailed("no node accepted the put")
    item = result.item
    console.document(
        {"target": item.target.hex(), "seq": item.seq, "accepted": result.accepted}
        | ({"publicKey": item.publicKey.hex()} if item.publicKey else {})
    )
    console.line(item.target.hex())
    console.progress(f"Stored on {result.accepted} nodes" + (f", seq {item.seq}" if key else ""))


async def getItem(session: Session) -> None:
    """get: the item at a target, or a public key's."""
    from .errors import CommandFailed

    args, console = session.args, session.console
    await session.join()
    if args.public_key is not None:
        found = await session.node.get(publicKey=args.public_key, salt=args.salt.encode())
    else:
        found = await session.node.get(args.target)
    item = found.item
    if item is None:
        raise CommandFailed(f"no node holds a valid item at {found.target.hex()}")
    document: dict[str, Any] = {"target": found.target.hex(), "value": describe(item.value)}
    if item.publicKey is not None:
        document.update(publicKey=item.publicKey.hex(), seq=item.seq)
    console.document(document)
    shown = describe(item.value)
    console.line(
        shown if isinstance(shown, str) else bencoding.encode(item.value).decode("latin-1")
    )
