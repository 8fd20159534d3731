"""
Interoperability with a real server no one here wrote: nginx, started on
loopback ports with its own configuration (C{keepalive_timeout 1s},
C{keepalive_requests 3}, plain HTTP and TLS with a certificate made for the
test).

Thousands of GETs and POSTs go through one pool, in bursts separated by
pauses around nginx's one-second keep-alive timeout, so requests keep
meeting connections nginx is closing.  No GET may fail; every POST either
succeeds or fails with a clear, typed error; nginx's access log, which
records the unique C{X-Request-Id} of every request it processed, must not
show any id twice.  nginx answers with the method and the id, so a response
given to the wrong request would be caught too.  A second configuration
also announces the timeout (C{Keep-Alive: timeout=1}); then the pool closes
idle connections first and not even a POST fails.

Skipped, with the reason, when nginx is not installed.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections import Counter
from io import BytesIO
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.trial import unittest
from twisted.web._newclient import (
    RequestNotSent,
    RequestTransmissionFailed,
    ResponseFailed,
    ResponseNeverReceived,
    _WrapperException,
)
from twisted.web.client import Agent, FileBodyProducer, readBody
from twisted.web.http_headers import Headers

from pooled_http import CloseReason, HTTPConnectionPool, errors
from tests.support.failures import innermost
from tests.support.protocols import onEachProtocol
from tests.support.servers import TLSMaterial, unusedPort

#: The clear errors a POST may end with when nginx closes the connection
#: under it: the request could not be sent, or its answer never came.
CLEAR_POST_ERRORS = (
    ResponseNeverReceived,
    RequestNotSent,
    RequestTransmissionFailed,
    ResponseFailed,
    errors.PoolError,
)

#: Pauses between bursts, in seconds: around nginx's 1 s keep-alive timeout.
PAUSES = (0.0, 0.5, 0.9, 0.97, 1.0, 1.03, 1.1)

ROUNDS = 14
BURST = 150

CONFIG = """\
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    {tempPaths}
    log_format ids '$http_x_request_id $request_method $status $connection $connection_requests';
    access_log {tmp}/access.log ids;
    keepalive_timeout 1s{headerTimeout};
    keepalive_requests 3;
    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.1:{tlsPort} ssl;
        ssl_certificate {tmp}/cert.pem;
        ssl_certificate_key {tmp}/key.pem;
        location / {{
            return 200 "$request_method $http_x_request_id\\n";
        }}
    }}
}}
"""


def findNginx() -> str | None:
    """
    The nginx binary, or L{None} if it is not installed.
    """
    return shutil.which("nginx") or next(
        (
            p
            for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
            if os.access(p, os.X_OK)
        ),
        None,
    )


def tempPathDirectives(nginx: str, tmp: str) -> str:
    """
    C{*_temp_path} directives putting every temporary directory under
    C{tmp}, for the modules this nginx was built with.
    """
    built = subprocess.run(
        [nginx, "-V"], capture_output=True, text=True, timeout=10
    ).stderr
    lines = [f"client_body_temp_path {tmp}/client_body;"]
    for module in ("proxy", "fastcgi", "uwsgi", "scgi"):
        if f"--without-http_{module}_module" not in built:
            lines.append(f"{module}_temp_path {tmp}/{module};")
    return "\n    ".join(lines)


class NginxServer:
    """
    An nginx process serving this test's configuration on two loopback
    ports (plain and TLS).

    @ivar port: The plain HTTP port.
    @ivar tlsPort: The HTTPS port.
    @ivar tmp: The directory holding the configuration and logs.
    """

    def __init__(
        self,
        nginx: str,
        tmp: str,
        tls: TLSMaterial,
        keepAliveHeader: bool = False,
        config: str = CONFIG,
    ) -> None:
        self.config = config
        self.nginx = nginx
        self.keepAliveHeader = keepAliveHeader
        self.tmp = tmp
        os.makedirs(tmp, exist_ok=True)
        cert = tls.ca.issue_cert("127.0.0.1")
        cert.cert_chain_pems[0].write_to_path(os.path.join(tmp, "cert.pem"))
        cert.private_key_pem.write_to_path(os.path.join(tmp, "key.pem"))
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.tlsPort = 0

    async def start(self) -> None:
        """
        Start nginx on two free loopback ports; retry with other ports if
        one was taken in between.
        """
        failures = []
        for _ in range(3):
            self.port, self.tlsPort = unusedPort(), unusedPort()
            conf = os.path.join(self.tmp, "nginx.conf")
            with open(conf, "w") as f:
                f.write(
                    self.config.format(
                        tmp=self.tmp,
                        port=self.port,
                        tlsPort=self.tlsPort,
                        tempPaths=tempPathDirectives(self.nginx, self.tmp),
                        headerTimeout=" 1s" if self.keepAliveHeader else "",
                    )
                )
            output = open(os.path.join(self.tmp, "stderr.log"), "wb")
            self.process = subprocess.Popen(
                [
                    self.nginx,
                    "-p",
                    self.tmp,
                    "-c",
                    conf,
                    "-e",
                    os.path.join(self.tmp, "error.log"),
                ],
                stdout=output,
                stderr=output,
            )
            output.close()
            if await self._waitListening():
                return
            failures.append(self._logs())
            self.stop()
        raise RuntimeError("nginx did not start:\n" + "\n".join(failures))

    async def _waitListening(self) -> bool:
        for _ in range(200):
            assert self.process is not None
            if self.process.poll() is not None:
                return False
            if all(self._accepts(p) for p in (self.port, self.tlsPort)):
                return True
            await task.deferLater(reactor, 0.05, lambda: None)
        return False

    @staticmethod
    def _accepts(port: int) -> bool:
        probe = socket.socket()
        try:
            probe.connect(("127.0.0.1", port))
            return True
        except OSError:
            return False
        finally:
            probe.close()

    def _logs(self) -> str:
        text = []
        for name in ("stderr.log", "error.log"):
            path = os.path.join(self.tmp, name)
            if os.path.exists(path):
                with open(path) as f:
                    text.append(f.read())
        return "\n".join(text)

    def stop(self) -> None:
        """
        Stop nginx and wait for it to exit.
        """
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def accessLog(self) -> list[list[str]]:
        """
        The access log, one list of fields per request: id, method, status,
        connection serial number, requests on that connection.
        """
        with open(os.path.join(self.tmp, "access.log")) as f:
            return [line.split() for line in f if line.strip()]


@onEachProtocol
class NginxInteropTests(unittest.TestCase):
    """
    pooled_http against nginx with a short keep-alive timeout and a low
    cap on requests per connection.

    @cvar protocol: The wire protocol of the pool under test.
    """

    timeout = 120
    protocol = "auto"

    def setUp(self) -> None:
        nginx = findNginx()
        if nginx is None:
            raise unittest.SkipTest(
                "nginx is not installed (apt-get install nginx-light); "
                "the nginx interoperability tests need it"
            )
        self.nginx = nginx
        self.tls = TLSMaterial()

    async def startNginx(self, keepAliveHeader: bool = False) -> None:
        """
        Start nginx for this test; with C{keepAliveHeader} it also tells
        clients its timeout (C{Keep-Alive: timeout=1}).
        """
        tmp = tempfile.mkdtemp(prefix="pooled-http-nginx-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        self.server = NginxServer(self.nginx, tmp, self.tls, keepAliveHeader)
        self.addCleanup(self.server.stop)
        await self.server.start()

    async def _load(self, pool: HTTPConnectionPool) -> dict[bytes, tuple[bytes, Any]]:
        """
        Send C{ROUNDS} bursts of C{BURST} requests (a third of them POSTs,
        half over TLS), pausing between bursts for one of L{PAUSES}.

        @return: For each request id, the method and either C{(status,
            body)} or the exception the request failed with.
        """
        agent = Agent(reactor, pool=pool, contextFactory=self.tls.clientPolicy())
        bases = [
            b"http://127.0.0.1:%d/" % (self.server.port,),
            b"https://127.0.0.1:%d/" % (self.server.tlsPort,),
        ]
        ids = itertools.count()
        outcomes: dict[bytes, tuple[bytes, Any]] = {}

        async def one(method: bytes, base: bytes) -> None:
            requestId = b"%s-%d" % (method.lower(), next(ids))
            body = None
            if method == b"POST":
                body = FileBodyProducer(BytesIO(b"payload " + requestId))
            try:
                response = await agent.request(
                    method,
                    base + b"echo",
                    Headers({b"X-Request-Id": [requestId]}),
                    body,
                )
                text = await readBody(response)
                outcomes[requestId] = (method, (response.code, text))
            except Exception as e:
                outcomes[requestId] = (method, e)

        for round_ in range(ROUNDS):
            burst = []
            for i in range(BURST):
                method = b"POST" if i % 3 == 2 else b"GET"
                burst.append(defer.ensureDeferred(one(method, bases[(i + round_) % 2])))
            await defer.gatherResults(burst)
            await task.deferLater(reactor, PAUSES[round_ % len(PAUSES)], lambda: None)
        return outcomes

    async def _runLoad(self) -> tuple[dict[bytes, tuple[bytes, Any]], Any]:
        """
        Run the load through a new pool, check the pool comes to rest, close
        it, and check what every test needs: no GET failed, every answer was
        the right one, every POST failure is a typed request failure, nginx
        processed no request twice and really closed connections on us.

        @return: The outcomes and the pool's final stats.
        """
        pool = HTTPConnectionPool(
            reactor,
            maxConnectionsPerHost=6,
            maxPersistentPerHost=6,
            protocol=self.protocol,
        )
        try:
            outcomes = await self._load(pool)
            stats = pool.stats()
            self.assertEqual((stats.inUse, stats.connecting, stats.waiting), (0, 0, 0))
        finally:
            await pool.close()
        self.assertEqual(len(outcomes), ROUNDS * BURST)

        for requestId, (method, outcome) in outcomes.items():
            if isinstance(outcome, Exception):
                self.assertEqual(
                    method,
                    b"POST",
                    f"GET {requestId!r} failed: {outcome!r} {innermost(outcome)!r}",
                )
                self.assertIsInstance(outcome, (_WrapperException, errors.PoolError))
            else:
                self.assertEqual(outcome, (200, b"%s %s\n" % (method, requestId)))

        log = self.server.accessLog()
        seen = Counter(fields[0] for fields in log)
        twice = [i for i, n in seen.items() if n > 1]
        self.assertEqual(twice, [], "requests nginx processed more than once")
        succeeded = {
            i.decode() for i, (m, o) in outcomes.items() if not isinstance(o, Exception)
        }
        self.assertTrue(
            succeeded <= set(seen), "a successful request is missing from the log"
        )
        self.assertTrue(
            all(int(fields[4]) <= 3 for fields in log),
            "keepalive_requests 3 not in force",
        )
        self.assertGreater(stats.closed.get(CloseReason.SERVER_CLOSED, 0), 0)
        failures = Counter(
            type(o).__name__ for m, o in outcomes.values() if isinstance(o, Exception)
        )
        print(
            f"\nnginx interop ({pool.protocol}): {len(outcomes)} requests, POST failures "
            f"{dict(failures)}, opened {stats.opened}, reused {stats.reused}, "
            f"retried {stats.retried}, closed {dict(stats.closed)}"
        )
        return outcomes, stats

    async def test_keepAliveRaces(self) -> None:
        """
        No GET fails, every answer is the right one, nginx processes no
        request twice, and a POST that fails says clearly what happened: it
        could not be sent, or its answer never came (never, for example, an
        internal error of its body producer).
        """
        await self.startNginx()
        outcomes, _ = await self._runLoad()
        for requestId, (_method, outcome) in outcomes.items():
            if isinstance(outcome, Exception):
                self.assertIsInstance(
                    outcome,
                    CLEAR_POST_ERRORS,
                    f"POST {requestId!r}: {outcome!r} {innermost(outcome)!r}",
                )

    async def test_keepAliveHeaderHonoured(self) -> None:
        """
        When nginx announces its timeout (C{Keep-Alive: timeout=1}) the
        pool closes idle connections before nginx does, so even POSTs after
        pauses around the timeout never meet a connection nginx is closing.
        """
        await self.startNginx(keepAliveHeader=True)
        outcomes, stats = await self._runLoad()
        failed = {
            requestId: outcome
            for requestId, (_method, outcome) in outcomes.items()
            if isinstance(outcome, Exception)
        }
        self.assertEqual(failed, {})
        self.assertGreater(stats.closed.get(CloseReason.IDLE_TIMEOUT, 0), 0)
