"""
Soak: a bounded run of many requests through one pool against a loopback
server that kills a seeded random share of its connections at random
points - before the response headers, in the middle of a body, or while
the connection sits idle - and ends the others after a random number of
requests.

At the end it checks that:

    - every request ended, with a response or a typed error (no Deferred
      left pending);
    - no POST was processed twice (the server counts request ids);
    - open file descriptors are back to their count before the run;
    - C{pool.stats()} shows nothing in use, connecting or waiting;
    - no DelayedCall the run created is left;
    - resident memory after the run is within 10% of memory after a
      warm-up.

Usage (bounded: at most C{--max-seconds}, 120 by default, and a fixed
number of requests)::

    python benchmarks/soak.py                       # 50,000 requests
    python benchmarks/soak.py --requests 5000 --seed 7
    python benchmarks/soak.py --tls --proxy         # through a CONNECT proxy
    python benchmarks/soak.py --tls --proxy squid   # through a real squid
    python benchmarks/soak.py --protocol twisted    # Twisted's HTTP/1.1 protocol
    python benchmarks/soak.py --http2               # HTTP/2 (TLS), chaotic h2 server

Over HTTP/2 the server (L{tests.support.h2chaos}) drops connections with
streams in flight or mid-body, resets streams (C{REFUSED_STREAM}, which
may be retried, and C{INTERNAL_ERROR}, which may not), sends C{GOAWAY}
mid-burst and after N streams, and delays some responses; it counts only
the POSTs that reached it (not those refused or above a C{GOAWAY}'s last
stream id).

Exit status 0 when every check passes.  tests/test_soak.py runs a reduced
version of the same code.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

from twisted.internet import defer, task
from twisted.internet.error import ConnectError
from twisted.web._newclient import (
    RequestNotSent,
    RequestTransmissionFailed,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.client import Agent, FileBodyProducer
from twisted.web.http_headers import Headers

from pooled_http import HTTPConnectionPool, PooledAgent, ProxyEndpointFactory, errors
from pooled_http._protocols import PROTOCOLS

HERE = Path(__file__).resolve().parent
# The benchmarks' own modules, and the repository root for tests.support
# (the scripted servers live with the test suite), whether this file runs as
# a script or is loaded by path from the tests.
for _path in (str(HERE), str(HERE.parent)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from _common import residentBytes  # noqa: E402
from tests.support import proxyservers as _proxyservers  # noqa: E402
from tests.support.servers import (  # noqa: E402
    ChaosScript,
    ScriptedServer,
    TLSMaterial,
    collectBody,
    unusedPort,
)

#: The proxies a soak can go through: the scripted CONNECT proxy of the
#: tests, or a squid started on a loopback port (if installed).
PROXIES = ("scripted", "squid")


def openFileDescriptors() -> int:
    """
    How many file descriptors this process has open (Linux: /proc/self/fd).
    """
    return len(os.listdir("/proc/self/fd"))


@dataclass
class SoakResult:
    """
    What a soak run did and found.

    @ivar requests: Requests sent.
    @ivar succeeded: Requests answered 200 with the whole, right body.
    @ivar errors: Typed failures, by exception type name.
    @ivar examples: The first message of each kind of typed failure.
    @ivar untyped: Failures of an unexpected type (each a repr).
    @ivar pending: Requests still pending when the run had to stop.
    @ivar duplicates: POST ids the server processed more than once.
    @ivar posts: POSTs sent.
    @ivar connections: Connections the server accepted.
    @ivar kills: Connections killed, by point.
    @ivar fdBefore: Open file descriptors before the run.
    @ivar fdAfter: Open file descriptors after the run and shutdown.
    @ivar delayedCallsLeft: DelayedCalls created by the run still pending
        after shutdown (each a repr).
    @ivar atRest: C{(inUse, connecting, waiting)} after the last request.
    @ivar stats: The pool's counters after the last request.
    @ivar memoryWarm: Resident bytes after the warm-up.
    @ivar memoryEnd: Resident bytes after the run.
    @ivar seconds: Wall-clock duration of the run.
    @ivar tunnels: CONNECTs the proxy logged (with C{proxy}), else 0.
    @ivar protocol: The wire protocol the pool spoke.
    @ivar http2: Whether the soak spoke HTTP/2.
    """

    requests: int = 0
    succeeded: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    untyped: list[str] = field(default_factory=list)
    pending: int = 0
    duplicates: list[str] = field(default_factory=list)
    posts: int = 0
    connections: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    fdBefore: int = 0
    fdAfter: int = 0
    delayedCallsLeft: list[str] = field(default_factory=list)
    atRest: tuple[int, int, int] = (0, 0, 0)
    stats: dict[str, Any] = field(default_factory=dict)
    memoryWarm: int = 0
    memoryEnd: int = 0
    seconds: float = 0.0
    tunnels: int = 0
    protocol: str = ""
    http2: bool = False

    @property
    def memoryGrowth(self) -> float:
        """
        Memory after the run relative to after the warm-up (0.05 = 5% more).
        """
        if not self.memoryWarm:
            return 0.0
        return self.memoryEnd / self.memoryWarm - 1.0

    def problems(self, checkMemory: bool = True) -> list[str]:
        """
        Every check that failed, in words (empty when all passed).

        @param checkMemory: Whether to check memory growth.
        """
        found = []
        if self.pending:
            found.append(f"{self.pending} requests never ended")
        if self.untyped:
            found.append(f"untyped failures: {self.untyped[:5]}")
        if self.duplicates:
            found.append(f"POSTs processed twice: {self.duplicates[:5]}")
        if self.fdAfter != self.fdBefore:
            found.append(
                f"file descriptors {self.fdBefore} before, {self.fdAfter} after"
            )
        if self.delayedCallsLeft:
            found.append(f"DelayedCalls left: {self.delayedCallsLeft[:5]}")
        if self.atRest != (0, 0, 0):
            found.append(
                f"pool not at rest (inUse, connecting, waiting) = {self.atRest}"
            )
        if self.tunnels and self.tunnels != self.connections:
            found.append(
                f"{self.tunnels} CONNECTs for {self.connections} connections"
            )
        if checkMemory and self.memoryGrowth > 0.10:
            found.append(
                f"memory grew {self.memoryGrowth:.1%} after warm-up "
                f"({self.memoryWarm} -> {self.memoryEnd} bytes)"
            )
        return found

    def summary(self) -> dict[str, Any]:
        """
        The figures, as a JSON-able dict.
        """
        figures = asdict(self)
        figures["errors"] = dict(self.errors)
        figures["kills"] = dict(self.kills)
        figures["memoryGrowth"] = round(self.memoryGrowth, 4)
        return figures


#: What a request may fail with in the soak: Twisted's request failures and
#: the pool's own errors.  Anything else is reported as untyped.
TYPED_ERRORS: tuple[type[BaseException], ...] = (
    ResponseFailed,
    ResponseNeverReceived,
    RequestNotSent,
    RequestTransmissionFailed,
    errors.PoolError,
    ConnectError,
)


def _agent(
    reactor: Any,
    pool: HTTPConnectionPool,
    material: Any,
    proxy: str | None = None,
    http2: bool = False,
) -> Any:
    """
    An Agent on C{pool}, trusting C{material}'s CA if given.

    Through a C{proxy}: over TLS, a L{PooledAgent} (CONNECT, then TLS to the
    target); in the clear, a stock Agent over L{ProxyEndpointFactory}
    (CONNECT too: the soak's proxy only tunnels).
    """
    policy = None if material is None else material.clientPolicy()
    if http2:
        return PooledAgent(
            reactor, pool=pool, contextFactory=policy, proxy=proxy, http2=True
        )
    if proxy is not None:
        if material is not None:
            return PooledAgent(reactor, pool=pool, contextFactory=policy, proxy=proxy)
        factory = ProxyEndpointFactory(reactor, proxy)
        return Agent.usingEndpointFactory(reactor, factory, pool=pool)
    if policy is None:
        return Agent(reactor, pool=pool)
    return Agent(reactor, pool=pool, contextFactory=policy)


async def _prime(
    reactor: Any, material: Any, protocol: str, http2: bool = False
) -> None:
    """
    Send a few requests through a throwaway pool and server first, so that
    what the reactor sets up once and keeps (the thread pool that resolves
    host names, with its file descriptors) is not counted against the run.
    """
    server: Any
    if http2:
        server = _h2chaos().H2ChaosServer(reactor, _h2server().Script(), material)
        server.start()
    else:
        server = ScriptedServer(
            reactor, tls=material.serverOptions() if material else None
        ).start()
    pool = HTTPConnectionPool(reactor, protocol=protocol)
    try:
        agent = _agent(reactor, pool, material, http2=http2)
        for _ in range(3):
            response = await agent.request(b"GET", server.url())
            await collectBody(response)
    finally:
        await pool.close()
        await server.stop()


def _h2server() -> Any:
    """
    L{tests.support.h2server} (imported late: it needs h2).
    """
    from tests.support import h2server

    return h2server


def _h2chaos() -> Any:
    """
    L{tests.support.h2chaos} (imported late: it needs h2).
    """
    from tests.support import h2chaos

    return h2chaos


async def _startProxy(reactor: Any, proxy: str | None) -> Any:
    """
    Start the loopback proxy named C{proxy} (one of L{PROXIES}), or
    nothing for L{None}.

    @return: The proxy (with C{port}, C{connects()} and C{stop()}), or
        L{None}.
    @raise ValueError: For another name, or C{"squid"} where squid is not
        installed.
    """
    if proxy is None:
        return None
    if proxy == "scripted":
        return _proxyservers.ScriptedProxy(reactor)
    if proxy == "squid":
        if _proxyservers.SQUID is None:
            raise ValueError("proxy='squid' needs squid (apt-get install squid)")
        return await _proxyservers.SquidProxy(reactor, unusedPort()).start()
    raise ValueError(f"proxy must be None or one of {PROXIES}, not {proxy!r}")


async def runSoak(
    reactor: Any,
    requests: int = 50_000,
    seed: int = 1,
    killRate: float = 0.05,
    concurrency: int = 16,
    maxSeconds: float = 120.0,
    warmup: int | None = None,
    postShare: float = 1 / 3,
    progress: Callable[[str], None] | None = None,
    tls: bool = False,
    proxy: str | None = None,
    protocol: str = "auto",
    http2: bool = False,
) -> SoakResult:
    """
    Run the soak and return what it found (the caller decides pass/fail).

    @param reactor: The running reactor.
    @param requests: How many requests to send.
    @param seed: Seeds the server's choices of what to kill and when.
    @param killRate: The share of connections the server kills.
    @param concurrency: Requests in flight at once.  The pool allows half
        as many connections, so requests also queue for a free slot.
    @param maxSeconds: Hard bound on the run; requests not started by then
        are not sent, requests still pending some seconds later are
        cancelled and reported.
    @param warmup: Requests before the memory reference is taken (default:
        10% of C{requests}).
    @param postShare: The share of requests that are POSTs.
    @param progress: Called with a line of progress now and then.
    @param tls: Whether to soak over TLS (a trustme certificate) instead of
        plain HTTP.
    @param proxy: L{None} to go direct, or one of L{PROXIES} to send every
        request through that loopback CONNECT proxy (one tunnel per pooled
        connection; the proxy's tunnels die with the server's
        connections).
    @param protocol: The pool's C{protocol} setting (C{"auto"},
        C{"httptools"} or C{"twisted"}).
    @param http2: Whether to soak over HTTP/2 (TLS implied) against the
        chaotic HTTP/2 server of L{tests.support.h2chaos}.
    """
    result = SoakResult(http2=http2)
    typed = TYPED_ERRORS
    chaos: Any
    server: Any
    tls = tls or http2
    choices = random.Random(seed + 1)
    warmup = requests // 10 if warmup is None else warmup
    material = TLSMaterial() if tls else None
    await _prime(reactor, material, protocol, http2)
    result.fdBefore = openFileDescriptors()
    delayedBefore = set(reactor.getDelayedCalls())
    tunnel = await _startProxy(reactor, proxy)
    if http2:
        chaos = _h2chaos().H2ChaosScript(reactor, seed, killRate)
        server = _h2chaos().H2ChaosServer(reactor, chaos, material).start()
    else:
        chaos = ChaosScript(seed, killRate)
        server = ScriptedServer(
            reactor,
            chaos,
            onConnect=chaos.onConnect,
            record=False,
            countIf=lambda request: request.method == b"POST",
            tls=material.serverOptions() if material else None,
        ).start()
    pool = HTTPConnectionPool(
        reactor,
        maxConnectionsPerHost=max(1, concurrency // 2),
        maxPersistentPerHost=max(1, concurrency // 2),
        connectTimeout=5,
        responseTimeout=5,
        readTimeout=5,
        protocol=protocol,
    )
    result.protocol = pool.protocol
    proxyURL = None if tunnel is None else f"http://127.0.0.1:{tunnel.port}"
    agent = _agent(reactor, pool, material, proxyURL, http2)
    url = server.url(b"/soak")
    started = time.monotonic()
    deadline = started + maxSeconds
    counter = itertools.count()
    inFlight: dict[bytes, defer.Deferred[Any]] = {}
    warmedUp: defer.Deferred[None] = defer.Deferred()

    async def one(index: int) -> None:
        isPost = choices.random() < postShare
        method = b"POST" if isPost else b"GET"
        requestId = b"%s-%d" % (method.lower(), index)
        # Over HTTP/2 half the POSTs have no body: those the server never
        # processed (refused, above a GOAWAY's last stream id) are retried.
        bodyless = http2 and isPost and choices.random() < 0.5
        body = FileBodyProducer(BytesIO(b"p" * 512)) if isPost and not bodyless else None
        result.posts += isPost
        d = agent.request(method, url, Headers({b"X-Request-Id": [requestId]}), body)
        d.addCallback(collectBody)
        inFlight[requestId] = d
        try:
            outcome = await d
        except defer.CancelledError:
            result.pending += 1
            return
        except typed as e:
            result.errors[type(e).__name__] += 1
            result.examples.setdefault(type(e).__name__, str(e)[:200])
            return
        except Exception as e:
            result.untyped.append(repr(e))
            return
        finally:
            inFlight.pop(requestId, None)
        if outcome.complete and outcome.body == chaos.body:
            result.succeeded += 1
        elif isinstance(outcome.reason.value, typed):
            kind = "body: " + type(outcome.reason.value).__name__
            result.errors[kind] += 1
            result.examples.setdefault(kind, str(outcome.reason.value)[:200])
        else:
            result.untyped.append("body: " + repr(outcome.reason.value))

    async def worker() -> None:
        for index in counter:
            if index >= requests or time.monotonic() > deadline:
                return
            result.requests += 1
            await one(index)
            if index + 1 == warmup:
                warmedUp.callback(None)
            if progress is not None and index and index % 10_000 == 0:
                progress(f"{index} requests, {time.monotonic() - started:.1f} s")

    def watchdog() -> None:
        for d in list(inFlight.values()):
            d.cancel()

    async def takeWarmReference() -> None:
        await warmedUp
        result.memoryWarm = residentBytes()

    if warmup > 0:
        warmReference = defer.ensureDeferred(takeWarmReference())
    else:
        warmReference = defer.succeed(None)
    dog = reactor.callLater(maxSeconds + 15, watchdog)
    try:
        await defer.gatherResults(
            [defer.ensureDeferred(worker()) for _ in range(concurrency)]
        )
    finally:
        if dog.active():
            dog.cancel()
        if not warmedUp.called:
            warmedUp.callback(None)
        await warmReference
        result.seconds = time.monotonic() - started
        result.memoryEnd = residentBytes()
        # A connection killed under the last request may be reported lost
        # to the pool a moment after that request's Deferred fired: give it
        # up to a second to settle.
        for _ in range(100):
            stats = pool.stats()
            result.atRest = (stats.inUse, stats.connecting, stats.waiting)
            if result.atRest == (0, 0, 0):
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        result.stats = {
            "opened": stats.opened,
            "reused": stats.reused,
            "retried": stats.retried,
            "timedOut": stats.timedOut,
            "failed": stats.failed,
            "handedOut": stats.waitTime.count,
            "maxWait": round(stats.waitTime.max, 4),
            "closed": {k: v for k, v in stats.closed.items() if v},
        }
        await pool.close()
        await server.stop()
        if tunnel is not None:
            # squid logs a CONNECT when its tunnel closes: wait for them.
            for _ in range(1000):
                if len(tunnel.connects()) >= server.connectionCount:
                    break
                await task.deferLater(reactor, 0.01, lambda: None)
            result.tunnels = len(tunnel.connects())
            await defer.maybeDeferred(tunnel.stop)
        # Let the reactor finish tearing down what was just closed.
        await task.deferLater(reactor, 0.05, lambda: None)
    result.connections = server.connectionCount
    result.kills = Counter(chaos.kills)
    result.duplicates = sorted(
        i.decode()
        for i, n in server.processed.items()
        if n > 1 and i.startswith(b"post-")
    )
    result.fdAfter = openFileDescriptors()
    result.delayedCallsLeft = [
        repr(c)
        for c in reactor.getDelayedCalls()
        if c not in delayedBefore and c.active()
    ]
    return result


def main(argv: list[str] | None = None) -> int:
    """
    Run the soak from the command line; print the figures as JSON.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kill-rate", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--tls", action="store_true", help="soak over TLS")
    parser.add_argument(
        "--http2",
        action="store_true",
        help="soak over HTTP/2 (TLS implied) against a chaotic HTTP/2 server",
    )
    parser.add_argument(
        "--proxy",
        nargs="?",
        const="scripted",
        choices=PROXIES,
        help="soak through a loopback CONNECT proxy: the scripted one "
        "(the default) or a squid this run starts",
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="auto",
        help="the pool's HTTP/1.1 wire protocol",
    )
    options = parser.parse_args(argv)
    if not 0 < options.max_seconds <= 120:
        parser.error("--max-seconds must be in (0, 120]")
    if options.requests <= 0:
        parser.error("--requests must be positive")

    async def run(reactor: Any) -> None:
        result = await runSoak(
            reactor,
            requests=options.requests,
            seed=options.seed,
            killRate=options.kill_rate,
            concurrency=options.concurrency,
            maxSeconds=options.max_seconds,
            tls=options.tls,
            proxy=options.proxy,
            protocol=options.protocol,
            http2=options.http2,
            progress=lambda line: print(line, file=sys.stderr),
        )
        status = _report(result)
        if status:
            raise SystemExit(status)

    task.react(lambda reactor: defer.ensureDeferred(run(reactor)), [])
    return 0  # pragma: no cover - react exits


def _report(result: SoakResult) -> int:
    print(json.dumps(result.summary(), indent=2, default=str))
    problems = result.problems()
    for problem in problems:
        print("FAIL:", problem)
    if not problems:
        print("all checks passed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
