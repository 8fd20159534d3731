"""
L{pooled_http._http2.HTTP2Connection} on an in-memory transport, with h2's
server side as the peer and a fake owner on a fake clock: header
translation, capacity reports, back-pressure per stream, timeouts.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web._newclient import Request, ResponseFailed
from twisted.web.client import FileBodyProducer
from twisted.web.http_headers import Headers

from pooled_http import ReadTimeoutError

try:
    from h2.config import H2Configuration
    from h2.connection import H2Connection
    from h2.events import DataReceived, RequestReceived, StreamEnded, StreamReset
    from h2.settings import SettingCodes
    from hpack import NeverIndexedHeaderTuple

    from pooled_http._h2headers import requestHeaders
    from pooled_http._http2 import STREAM_WINDOW, HTTP2Connection
except ImportError:  # pragma: no cover - h2 missing
    SKIP = "h2 is not installed"
else:
    SKIP = ""


class FakeOwner:
    """
    A connection owner that records the reports.
    """

    def __init__(self) -> None:
        self.reactor = Clock()
        self.responseTimeout: float | None = None
        self.readTimeout: float | None = None
        self.lenientHeaders = False
        self.maxHeaderBytes = 65536
        self.maxConcurrentStreams = 100
        self.reports: list[tuple[str, Any]] = []

    def connectionQuiescent(self, connection: Any) -> None:
        self.reports.append(("quiescent", None))

    def connectionGivenUp(self, connection: Any, reason: Any) -> None:
        self.reports.append(("givenUp", reason))

    def connectionTimedOut(self, connection: Any, error: Any) -> None:
        self.reports.append(("timedOut", error))

    def connectionLost(self, connection: Any, previous: Any, reason: Any) -> None:
        self.reports.append(("lost", previous))

    def connectionCapacityChanged(self, connection: Any) -> None:
        self.reports.append(("capacity", connection.capacity))

    def streamTimedOut(self, connection: Any, error: Any) -> None:
        self.reports.append(("streamTimedOut", type(error).__name__))


class Collector(Protocol):
    """
    A body protocol that keeps what it gets and may pause at once.
    """

    def __init__(self, pause: bool = False) -> None:
        self.data = bytearray()
        self.reason: Any = None
        self.pause = pause

    def connectionMade(self) -> None:
        if self.pause:
            self.transport.pauseProducing()  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.data.extend(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.reason = reason


class SyncProducer:
    """
    A body producer that writes its whole body at once (the consumer keeps
    what the window does not allow yet).
    """

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.length = len(body)
        self.paused = 0

    def startProducing(self, consumer: Any) -> Any:
        from twisted.internet.defer import succeed

        consumer.write(self.body)
        return succeed(None)

    def pauseProducing(self) -> None:
        self.paused += 1

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


def request(path: bytes, method: bytes = b"GET", body: bytes | None = None) -> Request:
    headers = Headers({b"Host": [b"example.test"]})
    producer = SyncProducer(body) if body is not None else None
    return Request._construct(method, path, headers, producer, persistent=True)


class _ConnectionCase(SynchronousTestCase):
    """
    A connection, h2's server side as its peer, and a fake owner.
    """

    def setUp(self) -> None:
        if SKIP:
            raise self.skipTest(SKIP)
        self.owner = FakeOwner()
        self.conn = HTTP2Connection(self.owner, ("https", b"example.test", 443))  # type: ignore[arg-type]
        self.transport = StringTransport()
        self.conn.makeConnection(self.transport)
        self.server = H2Connection(
            H2Configuration(client_side=False, header_encoding=None)
        )
        self.server.initiate_connection()
        self.ready: list[Any] = []
        self.conn.whenReady().addCallback(self.ready.append)
        self.events: list[Any] = []
        self.pump()

    def pump(self) -> None:
        """
        Exchange bytes until both sides are quiet.
        """
        for _ in range(100):
            toServer = self.transport.value()
            self.transport.clear()
            if toServer:
                self.events.extend(self.server.receive_data(toServer))
            toClient = self.server.data_to_send()
            if toClient:
                self.conn.dataReceived(toClient)
            if not toServer and not toClient:
                return

    def respond(self, streamId: int, body: bytes, end: bool = True) -> None:
        self.server.send_headers(streamId, [(b":status", b"200")])
        self.send(streamId, body, end)

    def send(self, streamId: int, body: bytes, end: bool = True) -> None:
        while body:
            size = min(
                self.server.local_flow_control_window(streamId),
                self.server.max_outbound_frame_size,
            )
            assert size > 0, "window exhausted"
            self.server.send_data(streamId, body[:size])
            body = body[size:]
        if end:
            self.server.end_stream(streamId)
        self.pump()


class ConnectionTests(_ConnectionCase):
    def test_readyAndCapacity(self) -> None:
        """
        The connection is ready once the server's SETTINGS arrived; its
        capacity follows the server's limit and the pool's setting, and
        each change is reported.
        """
        self.assertEqual(self.ready, [self.conn])
        self.assertEqual(self.conn.capacity, 100)
        self.server.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: 7})
        self.pump()
        self.assertEqual(self.conn.capacity, 7)
        self.assertEqual(self.owner.reports, [("capacity", 7)])
        self.server.close_connection()
        self.pump()
        self.assertEqual(self.conn.capacity, 0)
        self.assertEqual(self.owner.reports, [("capacity", 7), ("capacity", 0)])

    def test_secretsNeverIndexed(self) -> None:
        """
        I{Authorization}, I{Proxy-Authorization} and I{Cookie} go out
        never-indexed: no secret enters HPACK's dynamic table, where a
        later header could be compressed against it.
        """
        headers = Headers(
            {
                b"Host": [b"127.0.0.1"],
                b"Authorization": [b"Bearer s3cret"],
                b"Proxy-Authorization": [b"Basic czNjcmV0"],
                b"Cookie": [b"session=s3cret"],
                b"X-Plain": [b"1"],
            }
        )
        req = Request._construct(b"GET", b"/", headers, None, persistent=True)
        got = {header[0]: header for header in requestHeaders(req, b"https")[4:]}
        for name in (b"authorization", b"proxy-authorization", b"cookie"):
            self.assertFalse(got[name].indexable, name)
        self.assertNotIsInstance(got[b"x-plain"], NeverIndexedHeaderTuple)

    def test_requestHeaders(self) -> None:
        """
        Host becomes :authority, connection-specific headers are dropped
        (and those the Connection header names), names are lower-case, TE
        is kept only as trailers, and a known body length is sent.
        """
        headers = Headers(
            {
                b"Host": [b"example.test:8443"],
                b"Connection": [b"keep-alive, X-Hop"],
                b"X-Hop": [b"1"],
                b"Keep-Alive": [b"timeout=5"],
                b"Transfer-Encoding": [b"chunked"],
                b"TE": [b"gzip", b"trailers"],
                b"X-Custom": [b"A", b"B"],
            }
        )
        req = Request._construct(
            b"POST",
            b"/p?q=1",
            headers,
            FileBodyProducer(BytesIO(b"12345")),
            persistent=True,
        )
        got = requestHeaders(req, b"https")
        self.assertEqual(
            got[:4],
            [
                (b":method", b"POST"),
                (b":scheme", b"https"),
                (b":authority", b"example.test:8443"),
                (b":path", b"/p?q=1"),
            ],
        )
        self.assertEqual(
            sorted(got[4:]),
            [
                (b"content-length", b"5"),
                (b"te", b"trailers"),
                (b"x-custom", b"A"),
                (b"x-custom", b"B"),
            ],
        )

    def test_headerBlockPastFrameSize(self) -> None:
        """
        A request header block larger than the server's frame size goes out
        as HEADERS and CONTINUATION frames, whole, with END_STREAM on the
        first; the stream's state follows.
        """
        big = bytes(range(33, 127)) * 500
        headers = Headers({b"Host": [b"example.test"], b"X-Big": [big]})
        req = Request._construct(b"GET", b"/big", headers, None, persistent=True)
        responses: list[Any] = []
        self.conn.request(req).addCallback(responses.append)
        self.pump()
        (received,) = [e for e in self.events if isinstance(e, RequestReceived)]
        self.assertEqual(dict(received.headers)[b"x-big"], big)
        self.assertEqual(dict(received.headers)[b":authority"], b"example.test")
        self.assertIsNotNone(received.stream_ended)
        self.respond(1, b"ok")
        self.assertEqual(responses[0].code, 200)

    def test_responseVersionAndBody(self) -> None:
        """
        A response says HTTP/2; its body arrives; the stream done is
        reported as one request done.
        """
        responses: list[Any] = []
        self.conn.request(request(b"/a")).addCallback(responses.append)
        self.pump()
        self.respond(1, b"hello")
        (response,) = responses
        self.assertEqual((response.version, response.code), ((b"HTTP", 2, 0), 200))
        body = Collector()
        response.deliverBody(body)
        self.assertEqual(bytes(body.data), b"hello")
        self.assertEqual(self.owner.reports, [("quiescent", None)])

    def test_backPressurePerStream(self) -> None:
        """
        A paused body is not acknowledged: its stream's window runs out and
        the server stops on it, while another stream on the connection
        still gets its body.  Resuming delivers the bytes held and opens
        the window again.
        """
        responses: list[Any] = []
        self.conn.request(request(b"/slow")).addCallback(responses.append)
        self.conn.request(request(b"/other")).addCallback(responses.append)
        self.pump()
        self.server.send_headers(1, [(b":status", b"200")])
        self.pump()
        slow = Collector(pause=True)
        responses[0].deliverBody(slow)
        self.send(1, b"x" * STREAM_WINDOW, end=False)
        self.assertEqual(self.server.local_flow_control_window(1), 0)
        self.assertEqual(len(slow.data), 0)
        self.assertGreater(self.server.outbound_flow_control_window, STREAM_WINDOW)
        self.respond(3, b"y" * 100_000)
        other = Collector()
        responses[1].deliverBody(other)
        self.assertEqual(len(other.data), 100_000)
        responses[0].resumeProducing()
        self.pump()
        self.assertEqual(len(slow.data), STREAM_WINDOW)
        # The window is open again (h2 sends updates in batches).
        self.assertGreater(self.server.local_flow_control_window(1), STREAM_WINDOW // 2)
        self.send(1, b"z", end=True)
        self.assertEqual(len(slow.data), STREAM_WINDOW + 1)
        self.assertIsNotNone(slow.reason)

    def test_requestBodyFlowControl(self) -> None:
        """
        A request body larger than the server's window waits for window
        updates and arrives whole.
        """
        self.server.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 1000})
        self.pump()
        body = bytes(range(256)) * 40
        self.conn.request(request(b"/up", b"POST", body))
        received = bytearray()
        for _ in range(200):
            self.owner.reactor.advance(0)
            self.pump()
            for event in self.events:
                if isinstance(event, DataReceived):
                    received.extend(event.data)
                    self.server.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
            ended = any(isinstance(e, StreamEnded) for e in self.events)
            self.events.clear()
            if ended:
                break
        self.assertEqual(bytes(received), body)

    def test_readTimeoutPerStream(self) -> None:
        """
        readTimeout fails the stream whose body stalls and resets it; the
        connection stays.
        """
        self.owner.readTimeout = 5.0
        responses: list[Any] = []
        self.conn.request(request(b"/stall")).addCallback(responses.append)
        self.pump()
        self.server.send_headers(1, [(b":status", b"200")])
        self.pump()
        body = Collector()
        responses[0].deliverBody(body)
        self.owner.reactor.advance(5)
        self.pump()
        self.assertTrue(body.reason.check(ReadTimeoutError))
        self.assertEqual(
            self.owner.reports,
            [("streamTimedOut", "ReadTimeoutError"), ("quiescent", None)],
        )
        self.assertEqual(self.conn.lifecycle.value, "active")
        self.assertEqual(
            [
                type(e).__name__
                for e in self.events
                if not isinstance(e, RequestReceived)
            ][-1],
            "StreamReset",
        )


class MissingH2Tests(SynchronousTestCase):
    def test_missingExtraNamed(self) -> None:
        """
        Without h2, C{http2=True} raises L{HTTP2UnavailableError} naming
        the extra.
        """
        import sys

        from twisted.internet.task import Clock

        from pooled_http import HTTP2UnavailableError, PooledAgent

        name = "pooled_http._http2"
        saved = sys.modules.get(name)
        sys.modules[name] = None  # type: ignore[assignment]

        def restore() -> None:
            if saved is None:
                del sys.modules[name]
            else:
                sys.modules[name] = saved

        self.addCleanup(restore)
        with self.assertRaises(HTTP2UnavailableError) as caught:
            PooledAgent(Clock(), http2=True)
        self.assertIn("pip install 'pooled_http[http2]'", str(caught.exception))
        self.assertIsInstance(caught.exception, ImportError)

    def test_http2NotABool(self) -> None:
        """
        An C{http2} that is not a bool is a L{TypeError} naming it.
        """
        from twisted.internet.task import Clock

        from pooled_http import PooledAgent

        for value in ("yes", 1, None):
            with self.assertRaises(TypeError) as caught:
                PooledAgent(Clock(), http2=value)  # type: ignore[arg-type]
            self.assertIn("http2", str(caught.exception))


class InvalidHeadersTests(_ConnectionCase):
    """
    The checks kept of h2's inbound header validation.
    """

    def test_newlineInHeaderValue(self) -> None:
        """
        A response header value with a line feed fails the request and
        resets its stream; the connection goes on.
        """
        self.server.config.validate_outbound_headers = False
        self.server.config.normalize_outbound_headers = False
        failures: list[Any] = []
        self.conn.request(request(b"/bad")).addErrback(failures.append)
        self.pump()
        self.server.send_headers(
            1, [(b":status", b"200"), (b"x-bad", b"a\nb")], end_stream=True
        )
        self.pump()
        (failure,) = failures
        self.assertIn("invalid response header", str(failure.value.reasons[0].value))
        self.assertEqual(self.owner.reports, [("quiescent", None)])
        responses: list[Any] = []
        self.conn.request(request(b"/good")).addCallback(responses.append)
        self.pump()
        self.server.config.validate_outbound_headers = True
        self.respond(3, b"fine")
        self.assertEqual(responses[0].code, 200)


class MalformedResponseTests(_ConnectionCase):
    """
    A malformed response fails its stream only (reset with
    C{PROTOCOL_ERROR}, a L{FramingError} naming the stream); the connection
    and its other streams go on.
    """

    def setUp(self) -> None:
        _ConnectionCase.setUp(self)
        self.server.config.validate_outbound_headers = False
        self.server.config.normalize_outbound_headers = False

    def twoStreams(self, method: bytes = b"GET") -> tuple[list[Any], list[Any]]:
        """
        Start a request (stream 1, malformed to come) and a good one
        (stream 3) whose response is half sent.
        """
        results: list[Any] = []
        good: list[Any] = []
        self.conn.request(request(b"/bad", method=method)).addBoth(results.append)
        self.conn.request(request(b"/good")).addCallback(good.append)
        self.pump()
        self.server.send_headers(3, [(b":status", b"200"), (b"content-length", b"4")])
        self.pump()
        return results, good

    def assertStreamFailed(self, failure: Any, why: str, reset: bool = True) -> None:
        from pooled_http.errors import FramingError

        self.assertIsInstance(failure, Failure)
        failure.trap(ResponseFailed)
        (inner,) = failure.value.reasons
        self.assertIsInstance(inner.value, FramingError)
        self.assertIn("HTTP/2 stream 1", str(inner.value))
        self.assertIn(why, str(inner.value))
        resets = [e for e in self.events if isinstance(e, StreamReset)]
        expected = [(1, 1)] if reset else []
        self.assertEqual([(e.stream_id, e.error_code) for e in resets], expected)

    def assertOthersGoOn(self, good: list[Any]) -> None:
        self.send(3, b"fine")
        (response,) = good
        body = Collector()
        response.deliverBody(body)
        self.assertEqual(bytes(body.data), b"fine")
        more: list[Any] = []
        self.conn.request(request(b"/more")).addCallback(more.append)
        self.pump()
        self.respond(5, b"ok")
        self.assertEqual(more[0].code, 200)
        self.assertFalse(self.conn.goingAway)
        self.assertEqual(self.conn.streamsInFlight, 0)

    def test_dataPastContentLength(self) -> None:
        results, good = self.twoStreams()
        self.server.send_headers(1, [(b":status", b"200"), (b"content-length", b"3")])
        self.server.send_data(1, b"12345")
        self.pump()
        (response,) = results
        body = Collector()
        response.deliverBody(body)
        self.assertStreamFailed(body.reason, "past content-length 3")
        self.assertOthersGoOn(good)

    def test_framesAfterOurReset(self) -> None:
        """
        DATA the server sent on the stream before our reset reached it is
        answered with RST_STREAM (STREAM_CLOSED); the connection goes on.
        """
        results, good = self.twoStreams()
        self.server.send_headers(1, [(b":status", b"200"), (b"content-length", b"3")])
        self.server.send_data(1, b"12345")
        self.conn.dataReceived(self.server.data_to_send())
        # Sent before the server heard of the reset.
        self.server.send_data(1, b"more")
        self.conn.dataReceived(self.server.data_to_send())
        from hyperframe.frame import Frame, RstStreamFrame

        sent, resets = self.transport.value(), []
        while sent:
            frame, length = Frame.parse_frame_header(memoryview(sent[:9]))
            frame.parse_body(memoryview(sent[9 : 9 + length]))
            sent = sent[9 + length :]
            if isinstance(frame, RstStreamFrame):
                resets.append((frame.stream_id, frame.error_code))
        self.assertEqual(resets, [(1, 1), (1, 5)])
        self.pump()
        body = Collector()
        results[0].deliverBody(body)
        self.assertStreamFailed(body.reason, "past content-length 3")
        self.assertOthersGoOn(good)

    def test_bodyShortOfContentLength(self) -> None:
        results, good = self.twoStreams()
        self.server.send_headers(1, [(b":status", b"200"), (b"content-length", b"9")])
        self.server.send_data(1, b"12", end_stream=True)
        self.pump()
        body = Collector()
        results[0].deliverBody(body)
        # Ended by the server: nothing to reset.
        self.assertStreamFailed(body.reason, "after 2 of its content-length 9", False)
        self.assertOthersGoOn(good)

    def test_bodyIn204(self) -> None:
        results, good = self.twoStreams()
        self.server.send_headers(1, [(b":status", b"204")])
        self.server.send_data(1, b"x")
        self.pump()
        body = Collector()
        results[0].deliverBody(body)
        self.assertStreamFailed(body.reason, "a body in a 204 response")
        self.assertOthersGoOn(good)

    def test_bodyInHeadResponse(self) -> None:
        results, good = self.twoStreams(b"HEAD")
        self.server.send_headers(1, [(b":status", b"200"), (b"content-length", b"5")])
        self.server.send_data(1, b"hello")
        self.pump()
        body = Collector()
        results[0].deliverBody(body)
        self.assertStreamFailed(body.reason, "past content-length 0")
        self.assertOthersGoOn(good)

    def test_malformedHeaders(self) -> None:
        """
        Each malformed header block fails its request (the Deferred) with
        a message naming what is wrong.
        """
        cases = [
            ([(b":status", b"200"), (b":status", b"201")], "more than one :status"),
            ([(b"x-a", b"1")], "no :status"),
            ([(b":status", b"200"), (b"connection", b"close")], "b'connection'"),
            ([(b":status", b"200"), (b"transfer-encoding", b"chunked")], "b'transfer-encoding'"),
            ([(b":status", b"200"), (b"keep-alive", b"5")], "b'keep-alive'"),
            ([(b":status", b"200"), (b"upgrade", b"h2c")], "b'upgrade'"),
        ]
        streamId = 1
        for headers, why in cases:
            self.events = []
            results: list[Any] = []
            self.conn.request(request(b"/bad")).addBoth(results.append)
            self.pump()
            self.server.send_headers(streamId, headers, end_stream=True)
            self.pump()
            (failure,) = results
            failure.trap(ResponseFailed)
            self.assertIn(f"HTTP/2 stream {streamId}", str(failure.value.reasons[0].value))
            self.assertIn(why, str(failure.value.reasons[0].value))
            streamId += 2
        good: list[Any] = []
        self.conn.request(request(b"/good")).addCallback(good.append)
        self.pump()
        self.respond(streamId, b"ok")
        self.assertEqual(good[0].code, 200)
        self.assertFalse(self.conn.goingAway)


class StreamCountTests(_ConnectionCase):
    """
    The cheaper count of open streams before each new stream still keeps
    to the server's limit and still forgets closed streams.
    """

    def burst(self, size: int, firstId: int) -> None:
        responses: list[Any] = []
        for i in range(size):
            self.conn.request(request(b"/%d" % (i,))).addCallback(responses.append)
        self.pump()
        for i in range(size):
            self.respond(firstId + 2 * i, b"ok")
        self.assertEqual([r.code for r in responses], [200] * size)

    def test_closedStreamsForgotten(self) -> None:
        """
        Bursts of like requests leave at most C{_COUNT_AT} streams in the
        state machine.
        """
        from pooled_http._h2machine import _COUNT_AT

        for round in range(4):
            self.burst(60, 1 + 120 * round)
            self.assertLessEqual(len(self.conn.h2.streams), _COUNT_AT)

    def test_serverLimitKept(self) -> None:
        """
        At the server's limit the state machine counts exactly and refuses
        one stream more; the connection queues it instead.
        """
        from h2.exceptions import TooManyStreamsError

        self.server.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: 2})
        self.pump()
        self.burst(3, 1)
        responses: list[Any] = []
        for i in range(3):
            self.conn.request(request(b"/%d" % (i,))).addCallback(responses.append)
        self.pump()
        self.assertEqual(self.conn.h2.open_outbound_streams, 2)
        self.assertEqual(len(self.conn._waiting), 1)
        self.assertRaises(
            TooManyStreamsError,
            self.conn.h2.send_headers,
            99,
            [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/")],
        )


class ResponseHeadersTests(SynchronousTestCase):
    """
    L{responseHeaders} checks each header list once per connection and
    still hands out fresh headers, and fails an invalid list every time.
    """

    def setUp(self) -> None:
        if SKIP:
            raise self.skipTest(SKIP)

    def test_freshHeadersEachTime(self) -> None:
        from pooled_http._h2headers import responseHeaders

        checked: dict[Any, Any] = {}
        block = [(b":status", b"200"), (b"content-length", b"2"), (b"x-a", b"1")]
        code, first, length = responseHeaders(list(block), checked)
        self.assertEqual((code, length), (200, 2))
        first.addRawHeader(b"x-a", b"2")
        _, second, _ = responseHeaders(list(block), checked)
        self.assertIsNot(first, second)
        self.assertEqual(second.getRawHeaders(b"x-a"), [b"1"])
        self.assertEqual(len(checked), 1)

    def test_invalidEveryTime(self) -> None:
        from pooled_http._h2headers import responseHeaders

        checked: dict[Any, Any] = {}
        for block in (
            [(b":status", b"200"), (b"x-bad", b"a\r\nb")],
            [(b":status", b"700")],
            [(b":status", b"200"), (b"", b"v")],
            [(b"x-a", b"1")],
            [(b":status", b"200"), (b":status", b"200")],
            [(b"x-a", b"1"), (b":status", b"200")],
            [(b":status", b"200"), (b":path", b"/")],
            [(b":status", b"200"), (b"connection", b"close")],
            [(b":status", b"200"), (b"transfer-encoding", b"chunked")],
            [(b":status", b"200"), (b"keep-alive", b"timeout=5")],
            [(b":status", b"200"), (b"upgrade", b"h2c")],
            [(b":status", b"200"), (b"X-Upper", b"1")],
            [(b":status", b"200"), (b"content-length", b"x")],
            [(b":status", b"200"), (b"content-length", b"1"), (b"content-length", b"2")],
        ):
            for _ in range(2):
                self.assertRaises(ValueError, responseHeaders, block, checked)
        self.assertEqual(checked, {})
