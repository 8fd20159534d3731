"""
Twisted benchmark clients, one per subprocess:

  - C{pooled_http}: L{pooled_http.HTTPConnectionPool} with the stock
    L{twisted.web.client.Agent};
  - C{pooled_http+PooledAgent}: the same pool with L{pooled_http.PooledAgent};
  - C{pooled_http+cache}: the stock C{Agent} on the same pool, built with
    C{Agent.usingEndpointFactory} and L{pooled_http.CachingEndpointFactory};
  - C{pooled_http+h2}: the same pool with C{PooledAgent(http2=True)};
  - C{pooled_http+tuned}: C{pooled_http+PooledAgent} with
    C{maxConnectionsPerHost} set to the scenario's concurrency, as many
    connections as aiohttp opens (our default cap is 8);
  - C{twisted-default}: Twisted's stock pool, C{persistent=True},
    C{maxPersistentPerHost=2} (its defaults);
  - C{twisted-tuned}: Twisted's stock pool with C{maxPersistentPerHost} set to
    the scenario's concurrency.

Run by benchmarks/run.py as C{python benchmarks/_twclients.py JOB_JSON}; prints
one C{RESULT {...}} line.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Coroutine
from typing import Any, cast

from _common import (
    ServerStatus,
    emitResult,
    fetchStatus,
    finishResult,
    raiseFileLimit,
    readSpec,
)
from _observe import observe
from _workload import Runtime, runWorkload
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred
from twisted.internet.ssl import Certificate
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    readBody,
)
from twisted.web.client import HTTPConnectionPool as StockPool

TWISTED_CLIENTS = (
    "pooled_http",
    "pooled_http+PooledAgent",
    "pooled_http+cache",
    "pooled_http+h2",
    "pooled_http+tuned",
    "twisted-default",
    "twisted-tuned",
)


def pooledAgentClass() -> Any:
    """
    @return: L{pooled_http.PooledAgent}, or L{None} if it cannot be
        imported.
    """
    try:
        from pooled_http import PooledAgent
    except Exception:
        return None
    return PooledAgent


def makePool(reactor: Any, client: str, job: dict[str, Any]) -> Any:
    """
    Build the pool a client uses for a job.

    @param reactor: The reactor.
    @param client: One of L{TWISTED_CLIENTS}.
    @param job: The job description: C{concurrency}, C{globalCap},
        C{keepIdle} (connections per key the memory scenario keeps).
    @return: The pool.
    """
    keepIdle = job.get("keepIdle")
    if client.startswith("pooled_http"):
        from pooled_http import HTTPConnectionPool

        pool: Any = HTTPConnectionPool(reactor, persistent=True)
        for name, value in job.get("poolOptions", {}).items():
            setattr(pool, name, value)
        if client == "pooled_http+tuned":
            pool.maxConnectionsPerHost = job["concurrency"]
        if job.get("globalCap") is not None:
            pool.maxConnections = job["globalCap"]
        if keepIdle is not None:
            pool.maxConnections = max(pool.maxConnections, job["connections"] + 64)
            pool.maxConnectionsPerHost = keepIdle
            pool.maxPersistentPerHost = keepIdle
        observe(pool)
        return pool
    pool = StockPool(reactor, persistent=True)
    if client == "twisted-tuned":
        pool.maxPersistentPerHost = job["concurrency"]
    if keepIdle is not None:
        pool.maxPersistentPerHost = keepIdle
    return pool


def makeAgent(reactor: Any, client: str, pool: Any, job: dict[str, Any]) -> Any:
    """
    Build the agent a client uses.

    @param reactor: The reactor.
    @param client: One of L{TWISTED_CLIENTS}.
    @param pool: From L{makePool}.
    @param job: The job; C{caPem} is the CA to trust for https URLs,
        C{proxy} the proxy URL (L{PooledAgent} only).
    @return: An L{IAgent}.
    """
    kwargs: dict[str, Any] = {"pool": pool}
    if job.get("caPem"):
        trustRoot = Certificate.loadPEM(job["caPem"].encode("ascii"))
        kwargs["contextFactory"] = BrowserLikePolicyForHTTPS(trustRoot=trustRoot)
    if client == "pooled_http+h2":
        return pooledAgentClass()(reactor, http2=True, **kwargs)
    if client in ("pooled_http+PooledAgent", "pooled_http+tuned"):
        if job.get("proxy"):
            kwargs["proxy"] = job["proxy"]
        return pooledAgentClass()(reactor, **kwargs)
    if job.get("proxy"):
        raise ValueError(f"{client} cannot go through a proxy here")
    if client == "pooled_http+cache":
        from pooled_http import CachingEndpointFactory

        factory = CachingEndpointFactory(reactor, kwargs.get("contextFactory"))
        return Agent.usingEndpointFactory(reactor, factory, pool=pool)
    return Agent(reactor, **kwargs)


#: Requests finished (or failed) so far in this process, for the watchdog.
PROGRESS = [0]


def describePool(pool: Any) -> str:
    """
    @return: What a pool looks like, for a stall report.
    """
    lines = [repr(pool)]
    if hasattr(pool, "stats"):
        lines.append(repr(pool.stats()))
    core = getattr(pool, "_core", None)
    for bucket in getattr(core, "buckets", {}).values():
        lines.append(
            f"bucket {bucket.key!r}: idle={len(bucket.idle)} inUse={len(bucket.inUse)} "
            f"connecting={len(bucket.connecting)} waiters={len(bucket.waiters)}"
        )
        for connection in list(bucket.inUse)[:10]:
            lines.append(f"  in use: {connection!r} state={connection.state}")
    if hasattr(pool, "_connections"):
        lines.append(f"idle: { {k: len(v) for k, v in pool._connections.items()} }")
    return "\n".join(lines)


def watchStalls(
    reactor: Any, pool: Any, seconds: float, outcome: dict[str, Any]
) -> Any:
    """
    Stop the run if no request finishes for C{seconds}, recording the
    pool's state in C{outcome["failed"]}.

    @return: The watchdog's L{LoopingCall}.
    """
    last = [PROGRESS[0], time.monotonic()]

    def check() -> None:
        now = time.monotonic()
        if PROGRESS[0] != last[0]:
            last[0], last[1] = PROGRESS[0], now
        elif now - last[1] > seconds:
            outcome["failed"] = (
                f"stalled: no request finished for {seconds:g} s after "
                f"{PROGRESS[0]} requests\n" + describePool(pool)
            )
            watchdog.stop()
            reactor.stop()

    watchdog = LoopingCall(check)
    watchdog.clock = reactor
    watchdog.start(1.0, now=False)
    return watchdog


def twistedRuntime(reactor: Any, agent: Any) -> Runtime:
    """
    The workloads' view of a Twisted agent and reactor.
    """

    async def get(url: bytes) -> None:
        try:
            response = await agent.request(b"GET", url)
            await readBody(response)
        finally:
            PROGRESS[0] += 1

    async def gatherAll(
        coroutines: list[Coroutine[Any, Any, None]],
    ) -> list[BaseException | None]:
        results = await DeferredList(
            [ensureDeferred(c) for c in coroutines], consumeErrors=True
        )
        return [None if ok else cast(Failure, value).value for ok, value in results]

    async def pause(seconds: float) -> None:
        await sleep(reactor, seconds)

    async def serverStatus(port: int) -> ServerStatus:
        return fetchStatus(port)

    return Runtime(get, gatherAll, pause, serverStatus)


def sleep(reactor: Any, seconds: float) -> Deferred[None]:
    """
    @return: A Deferred firing after C{seconds}.
    """
    d: Deferred[None] = Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


async def closePool(pool: Any) -> None:
    """
    Close a pool, whichever kind it is.
    """
    if hasattr(pool, "close"):
        await pool.close()
    else:
        await pool.closeCachedConnections()


async def runJob(
    reactor: Any, job: dict[str, Any], outcome: dict[str, Any]
) -> dict[str, Any]:
    """
    Run one job and return its result.

    @param outcome: Where a stall is reported.
    """
    client = job["client"]
    if client in ("pooled_http+PooledAgent", "pooled_http+tuned", "pooled_http+h2") and (
        pooledAgentClass() is None
    ):
        return {"unavailable": "pooled_http.PooledAgent is not importable"}
    if client == "pooled_http+h2":
        try:
            import h2  # noqa: F401
        except ImportError:
            return {"unavailable": "h2 is not installed (pooled_http[http2])"}
    if client.startswith("pooled_http"):
        try:
            import pooled_http  # noqa: F401
        except Exception as e:
            return {"unavailable": f"pooled_http is not importable: {e!r}"}
    pool = makePool(reactor, client, job)
    agent = makeAgent(reactor, client, pool, job)
    urls = [u.encode("ascii") for u in job["urls"]]
    watchdog = watchStalls(reactor, pool, job.get("stallTimeout", 20.0), outcome)
    started = time.perf_counter()
    try:
        result = await runWorkload(twistedRuntime(reactor, agent), urls, job)
        elapsed = time.perf_counter() - started
    finally:
        if watchdog.running:
            watchdog.stop()
        await closePool(pool)
    return finishResult(result, elapsed)


def main() -> None:
    """
    Run the job given on the command line under the default reactor.
    """
    from twisted.internet import reactor as installedReactor

    reactor: Any = installedReactor

    warnings.simplefilter("ignore", DeprecationWarning)
    raiseFileLimit()
    job = readSpec()
    outcome: dict[str, Any] = {}

    def done(result: dict[str, Any]) -> None:
        outcome.update(result)

    def failed(f: Failure) -> None:
        outcome["failed"] = f.getTraceback()

    def start() -> None:
        d = ensureDeferred(runJob(reactor, job, outcome))
        d.addCallbacks(done, failed)
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)
    reactor.run()
    if "rps" not in outcome and "unavailable" not in outcome:
        outcome.setdefault("failed", "the reactor stopped before the job finished")
    outcome["reactor"] = type(reactor).__name__
    emitResult(outcome)


if __name__ == "__main__":
    main()
