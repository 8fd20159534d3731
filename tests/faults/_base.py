"""
The client side of the fault tests: a trial TestCase base that starts
scripted servers and pools, sends requests through a stock
L{twisted.web.client.Agent}, and checks that the pool is back to rest.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from io import BytesIO
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.trial import unittest
from twisted.web.client import Agent, FileBodyProducer
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse

from pooled_http import HTTPConnectionPool
from tests.support.servers import BodyResult, ScriptedServer, collectBody, okScript

__all__ = ["FaultTestCase"]

_ids = itertools.count(1)


class FaultTestCase(unittest.TestCase):
    """
    Base class of the fault tests (real reactor, loopback only).

    @cvar protocol: The wire protocol of the pools it makes (see
        L{tests.support.protocols.onEachProtocol}).
    """

    timeout = 15
    protocol = "auto"

    def startServer(
        self, script: Callable[..., None] = okScript, **kwargs: Any
    ) -> ScriptedServer:
        """
        Start a L{ScriptedServer}, stopped when the test ends.

        @param script: The server's script.
        @param kwargs: Passed to L{ScriptedServer}.
        """
        server = ScriptedServer(reactor, script, **kwargs).start()
        self.addCleanup(server.stop)
        return server

    def makePool(self, **kwargs: Any) -> Any:
        """
        Make a L{pooled_http.HTTPConnectionPool} on the real reactor,
        speaking L{protocol} unless C{kwargs} say another, closed when the
        test ends.

        @param kwargs: Pool options.
        """
        protocol = kwargs.setdefault("protocol", self.protocol)
        pool = HTTPConnectionPool(reactor, **kwargs)
        if protocol != "auto":
            self.assertEqual(pool.protocol, protocol)
        self.addCleanup(pool.close)
        return pool

    def makeAgent(self, pool: Any, **kwargs: Any) -> Agent:
        """
        A stock L{Agent} using C{pool}.

        @param pool: The pool.
        @param kwargs: Passed to L{Agent} (C{reactor} defaults to the real one).
        """
        agentReactor = kwargs.pop("reactor", reactor)
        return Agent(agentReactor, pool=pool, **kwargs)

    def request(
        self,
        agent: Agent,
        url: bytes,
        method: bytes = b"GET",
        body: bytes | None = None,
        requestId: bytes | None = None,
    ) -> defer.Deferred[IResponse]:
        """
        Send a request with a unique C{X-Request-Id}.

        @param agent: The agent.
        @param url: The URL.
        @param method: The method.
        @param body: The body, or L{None} for none.
        @param requestId: The id; a fresh one by default.
        """
        if requestId is None:
            requestId = b"r%d" % (next(_ids),)
        producer = FileBodyProducer(BytesIO(body)) if body is not None else None
        return agent.request(
            method, url, Headers({b"X-Request-Id": [requestId]}), producer
        )

    async def fetch(
        self,
        agent: Agent,
        url: bytes,
        method: bytes = b"GET",
        body: bytes | None = None,
    ) -> tuple[IResponse, BodyResult]:
        """
        Send a request and read the whole response body.

        @return: The response and how its body ended.
        """
        response = await self.request(agent, url, method, body)
        result = await collectBody(response)
        return response, result

    async def fetchOk(
        self,
        agent: Agent,
        url: bytes,
        method: bytes = b"GET",
        body: bytes | None = None,
    ) -> bytes:
        """
        Send a request that must succeed with a complete body; return it.
        """
        response, result = await self.fetch(agent, url, method, body)
        self.assertEqual(response.code, 200)
        if not result.complete:
            self.fail(f"body ended with {result.reason.value!r}")
        return result.body

    async def failureOf(self, d: defer.Deferred[Any]) -> BaseException:
        """
        Wait for C{d}; it must fail.  Return the exception.
        """
        try:
            result = await d
        except BaseException as e:
            return e
        self.fail(f"expected a failure, got {result!r}")

    async def waitFor(
        self, predicate: Callable[[], bool], what: str, timeout: float = 3.0
    ) -> None:
        """
        Poll C{predicate} every 10 ms until it is true; fail after C{timeout}.
        """
        for _ in range(int(timeout / 0.01)):
            if predicate():
                return
            await task.deferLater(reactor, 0.01, lambda: None)
        if not predicate():
            self.fail(f"timed out waiting for: {what}")

    async def assertPoolAtRest(self, pool: Any, idle: int | None = None) -> None:
        """
        Wait until nothing is in use, connecting or waiting, then check the
        number of idle connections.

        @param pool: The pool.
        @param idle: The idle connections expected (L{None}: don't check).
        """

        def quiet() -> bool:
            stats = pool.stats()
            return stats.inUse == 0 and stats.connecting == 0 and stats.waiting == 0

        await self.waitFor(quiet, f"pool at rest: {pool!r}")
        if idle is not None:
            await self.waitFor(
                lambda: pool.stats().idle == idle,
                f"{idle} idle connections in {pool!r}",
            )

    async def waitLost(self, server: ScriptedServer, number: int) -> None:
        """
        Wait until connection C{number} of C{server} is lost.
        """
        await self.waitFor(
            lambda: (
                len(server.connections) > number
                and not server.connections[number].isOpen
            ),
            f"server connection {number} lost",
        )
