"""
The pool under Twisted's stock L{Agent}, unchanged, on a
L{MemoryReactorClock}: queueing, reuse and Twisted's own retry.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import MemoryReactorClock
from twisted.web.client import Agent, readBody

from pooled_http import HTTPConnectionPool
from tests.support.fakes import FakeEndpoint, PoolTestCase, settle


class _EndpointFactory:
    """
    An C{IAgentEndpointFactory} handing out one L{FakeEndpoint} per key.
    """

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.endpoints: dict[tuple[bytes, bytes, int], FakeEndpoint] = {}

    def endpointForURI(self, uri: Any) -> FakeEndpoint:
        """
        The L{FakeEndpoint} of the URI's key.
        """
        key = (uri.scheme, uri.host, uri.port)
        if key not in self.endpoints:
            self.endpoints[key] = FakeEndpoint(self.clock)
        return self.endpoints[key]


class AgentTests(PoolTestCase):
    """
    Through Twisted's stock L{Agent}, unchanged, on a L{MemoryReactorClock}.
    """

    def test_agentQueuesAndReuses(self) -> None:
        """
        Three concurrent requests with a cap of one go over one connection,
        in order, and every body arrives.
        """
        reactor = MemoryReactorClock()
        self.clock = reactor
        pool = HTTPConnectionPool(reactor, maxConnectionsPerHost=1, maxPersistentPerHost=1)
        factory = _EndpointFactory(reactor)
        agent = Agent.usingEndpointFactory(reactor, factory, pool=pool)
        ds = [agent.request(b"GET", b"http://a.example/%d" % (i,)) for i in range(3)]
        endpoint = factory.endpoints[(b"http", b"a.example", 80)]
        self.assertEqual(endpoint.connects, 1)
        attempt = endpoint.attempts[0]
        bodies = []
        for i, d in enumerate(ds):
            self.assertEqual(attempt.transport.requestCount(), i + 1)
            self.assertIn(b"GET /%d HTTP/1.1" % (i,), attempt.transport.value())
            attempt.respond(b"body%d" % (i,))
            response = self.successResultOf(d)
            bodies.append(self.successResultOf(readBody(response)))
        self.assertEqual(bodies, [b"body0", b"body1", b"body2"])
        self.assertEqual(endpoint.connects, 1)
        s = pool.stats()
        self.assertEqual((s.idle, s.inUse, s.opened, s.reused), (1, 0, 1, 2))
        closed = pool.close()
        settle(reactor)
        self.successResultOf(closed)
        self.assertEqual(reactor.getDelayedCalls(), [])

    def test_agentRetry(self) -> None:
        """
        Agent's GET on a stale reused connection is retried on a new one.
        """
        reactor = MemoryReactorClock()
        pool = HTTPConnectionPool(reactor)
        factory = _EndpointFactory(reactor)
        agent = Agent.usingEndpointFactory(reactor, factory, pool=pool)
        d = agent.request(b"GET", b"http://a.example/")
        endpoint = factory.endpoints[(b"http", b"a.example", 80)]
        endpoint.attempts[0].respond()
        self.successResultOf(readBody(self.successResultOf(d)))
        d = agent.request(b"GET", b"http://a.example/")
        endpoint.attempts[0].serverClose()
        settle(reactor)
        self.assertEqual(endpoint.connects, 2)
        endpoint.attempts[1].respond(b"again")
        self.assertEqual(self.successResultOf(readBody(self.successResultOf(d))), b"again")
        self.assertEqual(pool.stats().retried, 1)
