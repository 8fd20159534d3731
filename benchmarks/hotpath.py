"""
Profile one Twisted client on one scenario, in this process, against the
benchmark nginx: the CPU time per request, and where it goes.

    python benchmarks/hotpath.py                          # PooledAgent, steady
    python benchmarks/hotpath.py --scenario burst-tls --top 30
    python benchmarks/hotpath.py --client pooled_http --no-profile --repeats 5
    python benchmarks/hotpath.py --client pooled_http+h2 --scenario burst-h2
    python benchmarks/hotpath.py --client aiohttp --no-profile   # the reference
    python benchmarks/hotpath.py --src /elsewhere/src     # another tree's code

C{--src} picks the pooled_http measured (this checkout's C{src/} by
default, which comes before C{PYTHONPATH}): for alternating runs of two
trees, run one process per tree.

Without C{--no-profile} the workload runs once more under cProfile and the
top entries (by own time) are printed; the CPU microseconds per request are
measured on runs without the profiler (C{time.process_time} of this
process, so other work on the machine counts less than in wall-clock
req/s; nginx's own time is not in it).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
for path in (HERE, SRC):
    if path not in sys.path:
        sys.path.insert(0, path)

from _aioclients import (  # noqa: E402
    ASYNC_CLIENTS,
    AiohttpClient,
    HttpxClient,
    gatherAll,
    serverStatus,
)
from _common import addPoolOptions, addSourceOption, poolOptions  # noqa: E402
from _servers import startServer  # noqa: E402
from _twclients import (  # noqa: E402
    TWISTED_CLIENTS,
    closePool,
    makeAgent,
    makePool,
    twistedRuntime,  # noqa: E402
)
from _workload import Runtime, runWorkload  # noqa: E402
from twisted.internet.defer import ensureDeferred  # noqa: E402

#: The scenarios this tool knows: mode, requests, concurrency, TLS.
SCENARIOS = {
    "steady": ("workers", 5000, 10, False),
    "burst": ("bursts", 5000, 100, False),
    "burst-tls": ("bursts", 2000, 50, True),
    "burst-h2": ("bursts", 3000, 100, True),
}


def byModule(stats: pstats.Stats, total: int) -> str:
    """
    @return: Own time per request under the profiler, summed by module
        (pooled_http's modules one by one, the rest by package).
    """
    sums: dict[str, float] = {}
    raw: Any = stats
    for (filename, _line, _name), entry in raw.stats.items():
        if "pooled_http" in filename:
            group = "pooled_http/" + os.path.basename(filename)
        elif "site-packages" in filename:
            group = filename.split("site-packages/")[1].split("/")[0]
            if group == "twisted":
                group = (
                    "twisted/"
                    + "/".join(
                        filename.split("site-packages/twisted/")[1].split("/")[:-1]
                        or ["."]
                    )
                    + "/"
                    + os.path.basename(filename)
                )
        elif filename == "~":
            group = "builtins"
        else:
            group = os.path.basename(filename)
        sums[group] = sums.get(group, 0.0) + entry[2]
    rows = sorted(sums.items(), key=lambda item: -item[1])
    whole = sum(sums.values())
    return "own time per request under the profiler, by module:\n" + "\n".join(
        f"  {us / total * 1e6:7.1f} us {us / whole * 100:5.1f}%  {group}"
        for group, us in rows[:30]
    )


def parseArguments(argv: list[str] | None) -> argparse.Namespace:
    """
    @return: The parsed command line.
    """
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--client", default="pooled_http+PooledAgent")
    parser.add_argument("--scenario", default="steady", choices=sorted(SCENARIOS))
    parser.add_argument("--repeats", type=int, default=3, help="timed runs")
    parser.add_argument("--top", type=int, default=25, help="profile entries shown")
    parser.add_argument("--sort", default="tottime", help="pstats sort key")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--scale", type=float, default=1.0)
    addSourceOption(parser)
    addPoolOptions(parser)
    args = parser.parse_args(argv)
    args.poolOptions = poolOptions(parser, args)
    if args.client not in TWISTED_CLIENTS + ASYNC_CLIENTS:
        parser.error(
            f"choose a client from {', '.join(TWISTED_CLIENTS + ASYNC_CLIENTS)}"
        )
    return args


def profileReport(
    args: argparse.Namespace, profiler: cProfile.Profile, total: int
) -> list[str]:
    """
    @return: The top profile entries and the per-module summary.
    """
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats(args.sort).print_stats(args.top)
    return [out.getvalue(), byModule(stats, total)]


async def measured(
    runtime: Runtime,
    urls: list[Any],
    job: dict[str, Any],
    profiler: cProfile.Profile | None,
) -> tuple[float, float]:
    """
    Warm up (connections open, code paths loaded), then run the workload
    once, under C{profiler} if given.

    @return: The CPU and wall seconds of the measured run.
    """
    await runWorkload(runtime, urls, {**job, "total": job["concurrency"] * 2})
    cpu, wall = time.process_time(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    await runWorkload(runtime, urls, job)
    if profiler is not None:
        profiler.disable()
    return time.process_time() - cpu, time.perf_counter() - wall


async def runAll(
    args: argparse.Namespace,
    once: Callable[[cProfile.Profile | None], Awaitable[tuple[float, float]]],
    total: int,
    lines: list[str],
) -> None:
    """
    The timed runs, then the profiled one: what both runtimes print.

    @param once: Runs the workload once with a fresh client.
    """
    for i in range(args.repeats):
        cpu, wall = await once(None)
        lines.append(
            f"run {i + 1}: {cpu / total * 1e6:.1f} us CPU per request, "
            f"{total / wall:.0f} req/s"
        )
    if not args.no_profile:
        profiler = cProfile.Profile()
        await once(profiler)
        lines.extend(profileReport(args, profiler, total))


def runTwisted(
    args: argparse.Namespace, urls: list[bytes], job: dict[str, Any], lines: list[str]
) -> None:
    """
    Run a Twisted client's workload on the global reactor.
    """
    from twisted.internet import reactor as installed

    reactor: Any = installed

    async def once(profiler: cProfile.Profile | None) -> tuple[float, float]:
        pool = makePool(reactor, args.client, job)
        agent = makeAgent(reactor, args.client, pool, job)
        runtime = twistedRuntime(reactor, agent)
        try:
            return await measured(runtime, urls, job, profiler)
        finally:
            await closePool(pool)

    def start() -> None:
        d = ensureDeferred(runAll(args, once, job["total"], lines))
        d.addErrback(lambda f: lines.append(f.getTraceback()))
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)
    reactor.run()


def runAsyncio(
    args: argparse.Namespace, urls: list[bytes], job: dict[str, Any], lines: list[str]
) -> None:
    """
    Run an asyncio client's workload (the reference the targets compare
    with) on a fresh asyncio loop, measured the same way.
    """
    import asyncio

    textURLs = [url.decode("ascii") for url in urls]
    job = {**job, "client": args.client}

    async def once(profiler: cProfile.Profile | None) -> tuple[float, float]:
        session: Any = (
            AiohttpClient(job) if args.client == "aiohttp" else HttpxClient(job)
        )
        runtime = Runtime(session.get, gatherAll, asyncio.sleep, serverStatus)
        try:
            return await measured(runtime, textURLs, job, profiler)
        finally:
            await session.close()

    asyncio.run(runAll(args, once, job["total"], lines))


def useSource(src: str) -> None:
    """
    Import pooled_http from C{src} (before anything has imported it).
    """
    src = os.path.abspath(src)
    if src == SRC:
        return
    if "pooled_http" in sys.modules:
        raise SystemExit("--src: pooled_http was imported before it could be chosen")
    while SRC in sys.path:
        sys.path.remove(SRC)
    sys.path.insert(0, src)
    print(f"pooled_http from {src}")


def main(argv: list[str] | None = None) -> None:
    """
    Start nginx, run the workload and print what it cost.
    """
    warnings.simplefilter("ignore", DeprecationWarning)
    args = parseArguments(argv)
    useSource(args.src)
    mode, total, concurrency, tls = SCENARIOS[args.scenario]
    total = max(1, int(total * args.scale))
    server = startServer("nginx", 1, 0)
    if tls:
        urls = [f"https://127.0.0.1:{server.tlsPort}/".encode()]
    else:
        urls = [f"http://127.0.0.1:{server.ports[0]}/".encode()]
    job: dict[str, Any] = {
        "mode": mode,
        "total": total,
        "concurrency": concurrency,
        "globalCap": None,
        "caPem": server.caPem if tls else None,
        "poolOptions": args.poolOptions,
    }
    lines: list[str] = []
    try:
        if args.client in ASYNC_CLIENTS:
            runAsyncio(args, urls, job, lines)
        else:
            runTwisted(args, urls, job, lines)
    finally:
        server.stop()
    print(
        f"{args.client} on {args.scenario} ({total} requests), load {os.getloadavg()}"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
