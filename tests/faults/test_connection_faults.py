"""
Faults in the life of a connection: closed while idle, closed under a new
request, refused, answered early, C{Connection: close}, HTTP/1.0 and bytes
arriving on an idle connection (faults 1, 2, 11, 14, 16, 17, 18).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.error import ConnectionRefusedError
from twisted.web._newclient import ResponseNeverReceived
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from pooled_http import errors
from tests.faults._base import FaultTestCase
from tests.support.failures import innermost
from tests.support.protocols import onEachProtocol
from tests.support.servers import (
    ReceivedRequest,
    ScriptedConnection,
    TLSMaterial,
    okScript,
    response,
    unusedPort,
)


def closeIdleAfterFirst(
    connection: ScriptedConnection, request: ReceivedRequest
) -> None:
    """
    Answer, and on the first connection close it soon after (while idle).
    """
    okScript(connection, request)
    if connection.number == 0:
        connection.later(0.05, connection.close)


@onEachProtocol
class IdleCloseTests(FaultTestCase):
    """
    Fault 1: the server closes an idle keep-alive connection.  The pool
    notices, drops it, and the next request (GET or POST) goes out on a new
    connection and succeeds.
    """

    async def _check(
        self, method: bytes, body: bytes | None, tls: bool = False
    ) -> None:
        if tls:
            material = TLSMaterial()
            server = self.startServer(closeIdleAfterFirst, tls=material.serverOptions())
            pool = self.makePool()
            agent = self.makeAgent(pool, contextFactory=material.clientPolicy())
        else:
            server = self.startServer(closeIdleAfterFirst)
            pool = self.makePool()
            agent = self.makeAgent(pool)
        self.assertEqual(await self.fetchOk(agent, server.url()), b"ok")
        await self.waitLost(server, 0)
        await self.assertPoolAtRest(pool, idle=0)
        self.assertEqual(await self.fetchOk(agent, server.url(), method, body), b"ok")
        self.assertEqual(len(server.connections), 2)
        self.assertEqual([len(c.requests) for c in server.connections], [1, 1])
        self.assertEqual(server.connections[1].requests[0].method, method)
        self.assertEqual(max(server.processed.values()), 1)
        await self.assertPoolAtRest(pool, idle=1)

    async def test_getAfterIdleClose(self) -> None:
        await self._check(b"GET", None)

    async def test_postAfterIdleClose(self) -> None:
        await self._check(b"POST", b"x" * 100)

    async def test_postAfterIdleCloseTLS(self) -> None:
        """
        Over TLS the server's close begins with a close_notify alert; the
        connection is dropped all the same.
        """
        await self._check(b"POST", b"x" * 100, tls=True)


def reactorTurns(count: int) -> defer.Deferred[None]:
    """
    Fire after C{count} turns of the reactor (chained C{callLater(0)}).
    """
    d: defer.Deferred[None] = defer.Deferred()

    def step(left: int) -> None:
        if left == 0:
            d.callback(None)
        else:
            reactor.callLater(0, step, left - 1)

    step(count)
    return d


@onEachProtocol
class TLSCloseRaceTests(FaultTestCase):
    """
    Fault 1 at the worst moment, over TLS: the server sends close_notify
    and closes TCP (as nginx does when its keep-alive timeout expires), and
    the next request is made 0 to 5 reactor turns later - including the
    turn in which the client has read close_notify but its TCP connection
    is not closed yet.  Such a connection is never handed out: a GET
    always succeeds, a POST succeeds or fails with L{ResponseNeverReceived}
    (it met the close on the wire), never with an internal error of its
    body producer.
    """

    async def test_requestRightAfterCloseNotify(self) -> None:
        material = TLSMaterial()
        server = self.startServer(tls=material.serverOptions())
        pool = self.makePool()
        agent = self.makeAgent(pool, contextFactory=material.clientPolicy())
        outcomes: list[tuple[bytes, int, object]] = []
        for method, body in [(b"GET", None), (b"POST", b"x" * 100)]:
            for turns in range(6):
                await self.fetchOk(agent, server.url())
                await self.assertPoolAtRest(pool, idle=1)
                [connection] = list(server.open)
                connection.closeAtOnce()
                await reactorTurns(turns)
                try:
                    outcomes.append(
                        (
                            method,
                            turns,
                            await self.fetchOk(agent, server.url(), method, body),
                        )
                    )
                except ResponseNeverReceived as e:
                    self.assertEqual(
                        method, b"POST", f"GET failed after {turns} turns: {e!r}"
                    )
                    outcomes.append((method, turns, e))
                except Exception as e:
                    self.fail(f"{method!r} after {turns} turns: {e!r} {innermost(e)!r}")
                await self.assertPoolAtRest(pool)
                for open_ in list(server.open):
                    open_.close()
                await self.waitFor(lambda: not server.open, "server connections closed")
                await self.assertPoolAtRest(pool, idle=0)
        self.assertEqual(max(server.processed.values()), 1)


def closeReusedRequests(
    connection: ScriptedConnection, request: ReceivedRequest
) -> None:
    """
    Answer the first request of a connection; read any later one and close
    without answering.
    """
    if request.index == 0:
        okScript(connection, request)
    else:
        connection.close()


def closeAllButFirst(connection: ScriptedConnection, request: ReceivedRequest) -> None:
    """
    Answer only the very first request the server gets; read every other
    one and close without answering.
    """
    if connection.number == 0 and request.index == 0:
        okScript(connection, request)
    else:
        connection.close()


@onEachProtocol
class ClosedUnderRequestTests(FaultTestCase):
    """
    Fault 2: the server reads the next request on a reused connection and
    closes without answering.  A GET is retried once on a new connection; a
    POST is not retried and fails with L{ResponseNeverReceived}.
    """

    async def test_getRetriedOnce(self) -> None:
        server = self.startServer(closeReusedRequests)
        pool = self.makePool()
        agent = self.makeAgent(pool)
        await self.fetchOk(agent, server.url())
        self.assertEqual(await self.fetchOk(agent, server.url()), b"ok")
        self.assertEqual([len(c.requests) for c in server.connections], [2, 1])
        self.assertFalse(server.connections[0].isOpen)
        self.assertEqual(pool.stats().retried, 1)
        await self.assertPoolAtRest(pool, idle=1)

    async def test_getRetriedOnlyOnce(self) -> None:
        server = self.startServer(closeAllButFirst)
        pool = self.makePool()
        agent = self.makeAgent(pool)
        await self.fetchOk(agent, server.url())
        failure = await self.failureOf(self.request(agent, server.url()))
        self.assertIsInstance(failure, ResponseNeverReceived)
        self.assertEqual([len(c.requests) for c in server.connections], [2, 1])
        await self.assertPoolAtRest(pool, idle=0)

    async def test_postNotRetried(self) -> None:
        server = self.startServer(closeReusedRequests)
        pool = self.makePool()
        agent = self.makeAgent(pool)
        await self.fetchOk(agent, server.url())
        failure = await self.failureOf(
            self.request(agent, server.url(), b"POST", b"x" * 100)
        )
        self.assertIsInstance(failure, ResponseNeverReceived)
        self.assertTrue(errors.isTemporaryNetworkError(failure))
        self.assertEqual(len(server.connections), 1)
        self.assertEqual(max(server.processed.values()), 1)
        # The failed connection is gone; the next request opens a new one.
        await self.assertPoolAtRest(pool, idle=0)
        self.assertEqual(await self.fetchOk(agent, server.url()), b"ok")
        self.assertEqual([len(c.requests) for c in server.connections], [2, 1])
        await self.assertPoolAtRest(pool, idle=1)


@onEachProtocol
class RefusedTests(FaultTestCase):
    """
    Fault 11: nothing listens on the port.  The request fails with
    L{ConnectionRefusedError}, a temporary error; the pool holds nothing.
    """

    async def test_refused(self) -> None:
        pool = self.makePool()
        agent = self.makeAgent(pool)
        url = b"http://127.0.0.1:%d/" % (unusedPort(),)
        failure = await self.failureOf(self.request(agent, url))
        self.assertIsInstance(failure, ConnectionRefusedError)
        self.assertTrue(errors.isTemporaryNetworkError(failure))
        await self.assertPoolAtRest(pool, idle=0)
        stats = pool.stats()
        self.assertEqual((stats.opened, stats.failed), (0, 1))


@implementer(IBodyProducer)
class SteadyProducer:
    """
    A body producer that writes C{pieces} pieces of C{size} bytes, one every
    C{interval} seconds, and records whether it was stopped.
    """

    length = UNKNOWN_LENGTH

    def __init__(self, pieces: int = 200, size: int = 16384, interval: float = 0.005):
        self.pieces = pieces
        self.size = size
        self.interval = interval
        self.written = 0
        self.stopped = False
        self._call: Any = None
        self._finished: defer.Deferred[None] | None = None

    def startProducing(self, consumer: Any) -> defer.Deferred[None]:
        self._consumer = consumer
        self._finished = defer.Deferred()
        self._call = reactor.callLater(0, self._step)
        return self._finished

    def _step(self) -> None:
        self._call = None
        self._consumer.write(b"x" * self.size)
        self.written += 1
        if self.written >= self.pieces:
            finished, self._finished = self._finished, None
            assert finished is not None
            finished.callback(None)
        else:
            self._call = reactor.callLater(self.interval, self._step)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        self.stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None


def answerEarly(connection: ScriptedConnection, request: ReceivedRequest) -> None:
    """
    On a request's head, answer 413 with C{Connection: close} and close,
    before the body has arrived.
    """
    connection.send(
        response(413, b"too big", [(b"Connection", b"close")], reason=b"Too Large")
    )
    connection.close()


@onEachProtocol
class EarlyAnswerTests(FaultTestCase):
    """
    Fault 14: the server answers and closes before the request body is fully
    sent.  The caller gets the server's answer (413), the body producer is
    stopped, the request is not sent again and the connection is not reused.
    """

    async def test_answeredBeforeBodySent(self) -> None:
        server = self.startServer(lambda c, r: None, onHeaders=answerEarly)
        pool = self.makePool()
        agent = self.makeAgent(pool)
        producer = SteadyProducer()
        d = agent.request(
            b"POST", server.url(), Headers({b"X-Request-Id": [b"early"]}), producer
        )
        try:
            response_ = await d
        except Exception as e:
            self.fail(f"the server's 413 answer was lost: {e!r} {innermost(e)!r}")
        self.assertEqual(response_.code, 413)
        await self.waitFor(lambda: producer.stopped, "body producer stopped")
        await self.waitLost(server, 0)
        self.assertEqual(len(server.connections), 1)
        await self.assertPoolAtRest(pool, idle=0)


def connectionClose(connection: ScriptedConnection, request: ReceivedRequest) -> None:
    """
    Answer with C{Connection: close} but leave closing to the client.
    """
    connection.send(response(body=b"ok", headers=[(b"Connection", b"close")]))


@onEachProtocol
class ConnectionCloseTests(FaultTestCase):
    """
    Fault 16: C{Connection: close} in the response.  The response is
    delivered, the client closes the connection and never reuses it.
    """

    async def test_connectionClose(self) -> None:
        server = self.startServer(connectionClose)
        pool = self.makePool()
        agent = self.makeAgent(pool)
        self.assertEqual(await self.fetchOk(agent, server.url()), b"ok")
        await self.waitLost(server, 0)
        self.assertEqual(await self.fetchOk(agent, server.url()), b"ok")
        self.assertEqual([len(c.requests) for c in server.connections], [1, 1])
        await self.waitLost(server, 1)
        await self.assertPoolAtRest(pool, idle=0)


def http10ByEOF(connection: ScriptedConnection, request: ReceivedRequest) -> None:
    """
    An HTTP/1.0 server: no Content-Length, the body ends when the server
    closes.
    """
    connection.send(
        response(body=b"body ended by EOF", version=b"HTTP/1.0", contentLength=None)
    )
    connection.close()


def http10WithLength(connection: ScriptedConnection, request: ReceivedRequest) -> None:
    """
    An HTTP/1.0 server that sends a Content-Length but no keep-alive: it
    closes a little later and never answers a second request.
    """
    if request.index == 0:
        connection.send(response(body=b"ok", version=b"HTTP/1.0"))
        connection.later(0.2, connection.close)


@onEachProtocol
class HTTP10Tests(FaultTestCase):
    """
    Fault 17: an HTTP/1.0 server.  A body ended by EOF is delivered whole
    (Twisted marks its end with L{PotentialDataLoss}, as for any body
    without a length); an HTTP/1.0 connection without keep-alive is never
    reused.
    """

    async def test_bodyEndedByEOF(self) -> None:
        server = self.startServer(http10ByEOF)
        pool = self.makePool()
        agent = self.makeAgent(pool)
        for _ in range(2):
            response_, result = await self.fetch(agent, server.url())
            self.assertEqual(response_.code, 200)
            self.assertEqual(result.body, b"body ended by EOF")
            self.assertTrue(result.reason.check(PotentialDataLoss))
        self.assertEqual([len(c.requests) for c in server.connections], [1, 1])
        await self.assertPoolAtRest(pool, idle=0)

    async def test_http10WithoutKeepAliveNotReused(self) -> None:
        server = self.startServer(http10WithLength)
        pool = self.makePool()
        agent = self.makeAgent(pool)
        self.assertEqual(await self.fetchOk(agent, server.url()), b"ok")
        self.assertEqual(await self.fetchOk(agent, server.url()), b"ok")
        self.assertEqual([len(c.requests) for c in server.connections], [1, 1])
        await self.waitLost(server, 0)
        await self.waitLost(server, 1)
        await self.assertPoolAtRest(pool, idle=0)


def bytesWhileIdle(connection: ScriptedConnection, request: ReceivedRequest) -> None:
    """
    Answer; on the first connection, send an unsolicited response a little
    later while the connection is idle.
    """
    okScript(connection, request)
    if connection.number == 0:
        connection.later(0.05, connection.send, response(body=b"unsolicited"))


@onEachProtocol
class BytesWhileIdleTests(FaultTestCase):
    """
    Fault 18: bytes arrive on an idle connection.  The pool closes that
    connection; the next request goes out on a new one and gets its own
    answer, never the stray bytes.
    """

    async def test_bytesWhileIdle(self) -> None:
        server = self.startServer(bytesWhileIdle)
        pool = self.makePool()
        agent = self.makeAgent(pool)
        self.assertEqual(await self.fetchOk(agent, server.url()), b"ok")
        await self.waitLost(server, 0)
        await self.assertPoolAtRest(pool, idle=0)
        self.assertEqual(await self.fetchOk(agent, server.url()), b"ok")
        self.assertEqual([len(c.requests) for c in server.connections], [1, 1])
        await self.assertPoolAtRest(pool, idle=1)
