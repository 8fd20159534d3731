"""
A sequential loop (each request made when the previous body is read)
uses one connection, whichever HTTP/1.1 implementation the pool speaks:
the connection is back in the pool before the body's protocol hears the
body is done.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import readBody

from pooled_http import HTTPConnectionPool
from pooled_http.testing import MemoryNetwork, assertPoolAtRest


class SequentialReuseTests(SynchronousTestCase):
    def loop(self, protocol: str, agentKind: str) -> None:
        network = MemoryNetwork()
        network.addServer("a.example")
        pool = HTTPConnectionPool(network.clock, protocol=protocol)
        agent = getattr(network, agentKind)(pool)
        bodies: list[bytes] = []
        done: Deferred[None] = Deferred()

        def step(body: bytes | None) -> Any:
            if body is not None:
                bodies.append(body)
            if len(bodies) == 10:
                done.callback(None)
                return None
            d = agent.request(b"GET", b"http://a.example/%d" % (len(bodies),))
            return d.addCallback(readBody).addCallback(step)

        step(None)
        network.flush()
        self.successResultOf(done)
        self.assertEqual(len(bodies), 10)
        stats = pool.stats()
        self.assertEqual((stats.opened, stats.reused), (1, 9))
        pool.closeCachedConnections()
        network.flush()
        assertPoolAtRest(pool)

    def test_llhttpPooledAgent(self) -> None:
        self.loop("httptools", "pooledAgent")

    def test_llhttpAgent(self) -> None:
        self.loop("httptools", "agent")

    def test_twistedPooledAgent(self) -> None:
        self.loop("twisted", "pooledAgent")

    def test_twistedAgent(self) -> None:
        self.loop("twisted", "agent")
