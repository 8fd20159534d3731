"""
Faults in what the server sends back: a body cut short or reset, a
malformed status line, oversized headers, bad Content-Length, broken chunked
framing, a chunked HEAD response and 1xx interim responses (faults 3, 4, 7,
8, 9, 10, 15).
"""

from __future__ import annotations

import tracemalloc
from typing import Any

from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.web._newclient import ParseError, ResponseFailed, ResponseNeverReceived
from twisted.web.client import Agent

from pooled_http import errors
from tests.faults._base import FaultTestCase
from tests.support.failures import innermost
from tests.support.protocols import onEachProtocol
from tests.support.servers import (
    ReceivedRequest,
    Script,
    ScriptedConnection,
    ScriptedServer,
    okScript,
    response,
)


def onFirstConnection(
    fault: bytes | None = None, then: str = "close", delay: float = 0.0
) -> Script:
    """
    A script: on the first request of the first connection send C{fault}
    and then C{"close"}, C{"reset"} (after C{delay}) or C{"stay"}; answer
    every other request well.

    @param fault: The bytes to send.
    @param then: What to do after sending them.
    @param delay: Seconds to wait before closing or resetting.
    """

    def script(connection: ScriptedConnection, request: ReceivedRequest) -> None:
        if connection.number != 0 or request.index != 0:
            okScript(connection, request)
            return
        if fault:
            connection.send(fault)
        action = {"close": connection.close, "reset": connection.reset}.get(then)
        if action is not None:
            if delay:
                connection.later(delay, action)
            else:
                action()

    return script


def onSecondRequest(fault: bytes) -> Script:
    """
    A script that answers the first request of the first connection well
    and sends C{fault} for the second one (so it fails on a reused
    connection), answering every other request well.
    """

    def script(connection: ScriptedConnection, request: ReceivedRequest) -> None:
        if connection.number == 0 and request.index == 1:
            connection.send(fault)
        else:
            okScript(connection, request)

    return script


class ResponseFaultTestCase(FaultTestCase):
    """
    Shared checks: the faulty connection is lost and never reused, and the
    next request succeeds on a new connection.
    """

    async def assertNextRequestUsesNewConnection(
        self,
        server: ScriptedServer,
        pool: Any,
        agent: Agent,
        failedConnection: int = 0,
    ) -> None:
        """
        The failed connection is lost, the pool holds nothing, and the next
        request succeeds on a new connection.
        """
        await self.waitLost(server, failedConnection)
        await self.assertPoolAtRest(pool, idle=0)
        failedRequests = len(server.connections[failedConnection].requests)
        self.assertEqual(await self.fetchOk(agent, server.url()), b"ok")
        self.assertEqual(
            len(server.connections[failedConnection].requests), failedRequests
        )
        self.assertEqual(len(server.connections), failedConnection + 2)
        await self.assertPoolAtRest(pool, idle=1)


@onEachProtocol
class TruncatedBodyTests(ResponseFaultTestCase):
    """
    Fault 3: headers announce 1,000 bytes; the server sends 100 and closes.
    The response is delivered, its body fails with L{ResponseFailed} (data
    loss), nothing is retried.
    """

    async def test_closedBeforeBodyEnds(self) -> None:
        server = self.startServer(
            onFirstConnection(response(body=b"x" * 100, contentLength=1000))
        )
        pool = self.makePool()
        agent = self.makeAgent(pool)
        response_, result = await self.fetch(agent, server.url())
        self.assertEqual(response_.code, 200)
        self.assertEqual(result.body, b"x" * 100)
        self.assertIsInstance(result.reason.value, ResponseFailed)
        self.assertTrue(
            any(isinstance(e, ConnectionDone) for e in innermost(result.reason.value))
        )
        await self.assertNextRequestUsesNewConnection(server, pool, agent)


@onEachProtocol
class ResetMidBodyTests(ResponseFaultTestCase):
    """
    Fault 4: the connection is reset (RST, C{SO_LINGER} 0) in the middle of
    the body.  The body fails with L{ResponseFailed} wrapping
    L{ConnectionLost}; nothing is retried.
    """

    async def test_resetMidBody(self) -> None:
        server = self.startServer(
            onFirstConnection(
                response(body=b"x" * 100, contentLength=1000), "reset", delay=0.05
            )
        )
        pool = self.makePool()
        agent = self.makeAgent(pool)
        response_, result = await self.fetch(agent, server.url())
        self.assertEqual(response_.code, 200)
        self.assertIsInstance(result.reason.value, ResponseFailed)
        self.assertTrue(
            any(isinstance(e, ConnectionLost) for e in innermost(result.reason.value)),
            innermost(result.reason.value),
        )
        self.assertTrue(errors.isTemporaryNetworkError(result.reason))
        await self.assertNextRequestUsesNewConnection(server, pool, agent)


@onEachProtocol
class MalformedStatusTests(ResponseFaultTestCase):
    """
    Fault 7: a malformed status line.  The request fails with
    L{ResponseFailed} wrapping L{ParseError}; it is not retried even on a
    reused connection, because a response byte arrived.
    """

    async def _malformed(self, statusLine: bytes, reused: bool) -> None:
        fault = statusLine + b"\r\nContent-Length: 2\r\n\r\nok"
        script = onSecondRequest(fault) if reused else onFirstConnection(fault, "stay")
        server = self.startServer(script)
        pool = self.makePool()
        agent = self.makeAgent(pool)
        if reused:
            await self.fetchOk(agent, server.url())
        failure = await self.failureOf(self.request(agent, server.url()))
        self.assertIsInstance(failure, ResponseFailed)
        self.assertNotIsInstance(failure, ResponseNeverReceived)
        self.assertTrue(any(isinstance(e, ParseError) for e in innermost(failure)))
        self.assertFalse(errors.isTemporaryNetworkError(failure))
        self.assertEqual(len(server.connections), 1)
        await self.assertNextRequestUsesNewConnection(server, pool, agent)

    async def test_garbageStatusLine(self) -> None:
        await self._malformed(b"garbage", reused=False)

    async def test_nonNumericStatus(self) -> None:
        await self._malformed(b"HTTP/1.1 OK two-hundred", reused=False)

    async def test_malformedOnReusedConnectionNotRetried(self) -> None:
        await self._malformed(b"HTTP/1.1 abc OK", reused=True)


@onEachProtocol
class HugeHeaderTests(ResponseFaultTestCase):
    """
    Fault 8: a header line of 1 MB, and 100,000 header lines.  The request
    fails cleanly with a L{ResponseFailed} wrapping a L{ParseError} (the
    pool's L{errors.ResponseHeadersTooLargeError} past C{maxHeaderBytes}),
    not a temporary error; the connection is closed, and memory stays
    bounded while the client parses.
    """

    async def _huge(self, head: bytes) -> None:
        server = self.startServer(onFirstConnection(head, "stay"))
        pool = self.makePool()
        agent = self.makeAgent(pool)
        tracemalloc.start()
        try:
            failure = await self.failureOf(self.request(agent, server.url()))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        self.assertIsInstance(failure, ResponseFailed)
        # The failure must say the response was malformed (not that the
        # connection "was closed cleanly"), and must not invite a retry.
        self.assertTrue(
            any(isinstance(e, ParseError) for e in innermost(failure)),
            innermost(failure),
        )
        self.assertFalse(errors.isTemporaryNetworkError(failure))
        self.assertLess(peak, 8 * 1024 * 1024, f"peak {peak} bytes while parsing")
        await self.assertNextRequestUsesNewConnection(server, pool, agent)

    async def test_oneMegabyteHeaderLine(self) -> None:
        await self._huge(
            b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (1024 * 1024) + b"\r\n"
            b"Content-Length: 2\r\n\r\nok"
        )

    async def test_hundredThousandHeaderLines(self) -> None:
        lines = b"".join(b"X-H%d: v\r\n" % (i,) for i in range(100_000))
        await self._huge(
            b"HTTP/1.1 200 OK\r\n" + lines + b"Content-Length: 2\r\n\r\nok"
        )


@onEachProtocol
class ContentLengthTests(ResponseFaultTestCase):
    """
    Fault 9: conflicting or negative Content-Length.  The request fails with
    L{ResponseFailed} (Twisted refuses to guess the body's length), the
    connection is closed.
    """

    async def _bad(self, headers: bytes) -> None:
        server = self.startServer(
            onFirstConnection(b"HTTP/1.1 200 OK\r\n" + headers + b"\r\nokokok", "stay")
        )
        pool = self.makePool()
        agent = self.makeAgent(pool)
        failure = await self.failureOf(self.request(agent, server.url()))
        self.assertIsInstance(failure, ResponseFailed)
        self.assertTrue(any(isinstance(e, ValueError) for e in innermost(failure)))
        self.assertFalse(errors.isTemporaryNetworkError(failure))
        await self.assertNextRequestUsesNewConnection(server, pool, agent)

    async def test_conflicting(self) -> None:
        await self._bad(b"Content-Length: 2\r\nContent-Length: 6\r\n")

    async def test_conflictingInOneField(self) -> None:
        await self._bad(b"Content-Length: 2, 6\r\n")

    async def test_negative(self) -> None:
        await self._bad(b"Content-Length: -2\r\n")


@onEachProtocol
class ChunkedTests(ResponseFaultTestCase):
    """
    Fault 10: broken chunked framing fails the body with L{ResponseFailed};
    a chunked body sent after a HEAD response is never read as the answer to
    the next request.
    """

    async def _brokenChunked(self, body: bytes) -> None:
        server = self.startServer(
            onFirstConnection(
                response(
                    body=body,
                    contentLength=None,
                    headers=[(b"Transfer-Encoding", b"chunked")],
                ),
                "stay",
            )
        )
        pool = self.makePool()
        agent = self.makeAgent(pool)
        response_, result = await self.fetch(agent, server.url())
        self.assertEqual(response_.code, 200)
        self.assertIsInstance(result.reason.value, ResponseFailed)
        await self.assertNextRequestUsesNewConnection(server, pool, agent)

    async def test_brokenChunkSize(self) -> None:
        await self._brokenChunked(b"zz\r\nhello\r\n0\r\n\r\n")

    async def test_chunkLongerThanAnnounced(self) -> None:
        await self._brokenChunked(b"3\r\nhello\r\n0\r\n\r\n")

    async def _chunkedHead(self, delay: float) -> None:
        head = response(
            contentLength=None, body=b"", headers=[(b"Transfer-Encoding", b"chunked")]
        )
        stray = b"5\r\nhello\r\n0\r\n\r\n"

        def script(connection: ScriptedConnection, request: ReceivedRequest) -> None:
            if request.method != b"HEAD":
                okScript(connection, request)
            elif delay:
                connection.send(head)
                connection.later(delay, connection.send, stray)
            else:
                connection.send(head + stray)

        server = self.startServer(script)
        pool = self.makePool()
        agent = self.makeAgent(pool)
        response_, result = await self.fetch(agent, server.url(), b"HEAD")
        self.assertEqual((response_.code, result.body), (200, b""))
        self.assertTrue(result.complete)
        if delay:
            await self.waitLost(server, 0)
        for _ in range(3):
            self.assertEqual(await self.fetchOk(agent, server.url()), b"ok")
        await self.assertPoolAtRest(pool, idle=1)

    async def test_chunkedHeadResponse(self) -> None:
        await self._chunkedHead(0.0)

    async def test_chunkedHeadResponseBodyLater(self) -> None:
        await self._chunkedHead(0.05)


def interimThenFinal(connection: ScriptedConnection, request: ReceivedRequest) -> None:
    """
    Send 100 Continue, 102 Processing and 103 Early Hints (in separate
    writes), then the final response.
    """
    connection.send(b"HTTP/1.1 100 Continue\r\n\r\n")
    connection.later(0.01, connection.send, b"HTTP/1.1 102 Processing\r\n\r\n")
    connection.later(
        0.02, connection.send, b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
    )
    connection.later(0.03, okScript, connection, request)


@onEachProtocol
class InterimResponseTests(FaultTestCase):
    """
    Fault 15: 1xx interim responses before the final one are skipped; the
    caller gets the final response and the connection is reused.
    """

    async def test_interimResponses(self) -> None:
        server = self.startServer(interimThenFinal)
        pool = self.makePool()
        agent = self.makeAgent(pool)
        for _ in range(2):
            self.assertEqual(await self.fetchOk(agent, server.url()), b"ok")
        self.assertEqual([len(c.requests) for c in server.connections], [2])
        await self.assertPoolAtRest(pool, idle=1)
