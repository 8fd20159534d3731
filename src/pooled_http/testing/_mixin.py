"""
The trial mixin: a pool per test, checked after it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred

if TYPE_CHECKING:  # pragma: no cover
    from treq.client import HTTPClient


from ._local import LocalServer, startLocalServer
from ._rest import assertPoolAtRest


class PoolTestMixin:
    """
    A mixin for trial test cases: each test gets its own pool on the global
    reactor (C{self.pool}) and a L{pooled_http.PooledAgent} over it
    (C{self.agent}).  After the test the pool is closed and the test fails
    if anything was left (L{assertPoolAtRest}).  Servers started with
    L{startLocalServer} here are stopped after the test, before the pool is
    closed.

    Use it before C{TestCase}::

        class MyTests(PoolTestMixin, TestCase):
            poolOptions = {"maxConnectionsPerHost": 2}

    @cvar poolOptions: Keyword arguments for the pool.
    @ivar pool: The test's L{pooled_http.HTTPConnectionPool}.
    @ivar agent: A L{pooled_http.PooledAgent} over it.
    """

    poolOptions: dict[str, Any] = {}

    def setUp(self) -> Any:
        """
        Make the pool and the agent, and register the pool's shutdown and
        check as a cleanup.
        """
        from twisted.internet import reactor

        from .._agent import PooledAgent
        from .._pool import HTTPConnectionPool

        result = super().setUp()  # type: ignore[misc]
        self.pool = HTTPConnectionPool(reactor, **self.poolOptions)
        self.agent = PooledAgent(reactor, pool=self.pool)
        testCase: Any = self
        testCase.addCleanup(self._closePool)
        return result

    def _closePool(self) -> Deferred[None]:
        def check(_: object) -> None:
            assertPoolAtRest(self.pool)

        return self.pool.close().addCallback(check)

    def startLocalServer(
        self, resource: Any = None, *, tls: bool = False
    ) -> LocalServer:
        """
        Start a L{LocalServer} stopped after the test.

        @param resource: What to serve (see L{startLocalServer}).
        @param tls: Whether to speak HTTPS.
        @return: The server.
        """
        server = startLocalServer(resource, tls=tls)
        testCase: Any = self
        testCase.addCleanup(server.stop)
        return server

    def treqClient(self, server: LocalServer | None = None) -> HTTPClient:
        """
        A C{treq.HTTPClient} over the test's pool, trusting
        C{server}'s certificate if it is an HTTPS L{LocalServer}.
        """
        from treq.client import HTTPClient
        from twisted.internet import reactor

        from .._agent import PooledAgent

        if server is None or server.policy is None:
            return HTTPClient(self.agent)  # type: ignore[arg-type]
        agent: Any = PooledAgent(reactor, pool=self.pool, contextFactory=server.policy)
        return HTTPClient(agent)
