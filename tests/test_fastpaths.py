"""
The shortcuts of the per-request path give what the long way gives:
L{sendNow} against Twisted's TCP transport, L{newRequest} against
C{Request._construct}, a route's I{Host} headers against C{addRawHeader},
and L{PooledAgent} on an idle connection without getConnection's Deferred.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import tcp
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web._newclient import Request
from twisted.web.client import URI
from twisted.web.http_headers import Headers

from pooled_http._routes import _Route, newRequest, parseURI
from pooled_http._sending import sendNow


def _slowParse(uri: bytes) -> tuple[Any, ...]:
    """
    What L{URI.fromBytes} (through C{urlparse}) makes of a URI without
    user info, as L{parseURI}'s fields.
    """
    parsed = URI.fromBytes(uri.strip(), defaultPort=443 if uri.strip()[:6] == b"https:" else 80)
    return (
        parsed.scheme,
        parsed.netloc,
        parsed.host,
        parsed.port,
        parsed.path,
        parsed.params,
        parsed.query,
        parsed.fragment,
        parsed.originForm,
    )


class ParseURITests(SynchronousTestCase):
    """
    L{parseURI}'s one-expression parse of plain URIs gives what
    L{URI.fromBytes} gives.
    """

    def test_sameAsURI(self) -> None:
        """
        Plain URIs and the near misses that take the slow way (parameters,
        a path starting with C{//}, an empty query, an empty port, a
        fragment, uppercase schemes, IPv6 hosts) parse alike.
        """
        for uri in [
            b"http://127.0.0.1:8080/?page=1",
            b"https://example.com",
            b"https://example.com:443/a/b.html?x=1&y=%20",
            b"http://h?q",
            b"http://h/a?",
            b"http://h:/x",
            b"http://h:0080/x",
            b"http://h/a;p?q",
            b"http://h//x",
            b"http://h/a#f",
            b"HTTP://h/x",
            b"http://[::1]:80/",
            b" http://h/x ",
            b"ws://h/x",
        ]:
            parsed = parseURI(uri)
            self.assertEqual(
                (
                    parsed.scheme,
                    parsed.netloc,
                    parsed.host,
                    parsed.port,
                    parsed.path,
                    parsed.params,
                    parsed.query,
                    parsed.fragment,
                    parsed.originForm,
                ),
                _slowParse(uri),
                uri,
            )

    def test_invalid(self) -> None:
        """
        A URI with a byte that is not printable ASCII is refused either way.
        """
        for uri in [b"http://h/\xc3\xa9", b"http://h/a b", b"http://h/\x01"]:
            self.assertRaises(ValueError, parseURI, uri)


def connectedTCP(test: Any, protocol: Any) -> Any:
    """
    A connected Twisted TCP transport for C{protocol} over one end of a
    socket pair, on C{test.reactor} (a L{MemoryReactorClock}, made if the
    test has none); the other end is C{test.peer}.  Both are closed at
    cleanup.
    """
    ours, theirs = socket.socketpair()
    test.addCleanup(ours.close)
    test.addCleanup(theirs.close)
    theirs.settimeout(5)
    test.peer = theirs
    if not hasattr(test, "reactor"):
        test.reactor = MemoryReactorClock()
    transport = tcp.Connection(ours, protocol, test.reactor)
    transport.connected = True
    return transport


class SendNowTests(SynchronousTestCase):
    """
    L{sendNow} writes to the socket at once only when nothing is buffered,
    and leaves the rest to the transport in order.
    """

    def setUp(self) -> None:
        self.transport: Any = connectedTCP(self, Protocol())

    def received(self) -> bytes:
        return self.peer.recv(65536)

    def test_direct(self) -> None:
        """
        With nothing buffered the bytes reach the socket at once and the
        transport is never asked to write.
        """
        sendNow(self.transport, b"GET / HTTP/1.1\r\n\r\n")
        self.assertEqual(self.received(), b"GET / HTTP/1.1\r\n\r\n")
        self.assertEqual(self.transport._tempDataBuffer, [])
        self.assertEqual(self.reactor.getWriters(), [])

    def test_behindBuffered(self) -> None:
        """
        Bytes already buffered go first: L{sendNow} then buffers too.
        """
        self.transport.write(b"first ")
        sendNow(self.transport, b"second")
        self.assertEqual(self.transport._tempDataBuffer, [b"first ", b"second"])
        self.transport.doWrite()
        self.assertEqual(self.received(), b"first second")

    def test_partial(self) -> None:
        """
        What the socket does not take is buffered by the transport.
        """
        self.transport.writeSomeData = lambda data: 3
        sendNow(self.transport, b"abcdef")
        self.assertEqual(self.transport._tempDataBuffer, [b"def"])

    def test_error(self) -> None:
        """
        A failed send leaves everything to the transport, whose own write
        turn meets the error.
        """
        self.transport.writeSomeData = lambda data: ConnectionLost()
        sendNow(self.transport, b"abc")
        self.assertEqual(self.transport._tempDataBuffer, [b"abc"])

    def test_disconnecting(self) -> None:
        """
        A transport being closed gets the bytes through its own C{write}.
        """
        self.transport.disconnecting = True
        sendNow(self.transport, b"abc")
        self.assertEqual(self.transport._tempDataBuffer, [b"abc"])

    def test_otherTransport(self) -> None:
        """
        Any other transport is written to with C{write}.
        """
        transport = StringTransport()
        sendNow(transport, b"abc")
        self.assertEqual(transport.value(), b"abc")


class SendNowTLSTests(SynchronousTestCase):
    """
    Over Twisted's buffering TLS layer, L{sendNow} encrypts at once only
    over a TCP transport it knows, with nothing kept before the bytes.
    """

    def tlsProtocol(self) -> Any:
        from twisted.internet.protocol import Factory
        from twisted.internet.ssl import optionsForClientTLS
        from twisted.protocols.tls import TLSMemoryBIOFactory

        factory = TLSMemoryBIOFactory(
            optionsForClientTLS("localhost"),
            True,
            Factory.forProtocol(Protocol),
            clock=MemoryReactorClock(),
        )
        protocol = factory.buildProtocol(None)
        protocol.makeConnection(StringTransport())
        return protocol

    def test_recognised(self) -> None:
        """
        The TLS layer C{wrapClientTLS} builds is one L{sendNow} knows.
        """
        from pooled_http._sending import _TLS, _kind

        self.assertIs(_kind(self.tlsProtocol()), _TLS)

    def test_keptBytesFirst(self) -> None:
        """
        With bytes already kept by the layer's aggregator, the new ones are
        kept behind them.
        """
        protocol = self.tlsProtocol()
        protocol.write(b"first")
        sendNow(protocol, b"second")
        self.assertEqual(protocol._aggregator._buffer, [b"first", b"second"])

    def test_otherTCP(self) -> None:
        """
        Over a transport that is not Twisted's TCP connection, the layer's
        own C{write} is used.
        """
        protocol = self.tlsProtocol()
        sendNow(protocol, b"only")
        self.assertEqual(protocol._aggregator._buffer, [b"only"])


class SendNowTLSOverTCPTests(SynchronousTestCase):
    """
    Over Twisted's TLS layer on Twisted's TCP transport, the records the
    layer writes reach the socket at once, as L{sendNow} sends plain bytes,
    and the TCP transport is left as it was.
    """

    def setUp(self) -> None:
        from twisted.internet.protocol import Factory
        from twisted.internet.ssl import optionsForClientTLS
        from twisted.protocols.tls import TLSMemoryBIOFactory

        self.reactor = MemoryReactorClock()
        factory = TLSMemoryBIOFactory(
            optionsForClientTLS("localhost"),
            True,
            Factory.forProtocol(Protocol),
            clock=self.reactor,
        )
        self.protocol: Any = factory.buildProtocol(None)
        self.tcp: Any = connectedTCP(self, self.protocol)
        self.protocol.makeConnection(self.tcp)
        # The ClientHello, written the TCP transport's own way.
        self.tcp.doWrite()
        self.peer.recv(65536)
        self.assertEqual(self.reactor.getWriters(), [])

    def fakeLayer(self, write: Any) -> None:
        from pooled_http import _sending

        class Layer:
            pass

        layer: Any = Layer()
        layer.write = write
        self.patch(_sending, "_TLSMemoryBIOProtocol", layer)

    def test_recordsDirect(self) -> None:
        """
        Records go to the socket without the transport being asked to
        write, and its own C{write} is back afterwards.
        """
        self.fakeLayer(lambda layer, data: layer.transport.write(b"record:" + data))
        sendNow(self.protocol, b"abc")
        self.assertEqual(self.peer.recv(65536), b"record:abc")
        self.assertEqual(self.tcp._tempDataBuffer, [])
        self.assertEqual(self.reactor.getWriters(), [])
        self.assertNotIn("write", vars(self.tcp))

    def test_recordsPartial(self) -> None:
        """
        What the socket does not take of a record is buffered by the TCP
        transport, in order.
        """
        self.tcp.writeSomeData = lambda data: 2
        self.fakeLayer(lambda layer, data: layer.transport.write(data))
        self.tcp.doWrite = lambda: None
        sendNow(self.protocol, b"abcdef")
        self.assertEqual(self.tcp._tempDataBuffer, [b"cdef"])
        self.assertNotIn("write", vars(self.tcp))

    def test_layerFails(self) -> None:
        """
        If the layer raises, the TCP transport's own C{write} is back.
        """

        def fail(layer: Any, data: bytes) -> None:
            raise ZeroDivisionError()

        self.fakeLayer(fail)
        self.assertRaises(ZeroDivisionError, sendNow, self.protocol, b"abc")
        self.assertNotIn("write", vars(self.tcp))


class RequestShortcutTests(SynchronousTestCase):
    """
    The request values the agent builds for itself match Twisted's.
    """

    def test_newRequest(self) -> None:
        """
        L{newRequest} sets what C{Request._construct} sets.
        """
        headers = Headers({b"host": [b"127.0.0.1"]})
        uri = URI.fromBytes(b"http://127.0.0.1/a?b")
        ours = newRequest(b"GET", b"/a?b", headers, None, True, uri)
        theirs = Request._construct(b"GET", b"/a?b", headers, None, True, uri)
        self.assertIsInstance(ours, Request)
        self.assertEqual(vars(ours), vars(theirs))
        self.assertEqual(ours.absoluteURI, b"http://127.0.0.1/a?b")

    def test_hostHeaders(self) -> None:
        """
        A route's I{Host} headers are those C{addRawHeader} makes, and new
        ones each time.
        """
        route = _Route(("http", b"127.0.0.1", 8080), object(), b"127.0.0.1:8080")  # type: ignore[arg-type]
        expected = Headers()
        expected.addRawHeader(b"Host", b"127.0.0.1:8080")
        first = route.hostHeaders()
        self.assertEqual(first, expected)
        self.assertEqual(
            list(first.getAllRawHeaders()), [(b"Host", [b"127.0.0.1:8080"])]
        )
        first.addRawHeader(b"X-Other", b"1")
        self.assertEqual(route.hostHeaders(), expected)


class AgentShortcutTests(SynchronousTestCase):
    """
    L{PooledAgent} takes the pool's shortcut only from our own pool class.
    """

    def test_subclassGetConnection(self) -> None:
        """
        A pool subclass's own C{getConnection} is what the agent calls.
        """
        from twisted.internet.defer import fail

        from pooled_http import HTTPConnectionPool, PooledAgent

        calls = []

        class Counting(HTTPConnectionPool):
            def getConnection(self, key: Any, endpoint: Any) -> Any:
                calls.append(key)
                return fail(RuntimeError("from the subclass"))

        reactor = MemoryReactorClock()
        agent = PooledAgent(reactor, pool=Counting(reactor))
        d = agent.request(b"GET", b"http://127.0.0.1:8080/")
        self.failureResultOf(d, RuntimeError)
        self.assertEqual(calls, [(b"http", b"127.0.0.1", 8080)])


class NoCycleTests(SynchronousTestCase):
    """
    A request served leaves nothing in a reference cycle: what it used is
    freed by reference counting, not left for the garbage collector.
    """

    def test_responseLetsGoOfProtocol(self) -> None:
        """
        Once the body protocol has heard the end, the response no longer
        refers to it (the protocol refers to the response as its
        transport).
        """
        from twisted.python.failure import Failure
        from twisted.web._newclient import ResponseDone

        from pooled_http._http11response import _Response

        class Body(Protocol):
            ended: Any = None

            def connectionLost(self, reason: Any = None) -> None:
                self.ended = reason

        connection: Any = type("C", (), {"_resumeReading": lambda self: None})()
        response = _Response(
            connection, (b"HTTP", 1, 1), 200, b"OK", Headers(), 0, None
        )
        body = Body()
        response.deliverBody(body)
        response._end(Failure(ResponseDone()))
        self.assertIsNotNone(body.ended)
        self.assertIsNone(response._protocol)
        self.assertRaises(RuntimeError, response.deliverBody, Body())
