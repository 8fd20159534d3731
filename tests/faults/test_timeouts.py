"""
Faults only a timeout can end: a server that never sends headers, one that
drips its body and stalls, and a caller that never reads a body (faults 5,
6, 19).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import defer, reactor, task
from twisted.web._newclient import ResponseFailed, ResponseNeverReceived
from twisted.web.iweb import IResponse

from pooled_http import errors
from tests.faults._base import FaultTestCase
from tests.support.failures import innermost
from tests.support.protocols import onEachProtocol
from tests.support.servers import (
    ReceivedRequest,
    Script,
    ScriptedConnection,
    collectBody,
    okScript,
    response,
)


def silentOn(
    predicate: Callable[[ScriptedConnection, ReceivedRequest], bool],
) -> Script:
    """
    A script that never answers requests matching C{predicate} and answers
    the others well.
    """

    def script(connection: ScriptedConnection, request: ReceivedRequest) -> None:
        if not predicate(connection, request):
            okScript(connection, request)

    return script


@onEachProtocol
class NoHeadersTests(FaultTestCase):
    """
    Fault 5: the server never sends headers.  After C{responseTimeout} the
    request fails with L{errors.ResponseTimeoutError} (a
    L{ResponseNeverReceived}), the connection is aborted and the request is
    not retried (the server may be working on it).
    """

    async def _silent(self, reused: bool, method: bytes) -> None:
        first = 1 if reused else 0
        server = self.startServer(
            silentOn(lambda c, r: c.number == 0 and r.index == first)
        )
        pool = self.makePool(responseTimeout=0.3)
        agent = self.makeAgent(pool)
        if reused:
            await self.fetchOk(agent, server.url())
        body = b"x" * 10 if method == b"POST" else None
        failure = await self.failureOf(self.request(agent, server.url(), method, body))
        self.assertIsInstance(failure, errors.ResponseTimeoutError)
        self.assertIsInstance(failure, ResponseNeverReceived)
        assert isinstance(failure, errors.ResponseTimeoutError)
        self.assertEqual(failure.timeout, 0.3)
        self.assertTrue(errors.isTemporaryNetworkError(failure))
        await self.waitLost(server, 0)
        self.assertEqual(len(server.connections), 1)
        self.assertEqual(max(server.processed.values()), 1)
        await self.assertPoolAtRest(pool, idle=0)
        self.assertGreaterEqual(pool.stats().timedOut, 1)
        self.assertEqual(await self.fetchOk(agent, server.url()), b"ok")
        self.assertEqual(len(server.connections), 2)
        await self.assertPoolAtRest(pool, idle=1)

    async def test_newConnection(self) -> None:
        await self._silent(reused=False, method=b"GET")

    async def test_reusedConnectionGetNotRetried(self) -> None:
        await self._silent(reused=True, method=b"GET")

    async def test_reusedConnectionPost(self) -> None:
        await self._silent(reused=True, method=b"POST")


def dripThenStall(connection: ScriptedConnection, request: ReceivedRequest) -> None:
    """
    On the first connection announce 1,000 bytes, send 10 every 0.1 s six
    times (0.6 s in all), then stall.  Answer well elsewhere.
    """
    if connection.number != 0:
        okScript(connection, request)
        return
    connection.send(response(body=b"", contentLength=1000))
    for i in range(6):
        connection.later(0.1 * (i + 1), connection.send, b"d" * 10)


@onEachProtocol
class DripThenStallTests(FaultTestCase):
    """
    Fault 6: the server drips the body, then stalls.  C{readTimeout} counts
    from the last byte, so the drip (slower in total than the timeout) is
    read whole; the stall then fails the body with
    L{errors.ReadTimeoutError} (a L{ResponseFailed}) and the connection is
    aborted.
    """

    async def test_dripThenStall(self) -> None:
        server = self.startServer(dripThenStall)
        pool = self.makePool(readTimeout=0.3)
        agent = self.makeAgent(pool)
        response_, result = await self.fetch(agent, server.url())
        self.assertEqual(response_.code, 200)
        self.assertEqual(result.body, b"d" * 60)
        failure = result.reason.value
        self.assertIsInstance(failure, ResponseFailed)
        self.assertTrue(
            isinstance(failure, errors.ReadTimeoutError)
            or any(isinstance(e, errors.ReadTimeoutError) for e in innermost(failure)),
            f"{failure!r} {innermost(failure)!r}",
        )
        await self.waitLost(server, 0)
        await self.assertPoolAtRest(pool, idle=0)
        self.assertEqual(await self.fetchOk(agent, server.url()), b"ok")
        self.assertEqual([len(c.requests) for c in server.connections], [1, 1])
        await self.assertPoolAtRest(pool, idle=1)


def bigBodyOnFirst(connection: ScriptedConnection, request: ReceivedRequest) -> None:
    """
    On the first connection, answer with a 256 kB body; answer well
    elsewhere.
    """
    if connection.number == 0:
        connection.send(response(body=b"b" * 262144))
    else:
        okScript(connection, request)


@onEachProtocol
class UnreadBodyTests(FaultTestCase):
    """
    Fault 19: the caller never reads a response body.  With one connection
    allowed, a second request waits; C{readTimeout} aborts the first
    connection, frees its slot, and the second request is served on a new
    connection.  Reading the first body afterwards fails with
    L{errors.ReadTimeoutError}.
    """

    async def test_unreadBodyFreesSlot(self) -> None:
        server = self.startServer(bigBodyOnFirst)
        pool = self.makePool(maxConnectionsPerHost=1, readTimeout=0.3)
        agent = self.makeAgent(pool)
        unread = await self.request(agent, server.url())
        self.assertEqual(unread.code, 200)
        second = self.request(agent, server.url())
        await task.deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(pool.stats().waiting, 1)
        self.assertEqual(await self.fetchOkFrom(second), b"ok")
        await self.waitLost(server, 0)
        self.assertEqual([len(c.requests) for c in server.connections], [1, 1])
        result = await collectBody(unread)
        self.assertFalse(result.complete)
        failure = result.reason.value
        self.assertTrue(
            isinstance(failure, errors.ReadTimeoutError)
            or any(isinstance(e, errors.ReadTimeoutError) for e in innermost(failure)),
            f"{failure!r} {innermost(failure)!r}",
        )
        await self.assertPoolAtRest(pool, idle=1)

    async def fetchOkFrom(self, d: defer.Deferred[IResponse]) -> bytes:
        """
        Wait for a response and read its body, which must be complete.
        """
        response_ = await d
        result = await collectBody(response_)
        self.assertTrue(result.complete, result.reason)
        return result.body
