"""
asyncio benchmark clients, one per subprocess: C{aiohttp}, C{httpx}
(async) and C{httpx+h2} (the same with C{http2=True}), each with its default settings except where a scenario sets a
global cap (C{limit} / C{max_connections}) or, for the memory scenario, asks
it to keep every connection.

Run by benchmarks/run.py as C{python benchmarks/_aioclients.py JOB_JSON};
prints one C{RESULT {...}} line.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import warnings
from collections.abc import Coroutine
from typing import Any

from _common import (
    ServerStatus,
    emitResult,
    fetchStatus,
    finishResult,
    raiseFileLimit,
    readSpec,
)
from _workload import Runtime, runWorkload

ASYNC_CLIENTS = ("aiohttp", "httpx", "httpx+h2")


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
        self.proxy = job.get("proxy")

    async def get(self, url: str) -> None:
        """
        GET C{url} (through the job's C{proxy}, if any) and read the body.
        """
        async with self.session.get(url, proxy=self.proxy) as response:
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
        if job["client"] == "httpx+h2":
            import h2  # noqa: F401  (httpx needs it for HTTP/2)

            kwargs["http2"] = True
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


async def gatherAll(
    coroutines: list[Coroutine[Any, Any, None]],
) -> list[BaseException | None]:
    """
    Run coroutines concurrently; return each one's exception or L{None}.
    """
    results = await asyncio.gather(*coroutines, return_exceptions=True)
    return [r if isinstance(r, BaseException) else None for r in results]


async def serverStatus(port: int) -> ServerStatus:
    """
    Read the server's connection counts without blocking the loop.
    """
    return await asyncio.get_running_loop().run_in_executor(None, fetchStatus, port)


async def runJob(job: dict[str, Any]) -> dict[str, Any]:
    """
    Run one job and return its result.
    """
    client = job["client"]
    try:
        if client == "aiohttp":
            session: AiohttpClient | HttpxClient = AiohttpClient(job)
        elif client in ("httpx", "httpx+h2"):
            session = HttpxClient(job)
        else:
            raise ValueError(f"unknown client {client!r}")
    except ImportError as e:
        return {"unavailable": f"{client} is not installed ({e})"}
    started = time.perf_counter()
    try:
        runtime = Runtime(session.get, gatherAll, asyncio.sleep, serverStatus)
        result = await runWorkload(runtime, job["urls"], job)
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
