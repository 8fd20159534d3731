"""
Framing the client cannot be sure of (fault 20): an unasked C{101}, an
impossible chunk size, a repeated C{Content-Length}, and the responses the two wire protocols frame
differently - refused at once by llhttp, read by Twisted's parser, as the
README's list of differences says.  Each test states what each protocol
does; a refused response never leaves its connection in the pool.
"""

from __future__ import annotations

from typing import Any

from twisted.web._newclient import ResponseFailed
from twisted.web.client import Agent

from pooled_http import errors
from tests.faults.test_response_faults import ResponseFaultTestCase, onFirstConnection
from tests.support.failures import innermost
from tests.support.protocols import onEachProtocol
from tests.support.servers import ScriptedServer

_OK_HEAD = b"HTTP/1.1 200 OK\r\n"


@onEachProtocol
class FramingTests(ResponseFaultTestCase):
    """
    Fault 20: framing one protocol refuses and the other may read.  The
    server sends the fault on the first request of its first connection,
    then keeps the connection open and answers later requests well.
    """

    def serve(
        self, fault: bytes, **poolOptions: Any
    ) -> tuple[ScriptedServer, Any, Agent]:
        """
        Start a server sending C{fault} first, a pool and an agent.
        """
        server = self.startServer(onFirstConnection(fault, "stay"))
        pool = self.makePool(**poolOptions)
        return server, pool, self.makeAgent(pool)

    def assertFraming(self, failure: BaseException) -> None:
        """
        C{failure} is a L{ResponseFailed} for a L{errors.FramingError} (a
        Twisted C{ParseError}), not a temporary error.
        """
        self.assertIsInstance(failure, ResponseFailed)
        self.assertTrue(
            any(isinstance(e, errors.FramingError) for e in innermost(failure)),
            innermost(failure),
        )
        self.assertFalse(errors.isTemporaryNetworkError(failure))

    async def assertRefused(
        self, server: ScriptedServer, pool: Any, agent: Agent
    ) -> None:
        """
        The first request fails at once with a L{ParseError}; its
        connection is closed and the next request gets a new one.
        """
        self.assertFraming(await self.failureOf(self.request(agent, server.url())))
        await self.assertNextRequestUsesNewConnection(server, pool, agent)

    async def assertRead(
        self,
        server: ScriptedServer,
        pool: Any,
        agent: Agent,
        body: bytes,
        reused: bool,
    ) -> Any:
        """
        The first response is read whole with C{body}; the next request is
        answered on the same connection if C{reused}, else on a new one.

        @return: The first response.
        """
        response, result = await self.fetch(agent, server.url())
        self.assertEqual((response.code, result.body), (200, body))
        self.assertTrue(result.complete, result.reason)
        if not reused:
            await self.waitLost(server, 0)
        self.assertEqual(await self.fetchOk(agent, server.url()), b"ok")
        self.assertEqual(len(server.connections), 1 if reused else 2)
        await self.assertPoolAtRest(pool, idle=1)
        return response

    async def test_unaskedSwitchingProtocols(self) -> None:
        """
        Both: a C{101} nobody asked for fails the request; the bytes after
        it (another protocol's) are never read as the response.
        """
        server, pool, agent = self.serve(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"
            + _OK_HEAD
            + b"Content-Length: 6\r\n\r\nbogus!"
        )
        await self.assertRefused(server, pool, agent)

    async def test_impossibleChunkSize(self) -> None:
        """
        Both: a chunk size past 64 bits fails the body at once (no timeout
        is set: waiting for the chunk would hang the test), with nothing of
        the chunk delivered.
        """
        server, pool, agent = self.serve(
            _OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
            b"FFFFFFFFFFFFFFFFFFFFFF1\r\nabc"
        )
        response, result = await self.fetch(agent, server.url())
        self.assertEqual((response.code, result.body), (200, b""))
        failure = result.reason.value
        assert failure is not None
        self.assertFraming(failure)
        await self.assertNextRequestUsesNewConnection(server, pool, agent)

    async def test_repeatedContentLength(self) -> None:
        """
        Both: a repeated C{Content-Length}, even with one value, fails the
        request (Twisted's own parser reads it from 24.7 on; ours does not,
        so the outcome does not depend on the Twisted installed).
        """
        server, pool, agent = self.serve(
            _OK_HEAD + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\nok"
        )
        await self.assertRefused(server, pool, agent)

    async def test_contentLengthList(self) -> None:
        """
        Both: a list of lengths in one C{Content-Length} fails the request.
        """
        server, pool, agent = self.serve(_OK_HEAD + b"Content-Length: 2, 2\r\n\r\nok")
        await self.assertRefused(server, pool, agent)

    async def test_lengthBesideChunked(self) -> None:
        """
        llhttp refuses C{Content-Length} beside C{Transfer-Encoding}
        (request smuggling's favourite); Twisted frames by the
        C{Transfer-Encoding}, as RFC 9112 says, and the connection is not
        reused, since the server may have meant the length.
        """
        server, pool, agent = self.serve(
            _OK_HEAD + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"1\r\na\r\n0\r\n\r\n"
        )
        if self.protocol == "twisted":
            await self.assertRead(server, pool, agent, b"a", reused=False)
        else:
            await self.assertRefused(server, pool, agent)

    async def test_bareLineFeeds(self) -> None:
        """
        llhttp wants CRLF line ends (C{lenientHeaders} accepts bare LF);
        Twisted takes bare LF.
        """
        fault = b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"
        server, pool, agent = self.serve(fault)
        if self.protocol == "twisted":
            await self.assertRead(server, pool, agent, b"ok", reused=True)
        else:
            await self.assertRefused(server, pool, agent)

    async def test_foldedHeaderLine(self) -> None:
        """
        llhttp refuses obsolete line folding (also of C{Transfer-Encoding});
        Twisted joins the lines.
        """
        server, pool, agent = self.serve(
            _OK_HEAD + b"X-A: 1\r\n 2\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"
            b"2\r\nok\r\n0\r\n\r\n"
        )
        if self.protocol == "twisted":
            response = await self.assertRead(server, pool, agent, b"ok", reused=True)
            self.assertEqual(response.headers.getRawHeaders(b"x-a"), [b"1 2"])
        else:
            await self.assertRefused(server, pool, agent)

    async def test_headWithConflictingLengths(self) -> None:
        """
        llhttp refuses conflicting C{Content-Length}s on a HEAD response
        too; Twisted reads no body after a HEAD whatever they say, and
        keeps the connection.
        """
        head = _OK_HEAD + b"Content-Length: 9\r\nContent-Length: 8\r\n\r\n"
        server, pool, agent = self.serve(head)
        d = self.request(agent, server.url(), b"HEAD")
        if self.protocol == "twisted":
            self.assertEqual((await d).code, 200)
            self.assertEqual(await self.fetchOk(agent, server.url()), b"ok")
            self.assertEqual(len(server.connections), 1)
            await self.assertPoolAtRest(pool, idle=1)
        else:
            self.assertFraming(await self.failureOf(d))
            await self.assertNextRequestUsesNewConnection(server, pool, agent)

    async def test_lenientHeaders(self) -> None:
        """
        C{lenientHeaders=True} skips a header line without a colon on
        llhttp; Twisted's protocol does not read the setting and fails
        the request, as both do by default.
        """
        server, pool, agent = self.serve(
            _OK_HEAD + b"no colon here\r\nContent-Length: 2\r\n\r\nok",
            lenientHeaders=True,
        )
        if self.protocol == "twisted":
            failure = await self.failureOf(self.request(agent, server.url()))
            self.assertIsInstance(failure, ResponseFailed)
            await self.assertNextRequestUsesNewConnection(server, pool, agent)
        else:
            await self.assertRead(server, pool, agent, b"ok", reused=True)
