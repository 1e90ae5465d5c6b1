"""Tests for L{twisted_dht.krpc}: messages, compact formats and typed accessors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht import bencoding, krpc
from twisted_dht.addresses import Address, packAddress
from twisted_dht.errors import ErrorCode, MalformedMessage

NODE_ID = bytes(range(20))
OTHER_ID = b"\xff" * 20
TID = b"aa"
IPV4_VECTOR = (("1.2.3.4", 0x1AE1), b"\x01\x02\x03\x04\x1a\xe1")
IPV6_VECTOR = (
    ("2001:db8::1", 6881),
    bytes.fromhex("20010db8000000000000000000000001") + b"\x1a\xe1",
)


def _raw(**fields: Any) -> bytes:
    """Bencode a top-level message whose keys are given as keyword names."""
    return bencoding.encode({key.encode(): value for key, value in fields.items()})


def _packNodes(nodes: list[tuple[bytes, Address]]) -> bytes:
    """A compact nodes (or nodes6) string: the nodes packed and joined."""
    return b"".join(krpc.packNode(nodeId, address) for nodeId, address in nodes)


def _query(**args: Any) -> krpc.Query:
    """A decoded query with our id plus the given arguments."""
    values = {b"id": NODE_ID, **{key.encode(): value for key, value in args.items()}}
    message = krpc.decodeMessage(krpc.encodeQuery(TID, b"get_peers", values))
    assert isinstance(message, krpc.Query)
    return message


def _response(**values: Any) -> krpc.Response:
    """A decoded response with the responder's id plus the given values."""
    body = {b"id": OTHER_ID, **{key.encode(): value for key, value in values.items()}}
    message = krpc.decodeMessage(krpc.encodeResponse(TID, body))
    assert isinstance(message, krpc.Response)
    return message


class QueryMessageTests(SynchronousTestCase):
    """Encoding and decoding queries."""

    def test_roundTrip(self) -> None:
        """An encoded query decodes to the same tid, method, arguments and version."""
        args = {b"id": NODE_ID, b"target": OTHER_ID}
        message = krpc.decodeMessage(krpc.encodeQuery(TID, b"find_node", args))
        self.assertEqual(message, krpc.Query(TID, b"find_node", args, krpc.VERSION, False))
        assert isinstance(message, krpc.Query)
        self.assertEqual(message.nodeId, NODE_ID)

    def test_wireFormat(self) -> None:
        """encodeQuery produces the BEP 5 layout: t, y=q, q, a, and v when given."""
        data = krpc.encodeQuery(TID, b"ping", {b"id": NODE_ID}, version=b"TD\x00\x01")
        self.assertEqual(
            data,
            b"d1:ad2:id20:" + NODE_ID + b"e1:q4:ping1:t2:aa1:v4:TD\x00\x011:y1:qe",
        )

    def test_noVersion(self) -> None:
        """A query encoded without a version has no v and decodes with version None."""
        data = krpc.encodeQuery(TID, b"ping", {b"id": NODE_ID}, version=None)
        self.assertNotIn(b"1:v", data)
        message = krpc.decodeMessage(data)
        assert isinstance(message, krpc.Query)
        self.assertIsNone(message.version)

    def test_nonBytesVersionIgnored(self) -> None:
        """A v that is not a byte string is ignored rather than rejected."""
        data = _raw(t=TID, y=b"q", q=b"ping", a={b"id": NODE_ID}, v=7)
        message = krpc.decodeMessage(data)
        assert isinstance(message, krpc.Query)
        self.assertIsNone(message.version)

    def test_readOnly(self) -> None:
        """ro=1 decodes into Query.readOnly and encodeQuery(readOnly=True) sends it."""
        data = krpc.encodeQuery(TID, b"ping", {b"id": NODE_ID}, readOnly=True)
        self.assertIn(b"2:roi1e", data)
        message = krpc.decodeMessage(data)
        assert isinstance(message, krpc.Query)
        self.assertTrue(message.readOnly)

    def test_notReadOnly(self) -> None:
        """Without ro, or with ro=0, a query is not read-only."""
        self.assertFalse(_query().readOnly)
        data = _raw(t=TID, y=b"q", q=b"ping", a={b"id": NODE_ID}, ro=0)
        message = krpc.decodeMessage(data)
        assert isinstance(message, krpc.Query)
        self.assertFalse(message.readOnly)

    def test_readOnlyNotInteger(self) -> None:
        """A non-integer ro is malformed and carries the query's tid."""
        data = _raw(t=TID, y=b"q", q=b"ping", a={b"id": NODE_ID}, ro=b"1")
        error = self.assertRaises(MalformedMessage, krpc.decodeMessage, data)
        self.assertEqual(error.queryTid, TID)

    def test_unknownKeysIgnored(self) -> None:
        """Unknown top-level keys and unknown arguments are ignored and kept in args."""
        args = {b"id": NODE_ID, b"zzz": [1, 2]}
        data = _raw(t=TID, y=b"q", q=b"ping", a=args, extra=b"x", zz={b"k": 1})
        self.assertEqual(krpc.decodeMessage(data), krpc.Query(TID, b"ping", args))

    def test_missingMethod(self) -> None:
        """A query without q is malformed and carries its tid for a 203 reply."""
        data = _raw(t=TID, y=b"q", a={b"id": NODE_ID})
        error = self.assertRaises(MalformedMessage, krpc.decodeMessage, data)
        self.assertEqual(error.queryTid, TID)

    def test_methodNotBytes(self) -> None:
        """A query whose q is not a byte string is malformed and carries its tid."""
        data = _raw(t=TID, y=b"q", q=1, a={b"id": NODE_ID})
        error = self.assertRaises(MalformedMessage, krpc.decodeMessage, data)
        self.assertEqual(error.queryTid, TID)

    def test_missingArguments(self) -> None:
        """A query without a is malformed and carries its tid."""
        data = _raw(t=TID, y=b"q", q=b"ping")
        error = self.assertRaises(MalformedMessage, krpc.decodeMessage, data)
        self.assertEqual(error.queryTid, TID)

    def test_argumentsNotDict(self) -> None:
        """A query whose a is not a dictionary is malformed and carries its tid."""
        for args in [[NODE_ID], NODE_ID, 3]:
            data = _raw(t=TID, y=b"q", q=b"ping", a=args)
            error = self.assertRaises(MalformedMessage, krpc.decodeMessage, data)
            self.assertEqual(error.queryTid, TID)

    def test_missingId(self) -> None:
        """A query without an id argument is malformed and carries its tid for a 203."""
        data = _raw(t=TID, y=b"q", q=b"ping", a={b"target": OTHER_ID})
        error = self.assertRaises(MalformedMessage, krpc.decodeMessage, data)
        self.assertEqual(error.queryTid, TID)
        self.assertIn("id", str(error))

    def test_wrongSizeId(self) -> None:
        """A query whose id is not 20 bytes (or not bytes) is malformed and carries its tid."""
        for nodeId in [NODE_ID[:19], NODE_ID + b"x", b"", 5, [NODE_ID]]:
            data = _raw(t=TID, y=b"q", q=b"ping", a={b"id": nodeId})
            error = self.assertRaises(MalformedMessage, krpc.decodeMessage, data)
            self.assertEqual(error.queryTid, TID)


class ResponseMessageTests(SynchronousTestCase):
    """Encoding and decoding responses."""

    def test_roundTrip(self) -> None:
        """An encoded response decodes to the same tid, values and version."""
        values = {b"id": OTHER_ID, b"token": b"tok"}
        message = krpc.decodeMessage(krpc.encodeResponse(TID, values))
        self.assertEqual(message, krpc.Response(TID, values, krpc.VERSION, None))
        assert isinstance(message, krpc.Response)
        self.assertEqual(message.nodeId, OTHER_ID)

    def test_tidEchoed(self) -> None:
        """A response carries exactly the tid it was encoded with: any bytes, up to 32."""
        for tid in [b"", b"\x00", b"\xff\xfe", bytes(range(32))]:
            message = krpc.decodeMessage(krpc.encodeResponse(tid, {b"id": OTHER_ID}))
            self.assertEqual(message.tid, tid)

    def test_requesterIPv4(self) -> None:
        """A packed requester address is sent as the top-level ip and parsed into ip."""
        data = krpc.encodeResponse(TID, {b"id": OTHER_ID}, requester=IPV4_VECTOR[1])
        self.assertIn(b"2:ip6:" + IPV4_VECTOR[1], data)
        message = krpc.decodeMessage(data)
        assert isinstance(message, krpc.Response)
        self.assertEqual(message.ip, IPV4_VECTOR[0])

    def test_requesterIPv6(self) -> None:
        """A packed IPv6 requester address round-trips through the 18-byte top-level ip."""
        data = krpc.encodeResponse(TID, {b"id": OTHER_ID}, requester=IPV6_VECTOR[1])
        self.assertIn(b"2:ip18:" + IPV6_VECTOR[1], data)
        message = krpc.decodeMessage(data)
        assert isinstance(message, krpc.Response)
        self.assertEqual(message.ip, IPV6_VECTOR[0])

    def test_invalidIpIgnored(self) -> None:
        """A top-level ip of the wrong size or type is ignored, leaving ip None."""
        for ip in [b"\x01\x02\x03\x04\x05", IPV4_VECTOR[1] + b"\x00", b"", 7, [IPV4_VECTOR[1]]]:
            data = _raw(t=TID, y=b"r", r={b"id": OTHER_ID}, ip=ip)
            message = krpc.decodeMessage(data)
            assert isinstance(message, krpc.Response)
            self.assertIsNone(message.ip)

    def test_version(self) -> None:
        """A response's v is decoded into version; without v it is None."""
        data = krpc.encodeResponse(TID, {b"id": OTHER_ID}, version=b"LT\x01\x02")
        self.assertEqual(krpc.decodeMessage(data).version, b"LT\x01\x02")
        data = krpc.encodeResponse(TID, {b"id": OTHER_ID}, version=None)
        self.assertIsNone(krpc.decodeMessage(data).version)

    def test_unknownKeysIgnored(self) -> None:
        """Unknown top-level keys are ignored and unknown values kept."""
        values = {b"id": OTHER_ID, b"new": [b"x"]}
        data = _raw(t=TID, y=b"r", r=values, zzz=1)
        self.assertEqual(krpc.decodeMessage(data), krpc.Response(TID, values))

    def test_missingValues(self) -> None:
        """A response without an r dictionary is malformed, with no queryTid."""
        for data in [_raw(t=TID, y=b"r"), _raw(t=TID, y=b"r", r=[OTHER_ID])]:
            error = self.assertRaises(MalformedMessage, krpc.decodeMessage, data)
            self.assertIsNone(error.queryTid)

    def test_badId(self) -> None:
        """A response with a missing or wrong-size id is malformed, with no queryTid."""
        for values in [{}, {b"id": OTHER_ID[:19]}, {b"id": OTHER_ID + b"\x00"}, {b"id": 1}]:
            data = _raw(t=TID, y=b"r", r=values)
            error = self.assertRaises(MalformedMessage, krpc.decodeMessage, data)
            self.assertIsNone(error.queryTid)


class ErrorMessageTests(SynchronousTestCase):
    """Encoding and decoding error replies."""

    def test_roundTrip(self) -> None:
        """An encoded error decodes to the same tid, code, message and version."""
        data = krpc.encodeError(TID, ErrorCode.PROTOCOL, "Protocol Error")
        self.assertEqual(
            krpc.decodeMessage(data), krpc.Error(TID, 203, b"Protocol Error", krpc.VERSION)
        )

    def test_wireFormat(self) -> None:
        """encodeError produces e = [code, message] with y=e."""
        data = krpc.encodeError(TID, 201, b"A Generic Error Ocurred", version=None)
        self.assertEqual(data, b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee")

    def test_textMessageEncodedUTF8(self) -> None:
        """A str error message is sent as UTF-8 bytes."""
        message = krpc.decodeMessage(krpc.encodeError(TID, 202, "caf\u00e9"))
        assert isinstance(message, krpc.Error)
        self.assertEqual(message.message, b"caf\xc3\xa9")

    def test_extraElementsIgnored(self) -> None:
        """An error list longer than [code, message] is accepted."""
        data = _raw(t=TID, y=b"e", e=[204, b"Method Unknown", b"extra"])
        self.assertEqual(krpc.decodeMessage(data), krpc.Error(TID, 204, b"Method Unknown"))

    def test_malformedError(self) -> None:
        """An error that is not [int, bytes] is malformed, with no queryTid."""
        for value in [[], [201], [b"201", b"x"], [201, 5], [201, [b"x"]], b"x", 201, {}]:
            error = self.assertRaises(
                MalformedMessage, krpc.decodeMessage, _raw(t=TID, y=b"e", e=value)
            )
            self.assertIsNone(error.queryTid)
        error = self.assertRaises(MalformedMessage, krpc.decodeMessage, _raw(t=TID, y=b"e"))
        self.assertIsNone(error.queryTid)


class EnvelopeTests(SynchronousTestCase):
    """Validation common to every message type."""

    def assertMalformed(self, data: bytes) -> MalformedMessage:
        """Assert that decodeMessage rejects C{data}, without a queryTid."""
        error = self.assertRaises(MalformedMessage, krpc.decodeMessage, data)
        assert isinstance(error, MalformedMessage)
        self.assertIsNone(error.queryTid)
        return error

    def test_invalidBencoding(self) -> None:
        """Input that is not canonical bencoding is malformed."""
        self.assertMalformed(b"")
        self.assertMalformed(b"d1:t2:aa1:y1:r")
        self.assertMalformed(b"d1:y1:r1:t2:aae")

    def test_notDict(self) -> None:
        """A message that is not a dictionary is malformed."""
        for value in [[], [TID], b"x", 1]:
            self.assertMalformed(bencoding.encode(value))

    def test_missingTid(self) -> None:
        """A message without t is malformed, even a query."""
        self.assertMalformed(_raw(y=b"q", q=b"ping", a={b"id": NODE_ID}))

    def test_tidNotBytes(self) -> None:
        """A t that is not a byte string is malformed, even in a query."""
        for tid in [1, [TID], {}]:
            self.assertMalformed(_raw(t=tid, y=b"q", q=b"ping", a={b"id": NODE_ID}))

    def test_tidTooLong(self) -> None:
        """A t of 33 bytes is malformed and one of 32 bytes is accepted."""
        self.assertMalformed(_raw(t=b"x" * 33, y=b"r", r={b"id": OTHER_ID}))
        self.assertMalformed(_raw(t=b"x" * 33, y=b"q", q=b"ping", a={b"id": NODE_ID}))
        message = krpc.decodeMessage(_raw(t=b"x" * 32, y=b"r", r={b"id": OTHER_ID}))
        self.assertEqual(message.tid, b"x" * 32)

    def test_missingType(self) -> None:
        """A message without y is malformed."""
        self.assertMalformed(_raw(t=TID, r={b"id": OTHER_ID}))

    def test_unknownType(self) -> None:
        """A y other than q, r or e (or not a byte string) is malformed."""
        for kind in [b"x", b"", b"query", b"Q", 1, [b"q"]]:
            self.assertMalformed(_raw(t=TID, y=kind, r={b"id": OTHER_ID}))

    def test_datagramTooBig(self) -> None:
        """A datagram longer than 64 KiB is malformed; one of exactly 64 KiB is accepted."""
        self.assertMalformed(_paddedResponse(krpc.MAX_DATAGRAM + 1))
        message = krpc.decodeMessage(_paddedResponse(krpc.MAX_DATAGRAM))
        self.assertEqual(message.tid, TID)


def _paddedResponse(size: int) -> bytes:
    """A valid response of exactly C{size} bytes, padded with an unknown key."""
    padding = size
    while True:
        data = _raw(t=TID, y=b"r", r={b"id": OTHER_ID}, pad=b"x" * padding)
        if len(data) == size:
            return data
        padding -= len(data) - size


class CompactNodesTests(SynchronousTestCase):
    """packNode and unpackNodes."""

    def test_packNode(self) -> None:
        """A compact node is its 20-byte id then its compact address (26 or 38 bytes)."""
        ipv4 = krpc.packNode(NODE_ID, IPV4_VECTOR[0])
        self.assertEqual(ipv4, NODE_ID + IPV4_VECTOR[1])
        self.assertEqual(len(ipv4), 26)
        ipv6 = krpc.packNode(NODE_ID, IPV6_VECTOR[0])
        self.assertEqual(ipv6, NODE_ID + IPV6_VECTOR[1])
        self.assertEqual(len(ipv6), 38)

    def test_roundTripIPv4(self) -> None:
        """IPv4 nodes round-trip through packNode and unpackNodes in order."""
        nodes = [(NODE_ID, ("1.2.3.4", 6881)), (OTHER_ID, ("10.0.0.1", 1))]
        data = _packNodes(nodes)
        self.assertEqual(len(data), 52)
        self.assertEqual(krpc.unpackNodes(data), nodes)

    def test_roundTripIPv6(self) -> None:
        """IPv6 nodes round-trip through packNode and unpackNodes(ipv6=True)."""
        nodes = [(NODE_ID, ("2001:db8::1", 6881)), (OTHER_ID, ("::1", 65535))]
        data = _packNodes(nodes)
        self.assertEqual(len(data), 76)
        self.assertEqual(krpc.unpackNodes(data, ipv6=True), nodes)

    def test_empty(self) -> None:
        """An empty nodes string unpacks to no nodes, of either family."""
        self.assertEqual(krpc.unpackNodes(b""), [])
        self.assertEqual(krpc.unpackNodes(b"", ipv6=True), [])

    def test_badLength(self) -> None:
        """A node string whose length is not a multiple of the entry size is malformed."""
        for size in [1, 6, 25, 27, 38, 51]:
            self.assertRaises(MalformedMessage, krpc.unpackNodes, b"\x01" * size)
        for size in [1, 26, 37, 39, 52]:
            self.assertRaises(MalformedMessage, krpc.unpackNodes, b"\x01" * size, True)

    def test_portZeroSkipped(self) -> None:
        """Nodes with port 0 are left out of the unpacked list."""
        good = (OTHER_ID, ("1.2.3.4", 6881))
        data = _packNodes([(NODE_ID, ("5.6.7.8", 0)), good])
        self.assertEqual(krpc.unpackNodes(data), [good])
        good6 = (OTHER_ID, ("::2", 6881))
        data = _packNodes([good6, (NODE_ID, ("::3", 0))])
        self.assertEqual(krpc.unpackNodes(data, ipv6=True), [good6])


class CompactValuesTests(SynchronousTestCase):
    """unpackValues."""

    def test_mixedFamilies(self) -> None:
        """A values list may mix 6-byte IPv4 and 18-byte IPv6 peers, kept in order."""
        values = [IPV4_VECTOR[1], IPV6_VECTOR[1], packAddress(("9.9.9.9", 1))]
        self.assertEqual(
            krpc.unpackValues(values), [IPV4_VECTOR[0], IPV6_VECTOR[0], ("9.9.9.9", 1)]
        )

    def test_empty(self) -> None:
        """An empty values list has no peers."""
        self.assertEqual(krpc.unpackValues([]), [])

    def test_portZeroSkipped(self) -> None:
        """Peers with port 0 are left out."""
        values = [packAddress(("1.1.1.1", 0)), IPV4_VECTOR[1]]
        self.assertEqual(krpc.unpackValues(values), [IPV4_VECTOR[0]])

    def test_notList(self) -> None:
        """values that are not a list are malformed."""
        for values in [IPV4_VECTOR[1], 1, {b"a": IPV4_VECTOR[1]}]:
            self.assertRaises(MalformedMessage, krpc.unpackValues, values)

    def test_badEntries(self) -> None:
        """Entries that are not 6- or 18-byte strings are malformed."""
        for bad in [b"", b"\x01" * 5, b"\x01" * 7, b"\x01" * 26, 6881, [IPV4_VECTOR[1]]]:
            self.assertRaises(MalformedMessage, krpc.unpackValues, [IPV4_VECTOR[1], bad])


class QueryAccessorTests(SynchronousTestCase):
    """The typed query-argument accessors: absent, right type, wrong type."""

    def assertAccessor(
        self,
        accessor: Callable[[krpc.Query], Any],
        key: str,
        absent: Any,
        good: list[tuple[Any, Any]],
        bad: list[Any],
    ) -> None:
        """Check C{accessor} for argument C{key}: absent, (raw, expected) pairs, bad values."""
        self.assertEqual(accessor(_query()), absent)
        for raw, expected in good:
            self.assertEqual(accessor(_query(**{key: raw})), expected)
        for raw in bad:
            self.assertRaises(MalformedMessage, accessor, _query(**{key: raw}))

    def test_target(self) -> None:
        """queryTarget: None when absent, the 20 bytes, else malformed."""
        self.assertAccessor(
            krpc.queryTarget, "target", None, [(OTHER_ID, OTHER_ID)], [OTHER_ID[:19], 1, []]
        )

    def test_infoHash(self) -> None:
        """queryInfoHash: None when absent, the 20 bytes, else malformed."""
        self.assertAccessor(
            krpc.queryInfoHash,
            "info_hash",
            None,
            [(OTHER_ID, OTHER_ID)],
            [OTHER_ID + b"x", b"", 1, {}],
        )

    def test_token(self) -> None:
        """queryToken: None when absent, any byte string, else malformed."""
        self.assertAccessor(
            krpc.queryToken, "token", None, [(b"t", b"t"), (b"", b"")], [1, [b"t"]]
        )

    def test_port(self) -> None:
        """queryPort: None when absent, the integer as sent, else malformed."""
        self.assertAccessor(
            krpc.queryPort, "port", None, [(6881, 6881), (0, 0), (70000, 70000)], [b"6881", []]
        )

    def test_impliedPort(self) -> None:
        """queryImpliedPort: False when absent, the integer's truth, else malformed."""
        self.assertAccessor(
            krpc.queryImpliedPort, "implied_port", False, [(1, True), (0, False)], [b"1", []]
        )

    def test_seed(self) -> None:
        """querySeed: False when absent, the integer's truth, else malformed."""
        self.assertAccessor(krpc.querySeed, "seed", False, [(1, True), (0, False)], [b"1"])

    def test_noSeed(self) -> None:
        """queryNoSeed: False when absent, the integer's truth, else malformed."""
        self.assertAccessor(krpc.queryNoSeed, "noseed", False, [(1, True), (0, False)], [b"1"])

    def test_scrape(self) -> None:
        """queryScrape: False when absent, the integer's truth, else malformed."""
        self.assertAccessor(krpc.queryScrape, "scrape", False, [(1, True), (0, False)], [{}])

    def test_want(self) -> None:
        """queryWant: None when absent, the known families asked for, else malformed."""
        self.assertAccessor(
            krpc.queryWant,
            "want",
            None,
            [
                ([b"n4"], frozenset({b"n4"})),
                ([b"n6", b"n4", b"x"], frozenset({b"n4", b"n6"})),
                ([], frozenset()),
            ],
            [b"n4", 4, [b"n4", 6], [[b"n4"]]],
        )

    def test_readOnly(self) -> None:
        """Query.readOnly: False when absent, and ro among the arguments (it is an envelope
        key, not an argument) does not set it."""
        self.assertFalse(_query().readOnly)
        self.assertFalse(_query(ro=1).readOnly)
        data = _raw(t=TID, y=b"q", q=b"ping", a={b"id": NODE_ID}, ro=1)
        message = krpc.decodeMessage(data)
        assert isinstance(message, krpc.Query)
        self.assertTrue(message.readOnly)


class ResponseAccessorTests(SynchronousTestCase):
    """The typed response accessors: absent, right type, wrong type."""

    def test_nodes(self) -> None:
        """responseNodes: [] when absent, the unpacked nodes, else malformed."""
        nodes = [(NODE_ID, ("1.2.3.4", 6881))]
        self.assertEqual(krpc.responseNodes(_response()), [])
        self.assertEqual(krpc.responseNodes(_response(nodes=_packNodes(nodes))), nodes)
        for bad in [[_packNodes(nodes)], 1, b"\x01" * 25]:
            self.assertRaises(MalformedMessage, krpc.responseNodes, _response(nodes=bad))

    def test_nodes6(self) -> None:
        """responseNodes(ipv6=True) reads nodes6 and ignores nodes."""
        nodes = [(NODE_ID, ("::1", 6881))]
        response = _response(nodes6=_packNodes(nodes), nodes=b"\x01" * 25)
        self.assertEqual(krpc.responseNodes(response, ipv6=True), nodes)
        self.assertEqual(krpc.responseNodes(_response(), ipv6=True), [])
        for bad in [[_packNodes(nodes)], 1, b"\x01" * 26]:
            response = _response(nodes6=bad)
            self.assertRaises(MalformedMessage, krpc.responseNodes, response, True)

    def test_values(self) -> None:
        """responseValues: [] when absent, the unpacked peers, else malformed."""
        self.assertEqual(krpc.responseValues(_response()), [])
        response = _response(values=[IPV4_VECTOR[1], IPV6_VECTOR[1]])
        self.assertEqual(krpc.responseValues(response), [IPV4_VECTOR[0], IPV6_VECTOR[0]])
        for bad in [IPV4_VECTOR[1], 1, [b"\x01" * 7]]:
            self.assertRaises(MalformedMessage, krpc.responseValues, _response(values=bad))

    def test_token(self) -> None:
        """responseToken: None when absent, the byte string, else malformed."""
        self.assertIsNone(krpc.responseToken(_response()))
        self.assertEqual(krpc.responseToken(_response(token=b"tok")), b"tok")
        for bad in [1, [b"tok"]]:
            self.assertRaises(MalformedMessage, krpc.responseToken, _response(token=bad))


class ErrorCodeTests(SynchronousTestCase):
    """The KRPC error codes."""

    def test_values(self) -> None:
        """ErrorCode has BEP 5's 201-204 and BEP 44's 205-207, 301 and 302."""
        self.assertEqual(
            {code.name: int(code) for code in ErrorCode},
            {
                "GENERIC": 201,
                "SERVER": 202,
                "PROTOCOL": 203,
                "METHOD_UNKNOWN": 204,
                "MESSAGE_TOO_BIG": 205,
                "INVALID_SIGNATURE": 206,
                "SALT_TOO_BIG": 207,
                "CAS_MISMATCH": 301,
                "SEQUENCE_TOO_OLD": 302,
            },
        )

    def test_fromWire(self) -> None:
        """A decoded error code converts back to its ErrorCode member."""
        message = krpc.decodeMessage(krpc.encodeError(TID, ErrorCode.METHOD_UNKNOWN, "x"))
        assert isinstance(message, krpc.Error)
        self.assertIs(ErrorCode(message.code), ErrorCode.METHOD_UNKNOWN)


def _argumentValues(depth: int) -> st.SearchStrategy[Any]:
    """Bencodable argument values nested at most C{depth} deep."""
    leaves = st.binary(max_size=24) | st.integers()
    if depth == 0:
        return leaves
    inner = _argumentValues(depth - 1)
    return (
        leaves
        | st.lists(inner, max_size=3)
        | st.dictionaries(st.binary(max_size=8), inner, max_size=3)
    )


_METHODS = st.sampled_from(
    [b"ping", b"find_node", b"get_peers", b"announce_peer", b"get", b"put", b"sample_infohashes"]
) | st.binary(max_size=16)


class QueryPropertyTests(SynchronousTestCase):
    """Property tests over random valid queries."""

    @settings(max_examples=200, deadline=None, database=None)
    @given(
        tid=st.binary(max_size=krpc.MAX_TID_LENGTH),
        method=_METHODS,
        nodeId=st.binary(min_size=20, max_size=20),
        # The message (1) and a (2) leave MAX_DEPTH - 2 levels for argument values.
        extra=st.dictionaries(
            st.binary(max_size=12), _argumentValues(bencoding.MAX_DEPTH - 2), max_size=5
        ),
        version=st.none() | st.binary(max_size=4),
        readOnly=st.booleans(),
    )
    def test_queryRoundTrip(
        self,
        tid: bytes,
        method: bytes,
        nodeId: bytes,
        extra: dict[bytes, Any],
        version: bytes | None,
        readOnly: bool,
    ) -> None:
        """Any valid query decodes to exactly what encodeQuery was given."""
        args = {**extra, b"id": nodeId}
        data = krpc.encodeQuery(tid, method, args, version=version, readOnly=readOnly)
        self.assertEqual(
            krpc.decodeMessage(data), krpc.Query(tid, method, args, version, readOnly)
        )

    @settings(max_examples=200, deadline=None, database=None)
    @given(
        tid=st.binary(max_size=40),
        values=st.dictionaries(
            st.binary(max_size=12), _argumentValues(bencoding.MAX_DEPTH - 2), max_size=5
        ),
        requester=st.none()
        | st.tuples(st.ip_addresses().map(str), st.integers(min_value=0, max_value=65535)),
        version=st.none() | st.binary(max_size=12),
    )
    def test_responseEnvelopeIsCanonical(
        self,
        tid: bytes,
        values: dict[bytes, Any],
        requester: Address | None,
        version: bytes | None,
    ) -> None:
        """encodeResponse, which joins the envelope by hand, gives the very bytes of
        bencoding the whole message, with the values as a dictionary or bencoded; the
        values plus envelopeSize is its length."""
        packed = None if requester is None else packAddress(requester)
        message: dict[bytes, Any] = {b"t": tid, b"y": b"r", b"r": values}
        if packed is not None:
            message[b"ip"] = packed
        if version is not None:
            message[b"v"] = version
        expected = bencoding.encode(message)
        encodedValues = bencoding.encode(values)
        self.assertEqual(
            krpc.encodeResponse(tid, values, requester=packed, version=version), expected
        )
        self.assertEqual(
            krpc.encodeResponse(tid, encodedValues, requester=packed, version=version),
            expected,
        )
        self.assertEqual(
            len(encodedValues)
            + krpc.envelopeSize(len(tid), len(packed) if packed else 0, version),
            len(expected),
        )
