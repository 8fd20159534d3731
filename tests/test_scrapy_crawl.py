"""
Crawls through L{pooled_http.scrapy.PooledDownloadHandler}: a Scrapy spider
over a twisted.web site on loopback, with redirects, gzip, cookies, a slow
page, a page too slow for its timeout, a page that closes its connection,
and proxies (a forwarding one and a CONNECT tunnel to an https site), with
Scrapy's own middlewares doing what they do in a real crawl.
"""

from __future__ import annotations

import gzip
import json
import os
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from .support.proxyservers import (
    LOOPBACK,
    ProxyConnection,
    ScriptedProxy,
    startTarget,
)
from .support.servers import TLSMaterial

# Scrapy's cookies middleware reads the public suffix list through
# tldextract, which would download it: the snapshot tldextract ships does.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

try:
    import scrapy
    from scrapy.downloadermiddlewares import cookies as _cookies
    from scrapy.utils.test import get_crawler

    _cookies._split_domain.suffix_list_urls = ()
except ImportError:  # pragma: no cover - the test extra brings Scrapy
    scrapy = None  # type: ignore[assignment]

HANDLER = "pooled_http.scrapy.PooledDownloadHandler"
PAGES = 20


class _Leaf(Resource):
    isLeaf = True

    def __init__(self, render: Any) -> None:
        Resource.__init__(self)
        self._render = render

    def render(self, request: Request) -> Any:
        return self._render(request)


def _page(request: Request) -> bytes:
    number = int(request.args.get(b"n", [b"0"])[0])
    links = "".join(
        f'<a href="/page?n={n}">{n}</a>' for n in (number + 1, number + 2) if n < PAGES
    )
    request.setHeader(b"content-type", b"text/html")
    return f"<html><body>page {number} {links}</body></html>".encode()


def _index(request: Request) -> bytes:
    request.setHeader(b"content-type", b"text/html")
    return (
        b"<html><body>"
        b'<a href="/redirect">r</a> <a href="/gzip">g</a> '
        b'<a href="/cookie/set">c</a> <a href="/slow">s</a> '
        b'<a href="/close">x</a> <a href="/page?n=0">p</a>'
        b"</body></html>"
    )


def _redirect(request: Request) -> bytes:
    request.setResponseCode(302)
    request.setHeader(b"location", b"/redirected")
    return b""


def _gzip(request: Request) -> bytes:
    request.setHeader(b"content-type", b"text/plain")
    request.setHeader(b"content-encoding", b"gzip")
    return gzip.compress(b"unzipped " * 100)


def _setCookie(request: Request) -> bytes:
    request.addCookie(b"session", b"s3ss10n", path=b"/")
    request.setResponseCode(302)
    request.setHeader(b"location", b"/cookie/check")
    return b""


def _checkCookie(request: Request) -> bytes:
    return request.getHeader(b"cookie") or b"no cookie"


def _later(delay: float) -> Any:
    def render(request: Request) -> Any:
        def answer() -> None:
            if not request.finished and not request._disconnected:
                request.write(b"slow but there")
                request.finish()

        call = reactor.callLater(delay, answer)
        request.notifyFinish().addErrback(
            lambda _: call.cancel() if call.active() else None
        )
        return NOT_DONE_YET

    return render


def _close(request: Request) -> bytes:
    request.setHeader(b"connection", b"close")
    return b"closing after this"


def _site() -> Site:
    root = Resource()
    root.putChild(b"", _Leaf(_index))
    for name, render in {
        b"page": _page,
        b"redirect": _redirect,
        b"redirected": lambda r: b"landed",
        b"gzip": _gzip,
        b"slow": _later(0.2),
        b"stalled": _later(60),
        b"close": _close,
    }.items():
        root.putChild(name, _Leaf(render))
    cookie = Resource()
    cookie.putChild(b"set", _Leaf(_setCookie))
    cookie.putChild(b"check", _Leaf(_checkCookie))
    root.putChild(b"cookie", cookie)
    return Site(root)


if scrapy is not None:

    class SiteSpider(scrapy.Spider):
        """
        Follows every link of the site; records each page's body by path,
        the failures by URL, and the responses' flags and connection facts.
        """

        name = "site"

        def __init__(self, base: str, extra: list[Any], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.base = base
            self.extra = extra
            self.bodies: dict[str, bytes] = {}
            self.failures: dict[str, Any] = {}
            self.facts: dict[str, Any] = {}

        async def start(self) -> Any:
            yield scrapy.Request(self.base + "/", errback=self.failed)
            for request in self.extra:
                yield request.replace(errback=self.failed)

        def parse(self, response: Any) -> Any:
            path = response.url[len(self.base) :] if response.url.startswith(
                self.base
            ) else response.url
            self.bodies[path] = response.body
            self.facts[path] = (
                response.ip_address,
                response.protocol,
                response.flags,
                response.meta.get("download_latency"),
            )
            if response.headers.get(b"content-type", b"").startswith(b"text/html"):
                for href in response.css("a::attr(href)").getall():
                    yield response.follow(href, errback=self.failed)

        def failed(self, failure: Any) -> None:
            self.failures[failure.request.url] = failure.value


def _settings(**extra: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "DOWNLOAD_HANDLERS": {"http": HANDLER, "https": HANDLER},
        "TWISTED_REACTOR": None,
        "ROBOTSTXT_OBEY": False,
        "CONCURRENT_REQUESTS": 8,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 4,
        "RETRY_ENABLED": False,
        "LOG_LEVEL": "WARNING",
        "TELNETCONSOLE_ENABLED": False,
    }
    settings.update(extra)
    return settings


class CrawlTests(TestCase):
    """
    Whole crawls through the handler.
    """

    skip = None if scrapy is not None else "Scrapy is not installed"

    def setUp(self) -> None:
        site = _site()
        self.listening = reactor.listenTCP(0, site, interface=LOOPBACK)
        self.addCleanup(self.listening.stopListening)
        self.base = f"http://{LOOPBACK}:{self.listening.getHost().port}"

    async def crawl(self, extra: list[Any], **settings: Any) -> Any:
        # A crawl installs Scrapy's resolvers on the reactor: put the
        # reactor's own back for the tests that follow.
        resolver, nameResolver = reactor.resolver, reactor.nameResolver
        self.addCleanup(reactor.installResolver, resolver)
        self.addCleanup(reactor.installNameResolver, nameResolver)
        crawler = get_crawler(SiteSpider, _settings(**settings))
        await crawler.crawl(base=self.base, extra=extra)
        return crawler

    async def test_site(self) -> None:
        """
        Every page of the site arrives, through redirects, gzip and
        cookies; a slow page arrives; one that stalls past its
        C{download_timeout} fails with C{DownloadTimeoutError}; connections
        are reused and their counts reach the stats collector.
        """
        from scrapy.exceptions import DownloadTimeoutError

        stalled = scrapy.Request(
            self.base + "/stalled", meta={"download_timeout": 0.5}
        )
        crawler = await self.crawl([stalled])
        spider = crawler.spider
        bodies = spider.bodies
        self.assertEqual(bodies["/redirected"], b"landed")
        self.assertEqual(bodies["/gzip"], b"unzipped " * 100)
        self.assertEqual(bodies["/cookie/check"], b"session=s3ss10n")
        self.assertEqual(bodies["/slow"], b"slow but there")
        self.assertEqual(bodies["/close"], b"closing after this")
        self.assertEqual(
            {p for p in bodies if p.startswith("/page")},
            {f"/page?n={n}" for n in range(PAGES)},
        )
        self.assertEqual(list(spider.failures), [self.base + "/stalled"])
        self.assertIsInstance(spider.failures[self.base + "/stalled"], DownloadTimeoutError)
        address, protocol, flags, latency = spider.facts["/"]
        self.assertEqual((str(address), protocol, flags), (LOOPBACK, "HTTP/1.1", []))
        self.assertGreater(latency, 0)
        stats = crawler.stats.get_stats()
        self.assertEqual(stats["finish_reason"], "finished")
        self.assertGreater(stats["pooled_http/reused"], 0)
        self.assertLessEqual(stats["pooled_http/opened"], 8)
        # The page that closes its connection.
        self.assertGreaterEqual(
            stats["pooled_http/closed/server_closed"]
            + stats["pooled_http/closed/not_reusable"],
            1,
        )
        self.assertIn("pooled_http/wait_time_max", stats)

    async def test_proxies(self) -> None:
        """
        Through a proxy with credentials in C{meta["proxy"]} (Scrapy's proxy
        middleware turns them into C{Proxy-Authorization}): an http URL is
        forwarded to the proxy with them, an https URL goes through a
        C{CONNECT} tunnel that carries them, and the target never sees them.
        """
        tls = TLSMaterial()
        target = startTarget(reactor, tls.serverOptions())
        self.addCleanup(target.stop)

        def script(connection: ProxyConnection, head: bytes) -> None:
            if head.startswith(b"CONNECT "):
                connection.tunnel()
                return
            connection.transport.write(  # type: ignore[union-attr]
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(head), head)
            )

        proxy = ScriptedProxy(reactor, script)
        self.addCleanup(proxy.stop)
        proxyURL = f"http://alice:wonder@{LOOPBACK}:{proxy.port}"
        secure = f"https://{LOOPBACK}:{target.port}/tunnelled"
        requests = [
            scrapy.Request("http://forwarded.invalid/x", meta={"proxy": proxyURL}),
            scrapy.Request(secure, meta={"proxy": proxyURL}, dont_filter=True),
            scrapy.Request(secure + "?again", meta={"proxy": proxyURL}),
        ]
        crawler = await self.crawl(requests)
        spider = crawler.spider
        self.assertEqual(spider.failures, {})
        forwarded = spider.bodies["http://forwarded.invalid/x"]
        self.assertTrue(forwarded.startswith(b"GET http://forwarded.invalid/x HTTP/1.1"))
        self.assertIn(b"Proxy-Authorization: Basic YWxpY2U6d29uZGVy", forwarded)
        echoed = json.loads(spider.bodies[secure])
        self.assertEqual(echoed["uri"], "/tunnelled")
        self.assertNotIn("proxy-authorization", echoed["headers"])
        connects = proxy.connects()
        self.assertIn(len(connects), (1, 2))
        for head in connects:
            self.assertIn(b"Proxy-Authorization: Basic YWxpY2U6d29uZGVy", head)
        address, protocol, flags, _ = spider.facts[secure]
        self.assertEqual((str(address), protocol), (LOOPBACK, "HTTP/1.1"))



class CloseTests(TestCase):
    """
    Closing the handler while a download is stuck.
    """

    skip = None if scrapy is not None else "Scrapy is not installed"

    async def test_closeNeverHangs(self) -> None:
        """
        C{close()} returns once the download in flight has had
        C{POOLED_HTTP_CLOSE_GRACE_PERIOD} to finish; that download then
        fails, and the pool has no connection left.
        """
        from scrapy.utils.misc import build_from_crawler

        from pooled_http.scrapy import PooledDownloadHandler

        listening = reactor.listenTCP(0, _site(), interface=LOOPBACK)
        self.addCleanup(listening.stopListening)
        crawler = get_crawler(
            SiteSpider, _settings(POOLED_HTTP_CLOSE_GRACE_PERIOD=0.2)
        )
        handler = build_from_crawler(PooledDownloadHandler, crawler)
        url = f"http://{LOOPBACK}:{listening.getHost().port}/stalled"
        download = defer.Deferred.fromCoroutine(
            handler.download_request(scrapy.Request(url))
        )
        failures: list[Any] = []
        download.addErrback(failures.append)
        for _ in range(1000):
            if handler.pool.stats().inUse:
                break
            await deferLater(reactor, 0.01)
        self.assertEqual(handler.pool.stats().inUse, 1)
        await defer.Deferred.fromCoroutine(handler.close())
        self.assertEqual(len(failures), 1)
        self.assertEqual(handler.pool.stats().total, 0)
