"""
Through a proxy: bursts of 100 concurrent https:// GETs through squid to the
benchmark nginx, pooled_http's L{PooledAgent} against aiohttp through the
same squid.  nginx counts the connections it accepted (each one a tunnel
squid opened), squid's access log counts the CONNECTs.

Usage (bounded: a fixed number of requests per run, each run in its own
process with a timeout)::

    python benchmarks/proxy.py                      # 2,000 GETs, 3 repeats
    python benchmarks/proxy.py --requests 500 --repeats 1

Needs squid and nginx (Debian packages C{squid}, C{nginx-light}); without
nginx the twisted.web server stands in and says so.  Prints one JSON
document; exit status 0 when pooled_http reaches at least aiohttp's req/s
and sends no more CONNECTs than it opens connections.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
# The benchmarks' own modules, and the repository root for tests.support
# (the scripted proxy helpers live with the test suite).
for _path in (HERE, os.path.dirname(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from _common import (  # noqa: E402
    addPoolOptions,
    fetchStatus,
    poolOptions,
    raiseFileLimit,
)
from _servers import freePorts, startServer  # noqa: E402
from run import runSubprocess, summariseLatencies  # noqa: E402

CLIENTS = ("pooled_http+PooledAgent", "aiohttp")


def countConnects(accessLog: str) -> int:
    """
    How many CONNECTs squid has logged so far.
    """
    try:
        with open(accessLog, encoding="utf-8", errors="replace") as f:
            return sum(1 for line in f if " CONNECT " in line)
    except OSError:
        return 0


def waitFor(predicate: Any, timeout: float) -> bool:
    """
    Poll C{predicate} every 50 ms for at most C{timeout} seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def main(argv: list[str] | None = None) -> int:
    """
    Run the proxy benchmark; print the figures as JSON.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--server", choices=("auto", "nginx", "twisted"), default="auto"
    )
    addPoolOptions(parser)
    options = parser.parse_args(argv)
    settings = poolOptions(parser, options)
    if options.requests <= 0 or options.concurrency <= 0 or options.repeats <= 0:
        parser.error("--requests, --concurrency and --repeats must be positive")
    from tests.support import proxyservers as helpers

    if helpers.SQUID is None:
        print("squid is not installed (apt-get install squid)", file=sys.stderr)
        return 2
    raiseFileLimit()
    server = startServer(options.server, 1, 0)
    directory = tempfile.mkdtemp(prefix="pooled-http-bench-squid-")
    os.chmod(directory, 0o777)
    (squidPort,) = freePorts(1)
    squid = helpers.launchSquid(directory, squidPort)
    accessLog = os.path.join(directory, "access.log")
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in CLIENTS}
    try:
        if not waitFor(lambda: helpers.accepts(squidPort), 20):
            raise SystemExit("squid did not start")
        job = {
            "mode": "bursts",
            "urls": [f"https://127.0.0.1:{server.tlsPort}/"],
            "total": options.requests,
            "concurrency": options.concurrency,
            "globalCap": None,
            "statusPort": server.statusPort,
            "caPem": server.caPem,
            "proxy": f"http://127.0.0.1:{squidPort}",
            "poolOptions": settings,
        }
        for repeat in range(options.repeats):
            order = CLIENTS if repeat % 2 == 0 else CLIENTS[::-1]
            for client in order:
                connectsBefore = countConnects(accessLog)
                before = fetchStatus(server.statusPort)
                result = summariseLatencies(
                    runSubprocess(
                        "_twclients.py"
                        if client.startswith("pooled")
                        else "_aioclients.py",
                        {**job, "client": client},
                        options.timeout,
                    )
                )
                after = fetchStatus(server.statusPort)
                # The second status request's own connection is counted too.
                result["opened"] = after.accepts - before.accepts - 1
                # squid logs a CONNECT when its tunnel closes.
                waitFor(
                    lambda start=connectsBefore, opened=result["opened"]: (
                        countConnects(accessLog) - start >= opened
                    ),
                    10,
                )
                result["connects"] = countConnects(accessLog) - connectsBefore
                runs[client].append(result)
                print(
                    f"#{repeat + 1} {client}: {result.get('rps', 0):.0f} req/s, "
                    f"{result.get('errors')} errors, {result['opened']} connections, "
                    f"{result['connects']} CONNECTs",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        helpers.stopProcess(squid)
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
    return _report(runs, server.note, options)


def _report(
    runs: dict[str, list[dict[str, Any]]], serverNote: str, options: Any
) -> int:
    summary: dict[str, Any] = {
        "server": serverNote,
        "requests": options.requests,
        "concurrency": options.concurrency,
        "poolOptions": options.pool_option,
        "clients": {},
    }
    for client, results in runs.items():
        measured = [r for r in results if "rps" in r]
        if not measured:
            summary["clients"][client] = {"failed": [r.get("failed") for r in results]}
            continue
        summary["clients"][client] = {
            "rps": statistics.median(r["rps"] for r in measured),
            "p50": statistics.median(r["p50"] for r in measured),
            "p99": statistics.median(r["p99"] for r in measured),
            "errors": sum(r["errors"] for r in measured),
            "connections": max(r["opened"] for r in measured),
            "connects": max(r["connects"] for r in measured),
            "connectsAtMostConnections": all(
                r["connects"] <= r["opened"] for r in measured
            ),
        }
    ours = summary["clients"].get(CLIENTS[0], {})
    theirs = summary["clients"].get(CLIENTS[1], {})
    met = (
        "rps" in ours
        and "rps" in theirs
        and ours["rps"] >= theirs["rps"]
        and ours["connectsAtMostConnections"]
        and ours["errors"] == 0
    )
    summary["targetMet"] = met
    print(json.dumps(summary, indent=2))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
