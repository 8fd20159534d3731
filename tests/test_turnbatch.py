"""
L{TurnBatch}: with enough requests in flight, the heads of a reactor turn
go when the turn ends, each whole and to its own transport; below that,
and for transports it does not know, at once.
Over loopback, the count of requests in flight comes back to where it was
whether the requests are answered or lost.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import readBody

from pooled_http import HTTPConnectionPool, PooledAgent
from pooled_http._http11 import HTTP11Connection
from pooled_http._sending import TurnBatch, turnBatch
from tests.support.fakes import makeRequest
from tests.support.servers import ScriptedServer, okScript
from tests.test_fastpaths import connectedTCP
from tests.test_http11 import FakeOwner


class TurnBatchTests(SynchronousTestCase):
    """
    The heads of one turn, on TCP transports over socket pairs.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.batch = TurnBatch(self.reactor)
        self.ends: list[tuple[Any, socket.socket]] = []
        for _ in range(3):
            transport = connectedTCP(self, Protocol())
            self.peer.setblocking(False)
            self.ends.append((transport, self.peer))

    def send(self, transport: Any, data: bytes) -> None:
        """
        Send C{data} through the batch; wanted while C{transport} is not
        being closed.
        """
        self.batch.send(transport, data, lambda t: not t.disconnecting)

    def pending(self, peer: socket.socket) -> bytes:
        """
        What has reached C{peer} so far.
        """
        try:
            return peer.recv(65536)
        except BlockingIOError:
            return b""

    def test_keptUntilTurnEnd(self) -> None:
        """
        With C{threshold} requests in flight, the turn's heads are written
        together, each to its own transport, when the turn ends; the next
        turn starts afresh.
        """
        self.batch.busy = TurnBatch.threshold
        for number, (transport, _) in enumerate(self.ends):
            self.send(transport, b"GET /%d HTTP/1.1\r\n\r\n" % (number,))
        self.assertEqual([self.pending(peer) for _, peer in self.ends], [b""] * 3)
        self.assertEqual(len(self.reactor.getDelayedCalls()), 1)
        self.reactor.advance(0)
        self.assertEqual(
            [self.pending(peer) for _, peer in self.ends],
            [b"GET /%d HTTP/1.1\r\n\r\n" % (number,) for number in range(3)],
        )
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.send(self.ends[1][0], b"next")
        self.assertEqual(self.pending(self.ends[1][1]), b"")
        self.reactor.advance(0)
        self.assertEqual(self.pending(self.ends[1][1]), b"next")

    def test_fewInFlight(self) -> None:
        """
        Below C{threshold} requests in flight every head goes at once and
        no timer is started.
        """
        self.batch.busy = TurnBatch.threshold - 1
        for transport, _ in self.ends:
            self.send(transport, b"head")
        for _, peer in self.ends:
            self.assertEqual(self.pending(peer), b"head")
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_otherTransport(self) -> None:
        """
        A transport L{TurnBatch} does not know is written at once, even in
        a turn that keeps heads.
        """
        self.batch.busy = TurnBatch.threshold
        self.send(self.ends[0][0], b"kept")
        other = StringTransport()
        self.send(other, b"head")
        self.assertEqual(other.value(), b"head")

    def test_unwantedAtTurnEnd(self) -> None:
        """
        A head kept for a transport that is being closed when the turn ends
        is not written.
        """
        self.batch.busy = TurnBatch.threshold
        self.send(self.ends[0][0], b"first")
        transport, peer = self.ends[1]
        self.send(transport, b"kept")
        transport.disconnecting = True
        self.reactor.advance(0)
        self.assertEqual(self.pending(peer), b"")
        self.assertEqual(transport._tempDataBuffer, [])

    def test_onePerReactor(self) -> None:
        """
        L{turnBatch} gives each reactor one batch.
        """
        other = MemoryReactorClock()
        self.assertIs(turnBatch(self.reactor), turnBatch(self.reactor))
        self.assertIsNot(turnBatch(self.reactor), turnBatch(other))


class ConnectionTests(SynchronousTestCase):
    """
    An L{HTTP11Connection} over a socket pair, in a turn that keeps heads.
    """

    def setUp(self) -> None:
        owner = FakeOwner()
        self.reactor = owner.reactor
        self.connection = HTTP11Connection(owner, ("http", b"127.0.0.1", 80))
        # As makeConnection, without connectionMade's TCP_NODELAY (which a
        # socket pair does not have).
        self.connection.transport = connectedTCP(self, self.connection)
        self.connection.connected = True
        self.connectionPeer = self.peer
        self.connectionPeer.setblocking(False)
        self.batch = turnBatch(self.reactor)
        # Enough in flight elsewhere.
        self.batch.busy = TurnBatch.threshold

    def tearDown(self) -> None:
        self.batch.busy -= TurnBatch.threshold

    def written(self) -> bytes:
        """
        What has reached the connection's peer so far.
        """
        try:
            return self.connectionPeer.recv(65536)
        except BlockingIOError:
            return b""

    def test_keptThenWritten(self) -> None:
        """
        A request without a body made in such a turn is written whole when
        the turn ends, and counts itself in flight until its response.
        """
        self.connection.request(makeRequest())
        self.assertEqual(self.batch.busy, TurnBatch.threshold + 1)
        self.assertEqual(self.written(), b"")
        self.reactor.advance(0)
        self.assertTrue(self.written().startswith(b"GET / HTTP/1.1\r\n"))
        self.connection.dataReceived(b"HTTP/1.1 204 No Content\r\n\r\n")
        self.assertEqual(self.batch.busy, TurnBatch.threshold)

    def test_cancelledBeforeTurnEnd(self) -> None:
        """
        A request cancelled while its head is kept is never written.
        """
        d = self.connection.request(makeRequest())
        d.addErrback(lambda failure: None)
        d.cancel()
        self.reactor.advance(0)
        self.assertEqual(self.written(), b"")


class InFlightTests(TestCase):
    """
    The count of requests in flight over real loopback connections.
    """

    @inlineCallbacks
    def fetchAll(self, script: Any, count: int) -> Any:
        """
        Make C{count} requests at once to a server running C{script}.

        @return: A Deferred of each request's body or exception.
        """
        server = ScriptedServer(reactor, script).start()
        self.addCleanup(server.stop)
        pool = HTTPConnectionPool(reactor, maxConnectionsPerHost=count)
        self.addCleanup(pool.close)
        pool.retryAutomatically = False
        agent = PooledAgent(reactor, pool=pool)

        def fetch(_: Any) -> Any:
            d = agent.request(b"GET", server.url())
            d.addCallback(readBody)
            return d.addErrback(lambda failure: failure.value)

        results = yield gatherResults([fetch(n) for n in range(count)])
        return results

    @inlineCallbacks
    def test_answered(self) -> Any:
        """
        Answered requests, more than the threshold at once, count
        themselves out, and every body is its own.
        """
        batch = turnBatch(reactor)
        before = batch.busy
        count = TurnBatch.threshold * 2
        results = yield self.fetchAll(okScript, count)
        self.assertEqual(results, [b"ok"] * count)
        self.assertEqual(batch.busy, before)

    @inlineCallbacks
    def test_lost(self) -> Any:
        """
        Requests whose connection is closed unanswered count themselves
        out too.
        """
        batch = turnBatch(reactor)
        before = batch.busy

        def drop(connection: Any, request: Any) -> None:
            connection.abort()

        count = TurnBatch.threshold * 2
        results = yield self.fetchAll(drop, count)
        self.assertEqual(len(results), count)
        self.assertFalse([r for r in results if isinstance(r, bytes)])
        self.assertEqual(batch.busy, before)
