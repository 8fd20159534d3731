"""
Trace hooks (L{pooled_http.trace}): the order of the steps observers hear
for each phase of a request, on both HTTP/1.1 connections, over loopback
servers and through a scripted CONNECT proxy; observers that raise; no
trace at all without observers.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.logger import globalLogPublisher
from twisted.web.client import Agent

from pooled_http import HTTPConnectionPool, PooledAgent
from pooled_http.trace import RequestTrace, TraceObserver
from tests.faults._base import FaultTestCase
from tests.faults.test_connection_faults import closeReusedRequests
from tests.support.fakes import KEY, PoolTestCase
from tests.support.proxyservers import ScriptedProxy, startTarget
from tests.support.servers import (
    ReceivedRequest,
    ScriptedConnection,
    TLSMaterial,
    collectBody,
    okScript,
    unusedPort,
)
from tests.test_proxy_scripted import forwardingScript

HOOKS = [name for name in vars(TraceObserver) if not name.startswith("_")]

ONE_REQUEST = [
    "connectionAcquired",
    "requestStarting",
    "requestHeadersSent",
    "requestBodySent",
    "responseHeadersReceived",
    "responseBodyDone",
    "connectionReleased",
]


def slowScript(connection: ScriptedConnection, request: ReceivedRequest) -> None:
    """
    Answer after a tenth of a second.
    """
    connection.later(0.1, okScript, connection, request)


class Recorder(TraceObserver):
    """
    Records the name of every hook called, and the arguments.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def args(self, hook: str) -> list[tuple[Any, ...]]:
        return [args for name, args in self.calls if name == hook]


def _recording(name: str) -> Any:
    def record(self: Recorder, *args: Any) -> None:
        self.calls.append((name, args))

    record.__name__ = name
    return record


for _name in HOOKS:
    setattr(Recorder, _name, _recording(_name))


class Broken(TraceObserver):
    """
    Raises in every hook.
    """


def _raising(name: str) -> Any:
    def fail(self: Broken, *args: Any) -> None:
        raise RuntimeError(f"broken observer in {name}")

    return fail


for _name in HOOKS:
    setattr(Broken, _name, _raising(_name))


class TraceTestsMixin(FaultTestCase):
    """
    The hook order on one HTTP/1.1 implementation (C{protocol}).
    """

    protocol = "httptools"

    def tracedPool(self, **kwargs: Any) -> tuple[HTTPConnectionPool, Recorder]:
        pool = self.makePool(protocol=self.protocol, **kwargs)
        recorder = Recorder()
        pool.addObserver(recorder)
        return pool, recorder

    async def test_newThenReused(self) -> None:
        """
        A request on a new connection hears the connect, then the request
        phases; the next one reuses the connection; closing the pool
        closes it.
        """
        server = self.startServer()
        pool, recorder = self.tracedPool()
        agent = self.makeAgent(pool)
        await self.fetchOk(agent, server.url())
        self.assertEqual(
            recorder.names(), ["connectStarted", "connectDone", *ONE_REQUEST]
        )
        first = recorder.args("connectionAcquired")[0]
        trace, connectionId, reused = first
        self.assertIsInstance(trace, RequestTrace)
        self.assertFalse(reused)
        self.assertEqual(recorder.args("connectDone")[0][1], connectionId)
        self.assertEqual(trace.status, 200)
        self.assertEqual(trace.version, (b"HTTP", 1, 1))
        self.assertTrue(trace.finished)
        self.assertIsNone(trace.streamId)
        self.assertEqual(trace.attempt, 0)
        self.assertEqual(
            recorder.args("connectionReleased"), [(trace.key, connectionId, True)]
        )
        del recorder.calls[:]
        await self.fetchOk(agent, server.url(), method=b"POST", body=b"x" * 1000)
        self.assertEqual(recorder.names(), ONE_REQUEST)
        _, secondId, reused = recorder.args("connectionAcquired")[0]
        self.assertEqual((secondId, reused), (connectionId, True))
        del recorder.calls[:]
        await pool.close()
        self.assertEqual(
            recorder.calls,
            [("connectionClosed", (trace.key, connectionId, "shutdown"))],
        )

    async def test_poolWait(self) -> None:
        """
        A request that waits for the only connection hears it was queued,
        then dequeued with its wait, then gets the connection reused.
        """
        server = self.startServer()
        pool, recorder = self.tracedPool(maxConnectionsPerHost=1)
        agent = self.makeAgent(pool)
        first = defer.ensureDeferred(self.fetchOk(agent, server.url()))
        second = defer.ensureDeferred(self.fetchOk(agent, server.url()))
        await first
        await second
        names = recorder.names()
        self.assertEqual(names[0], "connectStarted")
        self.assertEqual(names[1], "requestQueued")
        traces = {
            id(args[0]): args[0]
            for _, args in recorder.calls
            if args and isinstance(args[0], RequestTrace)
        }
        self.assertEqual(len(traces), 2)
        (queued,) = recorder.args("requestQueued")
        waiter = queued[0]
        (dequeued,) = recorder.args("requestDequeued")
        self.assertIs(dequeued[0], waiter)
        self.assertGreaterEqual(dequeued[1], 0.0)
        self.assertEqual(waiter.wait, dequeued[1])
        waiterCalls = [
            name for name, args in recorder.calls if args and args[0] is waiter
        ]
        self.assertEqual(
            waiterCalls, ["requestQueued", "requestDequeued", *ONE_REQUEST[:-1]]
        )
        self.assertTrue(waiter.reused)

    async def test_retry(self) -> None:
        """
        A GET that fails on a reused connection fails its attempt, is
        retried as attempt 1 on a new connection, and the first connection
        is closed.
        """
        server = self.startServer(closeReusedRequests)
        pool, recorder = self.tracedPool()
        agent = self.makeAgent(pool)
        await self.fetchOk(agent, server.url())
        del recorder.calls[:]
        await self.fetchOk(agent, server.url())
        names = recorder.names()
        failedAt = names.index("requestFailed")
        retriedAt = names.index("requestRetried")
        self.assertLess(failedAt, retriedAt)
        self.assertEqual(names[:4], ONE_REQUEST[:4])
        old, reason, new = recorder.args("requestRetried")[0]
        self.assertEqual((old.attempt, new.attempt), (0, 1))
        self.assertTrue(old.finished)
        self.assertIn("connectionClosed", names)
        after = [name for name, args in recorder.calls if args and args[0] is new]
        self.assertEqual(after, ["connectStarted", "connectDone", *ONE_REQUEST[:-1]])
        self.assertEqual(new.status, 200)

    async def test_connectFailed(self) -> None:
        """
        Nothing listening: the connect fails, then the attempt.
        """
        pool, recorder = self.tracedPool()
        agent = self.makeAgent(pool)
        await self.failureOf(
            agent.request(b"GET", b"http://127.0.0.1:%d/" % (unusedPort(),))
        )
        self.assertEqual(
            recorder.names(), ["connectStarted", "connectFailed", "requestFailed"]
        )

    async def test_timeout(self) -> None:
        """
        A response that never comes times out: the attempt fails with the
        pool's timeout error after its request was written.
        """
        from pooled_http import ResponseTimeoutError

        server = self.startServer(lambda connection, request: None)
        pool, recorder = self.tracedPool(responseTimeout=0.05, retryAutomatically=False)
        agent = self.makeAgent(pool)
        await self.failureOf(agent.request(b"GET", server.url()))
        names = recorder.names()
        self.assertEqual(names[:6], ["connectStarted", "connectDone", *ONE_REQUEST[:4]])
        self.assertIn("requestFailed", names)
        (failed,) = recorder.args("requestFailed")
        self.assertIsInstance(failed[1].value, ResponseTimeoutError)
        self.assertIn("connectionClosed", names)

    async def test_closeDelimitedBody(self) -> None:
        """
        A body that ends when the server closes the connection (no
        Content-Length, no chunking: complete, as Twisted reads it) is a
        response done, on either protocol.
        """

        def untilClose(connection: Any, request: Any) -> None:
            connection.send(b"HTTP/1.1 200 OK\r\n\r\nall of it")
            connection.close()

        server = self.startServer(untilClose)
        pool, recorder = self.tracedPool()
        agent = self.makeAgent(pool)
        response = await agent.request(b"GET", server.url())
        result = await collectBody(response)
        self.assertEqual(result.body, b"all of it")
        names = recorder.names()
        self.assertIn("responseBodyDone", names)
        self.assertNotIn("requestFailed", names)

    async def test_https(self) -> None:
        """
        https: the TLS handshake starts once the connection is open and is
        done before the response arrives.
        """
        tls = TLSMaterial()
        server = self.startServer(tls=tls.serverOptions())
        pool, recorder = self.tracedPool()
        agent = Agent(reactor, pool=pool, contextFactory=tls.clientPolicy())
        await self.fetchOk(agent, server.url().replace(b"http:", b"https:"))
        names = recorder.names()
        self.assertEqual(
            names[:3], ["connectStarted", "connectDone", "tlsHandshakeStarted"]
        )
        self.assertLess(
            names.index("tlsHandshakeDone"), names.index("responseHeadersReceived")
        )
        withoutTLS = [n for n in names if not n.startswith("tls")]
        self.assertEqual(withoutTLS, ["connectStarted", "connectDone", *ONE_REQUEST])

    async def test_connectProxy(self) -> None:
        """
        Through a CONNECT proxy the tunnel's steps come between the connect
        start and its end, naming the proxy without its credentials.
        """
        tls = TLSMaterial()
        proxy = ScriptedProxy(reactor)
        self.addCleanup(proxy.stop)
        target = startTarget(reactor, tls.serverOptions())
        self.addCleanup(target.stop)
        pool, recorder = self.tracedPool()
        agent = PooledAgent(
            reactor,
            pool=pool,
            contextFactory=tls.clientPolicy(),
            proxy=f"http://alice:s3cr3t@127.0.0.1:{proxy.port}",
        )
        await self.fetchOk(agent, b"https://127.0.0.1:%d/" % (target.port,))
        names = [n for n in recorder.names() if not n.startswith("tls")]
        self.assertEqual(
            names,
            [
                "connectStarted",
                "tunnelStarted",
                "tunnelDone",
                "connectDone",
                *ONE_REQUEST,
            ],
        )
        _, kind, url = recorder.args("tunnelStarted")[0]
        self.assertEqual(kind, "CONNECT")
        self.assertEqual(url, f"http://127.0.0.1:{proxy.port}")
        self.assertNotIn("s3cr3t", repr(recorder.calls))

    async def test_forwardingProxy(self) -> None:
        """
        http:// through an HTTP proxy: no tunnel, the request phases as on
        a direct connection.
        """
        proxy = ScriptedProxy(reactor, script=forwardingScript)
        self.addCleanup(proxy.stop)
        target = startTarget(reactor)
        self.addCleanup(target.stop)
        pool, recorder = self.tracedPool()
        agent = PooledAgent(reactor, pool=pool, proxy=f"http://127.0.0.1:{proxy.port}")
        await self.fetchOk(agent, b"http://127.0.0.1:%d/" % (target.port,))
        self.assertEqual(
            recorder.names(), ["connectStarted", "connectDone", *ONE_REQUEST]
        )

    async def test_brokenObserver(self) -> None:
        """
        An observer that raises in every hook is logged each time and
        neither the request nor the next observer notices.
        """
        logged: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        server = self.startServer()
        pool = self.makePool(protocol=self.protocol)
        broken = Broken()
        pool.addObserver(broken)
        recorder = Recorder()
        pool.addObserver(recorder)
        agent = self.makeAgent(pool)
        self.assertEqual(await self.fetchOk(agent, server.url()), b"ok")
        self.assertEqual(
            recorder.names(), ["connectStarted", "connectDone", *ONE_REQUEST]
        )
        failures = [e for e in logged if "log_failure" in e and e.get("hook")]
        self.assertEqual(len(failures), len(recorder.calls))
        pool.removeObserver(broken)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), len(failures))

    async def test_evicted(self) -> None:
        """
        With room for one connection in all, a request to a second key
        closes the first key's idle connection with the reason "evicted".
        """
        first, second = self.startServer(), self.startServer()
        pool, recorder = self.tracedPool(maxConnections=1)
        agent = self.makeAgent(pool)
        await self.fetchOk(agent, first.url())
        (firstId,) = [args[1] for args in recorder.args("connectDone")]
        del recorder.calls[:]
        await self.fetchOk(agent, second.url())
        names = recorder.names()
        self.assertEqual(names[:2], ["requestQueued", "connectionClosed"])
        key, closedId, reason = recorder.args("connectionClosed")[0]
        self.assertEqual((closedId, reason), (firstId, "evicted"))
        self.assertEqual(key, (b"http", b"127.0.0.1", first.port))

    async def test_cancelWhileQueued(self) -> None:
        """
        A request cancelled while it waits in the queue fails its attempt
        with CancelledError and never gets a connection.
        """
        server = self.startServer(slowScript)
        pool, recorder = self.tracedPool(maxConnectionsPerHost=1)
        agent = self.makeAgent(pool)
        first = defer.ensureDeferred(self.fetchOk(agent, server.url()))
        queued = agent.request(b"GET", server.url())
        queued.cancel()
        await self.failureOf(queued)
        await first
        (waiter,) = [args[0] for args in recorder.args("requestQueued")]
        calls = [name for name, args in recorder.calls if args and args[0] is waiter]
        self.assertEqual(calls, ["requestQueued", "requestFailed"])
        (failed,) = recorder.args("requestFailed")
        self.assertIsInstance(failed[1].value, defer.CancelledError)


class HttptoolsTraceTests(TraceTestsMixin):
    protocol = "httptools"


class TwistedTraceTests(TraceTestsMixin):
    protocol = "twisted"


del TraceTestsMixin


class RegistryTests(FaultTestCase):
    """
    Adding and removing observers.
    """

    async def test_noObserverNoTrace(self) -> None:
        """
        Without observers the pool makes no trace and leaves none on a
        connection.
        """
        server = self.startServer()
        pool = self.makePool()
        recorder = Recorder()
        pool.addObserver(recorder)
        self.assertEqual(pool.observers, (recorder,))
        pool.removeObserver(recorder)
        self.assertEqual(pool.observers, ())
        self.assertIsNone(pool._dispatch)
        agent = self.makeAgent(pool)
        await self.fetchOk(agent, server.url())
        (connection,) = pool._live
        self.assertIsNone(connection.trace)
        self.assertEqual(recorder.calls, [])
        self.assertRaises(ValueError, pool.removeObserver, recorder)

    def test_notAnObserver(self) -> None:
        """
        What can never be called (a class given for its instance, L{None},
        an object without any hook) is refused with a L{TypeError}, and an
        observer added twice (it would hear every step twice) with a
        L{ValueError}; the pool's observers are unchanged.
        """
        pool = HTTPConnectionPool(reactor)
        for wrong in (Recorder, TraceObserver, None, object()):
            error = self.assertRaises(TypeError, pool.addObserver, wrong)
            self.assertIn("TraceObserver instance", str(error))
        recorder = Recorder()
        pool.addObserver(recorder)
        error = self.assertRaises(ValueError, pool.addObserver, recorder)
        self.assertIn("already", str(error))
        self.assertEqual(pool.observers, (recorder,))


class HandshakeListenerTests(FaultTestCase):
    """
    The llhttp connection hears that its TLS handshake completed, so the
    connect timer it keeps for the handshake stops there.
    """

    async def test_idleHttpsConnectionOutlivesConnectTimeout(self) -> None:
        """
        An https connection on C{protocol="httptools"} idle for longer than
        C{connectTimeout} is still reused (it was aborted as a handshake
        timeout before).
        """
        from twisted.internet import task

        tls = TLSMaterial()
        server = self.startServer(tls=tls.serverOptions())
        pool = self.makePool(protocol="httptools", connectTimeout=0.2)
        agent = Agent(reactor, pool=pool, contextFactory=tls.clientPolicy())
        url = server.url().replace(b"http:", b"https:")
        await self.fetchOk(agent, url)
        (connection,) = pool._live
        self.assertTrue(connection.handshakeDone)
        await task.deferLater(reactor, 0.4, lambda: None)
        await self.fetchOk(agent, url)
        self.assertEqual(pool.stats().opened, 1)
        self.assertEqual(pool.stats().reused, 1)


class ClockTraceTests(PoolTestCase):
    """
    The pool's steps on a fake clock: exact waits and timeouts.
    """

    def tracedPool(self, **options: Any) -> Recorder:
        self.makePool(**options)
        recorder = Recorder()
        self.pool.addObserver(recorder)
        return recorder

    def test_exactWait(self) -> None:
        """
        A request queued for 2.5 s behind the only connection hears a wait
        of exactly 2.5 s and gets that connection, reused.
        """
        recorder = self.tracedPool(maxConnectionsPerHost=1)
        first = self.getNow()
        second = self.get()
        self.clock.advance(2.5)
        self.roundTrip(first)
        lease = self.successResultOf(second)
        (dequeued,) = recorder.args("requestDequeued")
        self.assertEqual(dequeued[1], 2.5)
        self.assertIs(lease.trace, dequeued[0])
        self.assertEqual(lease.trace.wait, 2.5)
        self.assertEqual(recorder.args("connectionAcquired")[-1][1:], (1, True))

    def test_poolTimeout(self) -> None:
        """
        A request that waits longer than C{poolTimeout} fails its attempt
        with L{PoolTimeoutError} and is never dequeued.
        """
        from pooled_http import PoolTimeoutError

        recorder = self.tracedPool(maxConnectionsPerHost=1, poolTimeout=3)
        self.getNow()
        second = self.get()
        self.clock.advance(3)
        self.failureResultOf(second, PoolTimeoutError)
        (waiter,) = [args[0] for args in recorder.args("requestQueued")]
        calls = [name for name, args in recorder.calls if args and args[0] is waiter]
        self.assertEqual(calls, ["requestQueued", "requestFailed"])
        self.assertEqual(recorder.args("requestDequeued"), [])

    def test_connectTimeout(self) -> None:
        """
        A connect that takes longer than C{connectTimeout} fails the connect
        and then the attempt, with L{ConnectTimeoutError}.
        """
        from pooled_http import ConnectTimeoutError

        recorder = self.tracedPool(connectTimeout=2)
        d = self.get(endpoint=self.endpointFor(autoConnect=False))
        self.clock.advance(2)
        self.failureResultOf(d, ConnectTimeoutError)
        self.assertEqual(
            recorder.names(), ["connectStarted", "connectFailed", "requestFailed"]
        )
        self.assertIsInstance(
            recorder.args("requestFailed")[0][1].value, ConnectTimeoutError
        )

    def test_idleTimeout(self) -> None:
        """
        An idle connection closed by its idle timer is reported closed with
        the reason "idle timeout".
        """
        recorder = self.tracedPool(cachedConnectionTimeout=10)
        self.roundTrip(self.getNow())
        del recorder.calls[:]
        self.clock.advance(10)
        self.assertEqual(
            recorder.calls, [("connectionClosed", (KEY, 1, "idle timeout"))]
        )
