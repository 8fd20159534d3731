"""
C{pooled-http demo}: a side-by-side run of pooled_http's pool and Twisted's
stock pool against the synthetic site of L{pooled_http.cli._demosite}, each
with its default settings, measured from the server's side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.web import client

from .. import HTTPConnectionPool
from ..stats import percentiles
from ._demosite import CountingFactory, demoURLs, listenDemoSite
from ._fetcher import Fetcher
from ._pools import ConnectionRecorder, closePool
from ._report import LiveProgress, formatMs, formatPercent
from ._sources import IterSource
from ._tally import RunTally

__all__ = ["DemoRun", "DemoRunner"]


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
        row(
            "reused connections", lambda r: formatPercent(r.tally.totals().reusePercent)
        )
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
            'Connections are counted by the server; "reused connections" is '
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
