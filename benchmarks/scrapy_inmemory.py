"""
The Scrapy download handler's own work per page, with no I/O: each
download's agent answers at once with a canned response of the benchmark
page (nginx's headers, a 1 KiB body delivered whole), so what is timed is
the handler's part alone: the Scrapy request read, the route, the
deadline, the response headers, the body reader and the Scrapy response.
Scrapy's C{Request} is built in the loop too (a crawl builds one per page).

Usage (bounded: a fixed number of downloads)::

    python benchmarks/scrapy_inmemory.py                  # 20,000 downloads, 7 repeats
    python benchmarks/scrapy_inmemory.py --src /elsewhere/src   # another tree's code

Needs the C{scrapy} extra.  Prints one JSON document: microseconds of CPU
per download, median and minimum over the repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from _common import addSourceOption  # noqa: E402

BODY = b"x" * 1024


def _measure(downloads: int, repeats: int) -> list[float]:
    os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""
    from twisted.internet import asyncioreactor

    asyncioreactor.install()
    from scrapy import Request, Spider
    from scrapy.utils.misc import build_from_crawler
    from scrapy.utils.test import get_crawler
    from twisted.internet.address import IPv4Address
    from twisted.internet.defer import Deferred, succeed
    from twisted.python.failure import Failure
    from twisted.web.client import ResponseDone
    from twisted.web.http_headers import Headers

    import pooled_http.scrapy._download as download
    from pooled_http.scrapy import PooledDownloadHandler

    done = Failure(ResponseDone())

    class Transport:
        peer = IPv4Address("TCP", "127.0.0.1", 8080)

        def getPeer(self) -> Any:
            return self.peer

    class Response:
        version = (b"HTTP", 1, 1)
        code = 200
        phrase = b"OK"
        length = len(BODY)
        connectionTransport = Transport()

        def __init__(self) -> None:
            self.headers = Headers(
                {
                    b"Server": [b"nginx"],
                    b"Date": [b"Wed, 02 Dec 2026 00:00:00 GMT"],
                    b"Content-Type": [b"application/octet-stream"],
                }
            )

        def deliverBody(self, protocol: Any) -> None:
            protocol.makeConnection(None)
            protocol.dataReceived(BODY)
            protocol.connectionLost(done)

    class Agent:
        def request(self, *args: Any) -> Any:
            return succeed(Response())

    crawler = get_crawler(Spider, {"LOG_LEVEL": "ERROR"})
    crawler.spider = crawler._create_spider("pages")
    handler = build_from_crawler(PooledDownloadHandler, crawler)
    agent = Agent()
    handler._agents.agentFor = lambda route: agent
    results: list[Any] = []

    def run() -> float:
        started = time.process_time()
        for i in range(downloads):
            result: Deferred[Any] = Deferred()
            download.Download(
                handler, Request(f"http://127.0.0.1:8080/?page={i}"), result
            ).start()
            result.addBoth(results.append)
            if len(results) > 100:
                del results[:]
        return (time.process_time() - started) / downloads * 1e6

    run()
    figures = [run() for _ in range(repeats)]
    if results and isinstance(results[-1], Failure):
        raise RuntimeError(results[-1].getTraceback())
    return figures


def main(argv: list[str] | None = None) -> int:
    """
    Time the handler's downloads; print the figures as JSON.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--downloads", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    addSourceOption(parser)
    options = parser.parse_args(argv)
    if options.downloads <= 0 or options.repeats <= 0:
        parser.error("--downloads and --repeats must be positive")
    sys.path.insert(0, os.path.abspath(options.src))
    figures = _measure(options.downloads, options.repeats)
    print(
        json.dumps(
            {
                "downloads": options.downloads,
                "usPerDownloadMedian": round(statistics.median(figures), 1),
                "usPerDownloadMin": round(min(figures), 1),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
