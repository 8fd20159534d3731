"""
L{pooled_http._http11.HTTP11Connection} over a real loopback socket against
twisted.web: reuse, chunked and HEAD responses, request bodies of known and
unknown length, back-pressure on a big unread body, and cancelling
C{readBody} on a body that stalls.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import CancelledError, Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web._newclient import Request
from twisted.web.client import FileBodyProducer, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from pooled_http._http11 import BODY_BUFFER_LIMIT, HTTP11Connection
from tests.test_http11 import FakeOwner

reactor: Any = _reactor

BIG = b"0123456789abcdef" * (BODY_BUFFER_LIMIT // 4)


class Server(Resource):
    """
    C{/small}: three bytes; C{/stream}: a chunked body; C{/big}: a body far
    larger than the connection keeps unread; C{/stall}: headers then
    nothing; POST echoes the body.
    """

    isLeaf = True

    def __init__(self) -> None:
        Resource.__init__(self)
        self.stalled: list[Any] = []

    def render_GET(self, request: Any) -> Any:
        """
        Answer by path.
        """
        path = request.path
        if path == b"/small":
            return b"abc"
        if path == b"/stream":
            request.write(b"one,")
            request.write(b"two")
            request.finish()
            return NOT_DONE_YET
        if path == b"/big":
            return BIG
        request.setHeader(b"content-length", b"10")
        request.write(b"x")
        self.stalled.append(request)
        return NOT_DONE_YET

    def render_HEAD(self, request: Any) -> Any:
        """
        The head of C{/small}.
        """
        return b"abc"

    def render_POST(self, request: Any) -> Any:
        """
        Echo the body.
        """
        return b"got:" + request.content.read()


class ChunkedProducer:
    """
    A body producer of unknown length.
    """

    length = UNKNOWN_LENGTH

    def startProducing(self, consumer: Any) -> Deferred[None]:
        """
        Remember the consumer; finish when the test says.
        """
        consumer.write(b"part1,")
        consumer.write(b"part2")
        d: Deferred[None] = Deferred()
        reactor.callLater(0, d.callback, None)
        return d

    def pauseProducing(self) -> None:
        """
        Note the pause.
        """
        pass

    def resumeProducing(self) -> None:
        """
        Note the resumption.
        """
        pass

    def stopProducing(self) -> None:
        """
        Note the stop.
        """
        pass


class LoopbackTests(TestCase):
    """
    One connection to a twisted.web server on 127.0.0.1.
    """

    @inlineCallbacks
    def setUp(self) -> Any:
        """
        Listen on 127.0.0.1 and connect one connection.
        """
        self.resource = Server()
        self.port = reactor.listenTCP(0, Site(self.resource), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.owner = FakeOwner()
        self.owner.reactor = reactor
        self.conn = HTTP11Connection(self.owner, ("http", b"127.0.0.1", 0))
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port)
        yield connectProtocol(endpoint, self.conn)
        self.addCleanup(self.closeConnection)

    def closeConnection(self) -> Any:
        """
        Close the connection and wait for it to go.
        """
        for request in self.resource.stalled:
            if request.channel is not None:
                request.channel.transport.abortConnection()
        lost = self.conn.whenLost()
        self.conn.close(1.0)
        return lost

    @inlineCallbacks
    def read(self, response: Any) -> Any:
        """
        Read a body, then let the connection finish with the response (as
        the pool would before handing it out again).
        """
        body = yield readBody(response)
        yield deferLater(reactor, 0, lambda: None)
        return body

    def request(self, method: bytes, path: bytes, body: Any = None) -> Any:
        """
        Send a request.
        """
        headers = Headers({b"host": [b"127.0.0.1"]})
        return self.conn.request(Request._construct(method, path, headers, body, True))

    @inlineCallbacks
    def test_reuse(self) -> Any:
        """
        Several requests of every kind on one connection.
        """
        response = yield self.request(b"GET", b"/small")
        self.assertEqual((yield self.read(response)), b"abc")
        response = yield self.request(b"GET", b"/stream")
        self.assertEqual((yield self.read(response)), b"one,two")
        response = yield self.request(b"HEAD", b"/small")
        self.assertEqual((yield self.read(response)), b"")
        producer = FileBodyProducer(BytesIO(b"hello"))
        response = yield self.request(b"POST", b"/echo", producer)
        self.assertEqual((yield self.read(response)), b"got:hello")
        response = yield self.request(b"POST", b"/echo", ChunkedProducer())
        self.assertEqual((yield self.read(response)), b"got:part1,part2")
        self.assertEqual(self.owner.names(), ["quiescent"] * 5)
        self.assertEqual(self.conn.requestsServed, 5)

    @inlineCallbacks
    def test_bigUnreadBody(self) -> Any:
        """
        A big body left unread for a while stops the reading; it is whole
        once read.
        """
        response = yield self.request(b"GET", b"/big")
        yield deferLater(reactor, 0.2, lambda: None)
        self.assertTrue(self.conn._readingPaused)
        self.assertEqual((yield self.read(response)), BIG)
        self.assertEqual(self.owner.names(), ["quiescent"])

    @inlineCallbacks
    def test_cancelStalledReadBody(self) -> Any:
        """
        Cancelling C{readBody} of a body that stalls drops the connection.
        """
        response = yield self.request(b"GET", b"/stall")
        d = readBody(response)
        yield deferLater(reactor, 0.05, lambda: None)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        yield self.conn.whenLost()
        self.assertEqual(self.owner.names(), ["lost"])
