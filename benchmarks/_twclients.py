"""
Twisted benchmark clients, one per subprocess:

  - C{pooled_http}: L{pooled_http.HTTPConnectionPool} with the stock
    L{twisted.web.client.Agent};
  - C{pooled_http+PooledAgent}: the same pool with L{pooled_http._agent.PooledAgent};
  - C{twisted-default}: Twisted's stock pool, C{persistent=True},
    C{maxPersistentPerHost=2} (its defaults);
  - C{twisted-tuned}: Twisted's stock pool with C{maxPersistentPerHost} set to
    the scenario's concurrency.

Run by benchmarks/run.py as C{python benchmarks/_twclients.py JOB_JSON}; prints
one C{RESULT {...}} line.
"""

from __future__ import annotations

import time
import tracemalloc
import warnings
from typing import Any

from _common import (
    emitResult,
    fetchStatus,
    finishResult,
    raiseFileLimit,
    readSpec,
    residentBytes,
)
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
    "twisted-default",
    "twisted-tuned",
)


def pooledAgentClass() -> Any:
    """
    @return: L{pooled_http._agent.PooledAgent}, or L{None} if it cannot be
        imported.
    """
    try:
        from pooled_http._agent import PooledAgent
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
        if job.get("globalCap") is not None:
            pool.maxConnections = job["globalCap"]
        if keepIdle is not None:
            pool.maxConnections = max(pool.maxConnections, job["connections"] + 64)
            pool.maxConnectionsPerHost = keepIdle
            pool.maxPersistentPerHost = keepIdle
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
    @param job: The job; C{caPem} is the CA to trust for https URLs.
    @return: An L{IAgent}.
    """
    kwargs: dict[str, Any] = {"pool": pool}
    if job.get("caPem"):
        trustRoot = Certificate.loadPEM(job["caPem"].encode("ascii"))
        kwargs["contextFactory"] = BrowserLikePolicyForHTTPS(trustRoot=trustRoot)
    if client == "pooled_http+PooledAgent":
        return pooledAgentClass()(reactor, **kwargs)
    return Agent(reactor, **kwargs)


async def timedGet(agent: Any, url: bytes, latencies: list[float]) -> None:
    """
    GET a URL, read its body, record the latency.

    @param agent: The agent.
    @param url: The URL.
    @param latencies: Where the latency in seconds is appended.
    """
    started = time.perf_counter()
    try:
        response = await agent.request(b"GET", url)
        await readBody(response)
    finally:
        PROGRESS[0] += 1
    latencies.append(time.perf_counter() - started)


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


async def runWorkers(
    agent: Any, urls: list[bytes], job: dict[str, Any]
) -> dict[str, Any]:
    """
    C{concurrency} workers each loop GETs until C{total} requests are done.

    @return: Counters and latencies.
    """
    latencies: list[float] = []
    errors: list[str] = []
    remaining = [job["total"]]
    counter = [0]

    async def worker() -> None:
        while remaining[0] > 0:
            remaining[0] -= 1
            index = counter[0]
            counter[0] += 1
            try:
                await timedGet(agent, urls[index % len(urls)], latencies)
            except Exception as e:
                errors.append(repr(e))

    await DeferredList([ensureDeferred(worker()) for _ in range(job["concurrency"])])
    return {"latencies": latencies, "errors": errors}


async def runBursts(
    agent: Any, urls: list[bytes], job: dict[str, Any]
) -> dict[str, Any]:
    """
    C{total} GETs in bursts of C{concurrency}: start a burst, wait for all of
    it, start the next.

    @return: Counters and latencies.
    """
    latencies: list[float] = []
    errors: list[str] = []
    done = 0
    while done < job["total"]:
        size = min(job["concurrency"], job["total"] - done)
        results = await DeferredList(
            [
                ensureDeferred(timedGet(agent, urls[(done + i) % len(urls)], latencies))
                for i in range(size)
            ],
            consumeErrors=True,
        )
        for ok, value in results:
            if not ok:
                assert isinstance(value, Failure)
                errors.append(repr(value.value))
        done += size
    return {"latencies": latencies, "errors": errors}


async def runMemory(
    reactor: Any, agent: Any, urls: list[bytes], job: dict[str, Any]
) -> dict[str, Any]:
    """
    Open C{connections} keep-alive connections spread over C{urls}, leave
    them idle in the pool, and measure what they cost.

    @return: Resident and Python-heap bytes per idle connection.
    """
    # Warm up: one request per URL, so the code paths are loaded.
    await DeferredList([ensureDeferred(timedGet(agent, u, [])) for u in urls])
    await sleep(reactor, 0.2)
    before = fetchStatus(job["statusPort"]).active - 1
    rssBefore = residentBytes()
    tracemalloc.start()
    heapBefore = tracemalloc.get_traced_memory()[0]
    latencies: list[float] = []
    perUrl = job["connections"] // len(urls)
    results = await DeferredList(
        [
            ensureDeferred(timedGet(agent, u, latencies))
            for u in urls
            for _ in range(perUrl)
        ],
        consumeErrors=True,
    )
    errors = [repr(getattr(v, "value", v)) for ok, v in results if not ok]
    await sleep(reactor, 0.5)
    heapAfter = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rssAfter = residentBytes()
    after = fetchStatus(job["statusPort"]).active - 1
    idle = max(1, after - before)
    return {
        "latencies": latencies,
        "errors": errors,
        "idleConnections": after,
        "addedConnections": after - before,
        "rssPerConnection": (rssAfter - rssBefore) / idle,
        "heapPerConnection": (heapAfter - heapBefore) / idle,
    }


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
    if client == "pooled_http+PooledAgent" and pooledAgentClass() is None:
        return {"unavailable": "pooled_http._agent.PooledAgent is not importable"}
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
        if job["mode"] == "workers":
            result = await runWorkers(agent, urls, job)
        elif job["mode"] == "bursts":
            result = await runBursts(agent, urls, job)
        elif job["mode"] == "memory":
            result = await runMemory(reactor, agent, urls, job)
        else:
            raise ValueError(f"unknown mode {job['mode']!r}")
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
