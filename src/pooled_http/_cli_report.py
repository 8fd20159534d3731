"""
What the C{pooled-http} command tells its user: per-request results, running
tallies, the live progress bar and the summary tables, all drawn with rich on
standard error.
"""

from __future__ import annotations

import math
import os
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from twisted.internet.task import LoopingCall

__all__ = [
    "FetchResult",
    "HostTally",
    "RunTally",
    "LiveProgress",
    "percentiles",
    "makeConsole",
    "summaryTable",
    "errorTable",
    "poolFooter",
]

#: The host label of URLs that could not be parsed.
INVALID_HOST = "(invalid URL)"

#: How many hosts the summary table lists before folding the rest into one row.
MAX_HOST_ROWS = 20


@dataclass
class FetchResult:
    """
    The outcome of one URL: one JSON line of output.

    @ivar index: The position of the URL in the input (0-based).
    @ivar url: The URL as given.
    @ivar host: C{scheme://host:port} of the URL, or L{INVALID_HOST}.
    @ivar status: The HTTP status code, or L{None} if no response arrived.
    @ivar bytes: Response body bytes received.
    @ivar elapsedMs: Milliseconds from the start of the request (waiting for
        a connection included) to its last body byte or its failure.
    @ivar reused: Whether the request went over a connection the pool had
        used before (L{None} if it never got a connection).
    @ivar error: The error type name, or L{None} on success.
    @ivar message: The error message, or L{None} on success.
    @ivar body: Where the body was saved (with C{--bodies}), or L{None}.
    """

    index: int
    url: str
    host: str
    status: int | None = None
    bytes: int = 0
    elapsedMs: float = 0.0
    reused: bool | None = None
    error: str | None = None
    message: str | None = None
    body: str | None = None

    @property
    def ok(self) -> bool:
        """
        Whether the URL was fetched: a response of any status arrived and its
        whole body was read.
        """
        return self.error is None

    def toJSON(self) -> dict[str, Any]:
        """
        The JSON object written for this result.

        @return: A dict with the keys C{index}, C{url}, C{status}, C{bytes},
            C{elapsed_ms}, C{reused}, C{error}, C{message} (and C{body} when
            bodies are saved).
        """
        record: dict[str, Any] = {
            "index": self.index,
            "url": self.url,
            "status": self.status,
            "bytes": self.bytes,
            "elapsed_ms": round(self.elapsedMs, 3),
            "reused": self.reused,
            "error": self.error,
            "message": self.message,
        }
        if self.body is not None:
            record["body"] = self.body
        return record


@dataclass
class HostTally:
    """
    Running counts for one C{scheme://host:port}.

    @ivar requests: Results recorded.
    @ivar ok: Results without an error.
    @ivar errors: Error counts by error type name.
    @ivar opened: Requests served by a new connection.
    @ivar reused: Requests served by a reused connection.
    @ivar bytes: Body bytes received.
    @ivar latencies: Milliseconds taken by each successful request.
    """

    requests: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    opened: int = 0
    reused: int = 0
    bytes: int = 0
    latencies: array[float] = field(default_factory=lambda: array("d"))

    def add(self, result: FetchResult) -> None:
        """
        Count one result.

        @param result: The result to count.
        """
        self.requests += 1
        self.bytes += result.bytes
        if result.reused is True:
            self.reused += 1
        elif result.reused is False:
            self.opened += 1
        if result.error is None:
            self.ok += 1
            self.latencies.append(result.elapsedMs)
        else:
            self.errors[result.error] += 1

    def merge(self, other: HostTally) -> None:
        """
        Add the counts of C{other} to these.

        @param other: Another tally.
        """
        self.requests += other.requests
        self.ok += other.ok
        self.errors.update(other.errors)
        self.opened += other.opened
        self.reused += other.reused
        self.bytes += other.bytes
        self.latencies.extend(other.latencies)

    @property
    def errorCount(self) -> int:
        """
        Results with an error.
        """
        return self.requests - self.ok

    @property
    def reusePercent(self) -> float | None:
        """
        Percentage of requests that reused a connection, or L{None} if no
        request got a connection.
        """
        served = self.opened + self.reused
        if not served:
            return None
        return 100.0 * self.reused / served


class RunTally:
    """
    Counts over a whole run, by host.

    @ivar hosts: L{HostTally} by C{scheme://host:port}.
    @ivar done: Results recorded.
    @ivar failed: Results with an error.
    @ivar total: How many URLs the run has, if known.
    @ivar started: When the run started (reactor seconds), or L{None}.
    @ivar finished: When the run ended (reactor seconds), or L{None}.
    """

    def __init__(self, clock: Any, total: int | None = None) -> None:
        """
        @param clock: Where time comes from.
        @param total: How many URLs the run has, if known.
        """
        self._clock = clock
        self.hosts: dict[str, HostTally] = {}
        self.done = 0
        self.failed = 0
        self.total = total
        self.started: float | None = None
        self.finished: float | None = None

    def start(self) -> None:
        """
        Note the start of the run.
        """
        self.started = self._clock.seconds()

    def finish(self) -> None:
        """
        Note the end of the run.
        """
        if self.finished is None:
            self.finished = self._clock.seconds()

    def add(self, result: FetchResult) -> None:
        """
        Count one result.

        @param result: The result to count.
        """
        tally = self.hosts.get(result.host)
        if tally is None:
            tally = self.hosts[result.host] = HostTally()
        tally.add(result)
        self.done += 1
        if result.error is not None:
            self.failed += 1

    @property
    def elapsed(self) -> float:
        """
        Seconds since the start of the run (until its end once it ended).
        """
        if self.started is None:
            return 0.0
        end = self.finished if self.finished is not None else self._clock.seconds()
        return max(0.0, end - self.started)

    def rate(self, count: int | None = None) -> float:
        """
        Results per second over the run.

        @param count: The count to divide by the elapsed time (default: all
            results).
        @return: The rate, 0.0 before any time has passed.
        """
        elapsed = self.elapsed
        if elapsed <= 0:
            return 0.0
        return (self.done if count is None else count) / elapsed

    def totals(self) -> HostTally:
        """
        One L{HostTally} over every host.
        """
        total = HostTally()
        for tally in self.hosts.values():
            total.merge(tally)
        return total


def percentiles(values: Iterable[float], points: Sequence[float]) -> list[float | None]:
    """
    Nearest-rank percentiles.

    @param values: The sample.
    @param points: The percentiles wanted, between 0 and 100.
    @return: One value per point, L{None} for an empty sample.
    """
    ordered = sorted(values)
    if not ordered:
        return [None for _ in points]
    count = len(ordered)
    return [
        ordered[min(count - 1, max(0, math.ceil(p / 100 * count) - 1))] for p in points
    ]


def makeConsole() -> Console:
    """
    A rich console on standard error; wide enough for the summary table when
    standard error is not a terminal.
    """
    console = Console(stderr=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(stderr=True, width=160)
    return console


def formatMs(value: float | None) -> str:
    """
    Format a latency in milliseconds.

    @param value: Milliseconds, or L{None}.
    @return: e.g. C{"12.3"}, or C{"-"}.
    """
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 1000 else f"{value:.0f}"


def formatPercent(value: float | None) -> str:
    """
    Format a percentage.

    @param value: A percentage, or L{None}.
    @return: e.g. C{"97.5%"}, or C{"-"}.
    """
    return "-" if value is None else f"{value:.1f}%"


def formatErrors(errors: Counter[str]) -> str:
    """
    Format error counts by type, most frequent first.

    @param errors: Counts by error type name.
    @return: e.g. C{"ConnectionRefusedError 3, ReadTimeoutError 1"}.
    """
    return ", ".join(f"{name} {count}" for name, count in errors.most_common())


def _row(name: str, tally: HostTally, elapsed: float) -> list[str]:
    p50, p95, p99 = percentiles(tally.latencies, (50, 95, 99))
    rate = tally.requests / elapsed if elapsed > 0 else 0.0
    return [
        name,
        str(tally.requests),
        str(tally.ok),
        str(tally.errorCount),
        str(tally.opened),
        formatPercent(tally.reusePercent),
        formatMs(p50),
        formatMs(p95),
        formatMs(p99),
        f"{rate:.1f}",
    ]


_COLUMNS = ("reqs", "ok", "errors", "new\nconns", "reuse", "p50\nms", "p95\nms", "p99\nms", "req/s")


def summaryTable(run: RunTally, title: str = "pooled-http summary") -> Table:
    """
    The end-of-run table: one row per host (the busiest L{MAX_HOST_ROWS}
    hosts, the others folded into one row) and a totals row.  Latencies are
    those of the successful requests; "new conns" counts the requests that
    were handed a newly opened connection, "reuse" the share of requests
    handed a reused one.

    @param run: The tallies of the run.
    @param title: The table title.
    @return: A rich table.
    """
    elapsed = run.elapsed
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    table.add_column("host", no_wrap=True, min_width=12, overflow="ellipsis")
    for name in _COLUMNS:
        width = max(len(line) for line in name.split("\n"))
        table.add_column(name, justify="right", no_wrap=True, min_width=width)
    hosts = sorted(run.hosts.items(), key=lambda item: (-item[1].requests, item[0]))
    shown, rest = hosts[:MAX_HOST_ROWS], hosts[MAX_HOST_ROWS:]
    for name, tally in shown:
        table.add_row(*_row(name, tally, elapsed))
    if rest:
        folded = HostTally()
        for _, tally in rest:
            folded.merge(tally)
        table.add_row(*_row(f"({len(rest)} more hosts)", folded, elapsed))
    table.add_section()
    table.add_row(*_row("total", run.totals(), elapsed), style="bold")
    table.caption = f"{run.done} URLs in {elapsed:.2f} s"
    table.caption_justify = "left"
    return table


def errorTable(run: RunTally) -> Table | None:
    """
    Errors by host and type, most frequent first (at most
    L{MAX_HOST_ROWS} rows).

    @param run: The tallies of the run.
    @return: A rich table, or L{None} if nothing failed.
    """
    rows = sorted(
        (
            (count, host, error)
            for host, tally in run.hosts.items()
            for error, count in tally.errors.items()
        ),
        key=lambda row: (-row[0], row[1], row[2]),
    )
    if not rows:
        return None
    table = Table(
        title="errors by type",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    table.add_column("host", no_wrap=True, min_width=12, overflow="ellipsis")
    table.add_column("error", overflow="fold")
    table.add_column("count", justify="right", no_wrap=True)
    for count, host, error in rows[:MAX_HOST_ROWS]:
        table.add_row(host, error, str(count))
    if len(rows) > MAX_HOST_ROWS:
        hidden = sum(row[0] for row in rows[MAX_HOST_ROWS:])
        table.add_row(f"({len(rows) - MAX_HOST_ROWS} more)", "", str(hidden))
    return table


def poolFooter(pool: object) -> str | None:
    """
    One line about what the pool did, from its C{stats()}.

    @param pool: A connection pool (a pooled_http one has C{stats()}).
    @return: The line, or L{None} if the pool keeps no statistics.
    """
    statsMethod = getattr(pool, "stats", None)
    if statsMethod is None:
        return None
    try:
        stats = statsMethod()
    except Exception:
        return None
    closed = ", ".join(
        f"{reason} {count}" for reason, count in sorted(stats.closed.items()) if count
    )
    return (
        f"pool: opened {stats.opened}, reused {stats.reused}, retried "
        f"{stats.retried}, timed out {stats.timedOut}, failed connects "
        f"{stats.failed}, closed {stats.closedTotal}"
        + (f" ({closed})" if closed else "")
        + f", longest wait for a connection {stats.waitTime.max * 1000:.1f} ms"
    )


def openConnections(pool: object) -> int | None:
    """
    Connections the pool holds or is opening right now.

    @param pool: A connection pool.
    @return: The count, or L{None} if the pool cannot tell.
    """
    statsMethod = getattr(pool, "stats", None)
    if statsMethod is not None:
        try:
            return int(statsMethod().total)
        except Exception:
            return None
    return None


class LiveProgress:
    """
    A progress bar on standard error, redrawn by the reactor ten times a
    second (rich's own refresh thread is not used).

    @ivar progress: The rich progress display.
    """

    def __init__(
        self,
        reactor: Any,
        console: Console,
        run: RunTally,
        connections: Callable[[], int | None],
        description: str = "fetching",
        redirectStdout: bool = False,
    ) -> None:
        """
        @param reactor: Schedules the redraws.
        @param console: Where to draw.
        @param run: The tallies shown.
        @param connections: Returns the number of open connections.
        @param description: The label in front of the bar.
        @param redirectStdout: Whether lines written to standard output are
            printed above the bar (when both go to the same terminal).
        """
        self._run = run
        self._connections = connections
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>8.1f} req/s"),
            TextColumn("errors {task.fields[errors]}"),
            TextColumn("conns {task.fields[conns]}"),
            TimeElapsedColumn(),
            console=console,
            auto_refresh=False,
            transient=True,
            redirect_stdout=redirectStdout,
            redirect_stderr=False,
        )
        self._task = self.progress.add_task(
            description, total=run.total, rate=0.0, errors=0, conns="-"
        )
        self._loop = LoopingCall(self.refresh)
        self._loop.clock = reactor

    def start(self) -> None:
        """
        Show the bar and start redrawing it.
        """
        self.progress.start()
        self._loop.start(0.1, now=True)

    def refresh(self) -> None:
        """
        Redraw the bar with the current counts.
        """
        conns = self._connections()
        self.progress.update(
            self._task,
            completed=self._run.done,
            total=self._run.total,
            rate=self._run.rate(),
            errors=self._run.failed,
            conns="-" if conns is None else conns,
        )
        self.progress.refresh()

    def stop(self) -> None:
        """
        Stop redrawing and remove the bar.
        """
        if self._loop.running:
            self._loop.stop()
        self.progress.stop()
