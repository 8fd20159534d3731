"""
HTTP/2 faults against a scripted server (L{tests.support.h2server}) on
loopback over TLS: GOAWAY in the middle of a burst, RST_STREAM, a window of
one byte, one stream at a time, SETTINGS changed mid-connection, the
connection dropped with streams in flight, a server that never sends its
preface, per-stream timeouts, cancellation, and the pool's books after
each (nothing in use, nothing leaked).
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.internet.defer import CancelledError
from twisted.trial import unittest
from twisted.web._newclient import ResponseFailed, ResponseNeverReceived
from twisted.web.client import FileBodyProducer, readBody
from twisted.web.http_headers import Headers

from pooled_http import (
    ConnectTimeoutError,
    HTTPConnectionPool,
    PooledAgent,
    PoolTimeoutError,
    ReadTimeoutError,
    ResponseTimeoutError,
    StreamResetError,
)
from tests.support.servers import LOOPBACK, TLSMaterial

try:
    from h2.errors import ErrorCodes

    from tests.support.h2server import (
        H2ServerFactory,
        H2ServerProtocol,
        Script,
        SettingCodes,
        serverTLSOptions,
    )
except ImportError:  # pragma: no cover - h2 missing
    Script = object  # type: ignore[assignment,misc]
    SKIP = "h2 is not installed (pip install 'pooled_http[http2]')"
else:
    SKIP = ""


class _Case(unittest.TestCase):
    timeout = 60

    def setUp(self) -> None:
        if SKIP:
            raise unittest.SkipTest(SKIP)
        self.tls = TLSMaterial()

    def serve(self, script: Any, protocols: list[bytes] | None = None) -> None:
        port = reactor.listenSSL(  # type: ignore[attr-defined]
            0,
            H2ServerFactory(script),
            serverTLSOptions(self.tls, protocols or [b"h2"]),
            interface=LOOPBACK,
        )
        self.addCleanup(port.stopListening)
        self.script = script
        self.base = f"https://{LOOPBACK}:{port.getHost().port}".encode()

    def agent(self, **settings: Any) -> PooledAgent:
        pool = HTTPConnectionPool(reactor, **settings)
        self.addCleanup(pool.close)
        self.pool = pool
        return PooledAgent(
            reactor, pool=pool, contextFactory=self.tls.clientPolicy(), http2=True
        )

    async def get(
        self, agent: PooledAgent, path: bytes, method: bytes = b"GET"
    ) -> bytes:
        response = await agent.request(method, self.base + path)
        self.assertEqual(response.version, (b"HTTP", 2, 0))
        return await readBody(response)

    def assertQuiet(self) -> None:
        """
        The pool has nothing in use and no stream in its books.
        """
        for bucket in self.pool._core.buckets.values():
            self.assertEqual(bucket.inUse, set())
            self.assertEqual(bucket.streams, {})
            self.assertEqual(bucket.waiters, type(bucket.waiters)())


class GoAwayScript(Script):
    """
    On the first connection, once 10 requests arrived: answer streams up
    to 9 (the 5th request), then GOAWAY with last stream id 9.
    """

    def requestComplete(self, proto: H2ServerProtocol, streamId: int) -> None:
        if proto.index > 0:
            proto.respond(streamId)
            return
        if len(proto.headers) == 10:
            for each in sorted(proto.headers):
                if each <= 9:
                    proto.respond(each)
            proto.goAway(9)


class FaultTests(_Case):
    async def test_goAwayMidBurst(self) -> None:
        """
        Streams above GOAWAY's last stream id are retried on a new
        connection, whatever their method; those below finish; no request
        fails.
        """
        self.serve(GoAwayScript())
        agent = self.agent()
        methods = [b"GET", b"POST"] * 5
        bodies = await defer.gatherResults(
            [
                defer.ensureDeferred(self.get(agent, b"/%d" % i, m))
                for i, m in enumerate(methods)
            ]
        )
        self.assertEqual(bodies, [b"%s /%d 0" % (m, i) for i, m in enumerate(methods)])
        self.assertEqual(len(self.script.connections), 2)
        second = [r for r in self.script.requests if r[0] == 1]
        self.assertEqual(len(second), 5)
        await task.deferLater(reactor, 0.05, lambda: None)
        self.assertQuiet()
        self.assertEqual(self.pool.stats().opened, 2)

    async def test_streamsBelowGoAwayFinishAfterIt(self) -> None:
        """
        A GOAWAY that arrives before the answers of the streams at or below
        its last stream id (in the same read, even): those streams still
        complete; those above it are retried on a new connection.
        """
        from hyperframe.frame import GoAwayFrame

        class GoAwayFirst(Script):
            def requestComplete(self, proto: H2ServerProtocol, streamId: int) -> None:
                if proto.index > 0:
                    proto.respond(streamId)
                    return
                if len(proto.headers) == 4:
                    frame = GoAwayFrame(0)
                    frame.last_stream_id = 3
                    proto.transport.write(frame.serialize())
                    proto.respond(1)
                    proto.respond(3)

        self.serve(GoAwayFirst())
        agent = self.agent()
        bodies = await defer.gatherResults(
            [defer.ensureDeferred(self.get(agent, b"/%d" % i)) for i in range(4)]
        )
        self.assertEqual(bodies, [b"GET /%d 0" % i for i in range(4)])
        self.assertEqual(
            [r[0] for r in self.script.requests].count(1), 2, self.script.requests
        )
        await task.deferLater(reactor, 0.05, lambda: None)
        self.assertQuiet()

    async def test_goAwayOnTheRetryToo(self) -> None:
        """
        A request above a GOAWAY's last stream id goes on to a new
        connection even when that one sends GOAWAY as well.
        """

        class TwoGoAways(Script):
            def requestComplete(self, proto: H2ServerProtocol, streamId: int) -> None:
                if proto.index < 2:
                    proto.goAway(0)
                else:
                    proto.respond(streamId)

        self.serve(TwoGoAways())
        agent = self.agent()
        self.assertEqual(await self.get(agent, b"/x", b"POST"), b"POST /x 0")
        self.assertEqual(len(self.script.connections), 3)
        await task.deferLater(reactor, 0.05, lambda: None)
        self.assertQuiet()

    async def test_goAwayForeverBounded(self) -> None:
        """
        A server that sends GOAWAY to every request wears the retry budget
        out: the request fails with UnprocessedStreamError after 1 + 4
        connections, nothing loops.
        """
        from pooled_http import UnprocessedStreamError

        class AlwaysGoAway(Script):
            def requestComplete(self, proto: H2ServerProtocol, streamId: int) -> None:
                proto.goAway(0)

        self.serve(AlwaysGoAway())
        agent = self.agent()
        await self.assertFailure(
            defer.ensureDeferred(self.get(agent, b"/x")), UnprocessedStreamError
        )
        self.assertEqual(len(self.script.connections), 5)
        await task.deferLater(reactor, 0.05, lambda: None)
        self.assertQuiet()

    async def test_rstStreamFailsOnlyThatStream(self) -> None:
        """
        RST_STREAM fails its request with StreamResetError; the others on
        the connection succeed, on one connection.
        """

        class Reset(Script):
            def requestComplete(self, proto: H2ServerProtocol, streamId: int) -> None:
                if proto.headers[streamId][b":path"] == b"/reset":
                    proto.reset(streamId, ErrorCodes.INTERNAL_ERROR)
                else:
                    proto.respond(streamId)

        self.serve(Reset())
        agent = self.agent()
        ok = [defer.ensureDeferred(self.get(agent, b"/ok%d" % i)) for i in range(3)]
        bad = defer.ensureDeferred(self.get(agent, b"/reset"))
        error = await self.assertFailure(bad, StreamResetError)
        self.assertEqual(error.errorCode, ErrorCodes.INTERNAL_ERROR)
        self.assertIn("INTERNAL_ERROR", str(error))
        self.assertEqual(
            await defer.gatherResults(ok), [b"GET /ok%d 0" % i for i in range(3)]
        )
        self.assertEqual(len(self.script.connections), 1)
        self.assertQuiet()

    async def test_refusedStreamRetried(self) -> None:
        """
        A stream refused (REFUSED_STREAM) is retried, even a POST.
        """

        class Refuse(Script):
            def requestComplete(self, proto: H2ServerProtocol, streamId: int) -> None:
                if proto.index == 0:
                    proto.reset(streamId, ErrorCodes.REFUSED_STREAM)
                else:
                    proto.respond(streamId)

        self.serve(Refuse())
        agent = self.agent()
        self.assertEqual(await self.get(agent, b"/x", b"POST"), b"POST /x 0")
        self.assertEqual(len(self.script.connections), 2)

    async def test_refusedOverItsLoad(self) -> None:
        """
        A server that refuses streams beyond what it can take at once (as
        nginx counts streams it is still finishing) without saying so in
        its settings: the connection learns from the refusals to hold new
        streams until others finish, and every request gets its answer on
        the one connection allowed.
        """

        class Busy(Script):
            def requestComplete(self, proto: H2ServerProtocol, streamId: int) -> None:
                if len(proto.open) > 4:
                    proto.reset(streamId, ErrorCodes.REFUSED_STREAM)
                else:
                    reactor.callLater(0.01, proto.respond, streamId)

        self.serve(Busy())
        agent = self.agent(maxConnectionsPerHost=1)
        bodies = await defer.gatherResults(
            [defer.ensureDeferred(self.get(agent, b"/%d" % i)) for i in range(20)]
        )
        self.assertEqual(bodies, [b"GET /%d 0" % i for i in range(20)])
        self.assertEqual(len(self.script.connections), 1)
        await task.deferLater(reactor, 0.05, lambda: None)
        self.assertQuiet()

    async def test_oneByteWindow(self) -> None:
        """
        With a send window of one byte the request body still goes out
        whole, a byte at a time as the server opens the window.
        """

        class Tiny(Script):
            settings = {SettingCodes.INITIAL_WINDOW_SIZE: 1}

        self.serve(Tiny())
        agent = self.agent()
        body = bytes(range(256)) * 8
        response = await agent.request(
            b"POST", self.base + b"/up", Headers(), FileBodyProducer(BytesIO(body))
        )
        self.assertEqual(await readBody(response), b"POST /up %d" % len(body))
        self.assertEqual(bytes(self.script.connections[0].bodies[1]), body)

    async def test_maxStreamsOne(self) -> None:
        """
        A server allowing one stream at a time, one connection allowed:
        requests queue and go one after another.
        """

        class One(Script):
            settings = {SettingCodes.MAX_CONCURRENT_STREAMS: 1}

        self.serve(One())
        agent = self.agent(maxConnectionsPerHost=1)
        bodies = await defer.gatherResults(
            [defer.ensureDeferred(self.get(agent, b"/%d" % i)) for i in range(10)]
        )
        self.assertEqual(bodies, [b"GET /%d 0" % i for i in range(10)])
        self.assertEqual(self.script.maxOpen, 1)
        self.assertEqual(len(self.script.connections), 1)

    async def test_poolStreamLimitChangedLive(self) -> None:
        """
        Raising the pool's maxConcurrentStreams lets the open connection
        take more streams at once; lowering it again holds new requests
        back until the open streams are fewer.
        """
        self.serve(Hold())
        agent = self.agent(maxConnectionsPerHost=1, maxConcurrentStreams=1)
        first = [defer.ensureDeferred(self.get(agent, b"/%d" % i)) for i in range(4)]
        await task.deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(len(self.script.held), 1)
        self.pool.maxConcurrentStreams = 3
        await task.deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(len(self.script.held), 3)
        self.pool.maxConcurrentStreams = 2
        # Three open, limit two: one answered leaves two open, no room.
        proto, streamId = self.script.held[0]
        proto.respond(streamId)
        await task.deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(len(self.script.held), 3)
        proto, streamId = self.script.held[1]
        proto.respond(streamId)
        await task.deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(len(self.script.held), 4)
        self.assertEqual(self.script.maxOpen, 3)
        for proto, streamId in self.script.held[2:]:
            proto.respond(streamId)
        self.assertEqual(
            await defer.gatherResults(first), [b"GET /%d 0" % i for i in range(4)]
        )
        self.assertEqual(len(self.script.connections), 1)
        await task.deferLater(reactor, 0.05, lambda: None)
        self.assertQuiet()

    async def test_settingsChangeMidConnection(self) -> None:
        """
        The server raises its stream limit from 1 to 10 after the first
        request: the pool uses the new room on the same connection.
        """

        class Raise(Script):
            settings = {SettingCodes.MAX_CONCURRENT_STREAMS: 1}

            def requestComplete(self, proto: H2ServerProtocol, streamId: int) -> None:
                if streamId == 1:
                    proto.changeSettings({SettingCodes.MAX_CONCURRENT_STREAMS: 10})
                    proto.respond(streamId)
                    return
                # Answer once 5 are open at once.
                if len(proto.open) >= 5 or streamId == 1:
                    for each in sorted(proto.open):
                        proto.respond(each)

        self.serve(Raise())
        agent = self.agent(maxConnectionsPerHost=1)
        self.assertEqual(await self.get(agent, b"/first"), b"GET /first 0")
        await task.deferLater(reactor, 0.05, lambda: None)
        bodies = await defer.gatherResults(
            [defer.ensureDeferred(self.get(agent, b"/%d" % i)) for i in range(5)]
        )
        self.assertEqual(bodies, [b"GET /%d 0" % i for i in range(5)])
        self.assertEqual(self.script.maxOpen, 5)
        self.assertEqual(len(self.script.connections), 1)

    async def test_droppedWithStreamsInFlight(self) -> None:
        """
        The connection drops with three streams in flight: the first
        request (on a new connection) fails with ResponseNeverReceived; the
        two handed the connection while it was already carrying a request
        are GETs on a reused connection, retried by the default policy on
        a new one; nothing hangs and the pool's books are clean.
        """

        class Drop(Script):
            def requestComplete(self, proto: H2ServerProtocol, streamId: int) -> None:
                if proto.index > 0:
                    proto.respond(streamId)
                elif len(proto.headers) == 3:
                    proto.transport.abortConnection()

        self.serve(Drop())
        agent = self.agent()
        attempts = [defer.ensureDeferred(self.get(agent, b"/%d" % i)) for i in range(3)]
        await self.assertFailure(attempts[0], ResponseNeverReceived)
        self.assertEqual(await attempts[1], b"GET /1 0")
        self.assertEqual(await attempts[2], b"GET /2 0")
        self.assertEqual(len(self.script.connections), 2)
        self.assertQuiet()
        self.assertEqual(self.pool.stats().inUse, 0)

    async def test_noPreface(self) -> None:
        """
        A server that never sends its SETTINGS: the connect timeout, which
        covers the SETTINGS exchange, fails the request.
        """

        class Silent(Script):
            preface = False

        self.serve(Silent())
        agent = self.agent(connectTimeout=0.3)
        attempt = defer.ensureDeferred(self.get(agent, b"/"))
        await self.assertFailure(attempt, ConnectTimeoutError)
        self.assertQuiet()

    async def test_responseTimeoutPerStream(self) -> None:
        """
        responseTimeout fails the stream the server does not answer and
        resets it; the connection serves the others.
        """

        class Slow(Script):
            def requestComplete(self, proto: H2ServerProtocol, streamId: int) -> None:
                if proto.headers[streamId][b":path"] != b"/slow":
                    proto.respond(streamId)

        self.serve(Slow())
        agent = self.agent(responseTimeout=0.3)
        slow = defer.ensureDeferred(self.get(agent, b"/slow"))
        self.assertEqual(await self.get(agent, b"/fast"), b"GET /fast 0")
        await self.assertFailure(slow, ResponseTimeoutError)
        self.assertEqual(self.pool.stats().timedOut, 1)
        self.assertEqual(await self.get(agent, b"/again"), b"GET /again 0")
        self.assertEqual(len(self.script.connections), 1)
        await task.deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(
            [(c, s, e) for c, s, e in self.script.resets], [(0, 1, ErrorCodes.CANCEL)]
        )

    async def test_cancelResetsStream(self) -> None:
        """
        Cancelling a request resets its stream and frees its slot; the
        connection goes on.
        """

        class Never(Script):
            def requestComplete(self, proto: H2ServerProtocol, streamId: int) -> None:
                if proto.headers[streamId][b":path"] != b"/never":
                    proto.respond(streamId)

        self.serve(Never())
        agent = self.agent()
        self.assertEqual(await self.get(agent, b"/warm"), b"GET /warm 0")
        d = agent.request(b"GET", self.base + b"/never")
        await task.deferLater(reactor, 0.05, lambda: None)
        d.cancel()
        await self.assertFailure(d, CancelledError)
        self.assertEqual(await self.get(agent, b"/after"), b"GET /after 0")
        await task.deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(self.script.resets, [(0, 3, ErrorCodes.CANCEL)])
        self.assertQuiet()

    async def test_idleCloseSendsGoAway(self) -> None:
        """
        An idle HTTP/2 connection is closed politely, with GOAWAY, when its
        idle timeout runs out, and so is one closed by close().
        """
        self.serve(Script())
        agent = self.agent(cachedConnectionTimeout=0.2)
        self.assertEqual(await self.get(agent, b"/a"), b"GET /a 0")
        while not self.script.goAways:
            await task.deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(self.script.goAways, [(0, 0)])
        self.assertEqual(self.pool.stats().closed["idle timeout"], 1)
        self.assertEqual(await self.get(agent, b"/b"), b"GET /b 0")
        await self.pool.close()
        await task.deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(self.script.goAways, [(0, 0), (1, 0)])

    async def test_statsShowStreams(self) -> None:
        """
        stats() counts, per key, the streams in flight beside the one
        connection carrying them.
        """
        held: list[tuple[H2ServerProtocol, int]] = []

        class Hold(Script):
            def requestComplete(self, proto: H2ServerProtocol, streamId: int) -> None:
                held.append((proto, streamId))

        self.serve(Hold())
        agent = self.agent()
        attempts = [defer.ensureDeferred(self.get(agent, b"/%d" % i)) for i in range(4)]
        while len(held) < 4:
            await task.deferLater(reactor, 0.01, lambda: None)
        stats = self.pool.stats()
        (key,) = stats.perKey
        self.assertEqual(key[-1], b"h2")
        self.assertEqual(
            (stats.perKey[key].inUse, stats.perKey[key].streams, stats.streams),
            (1, 4, 4),
        )
        for proto, streamId in held:
            proto.respond(streamId)
        await defer.gatherResults(attempts)
        stats = self.pool.stats()
        self.assertEqual((stats.inUse, stats.idle, stats.streams), (0, 1, 0))

    async def test_throughConnectProxy(self) -> None:
        """
        HTTP/2 inside a CONNECT tunnel: one CONNECT, one tunnel, every
        request on it as a stream; the key says h2.
        """
        from tests.support.proxyservers import ScriptedProxy

        self.serve(Script())
        proxy = ScriptedProxy(reactor)
        self.addCleanup(proxy.stop)
        pool = HTTPConnectionPool(reactor)
        self.addCleanup(pool.close)
        self.pool = pool
        agent = PooledAgent(
            reactor,
            pool=pool,
            contextFactory=self.tls.clientPolicy(),
            proxy=f"http://{LOOPBACK}:{proxy.port}",
            http2=True,
        )
        bodies = await defer.gatherResults(
            [defer.ensureDeferred(self.get(agent, b"/%d" % i)) for i in range(10)]
        )
        self.assertEqual(bodies, [b"GET /%d 0" % i for i in range(10)])
        self.assertEqual(len(proxy.connects()), 1)
        self.assertEqual(len(self.script.connections), 1)
        (key,) = pool.stats().perKey
        self.assertEqual(key[-1], b"h2")

    async def test_http11OnlyServerFallsBack(self) -> None:
        """
        A TLS server that offers only http/1.1 by ALPN is spoken to in
        HTTP/1.1.
        """
        from twisted.web.resource import Resource
        from twisted.web.server import Site

        class Hello(Resource):
            isLeaf = True

            def render_GET(self, request: Any) -> bytes:
                return b"hello " + request.clientproto

        class HTTP11Site(Site):
            # twisted.web offers h2 too where h2 and priority import.
            def acceptableProtocols(self) -> list[bytes]:
                return [b"http/1.1"]

        port = reactor.listenSSL(  # type: ignore[attr-defined]
            0,
            HTTP11Site(Hello()),
            serverTLSOptions(self.tls, [b"http/1.1"]),
            interface=LOOPBACK,
        )
        self.addCleanup(port.stopListening)
        agent = self.agent()
        url = f"https://{LOOPBACK}:{port.getHost().port}/".encode()
        response = await agent.request(b"GET", url)
        self.assertEqual(response.version, (b"HTTP", 1, 1))
        self.assertEqual(await readBody(response), b"hello HTTP/1.1")


class TraceTests(_Case):
    async def test_hookOrderPerStream(self) -> None:
        """
        Each request on an HTTP/2 connection hears its own steps, its
        stream id among them, in the order HTTP/1.1 requests do.
        """
        from tests.test_trace import Recorder

        self.serve(Script())
        agent = self.agent()
        recorder = Recorder()
        self.pool.addObserver(recorder)
        await defer.gatherResults(
            [
                defer.ensureDeferred(self.get(agent, b"/a")),
                defer.ensureDeferred(self.get(agent, b"/b", b"POST")),
                defer.ensureDeferred(self.get(agent, b"/c")),
            ]
        )
        traces = [args[0] for args in recorder.args("requestStarting")]
        self.assertEqual(len(traces), 3)
        for trace in traces:
            skipped = (
                "connectStarted",
                "connectDone",
                "requestQueued",
                "requestDequeued",
            )
            steps = [
                name
                for name, args in recorder.calls
                if args[:1] == (trace,) and name not in skipped
            ]
            self.assertEqual(
                steps,
                [
                    "connectionAcquired",
                    "requestStarting",
                    "streamOpened",
                    "requestHeadersSent",
                    "requestBodySent",
                    "responseHeadersReceived",
                    "responseBodyDone",
                ],
            )
            self.assertEqual(trace.version, (b"HTTP", 2, 0))
            self.assertEqual(trace.status, 200)
            self.assertTrue(trace.finished)
        self.assertEqual(sorted(t.streamId for t in traces), [1, 3, 5])
        self.assertEqual(len(recorder.args("connectStarted")), 1)
        self.assertEqual(len(recorder.args("connectDone")), 1)
        self.assertQuiet()


class PartialBodyScript(Script):
    """
    Answers with headers and the first 10 of 100 body bytes, then stalls
    (C{/stall}) or resets the stream (C{/reset}).
    """

    def requestComplete(self, proto: H2ServerProtocol, streamId: int) -> None:
        proto.h2.send_headers(
            streamId, [(b":status", b"200"), (b"content-length", b"100")]
        )
        proto.h2.send_data(streamId, b"x" * 10)
        proto.flush()
        if proto.headers[streamId][b":path"] == b"/reset":
            proto.reset(streamId, 2)


class BodyFailureTraceTests(_Case):
    async def assertBodyFailureTraced(self, path: bytes, abandon: bool) -> None:
        from tests.test_trace import Recorder

        self.serve(PartialBodyScript())
        agent = self.agent()
        recorder = Recorder()
        self.pool.addObserver(recorder)
        response = await agent.request(b"GET", self.base + path)
        self.assertEqual(response.version, (b"HTTP", 2, 0))
        body = readBody(response)
        if abandon:
            body.cancel()
        try:
            await body
        except Exception:
            pass
        else:
            self.fail("the body did not fail")
        (trace,) = [args[0] for args in recorder.args("requestStarting")]
        self.assertTrue(trace.finished)
        steps = [name for name, args in recorder.calls if args[:1] == (trace,)]
        self.assertEqual(steps[-2:], ["responseHeadersReceived", "requestFailed"])
        self.assertQuiet()

    async def test_abandonedBodyTraced(self) -> None:
        """
        A body the caller stops reading (C{readBody} cancelled) ends its
        attempt's trace with C{requestFailed}, as on HTTP/1.1: otherwise
        its span would never end and C{http.client.active_requests} would
        stay up for good.
        """
        await self.assertBodyFailureTraced(b"/stall", abandon=True)

    async def test_resetMidBodyTraced(self) -> None:
        """
        A stream the server resets after the response headers ends its
        attempt's trace with C{requestFailed}.
        """
        await self.assertBodyFailureTraced(b"/reset", abandon=False)


class Hold(Script):
    """
    Answers nothing by itself: keeps C{(connection, stream id)} of every
    whole request in L{held}, for the test to answer (or not).
    """

    def __init__(self) -> None:
        super().__init__()
        self.held: list[tuple[H2ServerProtocol, int]] = []

    def requestComplete(self, proto: H2ServerProtocol, streamId: int) -> None:
        self.held.append((proto, streamId))


def partialBody(proto: H2ServerProtocol, streamId: int, size: int = 10) -> None:
    """
    Send the headers of a 1,000-byte response and its first C{size} bytes.
    """
    proto.h2.send_headers(
        streamId, [(b":status", b"200"), (b"content-length", b"1000")]
    )
    proto.h2.send_data(streamId, b"d" * size)
    proto.flush()


class FaultMatrixTests(_Case):
    """
    The rows of the fault matrix (tests/faults) that apply to HTTP/2 and
    that L{FaultTests} does not cover: each ends with a typed error and the
    pool at rest.
    """

    async def waitHeld(self, script: Hold, count: int) -> None:
        while len(script.held) < count:
            await task.deferLater(reactor, 0.01, lambda: None)

    async def settled(self) -> None:
        await task.deferLater(reactor, 0.05, lambda: None)
        self.assertQuiet()
        stats = self.pool.stats()
        self.assertEqual((stats.inUse, stats.connecting, stats.waiting), (0, 0, 0))

    async def test_connectionRefused(self) -> None:
        """
        Nothing listens: ConnectionRefusedError, nothing held.
        """
        from twisted.internet.error import ConnectionRefusedError

        from tests.support.servers import unusedPort

        agent = self.agent()
        url = f"https://{LOOPBACK}:{unusedPort()}/".encode()
        await self.assertFailure(agent.request(b"GET", url), ConnectionRefusedError)
        await self.settled()
        self.assertEqual((self.pool.stats().opened, self.pool.stats().failed), (0, 1))

    async def test_readTimeoutPerStream(self) -> None:
        """
        The body stalls after its first bytes: readTimeout fails that body
        with ReadTimeoutError and resets the stream; the connection serves
        the next request.
        """

        class Stall(Script):
            def requestComplete(self, proto: H2ServerProtocol, streamId: int) -> None:
                if proto.headers[streamId][b":path"] == b"/stall":
                    partialBody(proto, streamId)
                else:
                    proto.respond(streamId)

        self.serve(Stall())
        agent = self.agent(readTimeout=0.3)
        response = await agent.request(b"GET", self.base + b"/stall")
        await self.assertFailure(readBody(response), ReadTimeoutError)
        self.assertEqual(await self.get(agent, b"/again"), b"GET /again 0")
        self.assertEqual(len(self.script.connections), 1)
        await self.settled()
        self.assertEqual(self.script.resets, [(0, 1, ErrorCodes.CANCEL)])
        self.assertEqual(self.pool.stats().timedOut, 1)

    async def test_closedMidBody(self) -> None:
        """
        The server drops the connection in the middle of a body: the body
        fails with ResponseFailed, the connection is not reused.
        """

        class Cut(Script):
            def requestComplete(self, proto: H2ServerProtocol, streamId: int) -> None:
                if proto.index > 0:
                    proto.respond(streamId)
                    return
                partialBody(proto, streamId)
                # Once the partial response is out (an abort drops what
                # is not written yet).
                reactor.callLater(0.05, proto.transport.abortConnection)

        self.serve(Cut())
        agent = self.agent()
        response = await agent.request(b"GET", self.base + b"/cut")
        await self.assertFailure(readBody(response), ResponseFailed)
        self.assertEqual(await self.get(agent, b"/again"), b"GET /again 0")
        self.assertEqual(len(self.script.connections), 2)
        await self.settled()

    async def test_poolTimeout(self) -> None:
        """
        One connection, one stream at a time, the stream held: the next
        request fails with PoolTimeoutError after poolTimeout.
        """

        class One(Hold):
            settings = {SettingCodes.MAX_CONCURRENT_STREAMS: 1}

        script = One()
        self.serve(script)
        agent = self.agent(maxConnectionsPerHost=1, poolTimeout=0.2)
        first = defer.ensureDeferred(self.get(agent, b"/first"))
        await self.waitHeld(script, 1)
        await self.assertFailure(
            agent.request(b"GET", self.base + b"/second"), PoolTimeoutError
        )
        proto, streamId = script.held[0]
        proto.respond(streamId)
        self.assertEqual(await first, b"GET /first 0")
        await self.settled()

    async def test_cancelWhileConnecting(self) -> None:
        """
        Cancelled before the server's SETTINGS arrived: CancelledError, the
        connection attempt is given up, nothing held.
        """

        class Silent(Script):
            preface = False

        self.serve(Silent())
        agent = self.agent(connectTimeout=30)
        d = agent.request(b"GET", self.base + b"/")
        await task.deferLater(reactor, 0.05, lambda: None)
        d.cancel()
        await self.assertFailure(d, CancelledError)
        await self.settled()
        self.assertEqual(self.pool.stats().idle, 0)

    async def test_cancelWhileQueued(self) -> None:
        """
        Cancelled while waiting for a stream slot: CancelledError, it never
        reaches the server; the request ahead of it finishes.
        """

        class One(Hold):
            settings = {SettingCodes.MAX_CONCURRENT_STREAMS: 1}

        script = One()
        self.serve(script)
        agent = self.agent(maxConnectionsPerHost=1)
        first = defer.ensureDeferred(self.get(agent, b"/first"))
        await self.waitHeld(script, 1)
        queued = agent.request(b"GET", self.base + b"/queued")
        await task.deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(self.pool.stats().waiting, 1)
        queued.cancel()
        await self.assertFailure(queued, CancelledError)
        proto, streamId = script.held[0]
        proto.respond(streamId)
        self.assertEqual(await first, b"GET /first 0")
        self.assertEqual([r[3] for r in script.requests], [b"/first"])
        await self.settled()

    async def test_cancelWhileReadingBody(self) -> None:
        """
        Cancelling the body's Deferred in the middle of a body resets the
        stream; the connection goes on.
        """

        class Stall(Script):
            def requestComplete(self, proto: H2ServerProtocol, streamId: int) -> None:
                if proto.headers[streamId][b":path"] == b"/stall":
                    partialBody(proto, streamId)
                else:
                    proto.respond(streamId)

        self.serve(Stall())
        agent = self.agent()
        response = await agent.request(b"GET", self.base + b"/stall")
        body = readBody(response)
        await task.deferLater(reactor, 0.05, lambda: None)
        body.cancel()
        await self.assertFailure(body, CancelledError)
        self.assertEqual(await self.get(agent, b"/again"), b"GET /again 0")
        self.assertEqual(len(self.script.connections), 1)
        await self.settled()
        self.assertEqual(self.script.resets, [(0, 1, ErrorCodes.CANCEL)])

    async def threeHeld(self) -> tuple[Hold, Any, list[Any]]:
        """
        Three requests whose streams the server holds unanswered.

        @return: The script, the agent and the requests' Deferreds.
        """
        script = Hold()
        self.serve(script)
        agent = self.agent()
        attempts = [defer.ensureDeferred(self.get(agent, b"/%d" % i)) for i in range(3)]
        await self.waitHeld(script, 3)
        return script, agent, attempts

    async def answerHeld(self, script: Hold, attempts: list[Any]) -> None:
        """
        A moment later, answer the held streams; each request gets its own
        response.
        """
        await task.deferLater(reactor, 0.05, lambda: None)
        for proto, streamId in script.held:
            proto.respond(streamId)
        self.assertEqual(
            await defer.gatherResults(attempts), [b"GET /%d 0" % i for i in range(3)]
        )

    async def test_closeLetsStreamsFinish(self) -> None:
        """
        close() with three streams in flight: they finish, then the
        connection is closed and close()'s Deferred fires.
        """
        script, agent, attempts = await self.threeHeld()
        closed = self.pool.close()
        await self.answerHeld(script, attempts)
        await closed
        await self.settled()
        self.assertTrue(script.connections[0].lost)

    async def test_closeTimeoutAbortsStreams(self) -> None:
        """
        close(timeout) with streams the server never answers: at the
        timeout they fail with ResponseNeverReceived and the connection is
        aborted.
        """
        _, _, attempts = await self.threeHeld()
        await self.pool.close(timeout=0.2)
        for attempt in attempts:
            await self.assertFailure(attempt, ResponseNeverReceived)
        await self.settled()

    async def test_closeCachedConnectionsWithStreams(self) -> None:
        """
        closeCachedConnections() with streams in flight: they finish, the
        connection is then closed and not reused; the pool goes on.
        """
        script, agent, attempts = await self.threeHeld()
        closed = self.pool.closeCachedConnections()
        await self.answerHeld(script, attempts)
        await closed
        later = defer.ensureDeferred(self.get(agent, b"/later"))
        await self.waitHeld(script, 4)
        proto, streamId = script.held[3]
        self.assertEqual(proto.index, 1)
        proto.respond(streamId)
        self.assertEqual(await later, b"GET /later 0")
        await self.settled()


class BigHeadersScript(Script):
    """
    Answers with a 20 KB header.
    """

    def requestComplete(self, proto: H2ServerProtocol, streamId: int) -> None:
        proto.h2.send_headers(
            streamId,
            [(b":status", b"200"), (b"x-big", b"x" * 20000)],
            end_stream=True,
        )
        proto.flush()


class MalformedScript(Script):
    """
    Answers C{/long} with more body bytes than its I{Content-Length},
    C{/close} with a I{Connection} header, C{/twice} with two C{:status},
    the others as usual.
    """

    config = {"validate_outbound_headers": False, "normalize_outbound_headers": False}

    def requestComplete(self, proto: H2ServerProtocol, streamId: int) -> None:
        path = proto.headers[streamId][b":path"]
        if path == b"/long":
            proto.h2.send_headers(
                streamId, [(b":status", b"200"), (b"content-length", b"2")]
            )
            proto.h2.send_data(streamId, b"12345")
            proto.flush()
        elif path == b"/close":
            proto.h2.send_headers(
                streamId, [(b":status", b"200"), (b"connection", b"close")], True
            )
            proto.flush()
        elif path == b"/twice":
            proto.h2.send_headers(
                streamId, [(b":status", b"200"), (b":status", b"500")], True
            )
            proto.flush()
        else:
            proto.respond(streamId)


class MalformedResponseTests(_Case):
    async def test_malformedStreamsFailAlone(self) -> None:
        """
        In a burst on one connection, each malformed response fails its
        request with a FramingError naming its stream (the one still open
        is reset with PROTOCOL_ERROR); the others succeed on the same
        connection.
        """
        from pooled_http.errors import FramingError

        self.serve(MalformedScript())
        agent = self.agent()
        paths = [b"/ok%d" % i for i in range(6)]
        paths[1:1] = [b"/long"]
        paths[3:3] = [b"/close"]
        paths[5:5] = [b"/twice"]
        results = await defer.gatherResults(
            [
                defer.ensureDeferred(self.get(agent, path)).addErrback(lambda f: f.value)
                for path in paths
            ]
        )
        for path, result in zip(paths, results, strict=True):
            if path.startswith(b"/ok"):
                self.assertEqual(result, b"GET %s 0" % path)
                continue
            self.assertIsInstance(result, ResponseFailed)
            error = result.reasons[0].value
            self.assertIsInstance(error, FramingError)
            self.assertIn("HTTP/2 stream", str(error))
        self.assertEqual(len(self.script.connections), 1)
        longId = [r[1] for r in self.script.requests if r[3] == b"/long"][0]
        self.assertEqual(await self.get(agent, b"/after"), b"GET /after 0")
        self.assertIn((0, longId, ErrorCodes.PROTOCOL_ERROR), self.script.resets)
        self.assertEqual(len(self.script.connections), 1)
        await task.deferLater(reactor, 0.05, lambda: None)
        self.assertQuiet()


class HeaderLimitTests(_Case):
    async def test_headersPastMaxHeaderBytes(self) -> None:
        """
        A header block past C{maxHeaderBytes} (announced as
        C{SETTINGS_MAX_HEADER_LIST_SIZE}) fails with the setting's own
        error, L{ResponseHeadersTooLargeError}, as on HTTP/1.1.
        """
        from twisted.web._newclient import ResponseFailed

        from pooled_http import ResponseHeadersTooLargeError

        self.serve(BigHeadersScript())
        agent = self.agent(maxHeaderBytes=8192, retryAutomatically=False)
        try:
            await agent.request(b"GET", self.base + b"/")
        except ResponseHeadersTooLargeError as e:
            error: BaseException = e
        except ResponseFailed as e:
            error = e.reasons[0].value
        else:
            self.fail("the request did not fail")
        self.assertIsInstance(error, ResponseHeadersTooLargeError)
        self.assertIn("maxHeaderBytes=8192", str(error))
        # The connection was aborted: its slot is free once it is gone.
        for _ in range(200):
            if not self.pool.stats().inUse:
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        self.assertQuiet()
