"""
Using a pooled_http pool in a trial test case and leaving the reactor clean.

Trial fails a test that leaves connections, listening ports or delayed calls
behind ("Reactor was unclean").  A pool keeps keep-alive connections open
and idle timers running on purpose, so a test that uses one must close it
before the test ends.  The rule: every test makes its own pool and closes
it with C{addCleanup(pool.close)}; C{close()} returns a Deferred that fires
only after every connection is really gone, so trial waits for it.  Never
use treq's global pool in tests: pass C{pool=} (or C{agent=}) instead.

Cleanups run last-in first-out, so register the server's C{stopListening}
before the pool's C{close}: the pool closes first, then the server stops.

Run it with either of::

    python -m twisted.trial examples/trial_example.py
    python examples/trial_example.py
"""

from __future__ import annotations

import sys
import tempfile
from typing import Any

import treq
from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import readBody
from twisted.web.resource import Resource
from twisted.web.server import Site

from pooled_http import HTTPConnectionPool, PooledAgent, treqClient


class Hello(Resource):
    """
    Answers every GET with a short greeting.
    """

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return b"hello"


class PooledHTTPTests(TestCase):
    """
    Tests that talk HTTP to a local server through a pool.
    """

    def setUp(self) -> None:
        # A server on a free loopback port, stopped after the test.
        port = reactor.listenTCP(0, Site(Hello()), interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        self.url = f"http://127.0.0.1:{port.getHost().port}/"

        # One pool per test, closed after the test (before the server
        # stops, since cleanups run last-in first-out).
        self.pool = HTTPConnectionPool(reactor, maxConnectionsPerHost=2)
        self.addCleanup(self.pool.close)
        self.agent = PooledAgent(reactor, pool=self.pool)

    @defer.inlineCallbacks
    def test_agent(self) -> Any:
        """
        A request through the agent; the connection then sits idle in the
        pool until the cleanup closes it.
        """
        response = yield self.agent.request(b"GET", self.url.encode())
        body = yield readBody(response)
        self.assertEqual(body, b"hello")
        self.assertEqual(self.pool.stats().idle, 1)

    @defer.inlineCallbacks
    def test_treqWithPool(self) -> Any:
        """
        treq's module-level functions with this test's pool.
        """
        response = yield treq.get(self.url, pool=self.pool)
        self.assertEqual((yield response.text()), "hello")

    @defer.inlineCallbacks
    def test_treqClient(self) -> Any:
        """
        A client with a pool of its own: close it in a cleanup as well.
        """
        client = treqClient(reactor)
        self.addCleanup(client.close)
        response = yield client.get(self.url)
        self.assertEqual((yield response.content()), b"hello")


def main() -> int:
    """
    Run this module's tests with trial's runner, in a temporary directory.

    @return: The exit code: 0 if every test passed.
    """
    from twisted.trial.reporter import TreeReporter
    from twisted.trial.runner import TestLoader, TrialRunner

    with tempfile.TemporaryDirectory() as workingDirectory:
        runner = TrialRunner(
            TreeReporter, workingDirectory=workingDirectory + "/_trial"
        )
        result = runner.run(TestLoader().loadClass(PooledHTTPTests))
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
