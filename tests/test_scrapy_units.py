"""
The parts of L{pooled_http.scrapy} that need no network: Scrapy's settings
as pool arguments, the route (proxy, credentials, bind address) of a
request, the mapping of failures to Scrapy's exceptions, and the stats.
"""

from __future__ import annotations

import asyncio
import base64
import random
import warnings
from typing import Any

from twisted.internet.error import ConnectionRefusedError, DNSLookupError
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web._newclient import ResponseNeverReceived
from twisted.web.client import ResponseDone, ResponseFailed
from twisted.web.http_headers import Headers as TxHeaders
from twisted.web.iweb import UNKNOWN_LENGTH

from pooled_http import HTTPConnectionPool
from pooled_http.errors import (
    ConnectTimeoutError,
    ProxyAuthenticationRequired,
    ProxyError,
    ProxyUnreachableError,
    ProxyURLError,
    ReadTimeoutError,
    ResponseTimeoutError,
)
from pooled_http.stats import PoolStats, WaitStats

try:
    import scrapy
    from scrapy.exceptions import (
        CannotResolveHostError,
        DownloadCancelledError,
        DownloadConnectionRefusedError,
        DownloadFailedError,
        DownloadTimeoutError,
    )
    from scrapy.http import Headers, HtmlResponse, TextResponse, XmlResponse
    from scrapy.responsetypes import responsetypes
    from scrapy.settings import Settings

    from pooled_http.scrapy._body import makeResponse, responseClass, scrapyHeaders
    from pooled_http.scrapy._config import HandlerConfig, normalizeBindAddress
    from pooled_http.scrapy._deadlines import Deadlines
    from pooled_http.scrapy._download import FutureResult
    from pooled_http.scrapy._errors import scrapyError
    from pooled_http.scrapy._routing import routeOf
    from pooled_http.scrapy._shared import statsValues
except ImportError:  # pragma: no cover - the test extra brings Scrapy
    scrapy = None  # type: ignore[assignment]

SKIP = None if scrapy is not None else "Scrapy is not installed"
KEY = (b"http", b"127.0.0.1", 80)


def config(**values: Any) -> HandlerConfig:
    return HandlerConfig.fromSettings(Settings(values))


class ConfigTests(SynchronousTestCase):
    """
    L{HandlerConfig.fromSettings}.
    """

    skip = SKIP

    def test_defaults(self) -> None:
        """
        With Scrapy's defaults: 8 connections per host, 16 in all,
        connecting bounded by C{DOWNLOAD_TIMEOUT} (180 s; the handler's
        deadline bounds the whole download, so the pool needs no response
        and read timers), lenient heads.
        """
        c = config()
        self.assertEqual(
            c.poolArgs,
            {
                "maxConnectionsPerHost": 8,
                "maxConnections": 16,
                "connectTimeout": 180.0,
                "lenientHeaders": True,
            },
        )
        self.assertEqual(c.proxyPoolArgs["maxConnectionsPerHost"], 16)
        self.assertEqual(c.downloadTimeout, 180.0)
        self.assertTrue(c.failOnDataLoss)
        self.assertIsNone(c.bindAddress)

    def test_perIP(self) -> None:
        """
        C{CONCURRENT_REQUESTS_PER_IP}, when not 0, is the per-key cap; the
        global cap is never below it.  (Scrapy 2.19 deprecates the setting
        and says so when it is read.)
        """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c = config(CONCURRENT_REQUESTS_PER_IP=32, CONCURRENT_REQUESTS=4)
        self.assertEqual(c.poolArgs["maxConnectionsPerHost"], 32)
        self.assertEqual(c.poolArgs["maxConnections"], 32)

    def test_ownSettings(self) -> None:
        """
        The C{POOLED_HTTP_*} settings set their pool attributes; 0 turns the
        pool timeout and the connection age off.
        """
        c = config(
            POOLED_HTTP_POOL_TIMEOUT=0,
            POOLED_HTTP_IDLE_TIMEOUT="30",
            POOLED_HTTP_MAX_CONNECTION_AGE=600,
            POOLED_HTTP_MAX_REQUESTS_PER_CONNECTION=100,
            POOLED_HTTP_MAX_CONNECTIONS_PER_HOST=2,
            POOLED_HTTP_CONNECT_TIMEOUT=5,
        )
        args = c.poolArgs
        self.assertIsNone(args["poolTimeout"])
        self.assertEqual(args["cachedConnectionTimeout"], 30.0)
        self.assertEqual(args["maxConnectionAge"], 600.0)
        self.assertEqual(args["maxRequestsPerConnection"], 100)
        self.assertEqual(args["maxConnectionsPerHost"], 2)
        pool = HTTPConnectionPool(Clock(), **args)
        self.assertEqual((pool.maxConnectionsPerHost, pool.maxPersistentPerHost), (2, 2))
        self.assertEqual(args["connectTimeout"], 5.0)

    def test_badSetting(self) -> None:
        """
        A value that is not a number names the setting.
        """
        with self.assertRaises(ValueError) as caught:
            config(POOLED_HTTP_POOL_TIMEOUT="soon")
        self.assertIn("POOLED_HTTP_POOL_TIMEOUT", str(caught.exception))
        with self.assertRaises(ValueError) as caught:
            config(POOLED_HTTP_MAX_REQUESTS_PER_CONNECTION=1.5)
        self.assertIn("POOLED_HTTP_MAX_REQUESTS_PER_CONNECTION", str(caught.exception))

    def test_bindAddress(self) -> None:
        """
        A bare host binds to any port.
        """
        self.assertEqual(normalizeBindAddress("127.0.0.2"), ("127.0.0.2", 0))
        self.assertEqual(normalizeBindAddress(["127.0.0.2", 5]), ("127.0.0.2", 5))
        self.assertIsNone(normalizeBindAddress(None))
        self.assertEqual(
            config(DOWNLOAD_BIND_ADDRESS="127.0.0.3").bindAddress, ("127.0.0.3", 0)
        )


def request(url: str, **meta: Any) -> Any:
    headers = meta.pop("headers", {})
    return scrapy.Request(url, meta=meta, headers=headers)


def basic(pair: str) -> bytes:
    return b"Basic " + base64.b64encode(pair.encode("latin-1"))


class RouteTests(SynchronousTestCase):
    """
    L{routeOf}.
    """

    skip = SKIP

    def route(self, r: Any, bind: Any = None) -> Any:
        return routeOf(r, bind, "latin-1", normalizeBindAddress)

    def test_direct(self) -> None:
        """
        Without C{meta["proxy"]}: no proxy, the request's or the default
        bind address.
        """
        route = self.route(request("http://127.0.0.1/"), ("127.0.0.5", 0))
        self.assertEqual((route.proxy, route.bindAddress), (None, ("127.0.0.5", 0)))
        route = self.route(request("http://127.0.0.1/", bindaddress="127.0.0.2"))
        self.assertEqual(route.bindAddress, ("127.0.0.2", 0))

    def test_basicCredentials(self) -> None:
        """
        Basic credentials of C{Proxy-Authorization} go into the proxy URL,
        and the header is to be dropped; a proxy without a scheme is http.
        """
        r = request(
            "https://127.0.0.1/",
            proxy="127.0.0.1:3128",
            headers={"Proxy-Authorization": basic("alice:s:cret")},
        )
        route = self.route(r)
        proxy = route.proxy
        self.assertEqual((proxy.scheme, proxy.port, proxy.username), ("http", 3128, "alice"))
        self.assertEqual(proxy.basicCredentials(), basic("alice:s:cret"))
        self.assertFalse(route.forwardsProxyAuthorization)
        self.assertNotIn("s:cret", repr(proxy))

    def test_otherScheme(self) -> None:
        """
        Another scheme is forwarded as it is to an http proxy for an http
        URL, and refused through a tunnel (it cannot go into a CONNECT or a
        SOCKS5 handshake).
        """
        headers = {"Proxy-Authorization": "Bearer token"}
        route = self.route(
            request("http://127.0.0.1/", proxy="http://127.0.0.1:3128", headers=headers)
        )
        self.assertTrue(route.forwardsProxyAuthorization)
        self.assertIsNone(route.proxy.username)
        for url, proxy in [
            ("https://127.0.0.1/", "http://127.0.0.1:3128"),
            ("http://127.0.0.1/", "socks5://127.0.0.1:1080"),
        ]:
            with self.assertRaises(ValueError):
                self.route(request(url, proxy=proxy, headers=headers))

    def test_badProxy(self) -> None:
        """
        A proxy URL that cannot be used names C{meta["proxy"]}.
        """
        with self.assertRaises(ProxyURLError) as caught:
            self.route(request("http://127.0.0.1/", proxy="ftp://127.0.0.1"))
        self.assertIn('meta["proxy"]', str(caught.exception))


class ErrorTests(SynchronousTestCase):
    """
    L{scrapyError}.
    """

    skip = SKIP

    def assertMapped(self, error: BaseException, expected: type) -> None:
        mapped = scrapyError(error)
        self.assertIsInstance(mapped, expected)
        self.assertIs(mapped.__cause__, error)

    def test_timeouts(self) -> None:
        """
        Every timeout of the pool is a C{DownloadTimeoutError}.
        """
        self.assertMapped(ConnectTimeoutError(KEY, 5), DownloadTimeoutError)
        self.assertMapped(ResponseTimeoutError(KEY, 5), DownloadTimeoutError)
        self.assertMapped(ReadTimeoutError(KEY, 5), DownloadTimeoutError)

    def test_refused(self) -> None:
        """
        A refused connection, to the target or to the proxy, or a SOCKS
        refusal, is C{DownloadConnectionRefusedError}; a name that does not
        resolve C{CannotResolveHostError}.
        """
        self.assertMapped(ConnectionRefusedError(), DownloadConnectionRefusedError)
        unreachable = ProxyUnreachableError("http://127.0.0.1:1", "refused")
        unreachable.__cause__ = ConnectionRefusedError()
        self.assertMapped(unreachable, DownloadConnectionRefusedError)
        self.assertMapped(
            ProxyAuthenticationRequired("socks5://127.0.0.1:1080", "refused"),
            DownloadConnectionRefusedError,
        )
        self.assertMapped(DNSLookupError("nowhere"), CannotResolveHostError)

    def test_failed(self) -> None:
        """
        A broken response, one never received, a refused CONNECT or a 407 of
        an HTTP proxy are C{DownloadFailedError}.
        """
        self.assertMapped(ResponseFailed([Failure(Exception())]), DownloadFailedError)
        self.assertMapped(
            ResponseNeverReceived([Failure(Exception())]), DownloadFailedError
        )
        self.assertMapped(
            ProxyError("http://127.0.0.1:3128", "refused", status=403),
            DownloadFailedError,
        )
        self.assertMapped(
            ProxyAuthenticationRequired("http://127.0.0.1:3128", "407"),
            DownloadFailedError,
        )

    def test_other(self) -> None:
        """
        Anything else is left as it is.
        """
        error = ValueError("x")
        self.assertIs(scrapyError(error), error)


class StatsTests(SynchronousTestCase):
    """
    L{statsValues}.
    """

    skip = SKIP

    def test_summed(self) -> None:
        """
        Counters are summed over the pools, the longest wait is the longest
        of all, the mean wait weighted by count, close reasons one stat each.
        """
        one = PoolStats(
            opened=2, reused=5, waitTime=WaitStats(4, 0.5, 1.0), closed={"idle timeout": 1}
        )
        two = PoolStats(
            opened=1, reused=1, waitTime=WaitStats(1, 3.0, 3.0), closed={"idle timeout": 2}
        )
        values = statsValues([one, two])
        self.assertEqual(values["pooled_http/opened"], 3)
        self.assertEqual(values["pooled_http/reused"], 6)
        self.assertEqual(values["pooled_http/wait_time_max"], 3.0)
        self.assertEqual(values["pooled_http/wait_time_mean"], 1.0)
        self.assertEqual(values["pooled_http/closed/idle_timeout"], 3)


def _replaceMethod(case: SynchronousTestCase, name: str, replacement: Any) -> None:
    """
    Replace a method of Scrapy's C{responsetypes} for one test, and take
    the replacement away after it (C{patch} would leave the bound method
    behind as an attribute of the object, which is not what Scrapy has).
    """
    setattr(responsetypes, name, replacement)
    case.addCleanup(delattr, responsetypes, name)


class ResponseClassTests(SynchronousTestCase):
    """
    L{responseClass} picks the class Scrapy's C{responsetypes.from_args}
    picks.
    """

    skip = SKIP

    def test_sameAsScrapy(self) -> None:
        """
        For headers, URLs and bodies of every kind (text, markup, control
        characters, long bodies with a control character past the part
        Scrapy looks at), the class is Scrapy's.
        """
        chooser = random.Random(16)
        types = [
            None,
            b"application/octet-stream",
            b"text/html",
            b"text/plain; charset=utf-8",
            b"application/json",
            b"image/png",
            b"APPLICATION/XML",
        ]
        urls = [
            "http://h/a",
            "http://h/a.html",
            "http://h/b.json",
            "http://h/c.png",
            "http://h/dir.d/page?q=1",
            "http://h/?q=1.5",
            "http://h/a.tar.gz",
            "http://h/a.svgz",
            "http://h",
            "data:text/html,x",
        ]
        bodies = [
            b"",
            b"plain",
            b"<HTML>x",
            b"<?xml v",
            b"<!DOCTYPE html><p>",
            b"\x00\x01abc",
            b"\x7f\x80\xff",
            bytes(range(256)),
            b"a" * 6000 + b"\x01",
            b"\t\r\n ok",
            b"\x1f",
            b"x" * 1024,
            b"xml <?XmL",
            b"<p>no mark</p>",
        ]
        for _ in range(3000):
            headers = Headers()
            contentType = chooser.choice(types)
            if contentType is not None:
                headers[b"Content-Type"] = contentType
            if chooser.random() < 0.1:
                headers[b"Content-Encoding"] = b"gzip"
            if chooser.random() < 0.1:
                headers[b"Content-Disposition"] = b"attachment; filename=x.html"
            url = chooser.choice(urls)
            body = chooser.choice(bodies)
            if chooser.random() < 0.3:
                body = bytes(chooser.randrange(256) for _ in range(chooser.randrange(20)))
            self.assertIs(
                responseClass(headers, url, body),
                responsetypes.from_args(headers=headers, url=url, body=body),
                (headers, url, body),
            )

    def test_tablesChanged(self) -> None:
        """
        What L{responseClass} remembers follows changes to Scrapy's tables
        made after it was asked: a class mapped anew to a MIME type, and a
        method of C{responsetypes} replaced.
        """
        headers = Headers({b"Content-Type": b"application/x-custom"})
        url = "http://h/page"
        body = b"x" * 100
        self.assertIs(responseClass(headers, url, body), TextResponse)
        self.patch(responsetypes, "classes", dict(responsetypes.classes))
        responsetypes.classes["application/x-custom"] = HtmlResponse
        self.assertIs(responseClass(headers, url, body), HtmlResponse)
        self.assertIs(responseClass(Headers(), url, body), TextResponse)
        _replaceMethod(self, "from_filename", lambda name: XmlResponse)
        self.assertIs(responseClass(Headers(), url, body), XmlResponse)

    def test_customTypes(self) -> None:
        """
        A C{responsetypes} whose C{from_body} was replaced is asked as it
        is.
        """
        _replaceMethod(self, "from_body", lambda body: Headers)
        self.assertIs(responseClass(Headers(), "http://h/", b"x"), Headers)


class _TxResponse:
    def __init__(self, headers: TxHeaders, length: Any) -> None:
        self.headers = headers
        self.length = length


class ScrapyHeadersTests(SynchronousTestCase):
    """
    L{scrapyHeaders} and L{makeResponse} give a response the headers
    Scrapy's C{Headers.update} and the response's constructor make.
    """

    skip = SKIP

    def test_sameAsScrapy(self) -> None:
        """
        Names that title-case alike, repeated names, a C{Content-Length}
        header beside the length Twisted keeps apart, an unknown length and
        no headers at all give what Scrapy's own path gives, keys in the
        same order.
        """
        heads = [
            [],
            [(b"content-type", [b"text/html"]), (b"Set-Cookie", [b"a=1", b"b=2"])],
            [(b"x-xss-protection", [b"1"]), (b"X-XSS-Protection", [b"0"])],
            [(b"content-length", [b"7"]), (b"etag", [b'"x"'])],
            [(b"WWW-Authenticate", [b"Basic"]), (b"dnt", [b"1"])],
        ]
        for raw in heads:
            for length in (UNKNOWN_LENGTH, 0, 12):
                tx = TxHeaders()
                for name, values in raw:
                    tx.setRawHeaders(name, values)
                expected = Headers()
                if length is not UNKNOWN_LENGTH:
                    expected[b"Content-Length"] = str(length).encode()
                expected.update(tx.getAllRawHeaders())
                made = scrapyHeaders(_TxResponse(tx, length))
                self.assertEqual(list(made.items()), list(expected.items()))
                self.assertIs(type(made), Headers)

    def test_responseKeepsThem(self) -> None:
        """
        A stock response class gets the headers as they are; any other
        class gets them through its constructor, as before.
        """
        headers = Headers({b"Content-Type": b"text/html"})
        response = makeResponse("http://h/", 200, headers, b"<html>")
        self.assertIs(response.headers, headers)
        self.assertEqual(type(response).__name__, "HtmlResponse")
        seen: list[Any] = []

        class Custom(scrapy.http.Response):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                seen.append(kwargs.get("headers"))
                super().__init__(*args, **kwargs)

        _replaceMethod(self, "from_args", lambda **kwargs: Custom)
        response = makeResponse("http://h/", 200, headers, b"x")
        self.assertEqual(seen, [headers])
        self.assertEqual(response.headers, headers)


class DeadlineTests(SynchronousTestCase):
    """
    L{Deadlines}: whole-download deadlines on one reactor timer.
    """

    skip = SKIP

    def test_expireInOrder(self) -> None:
        """
        Each deadline fires once, at its time, in order of time; one timer
        is armed at a time, none once nothing is pending.
        """
        clock = Clock()
        deadlines = Deadlines(clock)
        fired: list[str] = []
        deadlines.add(5, lambda: fired.append("a"))
        deadlines.add(2, lambda: fired.append("b"))
        deadlines.add(5, lambda: fired.append("c"))
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(2)
        self.assertEqual(fired, ["b"])
        clock.advance(3)
        self.assertEqual(fired, ["b", "a", "c"])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_cancel(self) -> None:
        """
        A cancelled deadline never fires; many cancelled ones do not pile
        up.
        """
        clock = Clock()
        deadlines = Deadlines(clock)
        fired: list[int] = []
        first = deadlines.add(1, lambda: fired.append(1))
        deadlines.add(3, lambda: fired.append(3)).cancel()
        first.cancel()
        first.cancel()
        kept = deadlines.add(10, lambda: fired.append(10))
        for _ in range(1000):
            deadlines.add(10, lambda: fired.append(0)).cancel()
        self.assertLess(len(deadlines._heap), 200)
        clock.advance(1)
        self.assertEqual(fired, [])
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(9)
        self.assertEqual(fired, [10])
        kept.cancel()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_idleTimer(self) -> None:
        """
        Once nothing is pending the timer stays armed (the next wave of
        downloads needs no new one) and fires for nothing; a shorter
        deadline arms it sooner.
        """
        clock = Clock()
        deadlines = Deadlines(clock)
        fired: list[int] = []
        deadlines.add(10, lambda: fired.append(10)).cancel()
        calls = clock.getDelayedCalls()
        self.assertEqual(len(calls), 1)
        deadlines.add(20, lambda: fired.append(20))
        self.assertEqual(clock.getDelayedCalls(), calls)
        deadlines.add(1, lambda: fired.append(1))
        clock.advance(1)
        self.assertEqual(fired, [1])
        clock.advance(19)
        self.assertEqual(fired, [1, 20])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_expireCancelsOthers(self) -> None:
        """
        A deadline's expiry may cancel other deadlines (a download failing
        ends others'); those that were due fire all the same, once.
        """
        clock = Clock()
        deadlines = Deadlines(clock)
        fired: list[str] = []
        later = deadlines.add(2, lambda: fired.append("later"))
        deadlines.add(1, lambda: (fired.append("first"), later.cancel()))
        clock.advance(1)
        self.assertEqual(fired, ["first"])
        clock.advance(5)
        self.assertEqual(fired, ["first"])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_stop(self) -> None:
        """
        Stopping forgets every deadline and the timer.
        """
        clock = Clock()
        deadlines = Deadlines(clock)
        pending = deadlines.add(1, lambda: None)
        deadlines.stop()
        pending.cancel()
        self.assertEqual(clock.getDelayedCalls(), [])
        deadlines.add(1, lambda: None)
        self.assertEqual(len(clock.getDelayedCalls()), 1)


class FutureResultTests(SynchronousTestCase):
    """
    L{FutureResult}, what C{download_request} awaits on the asyncio
    reactor.
    """

    skip = SKIP

    def test_cancelCancelsDownload(self) -> None:
        """
        Cancelling the future (Scrapy cancelling the download's task)
        cancels the download, once; a future already done cancels nothing.
        """
        loop = asyncio.new_event_loop()
        self.addCleanup(loop.close)
        cancelled: list[str] = []

        class FakeDownload:
            def __init__(self, name: str) -> None:
                self.name = name

            def cancel(self) -> None:
                cancelled.append(self.name)

        future = FutureResult(loop=loop)
        future.download = FakeDownload("a")  # type: ignore[assignment]
        self.assertTrue(future.cancel())
        self.assertFalse(future.cancel())
        done = FutureResult(loop=loop)
        done.download = FakeDownload("b")  # type: ignore[assignment]
        done.set_result(None)
        self.assertFalse(done.cancel())
        self.assertEqual(cancelled, ["a"])


class _BodyTransport:
    """
    The transport a body protocol is given: records C{stopProducing}.
    """

    def __init__(self) -> None:
        self.stopped = 0

    def stopProducing(self) -> None:
        self.stopped += 1


class _SlowResponse:
    """
    A response whose body comes when the test says so.
    """

    version = (b"HTTP", 1, 1)
    code = 200
    phrase = b"OK"

    def __init__(self, length: int) -> None:
        self.length = length
        self.headers = TxHeaders({b"Content-Type": [b"text/plain"]})
        self.protocol: Any = None
        self.transport = _BodyTransport()

    def deliverBody(self, protocol: Any) -> None:
        self.protocol = protocol
        protocol.makeConnection(self.transport)


class DownloadBodyTests(SynchronousTestCase):
    """
    The body stage of a L{Download}: the body read as it comes, and a
    cancel or deadline mid-body failing the download at once, dropping the
    connection, with nothing told after.
    """

    skip = SKIP

    def _start(self, clock: Clock, timeout: float = 0) -> tuple[Any, Any, Any]:
        from scrapy import Request, Spider
        from scrapy.utils.test import get_crawler
        from twisted.internet.defer import Deferred, succeed

        from pooled_http.scrapy._download import Download

        response = _SlowResponse(6)

        class Agent:
            def request(self, *args: Any) -> Any:
                return succeed(response)

        class Agents:
            def agentFor(self, route: Any) -> Agent:
                return Agent()

        class Handler:
            _config = HandlerConfig.fromSettings(Settings({"DOWNLOAD_TIMEOUT": timeout}))
            _agents = Agents()
            _deadlines = Deadlines(clock)
            crawler = get_crawler(Spider)

            def _warnDataLoss(self, url: str) -> None:
                pass

        result: Deferred[Any] = Deferred()
        download = Download(Handler(), Request("http://127.0.0.1/slow"), result)  # type: ignore[arg-type]
        outcome: list[Any] = []
        result.addBoth(outcome.append)
        download.start()
        return download, response, outcome

    def test_bodyAsItComes(self) -> None:
        """
        A body in parts makes one response, once the body is over.
        """
        _, response, outcome = self._start(Clock())
        response.protocol.dataReceived(b"abc")
        self.assertEqual(outcome, [])
        response.protocol.dataReceived(b"def")
        response.protocol.connectionLost(Failure(ResponseDone()))
        self.assertEqual(outcome[0].body, b"abcdef")
        self.assertEqual(response.transport.stopped, 0)

    def test_cancelMidBody(self) -> None:
        """
        Cancelling while the body comes fails the download with
        C{DownloadCancelledError} at once and drops the connection; the
        body's end, when the connection goes, tells nothing more.
        """
        download, response, outcome = self._start(Clock())
        response.protocol.dataReceived(b"abc")
        download.cancel()
        self.assertEqual(len(outcome), 1)
        outcome[0].trap(DownloadCancelledError)
        self.assertEqual(response.transport.stopped, 1)
        response.protocol.dataReceived(b"def")
        response.protocol.connectionLost(Failure(ResponseDone()))
        self.assertEqual(len(outcome), 1)
        download.cancel()
        self.assertEqual(response.transport.stopped, 1)

    def test_deadlineMidBody(self) -> None:
        """
        The download's deadline passing while the body comes fails it with
        C{DownloadTimeoutError} naming the timeout.
        """
        clock = Clock()
        _, response, outcome = self._start(clock, timeout=5)
        response.protocol.dataReceived(b"abc")
        clock.advance(5)
        self.assertEqual(len(outcome), 1)
        error = outcome[0].trap(DownloadTimeoutError)
        self.assertIs(error, DownloadTimeoutError)
        self.assertIn("5", str(outcome[0].value))
        self.assertEqual(response.transport.stopped, 1)
