"""
One handler-only run for C{benchmarks/scrapy_crawl.py --handler-only}, in
a process of its own: C{pages} Scrapy requests of the benchmark server,
C{concurrency} at a time, each awaited straight from the download
handler's C{download_request} on the asyncio reactor, with no engine,
scheduler, middlewares or spider around it: what the handler itself costs
per page.  Prints one result line, in the crawl client's terms.
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import time
from typing import Any

os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import emitResult, readSpec  # noqa: E402
from _scrapyclient import HANDLERS  # noqa: E402


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    job = readSpec()
    from twisted.internet import asyncioreactor

    asyncioreactor.install()
    from scrapy import Request, Spider
    from scrapy.utils.misc import build_from_crawler, load_object
    from scrapy.utils.test import get_crawler
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    base = job["url"]
    pages = job["pages"]
    concurrency = job["concurrency"]
    handlerPath = HANDLERS[job["handler"]]
    crawler = get_crawler(
        Spider,
        {
            "CONCURRENT_REQUESTS": concurrency,
            "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
            "LOG_LEVEL": "ERROR",
        },
    )
    crawler.spider = crawler._create_spider("pages")
    outcome: dict[str, Any] = {}

    async def crawl() -> None:
        handler = build_from_crawler(load_object(handlerPath), crawler)
        counts = {"ok": 0, "errors": 0}
        numbers = iter(range(pages))

        async def worker() -> None:
            for i in numbers:
                try:
                    response = await handler.download_request(
                        Request(f"{base}?page={i}")
                    )
                except Exception:
                    counts["errors"] += 1
                    continue
                if response.status == 200 and len(response.body) == 1024:
                    counts["ok"] += 1
                else:
                    counts["errors"] += 1

        # One page first: connections and first-use costs stay out.
        warm = iter([pages])
        numbers, saved = warm, numbers
        await worker()
        numbers = saved
        counts["ok"] = counts["errors"] = 0
        cpu, wall = _cpu(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cpu, wall = _cpu() - cpu, time.perf_counter() - wall
        await handler.close()
        done = counts["ok"]
        outcome.update(
            pages=done,
            errors=counts["errors"],
            elapsed=wall,
            pagesPerSecond=done / wall if wall else 0.0,
            cpuPer1000=cpu / done * 1000 if done else None,
        )

    def run() -> None:
        d = Deferred.fromFuture(asyncio.ensure_future(crawl()))

        def failed(failure: Any) -> None:
            outcome["failed"] = failure.getErrorMessage()

        d.addErrback(failed)
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(run)
    reactor.run()
    if "failed" in outcome or "pages" not in outcome:
        emitResult({"failed": outcome.get("failed", "the run failed")})
        return
    emitResult(outcome)


if __name__ == "__main__":
    main()
