"""
asyncio benchmark clients, one per subprocess: C{aiohttp} and C{httpx}
(async), each with its default settings except where a scenario sets a
global cap (C{limit} / C{max_connections}) or, for the memory scenario, asks
it to keep every connection.

Run by benchmarks/run.py as C{python benchmarks/_aioclients.py JOB_JSON};
prints one C{RESULT {...}} line.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import tracemalloc
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

from _common import (
    emitResult,
    fetchStatus,
    finishResult,
    raiseFileLimit,
    readSpec,
    residentBytes,
)

ASYNC_CLIENTS = ("aiohttp", "httpx")

Getter = Callable[[str], Awaitable[None]]


def sslContext(job: dict[str, Any]) -> ssl.SSLContext | None:
    """
    @return: A context trusting the job's CA, or L{None} for plain HTTP.
    """
    if not job.get("caPem"):
        return None
    context = ssl.create_default_context(cadata=job["caPem"])
    return context


class AiohttpClient:
    """
    GETs with one C{aiohttp.ClientSession}.
    """

    def __init__(self, job: dict[str, Any]) -> None:
        import aiohttp

        kwargs: dict[str, Any] = {}
        if job.get("globalCap") is not None:
            kwargs["limit"] = job["globalCap"]
        if job.get("keepIdle") is not None:
            kwargs["limit"] = 0
            kwargs["keepalive_timeout"] = 600
        context = sslContext(job)
        if context is not None:
            kwargs["ssl"] = context
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(**kwargs))

    async def get(self, url: str) -> None:
        """
        GET C{url} and read the body.
        """
        async with self.session.get(url) as response:
            await response.read()

    async def close(self) -> None:
        """
        Close the session.
        """
        await self.session.close()


class HttpxClient:
    """
    GETs with one C{httpx.AsyncClient}.
    """

    def __init__(self, job: dict[str, Any]) -> None:
        import httpx

        kwargs: dict[str, Any] = {}
        if job.get("globalCap") is not None:
            kwargs["limits"] = httpx.Limits(max_connections=job["globalCap"])
        if job.get("keepIdle") is not None:
            kwargs["limits"] = httpx.Limits(
                max_connections=None,
                max_keepalive_connections=job["connections"] + 64,
                keepalive_expiry=600,
            )
        context = sslContext(job)
        if context is not None:
            kwargs["verify"] = context
        self.client = httpx.AsyncClient(**kwargs)

    async def get(self, url: str) -> None:
        """
        GET C{url} and read the body.
        """
        response = await self.client.get(url)
        response.raise_for_status()

    async def close(self) -> None:
        """
        Close the client.
        """
        await self.client.aclose()


async def timedGet(get: Getter, url: str, latencies: list[float]) -> None:
    """
    GET a URL, read its body, record the latency in seconds.
    """
    started = time.perf_counter()
    await get(url)
    latencies.append(time.perf_counter() - started)


async def runWorkers(
    get: Getter, urls: list[str], job: dict[str, Any]
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
                await timedGet(get, urls[index % len(urls)], latencies)
            except Exception as e:
                errors.append(repr(e))

    await asyncio.gather(*(worker() for _ in range(job["concurrency"])))
    return {"latencies": latencies, "errors": errors}


async def runBursts(
    get: Getter, urls: list[str], job: dict[str, Any]
) -> dict[str, Any]:
    """
    C{total} GETs in bursts of C{concurrency}, gathering each burst.
    """
    latencies: list[float] = []
    errors: list[str] = []
    done = 0
    while done < job["total"]:
        size = min(job["concurrency"], job["total"] - done)
        results = await asyncio.gather(
            *(
                timedGet(get, urls[(done + i) % len(urls)], latencies)
                for i in range(size)
            ),
            return_exceptions=True,
        )
        errors.extend(repr(r) for r in results if isinstance(r, BaseException))
        done += size
    return {"latencies": latencies, "errors": errors}


async def runMemory(
    get: Getter, urls: list[str], job: dict[str, Any]
) -> dict[str, Any]:
    """
    Open C{connections} keep-alive connections, leave them idle, measure.
    """
    await asyncio.gather(*(timedGet(get, u, []) for u in urls))
    await asyncio.sleep(0.2)
    loop = asyncio.get_running_loop()
    before = (
        await loop.run_in_executor(None, fetchStatus, job["statusPort"])
    ).active - 1
    rssBefore = residentBytes()
    tracemalloc.start()
    heapBefore = tracemalloc.get_traced_memory()[0]
    latencies: list[float] = []
    perUrl = job["connections"] // len(urls)
    results = await asyncio.gather(
        *(timedGet(get, u, latencies) for u in urls for _ in range(perUrl)),
        return_exceptions=True,
    )
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    await asyncio.sleep(0.5)
    heapAfter = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rssAfter = residentBytes()
    after = (
        await loop.run_in_executor(None, fetchStatus, job["statusPort"])
    ).active - 1
    idle = max(1, after - before)
    return {
        "latencies": latencies,
        "errors": errors,
        "idleConnections": after,
        "addedConnections": after - before,
        "rssPerConnection": (rssAfter - rssBefore) / idle,
        "heapPerConnection": (heapAfter - heapBefore) / idle,
    }


async def runJob(job: dict[str, Any]) -> dict[str, Any]:
    """
    Run one job and return its result.
    """
    client = job["client"]
    try:
        if client == "aiohttp":
            session: AiohttpClient | HttpxClient = AiohttpClient(job)
        elif client == "httpx":
            session = HttpxClient(job)
        else:
            raise ValueError(f"unknown client {client!r}")
    except ImportError as e:
        return {"unavailable": f"{client} is not installed ({e})"}
    started = time.perf_counter()
    try:
        if job["mode"] == "workers":
            result = await runWorkers(session.get, job["urls"], job)
        elif job["mode"] == "bursts":
            result = await runBursts(session.get, job["urls"], job)
        elif job["mode"] == "memory":
            result = await runMemory(session.get, job["urls"], job)
        else:
            raise ValueError(f"unknown mode {job['mode']!r}")
        elapsed = time.perf_counter() - started
    finally:
        await session.close()
    return finishResult(result, elapsed)


def main() -> None:
    """
    Run the job given on the command line on a fresh asyncio loop.
    """
    warnings.simplefilter("ignore", DeprecationWarning)
    raiseFileLimit()
    job = readSpec()
    try:
        outcome = asyncio.run(runJob(job))
    except Exception:
        import traceback

        outcome = {"failed": traceback.format_exc()}
    outcome["loop"] = "asyncio"
    emitResult(outcome)


if __name__ == "__main__":
    main()
