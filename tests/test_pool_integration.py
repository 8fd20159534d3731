"""
Integration tests over real loopback sockets: a twisted.web server that
counts, from its own side, how many connections are open at once, driven by
Twisted's stock L{Agent} and by treq through L{pooled_http}'s pool; and small
scripted servers that misbehave on purpose (stall before the headers, stall
in the body, send C{Keep-Alive: timeout=1, max=3}).
"""

from __future__ import annotations

from typing import Any

import treq
from treq.client import HTTPClient
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, ResponseFailed, readBody
from twisted.web.client import HTTPConnectionPool as StockPool
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from pooled_http import HTTPConnectionPool
from pooled_http.errors import ReadTimeoutError, ResponseTimeoutError
from tests.support.counting import CountingEndpointFactory, CountingFactory

reactor: Any = _reactor


class SlowResource(Resource):
    """
    Answers every request after a short delay, so that a burst of requests
    overlaps, and counts the requests it answered.
    """

    isLeaf = True

    def __init__(self) -> None:
        Resource.__init__(self)
        self.answered = 0
        self.pending: set[Any] = set()

    def render_GET(self, request: Any) -> Any:
        """
        Answer shortly, with the request path in the body.
        """
        def answer() -> None:
            self.pending.discard(call)
            self.answered += 1
            request.setHeader(b"content-type", b"text/plain")
            request.write(b"hello " + request.uri)
            request.finish()

        call = reactor.callLater(0.002, answer)
        self.pending.add(call)
        return NOT_DONE_YET


class LoopbackMixin:
    """
    Start servers on 127.0.0.1, port 0, and tear everything down cleanly.
    """

    def listen(self: Any, factory: Any) -> CountingFactory:
        """
        Listen on 127.0.0.1, port 0, counting connections; stop in cleanup.
        """
        counting = CountingFactory(factory)
        port = reactor.listenTCP(0, counting, interface="127.0.0.1")
        self.addCleanup(self.stopServer, port, counting)
        self.port = port.getHost().port
        return counting

    @inlineCallbacks
    def stopServer(self, port: Any, counting: CountingFactory) -> Any:
        """
        Stop listening and wait until every server connection is gone.
        """
        yield port.stopListening()
        for protocol in list(counting.protocols):
            protocol.transport.abortConnection()
        yield self.waitAllClosed(counting, 200)

    @inlineCallbacks
    def waitAllClosed(self, counting: CountingFactory, turns: int = 100) -> Any:
        """
        Wait (at most C{turns} times 10 ms) until the server has no
        connection open.
        """
        for _ in range(turns):
            if counting.open == 0:
                break
            yield deferLater(reactor, 0.01, lambda: None)

    def makePool(self: Any, **options: Any) -> HTTPConnectionPool:
        """
        Make a pool on the real reactor, closed in cleanup.
        """
        pool = HTTPConnectionPool(reactor, **options)
        self.addCleanup(pool.close, 5)
        return pool

    def url(self: Any, path: str = "/") -> bytes:
        """
        An http URL to the server for C{path}.
        """
        return f"http://127.0.0.1:{self.port}{path}".encode("ascii")


class BurstTests(LoopbackMixin, TestCase):
    """
    Bursts larger than the limit, through stock Agent and treq.
    """

    timeout = 60

    def setUp(self) -> None:
        """
        Start a twisted.web server counting its connections.
        """
        self.resource = SlowResource()
        self.counting = self.listen(Site(self.resource))

    @inlineCallbacks
    def test_agentBurst(self) -> Any:
        """
        100 concurrent GETs through C{Agent(reactor, pool=pool)} with
        C{maxConnectionsPerHost=8}: every one answered, never more than 8
        connections open at the server.
        """
        pool = self.makePool(maxConnectionsPerHost=8)
        agent = Agent(reactor, pool=pool)

        @inlineCallbacks
        def one(i: int) -> Any:
            response = yield agent.request(b"GET", self.url(f"/{i}"))
            body = yield readBody(response)
            return (response.code, body)

        results = yield gatherResults([one(i) for i in range(100)])
        self.assertEqual(
            results, [(200, b"hello /%d" % (i,)) for i in range(100)]
        )
        self.assertEqual(self.resource.answered, 100)
        self.assertLessEqual(self.counting.maxOpen, 8)
        self.assertLessEqual(self.counting.total, 8)
        stats = pool.stats()
        self.assertLessEqual(stats.opened, 8)
        self.assertEqual(stats.inUse + stats.connecting + stats.waiting, 0)
        self.assertEqual(stats.idle, self.counting.open)
        yield pool.close()
        self.assertEqual(pool.stats().total, 0)

    @inlineCallbacks
    def test_counterSeesStockPoolExceedCap(self) -> Any:
        """
        The server-side counter is able to see a burst that is not capped:
        Twisted's stock pool opens far more than 8 connections for the same
        burst.  (A check of the test harness, not of pooled_http.)
        """
        stock = StockPool(reactor)
        self.addCleanup(stock.closeCachedConnections)
        agent = Agent(reactor, pool=stock)

        @inlineCallbacks
        def one(i: int) -> Any:
            response = yield agent.request(b"GET", self.url(f"/{i}"))
            yield readBody(response)
            return response.code

        codes = yield gatherResults([one(i) for i in range(100)])
        self.assertEqual(codes, [200] * 100)
        self.assertGreater(self.counting.maxOpen, 8)

    @inlineCallbacks
    def test_agentRepeatedBursts(self) -> Any:
        """
        Five bursts of 40 with a cap of 4: connections are reused across
        bursts, the cap holds throughout.
        """
        pool = self.makePool(maxConnectionsPerHost=4)
        agent = Agent(reactor, pool=pool)

        @inlineCallbacks
        def one(i: int) -> Any:
            response = yield agent.request(b"GET", self.url(f"/{i}"))
            yield readBody(response)
            return response.code

        for burst in range(5):
            codes = yield gatherResults([one(i) for i in range(40)])
            self.assertEqual(codes, [200] * 40, burst)
        self.assertEqual(self.resource.answered, 200)
        self.assertLessEqual(self.counting.maxOpen, 4)
        self.assertLessEqual(self.counting.total, 4)

    @inlineCallbacks
    def test_treqBurst(self) -> Any:
        """
        The same with C{treq.get(url, pool=pool)}.
        """
        pool = self.makePool(maxConnectionsPerHost=8)

        @inlineCallbacks
        def one(i: int) -> Any:
            response = yield treq.get(self.url(f"/{i}"), pool=pool)
            body = yield treq.content(response)
            return (response.code, body)

        results = yield gatherResults([one(i) for i in range(100)])
        self.assertEqual(
            results, [(200, b"hello /%d" % (i,)) for i in range(100)]
        )
        self.assertEqual(self.resource.answered, 100)
        self.assertLessEqual(self.counting.maxOpen, 8)

    @inlineCallbacks
    def test_treqHTTPClient(self) -> Any:
        """
        C{treq.client.HTTPClient(Agent(reactor, pool=pool))} with a cap of 4.
        """
        pool = self.makePool(maxConnectionsPerHost=4)
        client = HTTPClient(Agent(reactor, pool=pool))

        @inlineCallbacks
        def one(i: int) -> Any:
            response = yield client.get(self.url(f"/{i}"))
            body = yield response.content()
            return body

        bodies = yield gatherResults([one(i) for i in range(30)])
        self.assertEqual(bodies, [b"hello /%d" % (i,) for i in range(30)])
        self.assertLessEqual(self.counting.maxOpen, 4)
        self.assertLessEqual(self.counting.total, 4)

    @inlineCallbacks
    def test_globalCapAcrossHosts(self) -> Any:
        """
        Two keys (127.0.0.1 and localhost, both connected to 127.0.0.1) share
        C{maxConnections=6}: never more than 6 client sockets exist at once,
        counted from C{makeConnection} to C{connectionLost}, although idle
        connections of one key are evicted for the other.

        (Counted on the client: a server learns of a close only after the
        client's socket is already gone, so its own count lags by a few.)
        """
        pool = self.makePool(maxConnectionsPerHost=6, maxConnections=6)
        endpoints = CountingEndpointFactory(reactor)
        agent = Agent.usingEndpointFactory(reactor, endpoints, pool=pool)

        @inlineCallbacks
        def one(host: str, i: int) -> Any:
            url = f"http://{host}:{self.port}/{i}".encode("ascii")
            response = yield agent.request(b"GET", url)
            yield readBody(response)
            return response.code

        for _ in range(3):
            ds = [one("127.0.0.1", i) for i in range(20)]
            ds += [one("localhost", i) for i in range(20)]
            codes = yield gatherResults(ds)
            self.assertEqual(codes, [200] * 40)
        self.assertEqual(self.resource.answered, 120)
        self.assertGreater(endpoints.total, 6)
        self.assertLessEqual(endpoints.maxOpen, 6)


class Scripted(Protocol):
    """
    A server protocol that answers each request with a scripted reply.

    @ivar script: A callable taking the protocol and the request count,
        called once per request head received.
    """

    def __init__(self, script: Any) -> None:
        self.script = script
        self.buffer = b""
        self.requests = 0

    def dataReceived(self, data: bytes) -> None:
        """
        Run the script once per complete request head.
        """
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.requests += 1
            self.script(self, self.requests)


def scriptedFactory(script: Any) -> Factory:
    """
    A server factory whose protocols follow C{script}.
    """
    factory = Factory()
    factory.protocol = lambda: Scripted(script)  # type: ignore[assignment]
    return factory


class MisbehavingServerTests(LoopbackMixin, TestCase):
    """
    Scripted servers that misbehave on purpose, one per fault.
    """

    timeout = 30

    @inlineCallbacks
    def test_stallBeforeHeaders(self) -> Any:
        """
        A server that never answers: C{responseTimeout} fails the request
        with L{ResponseTimeoutError} and the connection is closed.
        """
        counting = self.listen(scriptedFactory(lambda p, n: None))
        pool = self.makePool(responseTimeout=0.3)
        agent = Agent(reactor, pool=pool)
        with self.assertRaises(ResponseTimeoutError):
            yield agent.request(b"GET", self.url())
        yield self.waitAllClosed(counting)
        self.assertEqual(counting.open, 0)
        self.assertEqual(pool.stats().total, 0)

    @inlineCallbacks
    def test_stallMidBody(self) -> Any:
        """
        A server that stops in the middle of the body: C{readTimeout} fails
        the body with L{ReadTimeoutError}.
        """

        def script(p: Scripted, n: int) -> None:
            p.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")

        counting = self.listen(scriptedFactory(script))
        pool = self.makePool(readTimeout=0.3)
        agent = Agent(reactor, pool=pool)
        response = yield agent.request(b"GET", self.url())
        with self.assertRaises(ReadTimeoutError):
            yield readBody(response)
        yield self.waitAllClosed(counting)
        self.assertEqual(counting.open, 0)
        self.assertEqual(pool.stats().total, 0)

    @inlineCallbacks
    def test_keepAliveMax(self) -> Any:
        """
        A server sending C{Keep-Alive: timeout=1, max=3} never gets more
        than 3 requests on one connection.
        """
        perConnection: list[int] = []

        def script(p: Scripted, n: int) -> None:
            if n == 1:
                perConnection.append(0)
            perConnection[-1] += 1
            p.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                b"Keep-Alive: timeout=1, max=3\r\n\r\nok"
            )
            if n > 3:
                p.transport.loseConnection()

        self.listen(scriptedFactory(script))
        pool = self.makePool()
        agent = Agent(reactor, pool=pool)
        for _ in range(7):
            response = yield agent.request(b"GET", self.url())
            body = yield readBody(response)
            self.assertEqual(body, b"ok")
        self.assertEqual(sum(perConnection), 7)
        self.assertLessEqual(max(perConnection), 3)

    @inlineCallbacks
    def test_closeDuringResponse(self) -> Any:
        """
        C{close(timeout)} while a response is still coming: the request ends
        (answered or aborted) and C{close()} fires after the connection is
        gone; nothing is left open.
        """
        started: Deferred[None] = Deferred()

        def script(p: Scripted, n: int) -> None:
            p.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
            if not started.called:
                started.callback(None)

        counting = self.listen(scriptedFactory(script))
        pool = HTTPConnectionPool(reactor)
        agent = Agent(reactor, pool=pool)
        response = yield agent.request(b"GET", self.url())
        outcome: list[Any] = []
        readBody(response).addBoth(outcome.append)
        yield started
        yield pool.close(timeout=0.2)
        # The server never finishes the body: the close timeout aborted it.
        self.assertEqual(len(outcome), 1)
        self.assertIsInstance(outcome[0], Failure)
        self.assertTrue(outcome[0].check(ResponseFailed), outcome[0])
        self.assertEqual(pool.stats().total, 0)
        yield self.waitAllClosed(counting)
        self.assertEqual(counting.open, 0)
