"""
Tests for L{pooled_http._http11}: the HTTP/1.1 connection on llhttp, driven
alone on an in-memory transport with a fake owner that records its reports.
"""

from __future__ import annotations

import gzip
import warnings
from http.cookiejar import CookieJar
from typing import Any

import treq
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web._newclient import (
    BadHeaders,
    ConnectionAborted,
    ParseError,
    Request,
    RequestGenerationFailed,
    RequestNotSent,
    RequestTransmissionFailed,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
    WrongBodyLength,
)
from twisted.web.client import (
    ContentDecoderAgent,
    CookieAgent,
    GzipDecoder,
    PartialDownloadError,
    RedirectAgent,
    readBody,
)
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IAgent, IResponse
from zope.interface import implementer
from zope.interface.verify import verifyObject

from pooled_http._http11 import BODY_BUFFER_LIMIT, FramingError, HTTP11Connection
from pooled_http._http11head import _buildHeaders, _lenientHead
from pooled_http._http11request import InvalidHeaderName
from pooled_http._lifecycle import Lifecycle
from pooled_http.errors import (
    ConnectTimeoutError,
    PoolError,
    ReadTimeoutError,
    ResponseHeadersTooLargeError,
    ResponseTimeoutError,
)
from tests.support.fakes import (
    BodyCollector,
    BytesProducer,
    FakeTLSTransport,
    FakeTransport,
    settle,
)

KEY = (b"http", b"a.example", 80)

GET = b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"


class FakeOwner:
    """
    A L{pooled_http._contract.ConnectionOwner} that records every report.

    @ivar reports: The reports, in order: C{(name, connection, details...)}.
    @ivar onQuiescent: Called with the connection on each quiescent report.
    """

    def __init__(self, **settings: Any) -> None:
        self.reactor = MemoryReactorClock()
        self.responseTimeout: float | None = settings.get("responseTimeout")
        self.readTimeout: float | None = settings.get("readTimeout")
        self.maxHeaderBytes: int = settings.get("maxHeaderBytes", 65536)
        self.reports: list[tuple[Any, ...]] = []
        self.onQuiescent: Any = None

    def connectionQuiescent(self, connection: Any) -> None:
        """
        Record the report; call C{onQuiescent}.
        """
        self.reports.append(("quiescent", connection))
        if self.onQuiescent is not None:
            self.onQuiescent(connection)

    def connectionGivenUp(self, connection: Any, reason: Failure) -> None:
        """
        Record the report.
        """
        self.reports.append(("givenUp", connection, reason))

    def connectionTimedOut(self, connection: Any, error: PoolError) -> None:
        """
        Record the report.
        """
        self.reports.append(("timedOut", connection, error))

    def connectionLost(
        self, connection: Any, previous: Lifecycle, reason: Failure
    ) -> None:
        """
        Record the report.
        """
        self.reports.append(("lost", connection, previous, reason))

    def names(self) -> list[str]:
        """
        The names of the reports so far.
        """
        return [r[0] for r in self.reports]


def request(
    method: bytes = b"GET",
    uri: bytes = b"/",
    headers: Any = None,
    bodyProducer: Any = None,
    persistent: bool = True,
) -> Request:
    """
    Build a request as Agent does.
    """
    if headers is None:
        headers = Headers({b"host": [b"a.example"]})
    return Request._construct(method, uri, headers, bodyProducer, persistent)


class SlowProducer:
    """
    A body producer the test drives: it writes what the test says, and its
    Deferred fires when the test says.
    """

    def __init__(self, length: Any = UNKNOWN_LENGTH) -> None:
        self.length = length
        self.consumer: Any = None
        self.finished: Deferred[None] = Deferred()
        self.state = "new"

    def startProducing(self, consumer: Any) -> Deferred[None]:
        """
        Remember the consumer; finish when the test says.
        """
        self.consumer = consumer
        self.state = "producing"
        return self.finished

    def pauseProducing(self) -> None:
        """
        Note the pause.
        """
        self.state = "paused"

    def resumeProducing(self) -> None:
        """
        Note the resumption.
        """
        self.state = "producing"

    def stopProducing(self) -> None:
        """
        Note the stop.
        """
        self.state = "stopped"


class UncheckedHeaders:
    """
    Headers that hand out whatever names and values they were given,
    bypassing the checks L{Headers} makes when setting them.
    """

    def __init__(self, pairs: list[tuple[bytes, list[bytes]]]) -> None:
        self.pairs = pairs

    def getAllRawHeaders(self) -> Any:
        """
        The pairs, as given.
        """
        return iter(self.pairs)


class ConnectionTestCase(SynchronousTestCase):
    """
    Shared set-up: a connection on a L{FakeTransport} with a L{FakeOwner}.
    """

    def connect(self, tls: bool = False, **options: Any) -> HTTP11Connection:
        """
        Build the connection under test on a fresh transport and owner.
        """
        lenient = options.pop("lenientHeaders", None)
        self.owner = FakeOwner(**options)
        self.clock = self.owner.reactor
        self.conn = HTTP11Connection(self.owner, KEY, lenientHeaders=lenient)
        transportType = FakeTLSTransport if tls else FakeTransport
        self.transport = transportType(self.clock)
        self.transport.protocol = self.conn
        self.conn.makeConnection(self.transport)
        return self.conn

    def send(self, req: Request | None = None) -> Deferred[IResponse]:
        """
        Send a request (a plain GET by default).
        """
        return self.conn.request(req if req is not None else request())

    def respond(self, data: bytes, req: Request | None = None) -> IResponse:
        """
        Send a request, feed C{data}, return the response.
        """
        d = self.send(req)
        self.conn.dataReceived(data)
        return self.successResultOf(d)

    def body(self, response: IResponse) -> tuple[bytes, Failure | None]:
        """
        Deliver the body to a collector; return what it got and how it ended.
        """
        collector = BodyCollector()
        response.deliverBody(collector)
        return collector.data, collector.reason

    def assertLostAfterGivingUp(self) -> None:
        """
        The connection gave itself up, closed its transport and, once the
        transport is gone, reported the loss.
        """
        self.assertIn("givenUp", self.owner.names())
        self.assertTrue(self.transport.closing)
        settle(self.clock)
        self.assertEqual(self.owner.names()[-1], "lost")
        self.assertIs(self.conn.lifecycle, Lifecycle.CLOSED)


class ReuseTests(ConnectionTestCase):
    """
    Sequential requests on one connection.
    """

    def test_sequentialRequests(self) -> None:
        """
        Three requests go out one after another with exactly the expected
        bytes, each body is read, and the owner hears of each completion.
        """
        self.connect()
        for i in range(3):
            d = self.send(request(uri=b"/%d" % i))
            self.assertEqual(
                self.transport.value(),
                b"GET /%d HTTP/1.1\r\nHost: a.example\r\n\r\n" % i,
            )
            self.transport.clear()
            self.conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nx")
            response = self.successResultOf(d)
            self.conn.dataReceived(b"%d" % i)
            self.assertEqual(self.successResultOf(readBody(response)), b"x%d" % i)
            self.assertEqual(self.conn.state, "QUIESCENT")
        self.assertEqual(self.owner.names(), ["quiescent"] * 3)
        self.assertEqual(self.conn.requestsServed, 3)
        self.assertFalse(self.transport.closing)

    def test_parserKeptOnlyForTheNextRequest(self) -> None:
        """
        A request made while the previous response is being finished with
        (from the owner's report, as a waiting request is, or from the
        body's callbacks) parses its response with the same llhttp parser;
        an idle connection keeps none.
        """
        self.connect()
        ok = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
        self.respond(ok)
        self.assertIsNone(self.conn._parser)
        self.assertIsNone(self.conn._spareParser)
        d = self.send()
        first = self.conn._parser
        following: list[Deferred[IResponse]] = []
        self.owner.onQuiescent = lambda connection: following.append(self.send())
        self.conn.dataReceived(ok)
        self.successResultOf(d)
        self.assertIs(self.conn._parser, first)
        self.assertIsNone(self.conn._spareParser)
        self.owner.onQuiescent = None
        self.conn.dataReceived(b"HTTP/1.1 204 No Content\r\n\r\n")
        self.assertEqual(self.successResultOf(following[0]).code, 204)
        self.assertIsNone(self.conn._parser)
        self.assertIsNone(self.conn._spareParser)

    def test_oneWriteForBodylessRequest(self) -> None:
        """
        A request without a body is one write of its whole head.
        """
        self.connect()
        writes: list[bytes] = []
        original = self.transport.write

        def write(data: bytes) -> None:
            """
            Record and write.
            """
            writes.append(data)
            original(data)

        self.transport.write = write  # type: ignore[method-assign]
        self.send()
        self.assertEqual(writes, [GET])

    def test_responseInterface(self) -> None:
        """
        The response provides L{IResponse} completely; its headers are a
        Twisted L{Headers} without the connection-control headers, as
        Twisted's response has them.
        """
        self.connect()
        req = request()
        response = self.respond(
            b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\nX-A: 1\r\n"
            b"Connection: keep-alive\r\nX-A: 2\r\n\r\nabc",
            req,
        )
        verifyObject(IResponse, response)
        self.assertEqual(response.version, (b"HTTP", 1, 1))
        self.assertEqual(response.code, 201)
        self.assertEqual(response.phrase, b"Created")
        self.assertIsInstance(response.headers, Headers)
        self.assertEqual(response.headers.getRawHeaders(b"x-a"), [b"1", b"2"])
        self.assertIsNone(response.headers.getRawHeaders(b"content-length"))
        self.assertIsNone(response.headers.getRawHeaders(b"connection"))
        self.assertEqual(response.length, 3)
        self.assertIs(response.request, req)
        self.assertIsNone(response.previousResponse)
        other = object()
        response.setPreviousResponse(other)  # type: ignore[arg-type]
        self.assertIs(response.previousResponse, other)

    def test_secondDeliverBody(self) -> None:
        """
        A body can be delivered to one protocol only.
        """
        self.connect()
        response = self.respond(OK)
        self.body(response)
        self.assertRaises(RuntimeError, response.deliverBody, BodyCollector())

    def test_busyConnectionRefuses(self) -> None:
        """
        A second request while one is in flight fails with L{RequestNotSent}.
        """
        self.connect()
        self.send()
        self.failureResultOf(self.send(), RequestNotSent)

    def test_dataOnIdleConnection(self) -> None:
        """
        Bytes arriving when no request is in flight give the connection up.
        """
        self.connect()
        self.respond(OK)
        self.conn.dataReceived(b"HTTP/1.1 200 OK\r\n")
        self.assertEqual(self.owner.names(), ["quiescent", "givenUp"])
        self.owner.reports[-1][2].trap(ParseError)
        self.assertLostAfterGivingUp()

    def test_extraBytesAfterResponse(self) -> None:
        """
        Bytes after a complete response in the same read do not reach the
        next request: the response is delivered and the connection given up.
        """
        self.connect()
        response = self.respond(OK + b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz")
        self.assertEqual(self.body(response)[0], b"abc")
        self.assertEqual(self.owner.names(), ["givenUp"])
        self.owner.reports[0][2].trap(ParseError)
        self.assertLostAfterGivingUp()


class SerializationTests(ConnectionTestCase):
    """
    The bytes of a request.
    """

    def test_notPersistent(self) -> None:
        """
        A request that is not persistent says C{Connection: close}, and the
        connection is given up after its response.
        """
        self.connect()
        response = self.respond(OK, request(persistent=False))
        self.assertEqual(
            self.transport.value(),
            b"GET / HTTP/1.1\r\nConnection: close\r\nHost: a.example\r\n\r\n",
        )
        self.assertEqual(self.body(response)[0], b"abc")
        self.assertEqual(self.owner.names(), ["givenUp"])
        self.owner.reports[0][2].trap(ConnectionDone)

    def test_postWithoutBody(self) -> None:
        """
        A POST without a body says C{Content-Length: 0}, as Twisted does.
        """
        self.connect()
        self.send(request(b"POST"))
        self.assertEqual(
            self.transport.value(),
            b"POST / HTTP/1.1\r\nContent-Length: 0\r\nHost: a.example\r\n\r\n",
        )

    def test_knownLengthBody(self) -> None:
        """
        A body of known length goes after a C{Content-Length}.
        """
        self.connect()
        d = self.send(request(b"PUT", bodyProducer=BytesProducer(b"hello")))
        self.assertEqual(
            self.transport.value(),
            b"PUT / HTTP/1.1\r\nContent-Length: 5\r\nHost: a.example\r\n\r\nhello",
        )
        self.assertEqual(self.conn.state, "WAITING")
        self.assertIsNone(self.transport.producer)
        self.conn.dataReceived(OK)
        self.successResultOf(d)

    def test_chunkedBody(self) -> None:
        """
        A body of unknown length is sent chunked, and ends with the last
        chunk when its producer is done; empty writes send nothing.
        """
        self.connect()
        producer = SlowProducer()
        self.send(request(b"POST", bodyProducer=producer))
        self.assertEqual(self.conn.state, "TRANSMITTING")
        producer.consumer.write(b"abc")
        producer.consumer.write(b"")
        producer.consumer.write(b"0123456789abcdef")
        producer.finished.callback(None)
        self.assertEqual(
            self.transport.value(),
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: a.example\r\n"
            b"\r\n3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
        )
        self.assertEqual(self.conn.state, "WAITING")

    def test_producerPausedByTransport(self) -> None:
        """
        The transport's pause and resume reach the body producer through
        the connection's writer, which the transport has as its producer.
        """
        self.connect()
        producer = SlowProducer(3)
        self.send(request(b"POST", bodyProducer=producer))
        self.assertTrue(self.transport.streaming)
        self.transport.producer.pauseProducing()
        self.assertEqual(producer.state, "paused")
        self.transport.producer.resumeProducing()
        self.assertEqual(producer.state, "producing")
        producer.consumer.write(b"abc")
        producer.finished.callback(None)
        self.assertIsNone(self.transport.producer)

    def assertGenerationFailed(self, d: Deferred[Any], *types: type) -> Failure:
        """
        The request failed with L{RequestGenerationFailed} around one of C{types}; the connection was aborted and then lost.
        """
        failure = self.failureResultOf(d, RequestGenerationFailed)
        self.assertEqual(len(failure.value.reasons), 1)
        inner = failure.value.reasons[0]
        self.assertTrue(inner.check(*types), inner)
        self.assertTrue(self.transport.aborted)
        self.assertEqual(self.conn.state, "GENERATION_FAILED")
        settle(self.clock)
        self.assertEqual(self.owner.names(), ["lost"])
        return inner

    def test_tooManyBodyBytes(self) -> None:
        """
        A producer writing more than its length fails the request with
        L{WrongBodyLength} and is stopped.
        """
        self.connect()
        producer = SlowProducer(2)
        d = self.send(request(b"POST", bodyProducer=producer))
        producer.consumer.write(b"abc")
        self.assertEqual(producer.state, "stopped")
        self.assertGenerationFailed(d, WrongBodyLength)

    def test_tooFewBodyBytes(self) -> None:
        """
        A producer done before writing its length fails the request.
        """
        self.connect()
        producer = SlowProducer(5)
        d = self.send(request(b"POST", bodyProducer=producer))
        producer.consumer.write(b"abc")
        producer.finished.callback(None)
        self.assertGenerationFailed(d, WrongBodyLength)

    def test_producerFails(self) -> None:
        """
        A producer whose Deferred fails fails the request with
        L{RequestGenerationFailed} around its failure.
        """
        self.connect()
        producer = SlowProducer()
        d = self.send(request(b"POST", bodyProducer=producer))
        producer.finished.errback(Failure(ZeroDivisionError()))
        self.assertGenerationFailed(d, ZeroDivisionError)
        self.assertIsNone(self.transport.producer)

    def test_injectionInMethod(self) -> None:
        """
        A method holding CR, LF or NUL is refused, naming the method, and
        nothing is written.
        """
        for bad in (b"GET\r\nX: y", b"GE\nT", b"GE\x00T", b"GE T"):
            self.connect()
            req = request()
            req.method = bad
            inner = self.assertGenerationFailed(self.send(req), ValueError)
            self.assertIn("method", str(inner.value))
            self.assertIn(repr(bad), str(inner.value))
            self.assertEqual(self.transport.value(), b"")

    def test_injectionInURI(self) -> None:
        """
        A URI holding CR, LF, NUL or a space is refused, naming the URI.
        """
        for bad in (b"/\r\nX: y", b"/\n", b"/\x00", b"/ HTTP/1.0"):
            self.connect()
            req = request()
            req.uri = bad
            inner = self.assertGenerationFailed(self.send(req), ValueError)
            self.assertIn("URI", str(inner.value))
            self.assertEqual(self.transport.value(), b"")

    def test_injectionInHeaderName(self) -> None:
        """
        A header name that is not a token is refused with Twisted's
        L{InvalidHeaderName}, naming it.
        """
        for bad in (b"X-A\r\nX-B", b"X\nA", b"X\x00A", b"X A", b"X:A"):
            self.connect()
            headers = UncheckedHeaders([(b"Host", [b"a.example"]), (bad, [b"v"])])
            inner = self.assertGenerationFailed(
                self.send(request(headers=headers)), InvalidHeaderName
            )
            self.assertIn(repr(bad), repr(inner.value))
            self.assertEqual(self.transport.value(), b"")

    def test_lineBreaksInHeaderValue(self) -> None:
        """
        Line breaks in a header value are made spaces, as Twisted's
        L{Headers} does.
        """
        self.connect()
        headers = UncheckedHeaders(
            [(b"Host", [b"a.example"]), (b"X-A", [b"one\r\nX-Injected: 1", b"a\nb\rc"])]
        )
        self.send(request(headers=headers))
        self.assertEqual(
            self.transport.value(),
            b"GET / HTTP/1.1\r\nHost: a.example\r\nX-A: one X-Injected: 1\r\n"
            b"X-A: a b c\r\n\r\n",
        )

    def test_exactlyOneHost(self) -> None:
        """
        Like Twisted, a request needs exactly one C{Host} header.
        """
        for hosts in ([], [b"a", b"b"]):
            self.connect()
            headers = Headers({b"x": [b"1"]})
            if hosts:
                headers.setRawHeaders(b"host", hosts)
            self.assertGenerationFailed(self.send(request(headers=headers)), BadHeaders)


def chunked(body: bytes, sizes: list[int]) -> bytes:
    """
    Frame C{body} in chunks of the given sizes (the rest in one chunk).
    """
    out = []
    rest = body
    for size in sizes:
        if not rest:
            break
        piece, rest = rest[:size], rest[size:]
        if piece:
            out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
    if rest:
        out.append(b"%x\r\n%s\r\n" % (len(rest), rest))
    out.append(b"0\r\n\r\n")
    return b"".join(out)


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


class FramingTests(ConnectionTestCase):
    """
    How a response body is framed, and what is refused.
    """

    def feedIn(self, data: bytes, pieces: list[int]) -> tuple[bytes, Failure | None]:
        """
        Send a request, feed C{data} split at C{pieces}, and return the body
        and how it ended.
        """
        d = self.send()
        start = 0
        collector = BodyCollector()
        for end in [*pieces, len(data)]:
            self.conn.dataReceived(data[start:end])
            start = end
            if d.called and collector.transport is None:
                self.successResultOf(d).deliverBody(collector)
        if collector.transport is None:
            self.successResultOf(d).deliverBody(collector)
        return collector.data, collector.reason

    def test_chunkedAtEveryBoundary(self) -> None:
        """
        A chunked response (with a trailer) split in two at every byte gives
        the same body, and the connection is reused each time.
        """
        data = CHUNKED_HEAD + b"3\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n"
        self.connect()
        for split in range(1, len(data)):
            body, reason = self.feedIn(data, [split])
            self.assertEqual(body, b"abc0123456789", split)
            assert reason is not None
            reason.trap(ResponseDone)
        self.assertEqual(self.owner.names(), ["quiescent"] * (len(data) - 1))

    def test_interimAtEveryBoundary(self) -> None:
        """
        C{100 Continue} and C{103 Early Hints} before the response are
        skipped, wherever the bytes are split.
        """
        data = (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
            + OK
        )
        self.connect()
        for split in range(1, len(data)):
            d = self.send()
            self.conn.dataReceived(data[:split])
            self.conn.dataReceived(data[split:])
            response = self.successResultOf(d)
            self.assertEqual(response.code, 200)
            self.assertIsNone(response.headers.getRawHeaders(b"link"))
            self.assertEqual(self.body(response)[0], b"abc")
        self.assertNotIn("givenUp", self.owner.names())

    def test_head(self) -> None:
        """
        The response to HEAD has no body whatever its C{Content-Length}
        says (kept in its headers, as Twisted does); the next response on
        the connection is read right.
        """
        self.connect()
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
        for split in range(1, len(head) + 1):
            d = self.send(request(b"HEAD"))
            self.conn.dataReceived(head[:split])
            self.conn.dataReceived(head[split:])
            response = self.successResultOf(d)
            self.assertEqual(response.length, 0)
            self.assertEqual(response.headers.getRawHeaders(b"content-length"), [b"5"])
            body, reason = self.body(response)
            self.assertEqual(body, b"")
            assert reason is not None
            reason.trap(ResponseDone)
            self.assertEqual(self.body(self.respond(OK))[0], b"abc")
        self.assertEqual(set(self.owner.names()), {"quiescent"})

    def test_headFollowedByBytes(self) -> None:
        """
        Bytes after the head of a HEAD response in the same read are not
        taken for the next response: the connection is given up.
        """
        self.connect()
        response = self.respond(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", request(b"HEAD")
        )
        self.assertEqual(response.code, 200)
        self.assertEqual(self.owner.names(), ["givenUp"])

    def test_noBodyCodes(self) -> None:
        """
        204 and 304 responses have no body, whatever the headers say.
        """
        self.connect()
        for code in (204, 304):
            response = self.respond(
                b"HTTP/1.1 %d X\r\nContent-Length: 5\r\n\r\n" % (code,)
            )
            self.assertEqual(response.length, 0)
            body, reason = self.body(response)
            self.assertEqual(body, b"")
            assert reason is not None
            reason.trap(ResponseDone)
            self.assertEqual(self.body(self.respond(OK))[0], b"abc")
        self.assertEqual(self.owner.names(), ["quiescent"] * 4)

    def test_quiescentBeforeBodylessDeferred(self) -> None:
        """
        For a response without a body the owner hears the connection is
        quiescent before the request's Deferred fires, as Twisted does.
        """
        self.connect()
        d = self.send()
        seen: list[list[str]] = []
        d.addCallback(lambda r: seen.append(self.owner.names()))
        self.conn.dataReceived(b"HTTP/1.1 204 No Content\r\n\r\n")
        self.assertEqual(seen, [["quiescent"]])

    def test_closeDelimited(self) -> None:
        """
        A body that ends when the connection closes ends with
        L{PotentialDataLoss}, as Twisted; C{readBody} says
        L{PartialDownloadError} and treq takes the body.
        """
        for reader in ("readBody", "treq"):
            self.connect()
            response = self.respond(b"HTTP/1.1 200 OK\r\n\r\nabc")
            self.assertIs(response.length, UNKNOWN_LENGTH)
            if reader == "readBody":
                d = readBody(response)
            else:
                d = treq.content(response)
            self.conn.dataReceived(b"def")
            self.transport.loseNow(ConnectionDone())
            if reader == "readBody":
                failure = self.failureResultOf(d, PartialDownloadError)
                self.assertEqual(failure.value.response, b"abcdef")
            else:
                self.assertEqual(self.successResultOf(d), b"abcdef")
            self.assertEqual(self.owner.names(), ["lost"])

    def test_closeDelimitedReason(self) -> None:
        """
        The body protocol of a close-delimited body gets L{PotentialDataLoss}.
        """
        self.connect()
        response = self.respond(b"HTTP/1.0 200 OK\r\n\r\nabc")
        collector = BodyCollector()
        response.deliverBody(collector)
        self.transport.loseNow(ConnectionLost())
        assert collector.reason is not None
        collector.reason.trap(PotentialDataLoss)
        self.assertEqual(collector.data, b"abc")

    def test_cutShort(self) -> None:
        """
        A body that ends before its C{Content-Length} or its last chunk
        fails with L{ResponseFailed} around the reason.
        """
        for data in (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
            CHUNKED_HEAD + b"5\r\nab",
        ):
            self.connect()
            response = self.respond(data)
            d = readBody(response)
            self.transport.loseNow(ConnectionDone())
            failure = self.failureResultOf(d, ResponseFailed)
            failure.value.reasons[0].trap(ConnectionDone)

    def assertParseFailure(self, data: bytes, method: bytes = b"GET") -> Failure:
        """
        Feeding C{data} fails the request at once with a L{ParseError}
        inside L{ResponseFailed}; the connection is given up and not reused.
        """
        self.connect()
        d = self.send(request(method))
        self.conn.dataReceived(data)
        failure = self.failureResultOf(d, ResponseFailed)
        self.assertEqual(len(failure.value.reasons), 1)
        inner = failure.value.reasons[0]
        self.assertTrue(inner.check(ParseError), inner)
        self.assertEqual(self.owner.names(), ["givenUp"])
        self.failureResultOf(self.send(), RequestNotSent)
        self.assertLostAfterGivingUp()
        return inner

    def test_conflictingContentLengths(self) -> None:
        """
        Two different C{Content-Length}s are refused.
        """
        self.assertParseFailure(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
        )

    def test_negativeContentLength(self) -> None:
        """
        A negative C{Content-Length} is refused.
        """
        self.assertParseFailure(b"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\nabc")

    def test_transferEncodingNotChunked(self) -> None:
        """
        A C{Transfer-Encoding} that does not end in C{chunked} is refused.
        """
        for value in (b"gzip", b"chunked, gzip", b"identity"):
            inner = self.assertParseFailure(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + value + b"\r\n\r\nabc"
            )
            self.assertIn("chunked", str(inner.value))

    def test_unaskedSwitchingProtocols(self) -> None:
        """
        A C{101} the client never asked for is refused, not skipped.
        """
        inner = self.assertParseFailure(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
        )
        self.assertIn("101", str(inner.value))

    def test_impossibleChunkSize(self) -> None:
        """
        A chunk size too large to be real fails the body at once.
        """
        self.connect()
        d = self.send()
        self.conn.dataReceived(CHUNKED_HEAD)
        body = readBody(self.successResultOf(d))
        self.conn.dataReceived(b"FFFFFFFFFFFFFFFFFFFFFF1\r\nabc")
        failure = self.failureResultOf(body, ResponseFailed)
        failure.value.reasons[0].trap(ParseError)
        self.assertEqual(self.owner.names(), ["givenUp"])
        self.assertLostAfterGivingUp()

    def test_brokenChunkInFirstRead(self) -> None:
        """
        A good head and broken chunked framing in one read: the caller gets
        the response (as Twisted), its body the L{FramingError}, which is a
        L{ParseError} and a L{ValueError}.
        """
        self.connect()
        d = self.send()
        self.conn.dataReceived(CHUNKED_HEAD + b"zz\r\nhello\r\n0\r\n\r\n")
        response = self.successResultOf(d)
        self.assertEqual(response.code, 200)
        failure = self.failureResultOf(readBody(response), ResponseFailed)
        inner = failure.value.reasons[0]
        inner.trap(FramingError)
        self.assertIsInstance(inner.value, ParseError)
        self.assertIsInstance(inner.value, ValueError)
        self.assertLostAfterGivingUp()

    def test_foldedTransferEncoding(self) -> None:
        """
        A folded C{Transfer-Encoding:} line is refused at once.
        """
        self.assertParseFailure(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n"
        )

    def test_garbage(self) -> None:
        """
        Bytes that are not an HTTP response are refused.
        """
        for data in (b"SSH-2.0-OpenSSH\r\n", b"HTTP/1.1 abc OK\r\n\r\n", b"\x00\x01"):
            self.assertParseFailure(data)

    def test_headerLineWithoutColon(self) -> None:
        """
        Without C{lenientHeaders}, a header line without a colon is refused.
        """
        self.assertParseFailure(
            b"HTTP/1.1 200 OK\r\nbogus line\r\nContent-Length: 0\r\n\r\n"
        )

    def test_lenientHeaders(self) -> None:
        """
        With C{lenientHeaders}, header lines without a colon are skipped
        and bare LF line ends accepted, wherever the bytes are split; the
        connection stays reusable.
        """
        data = (
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nbogus line\nX-A: 1\r\nContent-Length: 3\n\nabc"
        )
        self.connect(lenientHeaders=True)
        for split in range(1, len(data)):
            d = self.send()
            self.conn.dataReceived(data[:split])
            self.conn.dataReceived(data[split:])
            response = self.successResultOf(d)
            self.assertEqual(response.headers.getRawHeaders(b"x-a"), [b"1"])
            self.assertEqual(self.body(response)[0], b"abc")
        self.assertEqual(set(self.owner.names()), {"quiescent"})

    def test_lenientHeadersFolded(self) -> None:
        """
        With C{lenientHeaders}, a folded header line (one starting with a
        space or tab) continues the header before it, joined with one
        space, as browsers read it; the continuation of a skipped line is
        skipped with it; the headers after them are kept.
        """
        data = (
            b"HTTP/1.1 200 OK\r\nX-Folded: one\r\n\ttwo\r\n  three\r\n"
            b"bogus line\r\n continued bogus\r\nX-After: works\r\n"
            b"Content-Length: 3\r\n\r\nabc"
        )
        self.connect(lenientHeaders=True)
        for split in range(1, len(data)):
            d = self.send()
            self.conn.dataReceived(data[:split])
            self.conn.dataReceived(data[split:])
            response = self.successResultOf(d)
            self.assertEqual(
                response.headers.getRawHeaders(b"x-folded"), [b"one two three"]
            )
            self.assertEqual(response.headers.getRawHeaders(b"x-after"), [b"works"])
            self.assertEqual(self.body(response)[0], b"abc")
        self.assertEqual(set(self.owner.names()), {"quiescent"})

    def _headOutcome(self, pieces: list[bytes], **options: Any) -> Any:
        """
        What a connection made with C{options} makes of C{pieces} (a GET,
        or a HEAD for C{head=True}): the code, headers and body, or the
        error.
        """
        method = b"HEAD" if options.pop("head", False) else b"GET"
        self.connect(maxHeaderBytes=512, **options)
        d = self.send(request(method=method))
        for piece in pieces:
            self.conn.dataReceived(piece)
        if not d.called:
            return "waiting"
        if isinstance(d.result, Failure):
            failure = self.failureResultOf(d)
            reasons = getattr(failure.value, "reasons", [failure])
            return type(failure.value), [type(r.value) for r in reasons]
        response = self.successResultOf(d)
        return (
            response.code,
            sorted(response.headers.getAllRawHeaders()),
            self.body(response)[0],
        )

    def test_lenientHeadsAsCleaned(self) -> None:
        """
        With C{lenientHeaders}, every head (clean, or with lines without a
        colon, folds, bare LFs, a bad status line, an interim response
        first, many lines to drop, to GET or to
        HEAD), whole or split anywhere, ends as the same head cleaned by
        L{_lenientHead} ends on a connection without it.
        """
        filler = b"".join(b"nocolon%d %s\r\n" % (i, b"v" * 40) for i in range(5))
        heads = [
            b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 3\r\n\r\nabc",
            b"HTTP/1.1 200 OK\r\nbogus\r\nContent-Length: 3\r\n\r\nabc",
            b"HTTP/1.1 200 OK\r\nX-F: a\r\n b\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\nX-A: 1\nContent-Length: 3\n\nabc",
            b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 abc OK\r\nbogus\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nbogus\r\n"
            b"Content-Length: 1\r\n\r\na",
            b"HTTP/1.1 200 OK\r\n" + filler + b"Content-Length: 1\r\n\r\na",
            b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\nHTTP/1.1 200",
        ]
        for data in heads:
            cleaned = b""
            rest = data
            while rest.startswith(b"HTTP/1.1 1"):  # each interim head too
                found = _lenientHead(rest)
                assert found is not None
                cleaned, rest = cleaned + found[0], found[1]
            found = _lenientHead(rest)
            assert found is not None
            cleaned += b"".join(found)
            for head in (False, True):
                expected = self._headOutcome([cleaned], head=head)
                for split in range(len(data) + 1):
                    pieces = [p for p in (data[:split], data[split:]) if p]
                    self.assertEqual(
                        self._headOutcome(pieces, head=head, lenientHeaders=True),
                        expected,
                        (data, split, head),
                    )

    def test_lenientHeadersFromOwner(self) -> None:
        """
        The owner's C{lenientHeaders} is the default.
        """
        owner = FakeOwner()
        self.assertFalse(HTTP11Connection(owner, KEY).lenientHeaders)
        owner.lenientHeaders = True  # type: ignore[attr-defined]
        self.assertTrue(HTTP11Connection(owner, KEY).lenientHeaders)

    def test_headersTooLarge(self) -> None:
        """
        A head past C{maxHeaderBytes}, arriving in one read or never
        ending, fails with L{ResponseHeadersTooLargeError}.
        """
        big = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 50) for i in range(40))
        for pieces in ([big + b"\r\n"], [b"X-A: " + b"v" * 600] * 4):
            for lenient in (False, True):
                self.connect(maxHeaderBytes=1024, lenientHeaders=lenient)
                d = self.send()
                self.conn.dataReceived(b"HTTP/1.1 200 OK\r\n")
                for piece in pieces:
                    self.conn.dataReceived(piece)
                failure = self.failureResultOf(d, ResponseFailed)
                inner = failure.value.reasons[0]
                inner.trap(ResponseHeadersTooLargeError)
                self.assertEqual(inner.value.limit, 1024)
                self.assertLostAfterGivingUp()

    def test_endlessTrailer(self) -> None:
        """
        Chunk framing or trailers without body bytes are bounded by
        C{maxHeaderBytes}, like a head.
        """
        self.connect(maxHeaderBytes=1024)
        d = self.send()
        self.conn.dataReceived(CHUNKED_HEAD + b"3\r\nabc\r\n0\r\nX-T: ")
        body = readBody(self.successResultOf(d))
        for _ in range(3):
            self.conn.dataReceived(b"v" * 500)
        failure = self.failureResultOf(body, ResponseFailed)
        failure.value.reasons[0].trap(FramingError)
        self.assertIn("maxHeaderBytes=1024", str(failure.value.reasons[0].value))
        self.assertLostAfterGivingUp()

    def test_quiescentReportFails(self) -> None:
        """
        An owner whose quiescent report raises loses the connection (as
        Twisted: keeping it is an optimisation); the caller still gets its
        response.
        """
        self.connect()

        def broken(connection: Any) -> None:
            """
            Fail.
            """
            raise RuntimeError("broken owner")

        self.owner.onQuiescent = broken
        response = self.respond(OK)
        self.assertEqual(self.body(response)[0], b"abc")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertLostAfterGivingUp()

    def test_keepAliveHints(self) -> None:
        """
        C{Keep-Alive: timeout=N, max=M} is noted, as the Twisted path notes it.
        """
        self.connect()
        self.respond(
            b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=100\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        self.assertEqual(self.conn.keepAliveTimeout, 5.0)
        self.assertEqual(self.conn.keepAliveMax, 100)
        self.assertTrue(self.conn.reusable)

    def test_http10(self) -> None:
        """
        An HTTP/1.0 response is not reusable unless it says keep-alive; it
        is still reported quiescent (the owner decides).
        """
        for connection, reusable in (
            (b"", False),
            (b"Connection: keep-alive\r\n", True),
        ):
            self.connect()
            response = self.respond(
                b"HTTP/1.0 200 OK\r\n" + connection + b"Content-Length: 1\r\n\r\nx"
            )
            self.assertEqual(response.version, (b"HTTP", 1, 0))
            self.assertEqual(self.conn.reusable, reusable)
            self.assertEqual(self.owner.names(), ["quiescent"])

    def test_connectionClose(self) -> None:
        """
        C{Connection: close} gives the connection up after the response.
        """
        self.connect()
        response = self.respond(
            b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\nContent-Length: 1\r\n\r\nx"
        )
        self.assertEqual(self.body(response)[0], b"x")
        self.assertEqual(self.owner.names(), ["givenUp"])
        self.owner.reports[0][2].trap(ConnectionDone)
        self.assertLostAfterGivingUp()

    @settings(max_examples=60, deadline=None)
    @given(
        body=st.binary(max_size=300),
        sizes=st.lists(st.integers(1, 40), max_size=12),
        splits=st.lists(st.integers(0, 500), max_size=8),
        chunkedFraming=st.booleans(),
    )
    def test_framingProperty(
        self, body: bytes, sizes: list[int], splits: list[int], chunkedFraming: bool
    ) -> None:
        """
        Whatever the chunk sizes and however the bytes are split, the body
        read is the body sent and the connection is reusable after it.
        """
        if chunkedFraming:
            data = CHUNKED_HEAD + chunked(body, sizes)
        else:
            data = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (
                len(body),
                body,
            )
        self.connect()
        pieces = sorted({s for s in splits if 0 < s < len(data)})
        got, reason = self.feedIn(data, pieces)
        self.assertEqual(got, body)
        assert reason is not None
        reason.trap(ResponseDone)
        self.assertEqual(self.owner.names(), ["quiescent"])
        self.assertEqual(self.conn.state, "QUIESCENT")


class BackPressureTests(ConnectionTestCase):
    """
    A body nobody reads does not fill memory.
    """

    def test_unreadBodyPausesTransport(self) -> None:
        """
        Body bytes are kept until C{deliverBody}, up to a bound; then the
        transport stops reading, and starts again once they are delivered.
        """
        self.connect()
        size = BODY_BUFFER_LIMIT * 2
        response = self.respond(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (size,)
        )
        self.conn.dataReceived(b"a" * 1000)
        self.assertEqual(self.transport.producerState, "producing")
        self.conn.dataReceived(b"a" * BODY_BUFFER_LIMIT)
        self.assertEqual(self.transport.producerState, "paused")
        collector = BodyCollector()
        response.deliverBody(collector)
        self.assertEqual(self.transport.producerState, "producing")
        self.conn.dataReceived(b"a" * (size - 1000 - BODY_BUFFER_LIMIT))
        self.assertEqual(collector.data, b"a" * size)
        assert collector.reason is not None
        collector.reason.trap(ResponseDone)
        self.assertEqual(self.owner.names(), ["quiescent"])

    def test_bodyProtocolPauses(self) -> None:
        """
        The body protocol's transport pauses and resumes the connection's.
        """
        self.connect()
        response = self.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
        collector = BodyCollector()
        response.deliverBody(collector)
        collector.transport.pauseProducing()
        self.assertEqual(self.transport.producerState, "paused")
        collector.transport.resumeProducing()
        self.assertEqual(self.transport.producerState, "producing")
        collector.transport.pauseProducing()
        self.conn.dataReceived(b"cd")
        # The response is over: the connection reads again for the next one.
        self.assertEqual(self.transport.producerState, "producing")
        self.assertEqual(collector.data, b"abcd")

    def test_pausedFinishedResponseIsInert(self) -> None:
        """
        Once a response is over, its transport no longer touches the
        connection, which may be serving the next request.
        """
        self.connect()
        first = self.respond(OK)
        collector = BodyCollector()
        first.deliverBody(collector)
        self.send()
        collector.transport.pauseProducing()
        collector.transport.abortConnection()
        self.assertEqual(self.transport.producerState, "producing")
        self.assertFalse(self.transport.closing)

    def test_cancelReadBody(self) -> None:
        """
        Cancelling C{readBody} aborts the connection (with no warning), and
        the owner hears of the loss.
        """
        self.connect()
        response = self.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            d = readBody(response)
        self.assertEqual([str(w.message) for w in caught], [])
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertTrue(self.transport.aborted)
        settle(self.clock)
        self.assertEqual(self.owner.names(), ["lost"])
        self.assertIs(self.owner.reports[0][2], Lifecycle.ACTIVE)

    def test_stopProducing(self) -> None:
        """
        A body protocol that stops production drops the connection, and
        then hears the body failed.
        """
        self.connect()
        response = self.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        collector = BodyCollector()
        response.deliverBody(collector)
        collector.transport.stopProducing()
        self.assertTrue(self.transport.aborted)
        settle(self.clock)
        assert collector.reason is not None
        collector.reason.trap(ResponseFailed)


class TimeoutTests(ConnectionTestCase):
    """
    The timers of one request, through the owner.
    """

    def test_responseTimeout(self) -> None:
        """
        No head within C{responseTimeout} of the request being written:
        the owner is told, the connection aborted, the request failed with
        L{ResponseTimeoutError}.
        """
        self.connect(responseTimeout=5.0)
        d = self.send()
        self.clock.advance(4.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.assertEqual(self.owner.names()[0], "timedOut")
        self.assertIsInstance(self.owner.reports[0][2], ResponseTimeoutError)
        self.assertTrue(self.transport.aborted)
        settle(self.clock)
        failure = self.failureResultOf(d, ResponseTimeoutError)
        self.assertIs(failure.value, self.conn.timeoutError)
        self.assertEqual(self.owner.names(), ["timedOut", "lost"])

    def test_responseTimeoutFromEndOfRequest(self) -> None:
        """
        The response timer starts when the request body is all written.
        """
        self.connect(responseTimeout=5.0)
        producer = SlowProducer()
        d = self.send(request(b"POST", bodyProducer=producer))
        self.clock.advance(10)
        self.assertEqual(self.owner.names(), [])
        producer.finished.callback(None)
        self.clock.advance(4.9)
        self.assertEqual(self.owner.names(), [])
        self.clock.advance(0.1)
        self.assertEqual(self.owner.names(), ["timedOut", "lost"])
        settle(self.clock)
        self.failureResultOf(d, ResponseTimeoutError)

    def test_pendingCalls(self) -> None:
        """
        C{pendingCalls} lists the timers still to run.
        """
        self.connect(responseTimeout=5.0, readTimeout=3.0)
        self.assertEqual(self.conn.pendingCalls(), [])
        d = self.send()
        self.assertEqual(self.conn.pendingCalls(), self.clock.getDelayedCalls())
        self.assertEqual(len(self.conn.pendingCalls()), 1)
        self.conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
        self.assertEqual(self.conn.pendingCalls(), self.clock.getDelayedCalls())
        self.conn.dataReceived(b"ok")
        self.successResultOf(d)
        self.assertEqual(self.conn.pendingCalls(), [])

    def test_responseTimerStopsAtHead(self) -> None:
        """
        The response timer stops when the head arrives.
        """
        self.connect(responseTimeout=5.0)
        self.respond(OK)
        self.clock.advance(100)
        self.assertEqual(self.owner.names(), ["quiescent"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_readTimeout(self) -> None:
        """
        No body bytes for C{readTimeout}: the body protocol gets
        L{ReadTimeoutError}, the owner is told, the connection aborted.
        Each body byte starts the wait again.
        """
        self.connect(readTimeout=3.0)
        response = self.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        d = readBody(response)
        self.clock.advance(2)
        self.conn.dataReceived(b"d")
        self.clock.advance(2)
        self.assertNoResult(d)
        self.clock.advance(1)
        failure = self.failureResultOf(d, ReadTimeoutError)
        self.assertIs(failure.value, self.conn.timeoutError)
        self.assertEqual(self.owner.names()[0], "timedOut")
        self.assertTrue(self.transport.aborted)
        settle(self.clock)
        self.assertEqual(self.owner.names(), ["timedOut", "lost"])

    def test_readTimeoutBeforeDeliverBody(self) -> None:
        """
        A read timeout before the body protocol comes is kept for it.
        """
        self.connect(readTimeout=3.0)
        response = self.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        self.clock.advance(3)
        settle(self.clock)
        self.failureResultOf(readBody(response), ReadTimeoutError)

    def test_handshakeTimeout(self) -> None:
        """
        A TLS handshake that does not finish within the connect timeout's
        remainder ends the connection with L{ConnectTimeoutError}.
        """
        self.connect(tls=True)
        self.conn.awaitHandshake(2.0, 10.0)
        self.clock.advance(1.9)
        self.assertEqual(self.owner.names(), [])
        self.clock.advance(0.1)
        self.assertEqual(self.owner.names(), ["timedOut", "lost"])
        error = self.owner.reports[0][2]
        self.assertIsInstance(error, ConnectTimeoutError)
        self.assertEqual(error.timeout, 10.0)
        self.assertTrue(self.transport.aborted)

    def test_handshakeCompletes(self) -> None:
        """
        A completed handshake stops the timer, and none starts after it.
        """
        self.connect(tls=True)
        self.conn.awaitHandshake(2.0, 10.0)
        self.conn.handshakeCompleted()
        self.clock.advance(5)
        self.assertEqual(self.owner.names(), [])
        self.conn.awaitHandshake(2.0, 10.0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_noHandshakeWithoutTLS(self) -> None:
        """
        No handshake timer on a transport that is not TLS.
        """
        self.connect()
        self.conn.awaitHandshake(2.0, 10.0)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class EarlyResponseTests(ConnectionTestCase):
    """
    A response that comes while the request body is still being sent.
    """

    def test_completeResponseStopsBody(self) -> None:
        """
        A whole response before the body is sent fires the request and
        gives the connection up; the producer is stopped when the
        connection is gone.
        """
        self.connect()
        producer = SlowProducer()
        d = self.send(request(b"POST", bodyProducer=producer))
        producer.consumer.write(b"abc")
        self.conn.dataReceived(b"HTTP/1.1 413 Too Large\r\nContent-Length: 2\r\n\r\nno")
        response = self.successResultOf(d)
        self.assertEqual(response.code, 413)
        self.assertEqual(self.body(response)[0], b"no")
        self.assertEqual(self.conn.state, "TRANSMITTING_AFTER_RECEIVING_RESPONSE")
        self.assertEqual(self.owner.names(), ["givenUp"])
        self.assertEqual(producer.state, "producing")
        self.assertLostAfterGivingUp()
        self.assertEqual(producer.state, "stopped")
        # What the producer still writes goes nowhere, quietly.
        producer.consumer.write(b"defg")
        self.assertNotIn(b"defg", self.transport.value())

    def test_earlyResponseThenBodyFinishes(self) -> None:
        """
        The body may still finish after the response came; the connection
        is given up all the same.
        """
        self.connect()
        producer = SlowProducer(4)
        d = self.send(request(b"POST", bodyProducer=producer))
        self.conn.dataReceived(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(self.successResultOf(d).code, 413)
        producer.consumer.write(b"abcd")
        producer.finished.callback(None)
        self.assertTrue(self.transport.value().endswith(b"abcd"))
        self.assertIsNone(self.transport.producer)
        self.assertLostAfterGivingUp()
        self.assertEqual(self.owner.names(), ["givenUp", "lost"])

    def test_headWaitsForBody(self) -> None:
        """
        A head before the body is sent is held until the body is; then the
        response is reusable as usual.
        """
        self.connect()
        producer = SlowProducer(2)
        d = self.send(request(b"POST", bodyProducer=producer))
        self.conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nx")
        self.assertNoResult(d)
        producer.consumer.write(b"ab")
        producer.finished.callback(None)
        response = self.successResultOf(d)
        body = readBody(response)
        self.conn.dataReceived(b"y")
        self.assertEqual(self.successResultOf(body), b"xy")
        self.assertEqual(self.owner.names(), ["quiescent"])


class CancelAbortCloseTests(ConnectionTestCase):
    """
    Cancellation, C{abort}, C{close} and losses in every phase.
    """

    def test_cancelWhileTransmitting(self) -> None:
        """
        Cancelling while the body is sent stops it and aborts.
        """
        self.connect()
        producer = SlowProducer()
        d = self.send(request(b"POST", bodyProducer=producer))
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(producer.state, "stopped")
        self.assertTrue(self.transport.aborted)
        settle(self.clock)
        self.assertEqual(self.owner.names(), ["lost"])

    def test_cancelWhileWaiting(self) -> None:
        """
        Cancelling while the head comes aborts; later bytes are ignored.
        """
        self.connect()
        d = self.send()
        self.conn.dataReceived(b"HTTP/1.1 200 OK\r\n")
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertTrue(self.transport.aborted)
        self.conn.dataReceived(b"Content-Length: 0\r\n\r\n")
        settle(self.clock)
        self.assertEqual(self.owner.names(), ["lost"])

    def test_abort(self) -> None:
        """
        C{abort} fails the request with L{ConnectionAborted}, as Twisted,
        and fires once the connection is gone.
        """
        self.connect()
        d = self.send()
        aborted = self.conn.abort()
        self.assertEqual(self.conn.state, "ABORTING")
        self.assertNoResult(aborted)
        settle(self.clock)
        self.successResultOf(aborted)
        failure = self.failureResultOf(d, ResponseNeverReceived)
        failure.value.reasons[0].trap(ConnectionAborted)
        self.assertEqual(self.conn.state, "CONNECTION_LOST")
        self.successResultOf(self.conn.abort())

    def test_closeWithGrace(self) -> None:
        """
        C{close} moves to C{CLOSING}, asks the transport to go, and aborts
        it after the grace period if it does not.
        """
        self.connect()
        self.transport.hangOnClose = True
        lost = self.conn.whenLost()
        self.conn.close(2.0)
        self.assertIs(self.conn.lifecycle, Lifecycle.CLOSING)
        self.assertEqual(self.transport.loseCount, 1)
        self.clock.advance(1.9)
        self.assertFalse(self.transport.aborted)
        self.clock.advance(0.1)
        self.assertTrue(self.transport.aborted)
        settle(self.clock)
        self.successResultOf(lost)
        self.assertEqual(
            self.owner.reports,
            [("lost", self.conn, Lifecycle.CLOSING, self.owner.reports[0][3])],
        )
        self.assertIs(self.conn.lifecycle, Lifecycle.CLOSED)
        self.successResultOf(self.conn.whenLost())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_lostBeforeAnyByte(self) -> None:
        """
        Lost before a response byte: L{ResponseNeverReceived} (which the
        retry policy retries).
        """
        self.connect()
        d = self.send()
        self.transport.loseNow(ConnectionDone())
        failure = self.failureResultOf(d, ResponseNeverReceived)
        failure.value.reasons[0].trap(ConnectionDone)

    def test_lostDuringHead(self) -> None:
        """
        Lost during the head: L{ResponseFailed}, not L{ResponseNeverReceived}.
        """
        self.connect()
        d = self.send()
        self.conn.dataReceived(b"HTTP/1.1 200 OK\r\n")
        self.transport.loseNow(ConnectionLost())
        failure = self.failureResultOf(d, ResponseFailed)
        self.assertNotIsInstance(failure.value, ResponseNeverReceived)

    def test_lostWhileTransmitting(self) -> None:
        """
        Lost while the body is sent: L{RequestTransmissionFailed}; the producer is stopped.
        """
        self.connect()
        producer = SlowProducer()
        d = self.send(request(b"POST", bodyProducer=producer))
        self.transport.loseNow(ConnectionLost())
        self.failureResultOf(d, RequestTransmissionFailed)
        self.assertEqual(producer.state, "stopped")

    def test_stale(self) -> None:
        """
        C{stale} once the transport is closing or TLS saw C{close_notify}.
        """
        self.connect()
        self.assertFalse(self.conn.stale)
        self.transport._lostTLSConnection = True  # type: ignore[attr-defined]
        self.assertTrue(self.conn.stale)
        self.transport._lostTLSConnection = False  # type: ignore[attr-defined]
        self.transport.loseConnection()
        self.assertTrue(self.conn.stale)

    def test_handOffAfterFinishing(self) -> None:
        """
        A waiting request handed the connection from inside the quiescent
        report starts only once the connection is ready for it, after the
        previous request's Deferred fired.
        """
        self.connect()
        events: list[str] = []
        second: list[Deferred[IResponse]] = []

        def give() -> None:
            """
            Start the next request.
            """
            events.append("give")
            second.append(self.send(request(uri=b"/2")))

        self.owner.onQuiescent = lambda c: c.handOff(give)
        d = self.send()
        d.addCallback(lambda r: events.append("first"))
        self.conn.dataReceived(b"HTTP/1.1 204 No Content\r\n\r\n")
        self.assertEqual(events, ["first", "give"])
        self.owner.onQuiescent = None
        self.conn.dataReceived(OK)
        self.assertEqual(self.body(self.successResultOf(second[0]))[0], b"abc")
        self.assertTrue(
            self.transport.value().endswith(
                b"GET /2 HTTP/1.1\r\nHost: a.example\r\n\r\n"
            )
        )

    def test_handOffWhenIdle(self) -> None:
        """
        An idle connection runs a hand-off at once.
        """
        self.connect()
        ran: list[int] = []
        self.conn.handOff(lambda: ran.append(1))
        self.assertEqual(ran, [1])

    def test_repr(self) -> None:
        """
        The repr names the key and the state.
        """
        self.connect()
        self.assertIn("QUIESCENT", repr(self.conn))
        self.assertIn(repr(KEY), repr(self.conn))


@implementer(IAgent)
class ConnectionAgent:
    """
    An L{IAgent} sending every request on one L{HTTP11Connection}.
    """

    def __init__(self, conn: HTTP11Connection) -> None:
        self.conn = conn

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: Any = None,
    ) -> Deferred[IResponse]:
        """
        Send a request.
        """
        headers = headers.copy() if headers is not None else Headers()
        headers.setRawHeaders(b"host", [b"a.example"])
        path = b"/" + uri.split(b"/", 3)[-1] if uri.count(b"/") >= 3 else b"/"
        return self.conn.request(
            Request._construct(method, path, headers, bodyProducer, True)
        )


class CallerTests(ConnectionTestCase):
    """
    Twisted's and treq's wrappers accept the response.
    """

    def test_treqContent(self) -> None:
        """
        C{treq.content} reads the body.
        """
        self.connect()
        response = self.respond(OK)
        self.assertEqual(self.successResultOf(treq.content(response)), b"abc")

    def test_redirectAgent(self) -> None:
        """
        L{RedirectAgent} follows a redirect on the same connection and links
        the responses.
        """
        self.connect()
        d = RedirectAgent(ConnectionAgent(self.conn)).request(
            b"GET", b"http://a.example/a"
        )
        self.conn.dataReceived(
            b"HTTP/1.1 302 Found\r\nLocation: http://a.example/b\r\nContent-Length: 0\r\n\r\n"
        )
        self.assertIn(b"GET /b HTTP/1.1", self.transport.value())
        self.conn.dataReceived(OK)
        response = self.successResultOf(d)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.previousResponse.code, 302)
        self.assertEqual(self.successResultOf(readBody(response)), b"abc")

    def test_contentDecoderAgent(self) -> None:
        """
        L{ContentDecoderAgent} decodes a gzip body.
        """
        self.connect()
        agent = ContentDecoderAgent(
            ConnectionAgent(self.conn), [(b"gzip", GzipDecoder)]
        )
        d = agent.request(b"GET", b"http://a.example/")
        payload = gzip.compress(b"hello " * 100)
        self.conn.dataReceived(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
            % (len(payload), payload)
        )
        self.assertEqual(
            self.successResultOf(readBody(self.successResultOf(d))), b"hello " * 100
        )

    def test_cookieAgent(self) -> None:
        """
        L{CookieAgent} takes the cookie.
        """
        self.connect()
        jar = CookieJar()
        d = CookieAgent(ConnectionAgent(self.conn), jar).request(
            b"GET", b"http://a.example/"
        )
        self.conn.dataReceived(
            b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\nContent-Length: 0\r\n\r\n"
        )
        self.successResultOf(d)
        self.assertEqual([c.name for c in jar], ["a"])


class AbortMidBodyTests(ConnectionTestCase):
    """
    A connection on its way out reads nothing more.
    """

    def test_bytesAfterAbort(self) -> None:
        """
        Bytes that finish a response after C{abort} do not make the
        connection quiescent.
        """
        self.connect()
        response = self.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
        collector = BodyCollector()
        response.deliverBody(collector)
        self.conn.abort()
        self.conn.dataReceived(b"cd")
        self.assertEqual(self.owner.names(), [])
        settle(self.clock)
        self.assertEqual(self.owner.names(), ["lost"])
        assert collector.reason is not None
        failure = collector.reason
        failure.trap(ResponseFailed)
        failure.value.reasons[0].trap(ConnectionAborted)


class FinishOrderTests(ConnectionTestCase):
    """
    The order of the steps when a response completes.
    """

    def test_quiescentBeforeBodyTold(self) -> None:
        """
        The owner hears the connection is quiescent before the body
        protocol hears the body is done (as from Twisted's protocol), so a
        request made from the body's callback finds the connection back.
        """
        self.connect()
        response = self.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\na")
        seen: list[list[str]] = []
        readBody(response).addCallback(lambda body: seen.append(self.owner.names()))
        self.conn.dataReceived(b"b")
        self.assertEqual(seen, [["quiescent"]])

    def test_nextRequestFromBodyCallback(self) -> None:
        """
        Used without a pool, the next request may be sent from the body's
        callback, as on Twisted's protocol; each response is reported
        quiescent once.
        """
        self.connect()
        response = self.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\na")
        second: list[Deferred[IResponse]] = []
        readBody(response).addCallback(lambda body: second.append(self.send()))
        self.conn.dataReceived(b"b")
        self.assertEqual(self.owner.names(), ["quiescent"])
        self.assertEqual(self.conn.state, "WAITING")
        self.conn.dataReceived(OK)
        self.assertEqual(self.body(self.successResultOf(second[0]))[0], b"abc")
        self.assertEqual(self.owner.names(), ["quiescent", "quiescent"])


class HeadersBuildTests(SynchronousTestCase):
    """
    The response's L{Headers} are built in one dictionary, the same as
    C{addRawHeader} for each line would build them.
    """

    def test_sameAsAddRawHeader(self) -> None:
        """
        Names in any case, repeated names in order, and a value with a line
        break end up as C{addRawHeader} puts them.
        """
        lines = [
            (b"X-Thing", b"1"),
            (b"x-thing", b"2"),
            (b"Set-Cookie", b"a=1"),
            (b"content-TYPE", b"text/plain"),
            (b"Set-Cookie", b"b=2"),
            (b"X-Folded", b"one\r\n two"),
        ]
        expected = Headers()
        for name, value in lines:
            expected.addRawHeader(name, value)
        built = _buildHeaders(lines)
        self.assertEqual(
            list(built.getAllRawHeaders()), list(expected.getAllRawHeaders())
        )
        self.assertEqual(built, expected)
        self.assertEqual(built.getRawHeaders(b"set-cookie"), [b"a=1", b"b=2"])
        self.assertEqual(built.getRawHeaders(b"x-folded"), [b"one  two"])
        self.assertEqual(list(_buildHeaders([]).getAllRawHeaders()), [])
