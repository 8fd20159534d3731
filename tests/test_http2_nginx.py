"""
HTTP/2 against nginx (its http_v2 module) on loopback, over TLS with ALPN:
bursts on one connection, large bodies both ways (a WebDAV C{PUT} read
back with C{GET}), C{http2_max_concurrent_streams} low so requests queue,
and an HTTP/1.1-only nginx port that the agent falls back to.

Skipped, with the reason, when nginx (or its HTTP/2 module, or h2) is
missing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from io import BytesIO
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial import unittest
from twisted.web.client import FileBodyProducer, readBody
from twisted.web.http_headers import Headers

from pooled_http import HTTPConnectionPool, PooledAgent
from tests.support.servers import TLSMaterial
from tests.test_nginx_interop import NginxServer, findNginx

CONFIG = """\
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    {tempPaths}
    access_log {tmp}/access.log;
    http2_max_concurrent_streams {streams};
    client_max_body_size 64m;
    server {{
        # HTTP/1.1 only, TLS with ALPN offering nothing else.
        listen 127.0.0.1:{port} ssl;
        listen 127.0.0.1:{tlsPort} ssl http2;
        ssl_certificate {tmp}/cert.pem;
        ssl_certificate_key {tmp}/key.pem;
        root {tmp}/www;
        location /echo {{
            return 200 "$request_method $server_protocol $arg_n\\n";
        }}
        location /dav/ {{
            dav_methods PUT;
            create_full_put_path on;
        }}
    }}
}}
"""


def _h2Available() -> str | None:
    try:
        import h2  # noqa: F401
    except ImportError:
        return "h2 is not installed (pip install 'pooled_http[http2]')"
    nginx = findNginx()
    if nginx is None:
        return "nginx is not installed (apt-get install nginx-light)"
    built = subprocess.run(
        [nginx, "-V"], capture_output=True, text=True, timeout=10
    ).stderr
    if "--with-http_v2_module" not in built:
        return "this nginx has no http_v2 module (apt-get install nginx-core)"
    return None


class _NginxHTTP2Case(unittest.TestCase):
    """
    nginx with HTTP/2 on one TLS port and HTTP/1.1 on the other.
    """

    timeout = 120
    streams = 128

    def setUp(self) -> None:
        why = _h2Available()
        if why is not None:
            raise unittest.SkipTest(why)
        nginx = findNginx()
        assert nginx is not None
        self.tls = TLSMaterial()
        tmp = tempfile.mkdtemp(prefix="pooled-http-nginx-h2-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        os.makedirs(os.path.join(tmp, "www", "dav"))
        self.big = os.urandom(3 * 1024 * 1024 + 17)
        with open(os.path.join(tmp, "www", "big.bin"), "wb") as f:
            f.write(self.big)
        self.server = NginxServer(
            nginx, tmp, self.tls, config=CONFIG.replace("{streams}", str(self.streams))
        )
        self.addCleanup(self.server.stop)

    def makeAgent(self, **settings: Any) -> PooledAgent:
        pool = HTTPConnectionPool(reactor, **settings)
        self.addCleanup(pool.close)
        return PooledAgent(
            reactor, pool=pool, contextFactory=self.tls.clientPolicy(), http2=True
        )

    def url(self, path: str, tls2: bool = True) -> bytes:
        port = self.server.tlsPort if tls2 else self.server.port
        return f"https://127.0.0.1:{port}{path}".encode()

    async def get(self, agent: PooledAgent, url: bytes) -> tuple[Any, bytes]:
        response = await agent.request(b"GET", url)
        body = await readBody(response)
        return response, body


class NginxHTTP2Tests(_NginxHTTP2Case):
    """
    L{PooledAgent} with C{http2=True} against nginx.
    """

    async def test_burstOnOneConnection(self) -> None:
        """
        A burst of 100 GETs goes over one HTTP/2 connection; every response
        is its own request's and says HTTP/2.
        """
        await self.server.start()
        agent = self.makeAgent()
        results = await defer.gatherResults(
            [
                defer.ensureDeferred(self.get(agent, self.url(f"/echo?n={i}")))
                for i in range(100)
            ]
        )
        for i, (response, body) in enumerate(results):
            self.assertEqual(response.version, (b"HTTP", 2, 0))
            self.assertEqual(body, f"GET HTTP/2.0 {i}\n".encode())
        stats = agent.pool.stats()  # type: ignore[attr-defined]
        self.assertEqual(stats.opened, 1)

    async def test_largeBodiesBothWays(self) -> None:
        """
        A 3 MiB body goes up with PUT and comes back with GET, byte for
        byte, beside a download of a static file, all on one connection.
        """
        await self.server.start()
        agent = self.makeAgent()
        body = os.urandom(5 * 1024 * 1024 + 3)
        response = await agent.request(
            b"PUT",
            self.url("/dav/up.bin"),
            Headers(),
            FileBodyProducer(BytesIO(body)),
        )
        await readBody(response)
        self.assertIn(response.code, (201, 204))
        (r1, got), (r2, big) = await defer.gatherResults(
            [
                defer.ensureDeferred(self.get(agent, self.url("/dav/up.bin"))),
                defer.ensureDeferred(self.get(agent, self.url("/big.bin"))),
            ]
        )
        self.assertEqual(hashlib.sha256(got).digest(), hashlib.sha256(body).digest())
        self.assertEqual(hashlib.sha256(big).digest(), hashlib.sha256(self.big).digest())
        self.assertEqual(agent.pool.stats().opened, 1)  # type: ignore[attr-defined]

    async def test_fallbackToHTTP11(self) -> None:
        """
        A TLS port without HTTP/2 answers over HTTP/1.1 with the same agent.
        """
        await self.server.start()
        agent = self.makeAgent()
        results = await defer.gatherResults(
            [
                defer.ensureDeferred(
                    self.get(agent, self.url(f"/echo?n={i}", tls2=False))
                )
                for i in range(20)
            ]
        )
        for i, (response, body) in enumerate(results):
            self.assertEqual(response.version, (b"HTTP", 1, 1))
            self.assertEqual(body, f"GET HTTP/1.1 {i}\n".encode())
        self.assertGreater(agent.pool.stats().opened, 1)  # type: ignore[attr-defined]


class NginxLowStreamLimitTests(_NginxHTTP2Case):
    """
    The same with C{http2_max_concurrent_streams 4}: the pool's capacity
    follows the server's setting and the burst queues on the connections
    the per-host cap allows.
    """

    streams = 4

    async def test_burstQueuesOnLimit(self) -> None:
        """
        100 GETs with at most 2 connections of 4 streams each: all succeed,
        no more than 2 connections open.
        """
        await self.server.start()
        agent = self.makeAgent(maxConnectionsPerHost=2)
        results = await defer.gatherResults(
            [
                defer.ensureDeferred(self.get(agent, self.url(f"/echo?n={i}")))
                for i in range(100)
            ]
        )
        for i, (_response, body) in enumerate(results):
            self.assertEqual(body, f"GET HTTP/2.0 {i}\n".encode())
        stats = agent.pool.stats()  # type: ignore[attr-defined]
        self.assertLessEqual(stats.opened, 2)


class NginxHTTP2SoakTests(_NginxHTTP2Case):
    """
    A bounded soak over HTTP/2: many requests, some cancelled at random
    points, with a low stream limit so requests queue, and the pool back
    at rest at the end.
    """

    streams = 16

    async def test_soakWithCancellations(self) -> None:
        """
        2,000 requests (GETs of a small and a large file, PUTs) in bursts of
        200, one in five cancelled after a random delay: every request ends
        with its own response or a cancellation, and afterwards nothing is
        in use, no stream is booked and no timer of the pool is left.
        """
        import random

        from twisted.internet import task
        from twisted.internet.defer import CancelledError

        await self.server.start()
        agent = self.makeAgent(maxConnectionsPerHost=3, responseTimeout=30)
        pool: Any = agent.pool
        rng = random.Random(14)
        outcomes: dict[str, int] = {"ok": 0, "cancelled": 0}

        async def one(i: int) -> None:
            kind = rng.random()
            if kind < 0.1:
                method, url, body = b"PUT", self.url(f"/dav/s{i}.bin"), b"p%d" % i
            elif kind < 0.2:
                method, url, body = b"GET", self.url("/big.bin"), None
            else:
                method, url, body = b"GET", self.url(f"/echo?n={i}"), None
            producer = FileBodyProducer(BytesIO(body)) if body is not None else None
            d = agent.request(method, url, Headers(), producer)
            if rng.random() < 0.2:
                reactor.callLater(rng.random() * 0.01, d.cancel)
            try:
                response = await d
                data = await readBody(response)
            except CancelledError:
                outcomes["cancelled"] += 1
                return
            if method == b"GET" and url.endswith(b"/big.bin"):
                self.assertEqual(len(data), len(self.big))
            elif method == b"GET":
                self.assertEqual(data, f"GET HTTP/2.0 {i}\n".encode())
            else:
                self.assertIn(response.code, (201, 204))
            outcomes["ok"] += 1

        for burst in range(10):
            await defer.gatherResults(
                [
                    defer.ensureDeferred(one(burst * 200 + i))
                    for i in range(200)
                ]
            )
        self.assertEqual(outcomes["ok"] + outcomes["cancelled"], 2000)
        self.assertGreater(outcomes["ok"], 1000)
        await task.deferLater(reactor, 0.1, lambda: None)
        stats = pool.stats()
        self.assertEqual((stats.inUse, stats.waiting, stats.streams), (0, 0, 0))
        self.assertLessEqual(stats.opened, 3 + stats.closedTotal)
        # Only the idle timers of the connections kept are left.
        idleTimers = set(pool._idle.pendingCalls())
        self.assertEqual(
            [c for c in pool._pendingCalls() if c not in idleTimers], []
        )
