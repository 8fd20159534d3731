"""
Testing code that uses a pooled_http pool with trial and
L{pooled_http.testing}.

Two kinds of test:

  - over a real loopback server: L{PoolTestMixin} gives each test its own
    pool (C{self.pool}) and agent (C{self.agent}), closes the pool after the
    test and fails the test if anything was left; C{self.startLocalServer()}
    starts a server on 127.0.0.1 (HTTPS too) that is stopped after the test;
  - on the in-memory network: no sockets, no real time; the server counts
    connections and requests, so a test can check reuse, and misbehaves on
    request (here: it drops its idle connections).

Run it with either of::

    python -m twisted.trial examples/trial_example.py
    python examples/trial_example.py
"""

from __future__ import annotations

import sys
import tempfile
from typing import Any

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import readBody
from twisted.web.resource import Resource

from pooled_http import HTTPConnectionPool
from pooled_http.testing import MemoryNetwork, PoolTestMixin, assertPoolAtRest


class Hello(Resource):
    """
    Answers every GET with a short greeting.
    """

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return b"hello"


class LoopbackTests(PoolTestMixin, TestCase):
    """
    Tests that talk HTTP and HTTPS to a local server through the test's pool.
    """

    poolOptions = {"maxConnectionsPerHost": 2}

    @defer.inlineCallbacks
    def test_agent(self) -> Any:
        """
        Two requests through the agent share one connection.
        """
        server = self.startLocalServer(Hello())
        for _ in range(2):
            response = yield self.agent.request(b"GET", server.url().encode())
            self.assertEqual((yield readBody(response)), b"hello")
        self.assertEqual(server.accepted, 1)

    @defer.inlineCallbacks
    def test_treqOverHTTPS(self) -> Any:
        """
        treq over HTTPS, trusting the certificate made for this test.
        """
        server = self.startLocalServer(Hello(), tls=True)
        response = yield self.treqClient(server).get(server.url())
        self.assertEqual((yield response.text()), "hello")


class InMemoryTests(SynchronousTestCase):
    """
    Tests on the in-memory network, driven by its clock.
    """

    def test_serverDropsIdleConnection(self) -> None:
        """
        The first two requests share connection 1; once the server drops it,
        the pool opens connection 2.
        """
        network = MemoryNetwork()
        server = network.addServer("api.example", Hello())
        pool = HTTPConnectionPool(network.clock)
        agent = network.pooledAgent(pool)

        def get() -> bytes:
            bodies: list[bytes] = []
            d = agent.request(b"GET", b"http://api.example/")
            d.addCallback(readBody).addCallback(bodies.append)
            network.flush()
            return bodies[0]

        self.assertEqual(get(), b"hello")
        self.assertEqual(get(), b"hello")
        server.closeIdleConnections()
        network.flush()
        self.assertEqual(get(), b"hello")
        self.assertEqual([r.connectionId for r in network.requests], [1, 1, 2])

        pool.close()
        network.flush()
        assertPoolAtRest(pool)


def main() -> int:
    """
    Run this module's tests with trial's runner, in a temporary directory.

    @return: The exit code: 0 if every test passed.
    """
    from twisted.trial.reporter import TreeReporter
    from twisted.trial.runner import TestLoader, TrialRunner

    loader = TestLoader()
    suite = loader.suiteFactory(
        [loader.loadClass(LoopbackTests), loader.loadClass(InMemoryTests)]
    )
    with tempfile.TemporaryDirectory() as workingDirectory:
        runner = TrialRunner(
            TreeReporter, workingDirectory=workingDirectory + "/_trial"
        )
        result = runner.run(suite)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
