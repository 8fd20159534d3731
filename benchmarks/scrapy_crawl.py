"""
A Scrapy crawl through each download handler: a spider fetching 3,000 URLs
of the benchmark server's 1 KiB page with 100 concurrent requests, on the
asyncio reactor, with Scrapy's C{HTTP11DownloadHandler}, the aiohttp and
httpx handlers Scrapy ships (where this Scrapy has them and their library
is installed), pooled_http's C{PooledDownloadHandler}, and the floor: a
handler that answers from memory with no I/O (Scrapy's own cost per page).
Each crawl runs in its own process; the order rotates between repeats.

Usage (bounded: a fixed number of pages per crawl, each with a timeout)::

    python benchmarks/scrapy_crawl.py                   # 3,000 pages, 3 repeats
    python benchmarks/scrapy_crawl.py --pages 500 --repeats 1
    python benchmarks/scrapy_crawl.py --handler-only    # the handlers alone
    python benchmarks/scrapy_crawl.py --src /elsewhere/src  # another tree's code

With C{--handler-only} no crawl runs: each handler's C{download_request}
is awaited straight, as many at once as the concurrency, with no engine,
middlewares or spider, so the figures are the handler's own cost per page
(the target applies to crawls only).

Needs the C{scrapy} extra (and the C{bench} extra for aiohttp and httpx);
nginx (Debian C{nginx-light}) is the server, else the twisted.web one, and
says so.  Prints one JSON document; exit status 0 when pooled_http reaches
1.25 times the pages per second of the fastest shipped handler.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import run  # noqa: E402
from _common import addSourceOption  # noqa: E402
from _servers import startServer  # noqa: E402
from run import runSubprocess  # noqa: E402

SHIPPED = ("http11", "aiohttp", "httpx")
TARGET = 1.25


def available() -> list[str]:
    """
    The handlers this environment can run.
    """
    handlers = []
    for name in SHIPPED:
        module = {"http11": "twisted", "aiohttp": "aiohttp", "httpx": "httpx"}[name]
        path = {
            "http11": "scrapy.core.downloader.handlers.http11",
            "aiohttp": "scrapy.core.downloader.handlers._aiohttp",
            "httpx": "scrapy.core.downloader.handlers._httpx",
        }[name]
        if importlib.util.find_spec(module) and importlib.util.find_spec(path):
            handlers.append(name)
    return [*handlers, "pooled_http", "memory"]


def main(argv: list[str] | None = None) -> int:
    """
    Run the crawls; print the figures as JSON.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--handlers", default=None, help="comma-separated")
    parser.add_argument(
        "--server", choices=("auto", "nginx", "twisted"), default="auto"
    )
    parser.add_argument(
        "--handler-only",
        action="store_true",
        help="await each handler's download_request directly, without a crawl",
    )
    addSourceOption(parser)
    options = parser.parse_args(argv)
    run.SOURCE[0] = os.path.abspath(options.src)
    if options.pages <= 0 or options.concurrency <= 0 or options.repeats <= 0:
        parser.error("--pages, --concurrency and --repeats must be positive")
    if importlib.util.find_spec("scrapy") is None:
        print("Scrapy is not installed (pip install 'pooled_http[scrapy]')", file=sys.stderr)
        return 2
    handlers = available()
    if options.handlers:
        handlers = [h for h in options.handlers.split(",") if h in handlers]
    server = startServer(options.server, 1, options.concurrency)
    runs: dict[str, list[dict[str, Any]]] = {h: [] for h in handlers}
    script = "_scrapyhandlerclient.py" if options.handler_only else "_scrapyclient.py"
    try:
        job = {
            "url": f"http://127.0.0.1:{server.ports[0]}/",
            "pages": options.pages,
            "concurrency": options.concurrency,
        }
        for repeat in range(options.repeats):
            shift = repeat % len(handlers)
            order = handlers[shift:] + handlers[:shift]
            for handler in order:
                result = runSubprocess(
                    script, {**job, "handler": handler}, options.timeout
                )
                runs[handler].append(result)
                print(
                    f"#{repeat + 1} {handler}: "
                    f"{result.get('pagesPerSecond', 0):.0f} pages/s, "
                    f"{result.get('errors')} errors, "
                    f"{result.get('failed', '')}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        server.stop()
    return _report(runs, server.note, options)


def _report(
    runs: dict[str, list[dict[str, Any]]], serverNote: str, options: Any
) -> int:
    import scrapy

    summary: dict[str, Any] = {
        "server": serverNote,
        "scrapy": scrapy.__version__,
        "pages": options.pages,
        "concurrency": options.concurrency,
        "repeats": options.repeats,
        "mode": "handler only" if options.handler_only else "crawl",
        "handlers": {},
    }
    for handler, results in runs.items():
        measured = [r for r in results if "pagesPerSecond" in r]
        if not measured:
            summary["handlers"][handler] = {"failed": [r.get("failed") for r in results]}
            continue
        summary["handlers"][handler] = {
            "pagesPerSecond": statistics.median(r["pagesPerSecond"] for r in measured),
            "runs": [round(r["pagesPerSecond"]) for r in measured],
            "cpuPer1000": statistics.median(r["cpuPer1000"] for r in measured),
            "errors": sum(r["errors"] for r in measured),
        }
    figures = summary["handlers"]
    shipped = [
        figures[h]["pagesPerSecond"]
        for h in SHIPPED
        if h in figures and "pagesPerSecond" in figures[h]
    ]
    ours = figures.get("pooled_http", {}).get("pagesPerSecond")
    met = False
    if shipped and ours:
        best = max(shipped)
        summary["ratioToFastestShipped"] = ours / best
        met = ours >= TARGET * best and figures["pooled_http"]["errors"] == 0
    if options.handler_only:
        # The target is the crawl's: here the ratio is only informative.
        print(json.dumps(summary, indent=2))
        return 0
    summary["targetMet"] = met
    print(json.dumps(summary, indent=2))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
