"""
pytest fixtures for code that uses a pooled_http pool, loaded automatically
(through the C{pytest11} entry point) wherever pooled_http is installed.

The fixtures run on the global reactor and need pytest-twisted, which runs
that reactor during the test (write tests with
C{@pytest_twisted.inlineCallbacks} or C{@pytest_twisted.ensureDeferred}):

  - C{pooledPool}: a L{pooled_http.HTTPConnectionPool} for the test, closed
    after it; the test errors in tear-down if the pool is not at rest then
    (L{pooled_http.testing.assertPoolAtRest}).  Its keyword arguments come
    from the C{pooledPoolOptions} fixture, which a suite may override.
  - C{pooledTreq}: a C{treq.HTTPClient} over C{pooledPool} through a
    L{pooled_http.PooledAgent}; it trusts C{pooledHTTPSServer} when the test
    uses that fixture too.
  - C{pooledServer} and C{pooledHTTPSServer}: a
    L{pooled_http.testing.LocalServer} on 127.0.0.1 (HTTPS with a C{trustme}
    certificate), serving the C{pooledServerResource} fixture (by default a
    resource answering each request with its method and path), stopped
    after the test.

Nothing is imported from Twisted until a fixture is used, so suites that do
not use them are not affected.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

__all__ = [
    "pooledPoolOptions",
    "pooledPool",
    "pooledTreq",
    "pooledServerResource",
    "pooledServer",
    "pooledHTTPSServer",
]


def _wait(d: Any) -> Any:
    """
    Wait for a Deferred from a fixture, with pytest-twisted's reactor.

    @param d: The Deferred.
    @return: Its result.
    """
    from twisted.internet.defer import Deferred
    from twisted.python.failure import Failure

    if d.called and not isinstance(d.result, Deferred):
        # Already done: no reactor needed.
        done: list[Any] = []
        d.addBoth(done.append)
        if isinstance(done[0], Failure):
            done[0].raiseException()
        return done[0]
    try:
        import pytest_twisted
    except ImportError:  # pragma: no cover - pytest-twisted is in [test]
        pytest.fail(
            "pooled_http's fixtures need pytest-twisted: pip install pytest-twisted"
        )
    if getattr(pytest_twisted._instances, "gr_twisted", None) is None and not getattr(
        pytest_twisted._config, "external_reactor", False
    ):
        pytest.fail(
            "pooled_http's fixtures need pytest-twisted's reactor, which is not "
            "running (is pytest-twisted disabled with -p no:twisted?)"
        )
    return pytest_twisted.blockon(d)


@pytest.fixture
def pooledPoolOptions() -> dict[str, Any]:
    """
    Keyword arguments for the C{pooledPool} fixture's pool; override this
    fixture to change them.
    """
    return {}


@pytest.fixture
def pooledPool(pooledPoolOptions: dict[str, Any]) -> Iterator[Any]:
    """
    A pool on the global reactor, closed after the test and checked with
    L{pooled_http.testing.assertPoolAtRest}.
    """
    from twisted.internet import reactor

    from . import HTTPConnectionPool
    from .testing import assertPoolAtRest

    pool = HTTPConnectionPool(reactor, **pooledPoolOptions)
    yield pool
    _wait(pool.close())
    assertPoolAtRest(pool)


@pytest.fixture
def pooledTreq(request: pytest.FixtureRequest, pooledPool: Any) -> Any:
    """
    A treq client over C{pooledPool}.
    """
    from treq.client import HTTPClient
    from twisted.internet import reactor

    from . import PooledAgent

    options: dict[str, Any] = {}
    if "pooledHTTPSServer" in request.fixturenames:
        options["contextFactory"] = request.getfixturevalue("pooledHTTPSServer").policy
    agent: Any = PooledAgent(reactor, pool=pooledPool, **options)
    return HTTPClient(agent)


@pytest.fixture
def pooledServerResource() -> Any:
    """
    The resource C{pooledServer} and C{pooledHTTPSServer} serve; override
    this fixture to serve your own.
    """
    from .testing._server import _EchoResource

    return _EchoResource()


def _serve(resource: Any, tls: bool) -> Iterator[Any]:
    """
    Start a local server, hand it over, and stop it.
    """
    from .testing import startLocalServer

    server = startLocalServer(resource, tls=tls)
    yield server
    _wait(server.stop())


@pytest.fixture
def pooledServer(pooledServerResource: Any) -> Iterator[Any]:
    """
    A L{pooled_http.testing.LocalServer} over HTTP, stopped after the test.
    """
    yield from _serve(pooledServerResource, tls=False)


@pytest.fixture
def pooledHTTPSServer(pooledServerResource: Any) -> Iterator[Any]:
    """
    A L{pooled_http.testing.LocalServer} over HTTPS, stopped after the test;
    its C{policy} is the matching client TLS policy.
    """
    pytest.importorskip("trustme")
    yield from _serve(pooledServerResource, tls=True)
