"""
Testing code that uses a pooled_http pool with pytest.

pooled_http's pytest fixtures are available wherever it is installed (with
pytest-twisted, which runs the reactor):

  - C{pooledPool}: the test's pool, closed after the test; the test errors
    if the pool was left with anything (a connection in use, a timer);
  - C{pooledTreq}: a treq client over it;
  - C{pooledServer} / C{pooledHTTPSServer}: a local server on 127.0.0.1
    serving the C{pooledServerResource} fixture, stopped after the test.

The in-memory network of L{pooled_http.testing} needs no fixture at all.

Run it with::

    python -m pytest examples/test_pytest_example.py
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.web.client import ResponseFailed, readBody
from twisted.web.resource import Resource

from pooled_http import HTTPConnectionPool
from pooled_http.testing import MemoryNetwork, assertPoolAtRest


class Hello(Resource):
    """
    Answers every GET with a short greeting.
    """

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return b"hello"


@pytest.fixture
def pooledServerResource() -> Resource:
    """
    What the local servers serve in this module.
    """
    return Hello()


@pytest_twisted.inlineCallbacks
def test_treq(pooledTreq: Any, pooledServer: Any) -> Any:
    """
    Two requests over one connection to the local server.
    """
    for _ in range(2):
        response = yield pooledTreq.get(pooledServer.url())
        assert (yield response.text()) == "hello"
    assert pooledServer.accepted == 1


@pytest_twisted.inlineCallbacks
def test_treqOverHTTPS(pooledTreq: Any, pooledHTTPSServer: Any) -> Any:
    """
    pooledTreq trusts pooledHTTPSServer's certificate.
    """
    response = yield pooledTreq.get(pooledHTTPSServer.url())
    assert (yield response.text()) == "hello"


def test_inMemoryReuse() -> None:
    """
    On the in-memory network: a reset body is not reused; the next request
    gets a fresh connection.
    """
    network = MemoryNetwork()
    server = network.addServer("api.example", Hello())
    pool = HTTPConnectionPool(network.clock)
    agent = network.pooledAgent(pool)
    results: list[Any] = []

    server.resetMidBody(afterBytes=2)
    for _ in range(2):
        d = agent.request(b"GET", b"http://api.example/")
        d.addCallback(readBody).addBoth(results.append)
        network.flush()

    assert results[0].check(ResponseFailed)
    assert results[1] == b"hello"
    assert [r.connectionId for r in network.requests] == [1, 2]
    pool.close()
    network.flush()
    assertPoolAtRest(pool)
