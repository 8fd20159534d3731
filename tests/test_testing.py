"""
Tests for L{pooled_http.testing}: the in-memory network with its scripted
faults (what the pool does about each), reuse counting, the message of
L{assertPoolAtRest}, the loopback server over HTTP and HTTPS, the trial
mixin and the pytest fixtures.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import inlineCallbacks, succeed
from twisted.internet.error import (
    ConnectionAborted,
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
    DNSLookupError,
)
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, ResponseFailed, readBody
from twisted.web.resource import Resource

from pooled_http import HTTPConnectionPool, PooledAgent
from pooled_http.errors import (
    ConnectTimeoutError,
    ReadTimeoutError,
    ResponseTimeoutError,
)
from pooled_http.testing import (
    MemoryNetwork,
    PoolTestMixin,
    assertPoolAtRest,
    startLocalServer,
)

reactor: Any = _reactor

BODY = b"0123456789" * 10


class Hundred(Resource):
    """
    Answers every request with 100 bytes.
    """

    isLeaf = True

    def render(self, request: Any) -> bytes:
        return BODY


class MemoryNetworkTests(SynchronousTestCase):
    """
    Real pool connections over the in-memory network.
    """

    def setUp(self) -> None:
        self.network = MemoryNetwork()
        self.server = self.network.addServer("a.example", Hundred())
        self.pool = HTTPConnectionPool(
            self.network.clock, responseTimeout=5, readTimeout=3, connectTimeout=2
        )
        self.agent = self.network.pooledAgent(self.pool)

    def get(self, path: bytes = b"/", agent: Any = None) -> list[Any]:
        """
        Request C{path} of a.example and read the body; run what is due.

        @return: A list that gets the body or the failure.
        """
        result: list[Any] = []
        d = (agent or self.agent).request(b"GET", b"http://a.example" + path)
        d.addCallback(readBody).addBoth(result.append)
        self.network.flush()
        return result

    def closeAndCheck(self) -> None:
        """
        Close the pool and check it is at rest and the network is quiet.
        """
        closed: list[object] = []
        self.pool.close().addBoth(closed.append)
        self.network.flush()
        self.assertEqual(closed, [None])
        assertPoolAtRest(self.pool)
        self.assertEqual(self.network.clock.getDelayedCalls(), [])
        self.assertEqual([c for c in self.network.connections() if c.open], [])

    def test_reuseIsCounted(self) -> None:
        """
        Requests one after another share a connection; the server numbers
        connections and counts the requests on each.
        """
        for _ in range(3):
            self.assertEqual(self.get(), [BODY])
        records = self.network.requests
        self.assertEqual(
            [(r.connectionId, r.number) for r in records], [(1, 1), (1, 2), (1, 3)]
        )
        self.assertEqual([r.reused for r in records], [False, True, True])
        self.assertEqual(self.server.connections[0].requests, 3)
        self.assertEqual(self.pool.stats().reused, 2)
        self.closeAndCheck()

    def test_concurrentRequestsOpenConnections(self) -> None:
        """
        Two requests at once take two connections; the next one reuses one.
        """
        first = self.agent.request(b"GET", b"http://a.example/1")
        second = self.agent.request(b"GET", b"http://a.example/2")
        bodies: list[Any] = []
        for d in (first, second):
            d.addCallback(readBody).addBoth(bodies.append)
        self.network.flush()
        self.assertEqual(bodies, [BODY, BODY])
        self.assertEqual(self.get(b"/3"), [BODY])
        self.assertEqual(
            [(r.path, r.connectionId) for r in self.network.requests][:2],
            [(b"/1", 1), (b"/2", 2)],
        )
        self.assertTrue(self.network.requests[-1].reused)
        self.closeAndCheck()

    def test_stockAgentAndTreq(self) -> None:
        """
        A stock L{Agent} and a treq client work over the network too.
        """
        agent = self.network.agent(self.pool)
        self.assertIsInstance(agent, Agent)
        self.assertEqual(self.get(agent=agent), [BODY])
        self.assertEqual(self.get(agent=agent), [BODY])
        client = self.network.treqClient(self.pool)
        texts: list[Any] = []
        client.get("http://a.example/t").addCallback(lambda r: r.content()).addBoth(
            texts.append
        )
        self.network.flush()
        self.assertEqual(texts, [BODY])
        self.assertEqual([r.number for r in self.network.requests], [1, 2, 1])
        self.closeAndCheck()

    def test_handler(self) -> None:
        """
        A server may be a plain callable; one without a resource echoes.
        """
        self.network.addServer("h.example", handler=lambda request: b"from handler")
        self.network.addServer("e.example")
        bodies: list[Any] = []
        for url in (b"http://h.example/", b"http://e.example/x?y"):
            self.agent.request(b"GET", url).addCallback(readBody).addBoth(bodies.append)
        self.network.flush()
        self.assertEqual(bodies, [b"from handler", b"GET /x?y"])
        self.closeAndCheck()

    def test_serverClosesIdle(self) -> None:
        """
        The server closing an idle connection: the pool drops it at once and
        the next request gets a new connection.
        """
        self.get()
        self.assertEqual(self.pool.stats().idle, 1)
        self.assertEqual(self.server.closeIdleConnections(), 1)
        self.network.flush()
        self.assertEqual(self.pool.stats().idle, 0)
        self.assertEqual(self.pool.stats().closed["server closed"], 1)
        self.assertTrue(self.server.connections[0].lostReason.check(ConnectionDone))
        self.get()
        self.assertEqual(self.network.requests[-1].connectionId, 2)
        self.closeAndCheck()

    def test_serverIdleTimeout(self) -> None:
        """
        A server's idle timeout closes the connection on the clock.
        """
        self.server.idleTimeout = 10
        self.get()
        self.network.advance(9)
        self.assertEqual(self.pool.stats().idle, 1)
        self.network.advance(1)
        self.assertEqual(self.pool.stats().idle, 0)
        self.assertEqual(self.pool.stats().closed["server closed"], 1)
        self.closeAndCheck()

    def test_resetMidBody(self) -> None:
        """
        A reset in the body fails the read with Twisted's C{ResponseFailed}
        wrapping L{ConnectionLost}; the connection is not reused.
        """
        self.server.resetMidBody(afterBytes=10)
        [failure] = self.get()
        failure.trap(ResponseFailed)
        self.assertTrue(failure.value.reasons[0].check(ConnectionLost))
        self.assertTrue(self.server.connections[0].lostReason.check(ConnectionAborted))
        self.assertEqual(self.pool.stats().total, 0)
        self.assertEqual(self.get(), [BODY])
        self.assertEqual(self.network.requests[-1].connectionId, 2)
        self.closeAndCheck()

    def test_stallBeforeHeaders(self) -> None:
        """
        A response held back before its headers: the pool's responseTimeout
        fails the request and closes the connection.
        """
        stall = self.server.stallBeforeHeaders()
        result = self.get()
        self.network.advance(4.9)
        self.assertEqual(result, [])
        self.assertTrue(stall.holding)
        self.network.advance(0.1)
        [failure] = result
        failure.trap(ResponseTimeoutError)
        self.assertIs(stall.connection, self.server.connections[0])
        # The pool aborted the connection: the server sees a reset.
        self.assertTrue(self.server.connections[0].lostReason.check(ConnectionLost))
        self.assertEqual(self.get(), [BODY])
        self.assertEqual(self.network.requests[-1].connectionId, 2)
        self.closeAndCheck()

    def test_stallReleased(self) -> None:
        """
        A released stall sends the whole response; the connection is reused.
        """
        self.pool.responseTimeout = None
        stall = self.server.stallBeforeHeaders()
        result = self.get()
        self.network.advance(60)
        self.assertEqual(result, [])
        stall.release()
        self.network.flush()
        self.assertEqual(result, [BODY])
        self.get()
        self.assertEqual(self.network.requests[-1].connectionId, 1)
        self.closeAndCheck()

    def test_stallMidBody(self) -> None:
        """
        A response that stops in its body: the readTimeout fails the read.
        """
        self.server.stallMidBody(afterBytes=10)
        result = self.get()
        self.network.advance(2.9)
        self.assertEqual(result, [])
        self.network.advance(0.1)
        [failure] = result
        failure.trap(ReadTimeoutError)
        self.assertFalse(self.server.connections[0].open)
        self.get()
        self.assertEqual(self.network.requests[-1].connectionId, 2)
        self.closeAndCheck()

    def test_drip(self) -> None:
        """
        A dripped response arrives a few bytes per tick: slow but steady,
        within the read timeout, and the connection is reused after it.
        """
        self.server.drip(bytesPerTick=40, tickSeconds=1.0)
        finished: list[float] = []
        result = self.get()
        self.assertEqual(result, [])
        for _ in range(20):
            if result:
                break
            self.network.advance(1)
        finished.append(self.network.clock.seconds())
        self.assertEqual(result, [BODY])
        # More than 100 body bytes plus the head, 40 bytes a second.
        self.assertGreaterEqual(finished[0], 3)
        self.get()
        self.assertEqual(self.network.requests[-1].connectionId, 1)
        self.closeAndCheck()

    def test_dripValidation(self) -> None:
        """
        Bad drip settings name the argument.
        """
        self.assertRaisesRegex(ValueError, "bytesPerTick", self.server.drip, 0)
        self.assertRaisesRegex(ValueError, "tickSeconds", self.server.drip, 1, -1)
        self.assertRaisesRegex(ValueError, "afterBytes", self.server.resetMidBody, -1)

    def test_closeAfterRequests(self) -> None:
        """
        A server closing after N requests says so; the pool opens a new
        connection for the next one.
        """
        self.server.closeAfterRequests = 2
        for _ in range(3):
            self.assertEqual(self.get(), [BODY])
        self.assertEqual(
            [(r.connectionId, r.number) for r in self.network.requests],
            [(1, 1), (1, 2), (2, 1)],
        )
        self.assertFalse(self.server.connections[0].open)
        self.closeAndCheck()

    def test_refuseConnections(self) -> None:
        """
        A refused connection fails the request with L{ConnectionRefusedError}
        and leaves nothing behind.
        """
        self.server.refuseConnections = True
        [failure] = self.get()
        failure.trap(ConnectionRefusedError)
        assertPoolAtRest(self.pool)
        self.closeAndCheck()

    def test_hangConnections(self) -> None:
        """
        A connection attempt that never completes ends with the pool's
        connectTimeout.
        """
        self.server.hangConnections = True
        result = self.get()
        self.network.advance(2)
        [failure] = result
        failure.trap(ConnectTimeoutError)
        self.closeAndCheck()

    def test_unknownHost(self) -> None:
        """
        A host without a server fails like a failed name lookup.
        """
        result: list[Any] = []
        self.agent.request(b"GET", b"http://nowhere.example/").addBoth(result.append)
        self.network.flush()
        result[0].trap(DNSLookupError)
        self.closeAndCheck()

    def test_poolCloseIsSeenByServer(self) -> None:
        """
        The pool closing an idle connection ends the server's side too.
        """
        self.get()
        connection = self.server.connections[0]
        self.assertTrue(connection.idle)
        self.pool.closeCachedConnections()
        self.network.flush()
        self.assertFalse(connection.open)
        self.closeAndCheck()

    def test_addServerErrors(self) -> None:
        """
        A host is served once; resource and handler exclude each other.
        """
        self.assertRaises(ValueError, self.network.addServer, "a.example")
        self.assertRaises(
            ValueError,
            self.network.addServer,
            "b.example",
            Hundred(),
            handler=lambda r: b"",
        )


class AssertPoolAtRestTests(SynchronousTestCase):
    """
    L{assertPoolAtRest} lists what is left.
    """

    def test_message(self) -> None:
        """
        A request in use, a waiting request and the pool's timers are named.
        """
        network = MemoryNetwork()
        server = network.addServer("a.example")
        pool = HTTPConnectionPool(
            network.clock, maxConnectionsPerHost=1, responseTimeout=5
        )
        agent = network.agent(pool)
        server.stallBeforeHeaders()
        results: list[Any] = []
        agent.request(b"GET", b"http://a.example/1").addBoth(results.append)
        agent.request(b"GET", b"http://a.example/2").addBoth(results.append)
        network.flush()
        with self.assertRaises(AssertionError) as caught:
            assertPoolAtRest(pool)
        message = str(caught.exception)
        self.assertTrue(message.startswith("pool is not at rest:\n"), message)
        self.assertIn("(b'http', b'a.example', 80): 1 in use, 1 waiting", message)
        self.assertIn("pending timer(s):", message)
        self.assertIn("due in 5 s", message)
        pool.close(timeout=0)
        network.flush()
        assertPoolAtRest(pool)
        self.assertEqual(len(results), 2)

    def test_idle(self) -> None:
        """
        Idle connections fail the check unless allowed.
        """
        network = MemoryNetwork()
        network.addServer("a.example")
        pool = HTTPConnectionPool(network.clock)
        network.agent(pool).request(b"GET", b"http://a.example/").addCallback(readBody)
        network.flush()
        assertPoolAtRest(pool, allowIdle=True)
        with self.assertRaises(AssertionError) as caught:
            assertPoolAtRest(pool)
        self.assertEqual(
            str(caught.exception),
            "pool is not at rest:\n"
            "  (b'http', b'a.example', 80): 1 idle\n"
            "  1 pending timer(s):\n"
            "    IdleTimers._sweep due in 240 s",
        )
        pool.close()
        network.flush()
        assertPoolAtRest(pool)

    def test_clockFallback(self) -> None:
        """
        A pool without C{_pendingCalls} on a L{Clock}: the clock's calls are
        checked, leaving out the network's own.
        """
        network = MemoryNetwork()
        server = network.addServer("a.example")
        server.idleTimeout = 100
        pool = HTTPConnectionPool(network.clock)
        pool._pendingCalls = None  # type: ignore[assignment]
        network.agent(pool).request(b"GET", b"http://a.example/").addCallback(readBody)
        network.flush()
        with self.assertRaises(AssertionError) as caught:
            assertPoolAtRest(pool)
        self.assertTrue(
            str(caught.exception).endswith(
                "  1 pending timer(s):\n    IdleTimers._sweep due in 240 s"
            ),
            str(caught.exception),
        )
        pool.close()
        network.flush()
        self.assertEqual(len(network.clock.getDelayedCalls()), 0)
        assertPoolAtRest(pool)


class LocalServerTests(TestCase):
    """
    L{startLocalServer} over real loopback sockets.
    """

    @inlineCallbacks
    def check(self, tls: bool, agentClass: Any) -> Any:
        server = startLocalServer(Hundred(), tls=tls)
        pool = HTTPConnectionPool(reactor)
        options = {"contextFactory": server.policy} if tls else {}
        agent = agentClass(reactor, pool=pool, **options)
        try:
            for _ in range(2):
                response = yield agent.request(b"GET", server.url("/x").encode())
                self.assertEqual((yield readBody(response)), BODY)
            self.assertEqual(server.accepted, 1)
            self.assertEqual(server.openConnections, 1)
        finally:
            yield server.stop()
        self.assertEqual(server.openConnections, 0)
        yield pool.close()
        assertPoolAtRest(pool)

    def test_http(self) -> Any:
        """
        HTTP, with keep-alive, through L{PooledAgent}.
        """
        return self.check(False, PooledAgent)

    def test_https(self) -> Any:
        """
        HTTPS with a certificate made for the test, through L{Agent} and its
        C{policy}.
        """
        server = startLocalServer(tls=True)
        self.addCleanup(server.stop)
        self.assertTrue(server.url().startswith("https://127.0.0.1:"))
        self.assertIn(b"BEGIN CERTIFICATE", server.caCertificatePEM or b"")
        return self.check(True, Agent)

    def test_httpsPooledAgent(self) -> Any:
        """
        HTTPS through L{PooledAgent}.
        """
        return self.check(True, PooledAgent)

    def test_stopTwice(self) -> Any:
        """
        C{stop()} may be called again; both Deferreds fire.
        """
        server = startLocalServer()
        first, second = server.stop(), server.stop()
        return first.addCallback(lambda _: second)

    def test_loopbackOnly(self) -> None:
        """
        Only loopback interfaces are accepted.
        """
        self.assertRaises(ValueError, startLocalServer, interface="0.0.0.0")


class MixinTests(PoolTestMixin, TestCase):
    """
    L{PoolTestMixin} in use.
    """

    poolOptions = {"maxConnectionsPerHost": 2}

    @inlineCallbacks
    def test_poolAndServer(self) -> Any:
        """
        The test's pool takes the options; a server started here is stopped
        after the test.
        """
        self.assertEqual(self.pool.maxConnectionsPerHost, 2)
        server = self.startLocalServer()
        response = yield self.agent.request(b"GET", server.url("/m").encode())
        self.assertEqual((yield readBody(response)), b"GET /m")
        client = self.treqClient()
        response = yield client.get(server.url("/t"))
        self.assertEqual((yield response.text()), "GET /t")
        self.assertEqual(self.pool.stats().reused, 1)

    @inlineCallbacks
    def test_treqOverHTTPS(self) -> Any:
        """
        C{treqClient(server)} trusts an HTTPS server's certificate.
        """
        server = self.startLocalServer(tls=True)
        response = yield self.treqClient(server).get(server.url("/s"))
        self.assertEqual((yield response.text()), "GET /s")


class MixinCleanupTests(SynchronousTestCase):
    """
    The mixin's cleanup closes the pool and fails the test on a leak.
    """

    def runInner(self, leak: bool) -> tuple[Any, Any]:
        """
        Run a test case using the mixin; if C{leak}, its pool's C{close()}
        closes nothing, so an idle connection is left.

        @return: The trial result and the inner test's pool.
        """
        from twisted.trial.reporter import TestResult

        seen: list[Any] = []

        class Inner(PoolTestMixin, TestCase):
            def setUp(inner) -> Any:
                # Registered first, so it runs last: really close the pool
                # after the mixin's check.
                inner.addCleanup(lambda: HTTPConnectionPool.close(inner.pool))
                return super().setUp()

            @inlineCallbacks
            def test_request(inner) -> Any:
                seen.append(inner.pool)
                server = inner.startLocalServer()
                response = yield inner.agent.request(b"GET", server.url().encode())
                yield readBody(response)
                if leak:
                    inner.pool.close = lambda timeout=None: succeed(None)

        result = TestResult()
        Inner("test_request").run(result)
        return result, seen[0]

    def test_clean(self) -> None:
        """
        A clean test passes and its pool is closed afterwards.
        """
        result, pool = self.runInner(leak=False)
        self.assertTrue(result.wasSuccessful(), result.errors + result.failures)
        self.assertIn("closed", repr(pool))

    def test_leak(self) -> None:
        """
        A pool left with an idle connection fails the test, saying so.
        """
        result, pool = self.runInner(leak=True)
        self.assertFalse(result.wasSuccessful())
        messages = "".join(str(f.value) for _, f in result.errors + result.failures)
        self.assertIn("pool is not at rest", messages)
        self.assertIn("1 idle", messages)


PLUGIN_TESTS = """
import pytest_twisted
from twisted.internet.defer import succeed


@pytest_twisted.inlineCallbacks
def test_get(pooledTreq, pooledServer):
    response = yield pooledTreq.get(pooledServer.url("/hello"))
    assert (yield response.text()) == "GET /hello"
    response = yield pooledTreq.get(pooledServer.url("/again"))
    assert (yield response.text()) == "GET /again"


@pytest_twisted.inlineCallbacks
def test_https(pooledTreq, pooledHTTPSServer, pooledPool):
    response = yield pooledTreq.get(pooledHTTPSServer.url("/s"))
    assert (yield response.text()) == "GET /s"
    assert pooledPool.stats().idle == 1


@pytest_twisted.inlineCallbacks
def test_leak(pooledServer, pooledTreq, pooledPool):
    response = yield pooledTreq.get(pooledServer.url("/leak"))
    yield response.text()
    pooledPool.close = lambda timeout=None: succeed(None)


def test_plain():
    assert True
"""

CONFTEST = """
import pytest


@pytest.fixture
def pooledPoolOptions():
    return {"maxConnectionsPerHost": 3}


def test_options(pooledPool):
    assert pooledPool.maxConnectionsPerHost == 3
"""


class PytestPluginTests(SynchronousTestCase):
    """
    The pytest fixtures, in a pytest run of their own.
    """

    def runPytest(
        self, files: dict[str, str], *args: str
    ) -> subprocess.CompletedProcess[str]:
        """
        Run pytest on C{files} in a temporary directory.

        @return: The finished process.
        """
        with tempfile.TemporaryDirectory() as directory:
            for name, text in files.items():
                with open(os.path.join(directory, name), "w") as f:
                    f.write(textwrap.dedent(text))
            return subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                cwd=directory,
                capture_output=True,
                text=True,
                timeout=120,
                env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
            )

    def test_fixtures(self) -> None:
        """
        The fixtures serve, pool and clean up; a leaking test errors in
        tear-down with the pool's state; other tests are unaffected.
        """
        process = self.runPytest(
            {
                "pytest.ini": "[pytest]\n",
                "test_it.py": PLUGIN_TESTS,
                "test_options.py": CONFTEST,
            }
        )
        out = process.stdout + process.stderr
        self.assertEqual(process.returncode, 1, out)
        self.assertIn("5 passed", out)
        self.assertIn("1 error", out)
        self.assertIn("ERROR at teardown of test_leak", out)
        self.assertIn("pool is not at rest", out)
        self.assertIn("1 idle", out)

    def test_notInTheWay(self) -> None:
        """
        A suite that uses no fixture runs as before, with or without
        pytest-twisted.
        """
        files = {
            "pytest.ini": "[pytest]\n",
            "test_x.py": "def test_x():\n    assert 1\n",
        }
        for args in ((), ("-p", "no:twisted")):
            process = self.runPytest(files, *args)
            self.assertEqual(process.returncode, 0, process.stdout + process.stderr)
            self.assertIn("1 passed", process.stdout)

    def test_withoutPytestTwisted(self) -> None:
        """
        Without pytest-twisted's reactor a fixture says what is missing.
        """
        files = {
            "pytest.ini": "[pytest]\n",
            "test_x.py": "def test_x(pooledServer):\n    assert pooledServer\n",
        }
        process = self.runPytest(files, "-p", "no:twisted")
        self.assertEqual(process.returncode, 1, process.stdout + process.stderr)
        self.assertIn("need pytest-twisted's reactor", process.stdout)
