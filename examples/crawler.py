"""
A reactor-based crawler over a capped, fair pool.

The example builds its own synthetic web site: C{HOSTS} twisted.web servers
on 127.0.0.1 (each on a free port, each standing for one host), each serving
C{PAGES} pages that link to pages on the same and on other hosts.  Responses
take a few milliseconds, like a real server.

The crawler starts from one page and follows every link it has not seen.
It hands the pool far more requests than it may run at once; the pool keeps
at most C{PER_HOST} connections to each host and C{TOTAL} overall, and
queues the rest fairly.  The servers count the connections they see at the
same time, so the output shows the caps held.  At the end it prints the
pool's stats, closes the pool and stops the servers.

Run it with::

    python examples/crawler.py
"""

from __future__ import annotations

import re
import sys
import time
from collections import Counter
from typing import Any

from twisted.internet import defer, task
from twisted.internet.defer import Deferred
from twisted.protocols.policies import WrappingFactory
from twisted.web.client import readBody
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from pooled_http import HTTPConnectionPool, PooledAgent

HOSTS = 4
PAGES = 30
PER_HOST = 2
TOTAL = 6
# Requests the crawler keeps going at once; more than TOTAL on purpose.
IN_FLIGHT = 24
DEADLINE = 20.0

LINK = re.compile(rb'href="([^"]+)"')


class Page(Resource):
    """
    Page C{n} of host C{h}: links to a few pages chosen deterministically.
    """

    isLeaf = True

    def __init__(self, reactor: Any, host: int, urls: list[bytes]) -> None:
        super().__init__()
        self.reactor = reactor
        self.host = host
        self.urls = urls

    def render_GET(self, request: Any) -> Any:
        n = int(request.postpath[-1] or 0) if request.postpath else 0
        links = [
            self.urls[(self.host + k) % HOSTS]
            + b"/page/%d" % ((n * 7 + k * 3 + 1) % PAGES,)
            for k in range(3)
        ]
        body = (
            b"<html>"
            + b"".join(b'<a href="%s">x</a>' % (u,) for u in links)
            + b"</html>"
        )

        def respond() -> None:
            request.setHeader(b"content-type", b"text/html")
            request.write(body)
            request.finish()

        call = self.reactor.callLater(0.002, respond)
        request.notifyFinish().addErrback(lambda _: call.active() and call.cancel())
        return NOT_DONE_YET


class CountingFactory(WrappingFactory):
    """
    Remembers the most connections it had open at once.
    """

    def __init__(self, wrapped: Any, everyone: Counter[str]) -> None:
        super().__init__(wrapped)
        self.peak = 0
        self.everyone = everyone

    def registerProtocol(self, p: Any) -> None:
        super().registerProtocol(p)
        self.peak = max(self.peak, len(self.protocols))
        self.everyone["open"] += 1
        self.everyone["peak"] = max(self.everyone["peak"], self.everyone["open"])

    def unregisterProtocol(self, p: Any) -> None:
        super().unregisterProtocol(p)
        self.everyone["open"] -= 1


class Crawler:
    """
    Follows links breadth first with at most C{IN_FLIGHT} requests given to
    the pool at once.

    @ivar pages: How many pages were fetched per host.
    @ivar errors: Requests that failed.
    @ivar done: Fires when no request is left.
    """

    def __init__(self, agent: PooledAgent, pool: HTTPConnectionPool) -> None:
        self.agent = agent
        self.pool = pool
        self.poolPeak = 0
        self.seen: set[bytes] = set()
        self.pages: Counter[bytes] = Counter()
        self.errors: list[str] = []
        self.limit = defer.DeferredSemaphore(IN_FLIGHT)
        self.active = 0
        self.done: Deferred[None] = Deferred()

    def visit(self, url: bytes) -> None:
        """
        Fetch C{url} unless it was seen before or the crawl is over.
        """
        if url in self.seen or self.done.called:
            return
        self.seen.add(url)
        self.active += 1
        self.limit.run(self.fetch, url).addBoth(self.fetched)

    def fetched(self, result: object) -> None:
        self.active -= 1
        if self.active == 0 and not self.done.called:
            self.done.callback(None)

    @defer.inlineCallbacks
    def fetch(self, url: bytes) -> Any:
        """
        Fetch one page and visit its links.
        """
        try:
            response = yield self.agent.request(b"GET", url)
            # The pool's own count of open connections, for the report.
            self.poolPeak = max(self.poolPeak, self.pool.stats().total)
            body = yield readBody(response)
        except Exception as e:
            self.errors.append(f"{url.decode()}: {e!r}")
            return
        self.pages[url.split(b"/page/")[0]] += 1
        for link in LINK.findall(body):
            self.visit(link)

    def crawl(self, start: bytes) -> Deferred[None]:
        """
        Crawl from C{start}.

        @return: Fires when every reachable page has been fetched.
        """
        self.visit(start)
        return self.done


@defer.inlineCallbacks
def main(reactor: Any) -> Any:
    """
    Start the site, crawl it, print the stats, clean up.

    @param reactor: The reactor.
    """
    everyone: Counter[str] = Counter()
    urls: list[bytes] = []
    factories: list[CountingFactory] = []
    ports = []
    for h in range(HOSTS):
        factory = CountingFactory(Site(Page(reactor, h, urls)), everyone)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        urls.append(b"http://127.0.0.1:%d" % (port.getHost().port,))
        factories.append(factory)
        ports.append(port)

    pool = HTTPConnectionPool(
        reactor,
        maxConnectionsPerHost=PER_HOST,
        maxConnections=TOTAL,
        connectTimeout=5,
        responseTimeout=10,
    )
    agent = PooledAgent(reactor, pool=pool)
    crawler = Crawler(agent, pool)
    started = time.monotonic()
    ok = True
    try:
        yield crawler.crawl(urls[0] + b"/page/0").addTimeout(DEADLINE, reactor)
    except defer.TimeoutError:
        print(f"gave up after {DEADLINE} s")
        ok = False
    finally:
        stats = pool.stats()
        summary = repr(pool)
        yield pool.close(timeout=5)
        for port in ports:
            yield port.stopListening()

    elapsed = time.monotonic() - started
    total = sum(crawler.pages.values())
    print(f"crawled {total} pages from {HOSTS} hosts in {elapsed:.2f} s")
    for url, factory in zip(urls, factories, strict=True):
        print(
            f"  {url.decode()}: {crawler.pages[url]} pages, "
            f"at most {factory.peak} connections at once (limit {PER_HOST})"
        )
    print(
        f"  all hosts: at most {crawler.poolPeak} connections at once (limit {TOTAL})"
    )
    print(
        f"  (the servers saw at most {everyone['peak']} sockets at once: an idle "
        f"connection evicted to make room for another host counts as free as "
        f"soon as its close starts)"
    )
    print(f"errors: {len(crawler.errors)}")
    for error in crawler.errors[:5]:
        print("  " + error)
    print(
        f"pool: opened={stats.opened} reused={stats.reused} "
        f"retried={stats.retried} timedOut={stats.timedOut} failed={stats.failed}"
    )
    print(
        f"waited for a connection: {stats.waitTime.count} times, "
        f"mean {stats.waitTime.mean * 1000:.1f} ms, max {stats.waitTime.max * 1000:.1f} ms"
    )
    print(summary)

    capsHeld = crawler.poolPeak <= TOTAL and all(f.peak <= PER_HOST for f in factories)
    if not (ok and not crawler.errors and total == HOSTS * PAGES and capsHeld):
        print("FAILED")
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    task.react(main)
