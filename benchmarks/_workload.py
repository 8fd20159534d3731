"""
The benchmark workloads, written once for every client.

A client process describes how its world does four things (GET a URL, run
coroutines together, sleep, read the server's connection count) in a
L{Runtime}; the loops below are the same coroutines for asyncio clients and
Twisted ones.  Plain standard library, like L{_common}.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from _common import ServerStatus, residentBytes


@dataclass(frozen=True)
class Runtime:
    """
    What a workload needs from a client and its event loop.

    @ivar get: GET a URL and read its body.
    @ivar gather: Run coroutines concurrently; return, for each, the
        exception it raised or L{None}.
    @ivar sleep: Wait this many seconds.
    @ivar status: Read the server's connection counts from this port.
    """

    get: Callable[[Any], Awaitable[object]]
    gather: Callable[
        [list[Coroutine[Any, Any, None]]], Awaitable[list[BaseException | None]]
    ]
    sleep: Callable[[float], Awaitable[None]]
    status: Callable[[int], Awaitable[ServerStatus]]


async def timedGet(runtime: Runtime, url: Any, latencies: list[float]) -> None:
    """
    GET a URL, read its body, record the latency in seconds.
    """
    started = time.perf_counter()
    await runtime.get(url)
    latencies.append(time.perf_counter() - started)


async def runWorkload(
    runtime: Runtime, urls: list[Any], job: dict[str, Any]
) -> dict[str, Any]:
    """
    Run the job's workload (C{job["mode"]}): C{workers}, C{bursts} or
    C{memory}.

    @return: Raw latencies and errors, plus the memory figures.
    """
    mode = job["mode"]
    if mode == "workers":
        return await runWorkers(runtime, urls, job)
    if mode == "bursts":
        return await runBursts(runtime, urls, job)
    if mode == "memory":
        return await runMemory(runtime, urls, job)
    raise ValueError(f"unknown mode {mode!r}")


async def runWorkers(
    runtime: Runtime, urls: list[Any], job: dict[str, Any]
) -> dict[str, Any]:
    """
    C{concurrency} workers each loop GETs until C{total} requests are done.
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
                await timedGet(runtime, urls[index % len(urls)], latencies)
            except Exception as e:
                errors.append(repr(e))

    await runtime.gather([worker() for _ in range(job["concurrency"])])
    return {"latencies": latencies, "errors": errors}


async def runBursts(
    runtime: Runtime, urls: list[Any], job: dict[str, Any]
) -> dict[str, Any]:
    """
    C{total} GETs in bursts of C{concurrency}: start a burst, wait for all of
    it, start the next.
    """
    latencies: list[float] = []
    errors: list[str] = []
    done = 0
    while done < job["total"]:
        size = min(job["concurrency"], job["total"] - done)
        outcomes = await runtime.gather(
            [
                timedGet(runtime, urls[(done + i) % len(urls)], latencies)
                for i in range(size)
            ]
        )
        errors.extend(repr(e) for e in outcomes if e is not None)
        done += size
    return {"latencies": latencies, "errors": errors}


async def runMemory(
    runtime: Runtime, urls: list[Any], job: dict[str, Any]
) -> dict[str, Any]:
    """
    Open C{connections} keep-alive connections spread over C{urls}, leave
    them idle in the client's pool, and measure what they cost.

    @return: Resident and Python-heap bytes per idle connection.
    """
    # Warm up: one request per URL, so the code paths are loaded.
    await runtime.gather([timedGet(runtime, u, []) for u in urls])
    await runtime.sleep(0.2)
    before = (await runtime.status(job["statusPort"])).active - 1
    rssBefore = residentBytes()
    tracemalloc.start()
    heapBefore = tracemalloc.get_traced_memory()[0]
    latencies: list[float] = []
    perUrl = job["connections"] // len(urls)
    outcomes = await runtime.gather(
        [timedGet(runtime, u, latencies) for u in urls for _ in range(perUrl)]
    )
    errors = [repr(e) for e in outcomes if e is not None]
    await runtime.sleep(0.5)
    # Both figures after a full collection (residentBytes collects): what
    # the idle connections hold, not garbage the collector has yet to free
    # (how much of that is left at any moment is down to when it last ran).
    rssAfter = residentBytes()
    heapAfter = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    after = (await runtime.status(job["statusPort"])).active - 1
    idle = max(1, after - before)
    return {
        "latencies": latencies,
        "errors": errors,
        "idleConnections": after,
        "addedConnections": after - before,
        "rssPerConnection": (rssAfter - rssBefore) / idle,
        "heapPerConnection": (heapAfter - heapBefore) / idle,
    }
