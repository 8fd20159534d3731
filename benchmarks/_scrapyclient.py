"""
One Scrapy crawl for C{benchmarks/scrapy_crawl.py}, in a process of its
own: a spider fetching C{pages} URLs of the benchmark server with
C{concurrency} requests in flight through one download handler, on the
asyncio reactor (Scrapy's default).  Prints one result line: pages per
second, CPU seconds per 1,000 pages, errors.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from typing import Any

# Scrapy's cookies middleware reads the public suffix list through
# tldextract, which would download it: the snapshot tldextract ships does.
os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import emitResult, readSpec  # noqa: E402

HANDLERS = {
    "http11": "scrapy.core.downloader.handlers.http11.HTTP11DownloadHandler",
    "aiohttp": "scrapy.core.downloader.handlers._aiohttp.AiohttpDownloadHandler",
    "httpx": "scrapy.core.downloader.handlers._httpx.HttpxDownloadHandler",
    "pooled_http": "pooled_http.scrapy.PooledDownloadHandler",
    "memory": "_scrapyclient.MemoryDownloadHandler",
}


class MemoryDownloadHandler:
    """
    Answers every request from memory, with no I/O: what is left is
    Scrapy's own cost per page, the floor no handler can go under.

    Its response is the one every handler gives for the benchmark page:
    the headers nginx sends (Scrapy's middlewares look at each of them)
    and the response class Scrapy picks for them (C{TextResponse}: the
    body is text), built directly; only the choosing of that class, which
    a handler may do more cheaply than Scrapy's C{responsetypes}, is left
    out of the floor.
    """

    lazy = False

    def __init__(self, crawler: Any) -> None:
        from scrapy.http import Headers
        from scrapy.responsetypes import responsetypes

        self._headers = Headers(
            {
                b"Server": b"nginx",
                b"Date": b"Wed, 02 Dec 2026 00:00:00 GMT",
                b"Content-Type": b"application/octet-stream",
                b"Content-Length": b"1024",
            }
        )
        self._body = b"x" * 1024
        self._class = responsetypes.from_args(
            headers=self._headers, url="http://127.0.0.1/?page=0", body=self._body
        )

    @classmethod
    def from_crawler(cls, crawler: Any) -> MemoryDownloadHandler:
        return cls(crawler)

    async def download_request(self, request: Any) -> Any:
        return self._class(
            request.url,
            status=200,
            headers=self._headers.copy(),
            body=self._body,
            protocol="HTTP/1.1",
        )

    async def close(self) -> None:
        pass


def main() -> None:
    job = readSpec()
    import scrapy
    from scrapy import signals
    from scrapy.crawler import AsyncCrawlerProcess

    base = job["url"]
    pages = job["pages"]
    counts = {"ok": 0, "errors": 0}

    class Pages(scrapy.Spider):
        name = "pages"

        async def start(self) -> Any:
            for i in range(pages):
                yield scrapy.Request(f"{base}?page={i}", errback=self.failed)

        def parse(self, response: Any) -> None:
            if response.status == 200 and len(response.body) == 1024:
                counts["ok"] += 1
            else:
                counts["errors"] += 1

        def failed(self, failure: Any) -> None:
            if not counts["errors"]:
                print(failure.getTraceback(), file=sys.stderr)
            counts["errors"] += 1

    handler = HANDLERS[job["handler"]]
    concurrency = job["concurrency"]
    settings = {
        "DOWNLOAD_HANDLERS": {"http": handler, "https": handler},
        "CONCURRENT_REQUESTS": concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
        "LOG_LEVEL": "ERROR",
        "ROBOTSTXT_OBEY": False,
        "TELNETCONSOLE_ENABLED": False,
        "RETRY_ENABLED": False,
        "MEMUSAGE_ENABLED": False,
        "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
    }
    process = AsyncCrawlerProcess(settings, install_root_handler=False)
    timing: dict[str, float] = {}

    def opened(spider: Any) -> None:
        timing["wall"] = time.perf_counter()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        timing["cpu"] = usage.ru_utime + usage.ru_stime

    def closed(spider: Any, reason: str) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        timing["wallEnd"] = time.perf_counter()
        timing["cpuEnd"] = usage.ru_utime + usage.ru_stime

    crawler = process.create_crawler(Pages)
    crawler.signals.connect(opened, signal=signals.spider_opened)
    crawler.signals.connect(closed, signal=signals.spider_closed)
    process.crawl(crawler)
    process.start()
    if "failure" in timing or "wallEnd" not in timing:
        emitResult({"failed": "the crawl failed"})
        return
    elapsed = timing["wallEnd"] - timing["wall"]
    cpu = timing["cpuEnd"] - timing["cpu"]
    done = counts["ok"]
    emitResult(
        {
            "pages": done,
            "errors": counts["errors"],
            "elapsed": elapsed,
            "pagesPerSecond": done / elapsed if elapsed else 0.0,
            "cpuPer1000": cpu / done * 1000 if done else None,
        }
    )


if __name__ == "__main__":
    main()
