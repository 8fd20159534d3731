"""
C{pooled-http demo}: a synthetic site on 127.0.0.1 and a side-by-side run of
pooled_http's pool and Twisted's stock pool against it.

The site (L{DemoResource}) serves:

    - C{/page/N}: a small page (1 to 8 KiB);
    - C{/slow/MS}: a page sent after MS milliseconds;
    - C{/close/N}: a page after which the server closes the connection
      (C{Connection: close});
    - C{/status/CODE}: an empty response with that status;
    - C{/hang}: a response that never comes;
    - C{/echo}: a JSON description of the request (method, headers, body
      length).

L{CountingFactory} counts the connections the server accepts, so both pools
are measured from the server's side.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.protocols.policies import WrappingFactory
from twisted.web import client
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from ._cli_fetch import ConnectionRecorder, Fetcher, IterSource, closePool
from ._cli_report import (
    LiveProgress,
    RunTally,
    formatMs,
    formatPercent,
    percentiles,
)

__all__ = [
    "DemoResource",
    "CountingFactory",
    "QuietSite",
    "listenDemoSite",
    "demoURLs",
    "DemoRun",
    "DemoRunner",
]


class DemoResource(Resource):
    """
    The synthetic site of the demo (and of the command's tests).
    """

    isLeaf = True

    def __init__(self, reactor: Any) -> None:
        """
        @param reactor: Schedules the slow pages.
        """
        Resource.__init__(self)
        self._reactor = reactor

    def render(self, request: Request) -> bytes | int:
        """
        Serve any method the same way.

        @param request: The request.
        @return: The body, or C{NOT_DONE_YET}.
        """
        segments = [s.decode("ascii", "replace") for s in request.postpath or () if s]
        kind = segments[0] if segments else "page"
        arg = segments[1] if len(segments) > 1 else "0"
        number = int(arg) if arg.isdigit() else 0
        request.setHeader(b"content-type", b"text/plain")
        if kind == "status":
            request.setResponseCode(number if 100 <= number < 600 else 500)
            return b""
        if kind == "hang":
            return NOT_DONE_YET
        if kind == "echo":
            request.setHeader(b"content-type", b"application/json")
            return _describe(request)
        body = b"pooled-http demo\n" + b"x" * (1024 + (number * 997) % 7168)
        if kind == "close":
            request.setHeader(b"connection", b"close")
            channel: Any = request.channel
            channel.persistent = False
            return body
        if kind == "slow":
            call = self._reactor.callLater(number / 1000.0, self._finish, request, body)
            request.notifyFinish().addErrback(lambda _: call.active() and call.cancel())
            return NOT_DONE_YET
        if kind == "page":
            return body
        request.setResponseCode(404)
        return b"not found\n"

    def _finish(self, request: Request, body: bytes) -> None:
        request.write(body)
        request.finish()


def _describe(request: Request) -> bytes:
    """
    Describe a request as JSON.
    """
    body = request.content.read() if request.content is not None else b""
    headers = {
        name.decode("latin-1").lower(): [v.decode("latin-1") for v in values]
        for name, values in request.requestHeaders.getAllRawHeaders()
    }
    description = {
        "method": (request.method or b"").decode("ascii", "replace"),
        "headers": headers,
        "bodyLength": len(body),
    }
    return json.dumps(description).encode("utf-8")


class QuietSite(Site):
    """
    A L{Site} that keeps no access log.
    """

    noisy = False

    def log(self, request: Any) -> None:
        """
        Log nothing.
        """


class CountingFactory(WrappingFactory):
    """
    Wraps a server factory and counts the connections it accepts.

    @ivar opened: Connections accepted since the last L{reset}.
    @ivar current: Connections open now.
    @ivar peak: Most connections open at once since the last L{reset}.
    """

    noisy = False

    def __init__(self, wrappedFactory: Any) -> None:
        """
        @param wrappedFactory: The factory serving the connections.
        """
        WrappingFactory.__init__(self, wrappedFactory)  # type: ignore[arg-type]
        self.opened = 0
        self.current = 0
        self.peak = 0

    def registerProtocol(self, p: Protocol) -> None:
        """
        Count a new connection.
        """
        WrappingFactory.registerProtocol(self, p)  # type: ignore[arg-type]
        self.opened += 1
        self.current += 1
        self.peak = max(self.peak, self.current)

    def unregisterProtocol(self, p: Protocol) -> None:
        """
        Count a closed connection.
        """
        WrappingFactory.unregisterProtocol(self, p)  # type: ignore[arg-type]
        self.current -= 1

    def reset(self) -> None:
        """
        Start counting again (open connections stay counted in L{current}).
        """
        self.opened = 0
        self.peak = self.current


def listenDemoSite(
    reactor: Any, ports: int = 4
) -> tuple[CountingFactory, list[Any]]:
    """
    Serve L{DemoResource} on C{ports} random ports of 127.0.0.1.

    @param reactor: The reactor to listen with.
    @param ports: How many ports.
    @return: The connection counter and the listening ports.
    """
    factory = CountingFactory(QuietSite(DemoResource(reactor)))
    listening = [
        reactor.listenTCP(0, factory, backlog=1024, interface="127.0.0.1")
        for _ in range(ports)
    ]
    return factory, listening


def demoURLs(ports: list[int], requests: int, seed: int = 5) -> list[str]:
    """
    The URL list of the demo: pages spread over the ports, one in ten slow
    (20 to 200 ms), one in ten closing its connection.

    @param ports: The ports of the site.
    @param requests: How many URLs.
    @param seed: Seed of the mix, so that both pools get the same list.
    @return: The URLs.
    """
    rng = random.Random(seed)
    urls = []
    for i in range(requests):
        port = ports[i % len(ports)]
        r = rng.random()
        if r < 0.1:
            path = f"slow/{rng.randint(20, 200)}"
        elif r < 0.2:
            path = f"close/{i}"
        else:
            path = f"page/{i}"
        urls.append(f"http://127.0.0.1:{port}/{path}")
    return urls


@dataclass
class DemoRun:
    """
    What one pool did in the demo.

    @ivar name: The pool's name.
    @ivar tally: The client side counts.
    @ivar opened: Connections the server accepted.
    @ivar peak: Most connections the server had open at once.
    """

    name: str
    tally: RunTally
    opened: int
    peak: int


class DemoRunner:
    """
    Runs the demo: serves the site, fetches its URLs through each pool in
    turn, and reports.

    @ivar runs: The finished runs.
    @ivar interrupted: Whether the demo was interrupted.
    """

    def __init__(
        self,
        reactor: Any,
        console: Console,
        requests: int = 2000,
        concurrency: int = 100,
        ports: int = 4,
        showProgress: bool = False,
    ) -> None:
        """
        @param reactor: The reactor.
        @param console: Where to report.
        @param requests: Requests per pool.
        @param concurrency: Requests in flight.
        @param ports: Ports of the site.
        @param showProgress: Whether to draw progress bars.
        """
        self._reactor = reactor
        self._console = console
        self._requests = requests
        self._concurrency = concurrency
        self._ports = ports
        self._showProgress = showProgress
        self._fetcher: Fetcher | None = None
        self._progress: LiveProgress | None = None
        self.runs: list[DemoRun] = []
        self.interrupted = False

    def pools(self) -> list[tuple[str, Callable[[], Any]]]:
        """
        The pools compared, each with its defaults.

        @return: (name, factory) pairs.
        """
        from . import HTTPConnectionPool

        return [
            ("pooled_http", lambda: HTTPConnectionPool(self._reactor)),
            ("Twisted stock pool", lambda: client.HTTPConnectionPool(self._reactor)),
        ]

    def interrupt(self) -> None:
        """
        Stop: cancel the current run and skip the next.
        """
        self.interrupted = True
        if self._fetcher is not None:
            self._fetcher.interrupt()

    def stopProgress(self) -> None:
        """
        Remove the progress bar, if one is shown.
        """
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    @inlineCallbacks
    def run(self) -> Any:
        """
        Run the demo.

        @return: A Deferred that fires when both runs are done.
        """
        counter, listening = listenDemoSite(self._reactor, self._ports)
        try:
            ports = [p.getHost().port for p in listening]
            urls = demoURLs(ports, self._requests)
            for name, makePool in self.pools():
                if self.interrupted:
                    break
                yield self._settle(counter)
                counter.reset()
                pool = makePool()
                tally = yield self._fetch(name, pool, urls, counter)
                yield closePool(self._reactor, pool)
                self.runs.append(DemoRun(name, tally, counter.opened, counter.peak))
            yield self._settle(counter)
        finally:
            for port in listening:
                yield port.stopListening()

    def _settle(self, counter: CountingFactory, limit: float = 2.0) -> Deferred[None]:
        """
        Wait (at most C{limit} seconds) for the server to see every connection
        of the previous run closed.
        """
        deadline = self._reactor.seconds() + limit
        d: Deferred[None] = Deferred()

        def check() -> None:
            if counter.current <= 0 or self._reactor.seconds() >= deadline:
                d.callback(None)
            else:
                deferLater(self._reactor, 0.02, check)

        check()
        return d

    @inlineCallbacks
    def _fetch(
        self, name: str, pool: Any, urls: list[str], counter: CountingFactory
    ) -> Any:
        recorder = ConnectionRecorder(pool)
        agent = client.Agent(self._reactor, pool=recorder)
        tally = RunTally(self._reactor, total=len(urls))
        fetcher = self._fetcher = Fetcher(
            self._reactor,
            agent,
            recorder,
            IterSource(urls, total=len(urls)),
            tally.add,
            concurrency=self._concurrency,
            bursts=True,
        )
        if self._showProgress:
            self._progress = LiveProgress(
                self._reactor,
                self._console,
                tally,
                lambda: counter.current,
                description=f"{name:<18}",
            )
            self._progress.start()
        tally.start()
        try:
            yield fetcher.run()
        finally:
            tally.finish()
            self.stopProgress()
            self._fetcher = None
        return tally

    def comparisonTable(self) -> Table:
        """
        The runs side by side.

        @return: A rich table with one column per pool.
        """
        table = Table(
            box=box.SIMPLE_HEAD,
        )
        table.add_column("", no_wrap=True)
        for run in self.runs:
            table.add_column(run.name, justify="right", no_wrap=True)

        def row(label: str, value: Callable[[DemoRun], str]) -> None:
            table.add_row(label, *(value(run) for run in self.runs))

        def latency(run: DemoRun, point: int) -> str:
            (value,) = percentiles(run.tally.totals().latencies, (point,))
            return formatMs(value)

        row("requests", lambda r: str(r.tally.done))
        row("ok", lambda r: str(r.tally.done - r.tally.failed))
        row("errors", lambda r: str(r.tally.failed))
        row("time", lambda r: f"{r.tally.elapsed:.2f} s")
        row("req/s", lambda r: f"{r.tally.rate():.0f}")
        row("connections opened", lambda r: str(r.opened))
        row("most open at once", lambda r: str(r.peak))
        row("reused connections", lambda r: formatPercent(r.tally.totals().reusePercent))
        for point in (50, 95, 99):
            row(f"p{point} latency ms", lambda r, p=point: latency(r, p))  # type: ignore[misc]
        return table

    def report(self) -> None:
        """
        Print the comparison on the console.
        """
        if not self.runs:
            self._console.print("demo interrupted before any run finished")
            return
        self._console.print(
            f"Fetched {self._requests} URLs from a local site on {self._ports} "
            f"ports (10% slow pages, 10% that close their connection) in "
            f"bursts of {self._concurrency} concurrent requests, once through "
            "each pool with its default settings.",
            highlight=False,
        )
        self._console.print(self.comparisonTable())
        self._console.print(
            "Connections are counted by the server; \"reused connections\" is "
            "the share of requests sent on a connection that had served a "
            "request before.",
            highlight=False,
        )
        if len(self.runs) == 2:
            ours, stock = self.runs
            self._console.print(
                f"{ours.name} opened {ours.opened} connections (at most "
                f"{ours.peak} at once) for {ours.tally.done} requests; "
                f"{stock.name} opened {stock.opened} (at most {stock.peak} "
                "at once).",
                highlight=False,
            )
        if self.interrupted:
            self._console.print("[yellow]The demo was interrupted.[/]")
