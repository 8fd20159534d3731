"""
What the C{pooled-http} command tells its user: the live progress bar and
the summary tables, all drawn with rich on standard error.
"""

from __future__ import annotations

import os
from collections.abc import Callable
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

from ..stats import percentiles
from ._tally import HostTally, RunTally

__all__ = [
    "LiveProgress",
    "makeConsole",
    "formatMs",
    "formatPercent",
    "summaryTable",
    "errorTable",
    "poolFooter",
    "openConnections",
]

#: How many hosts the summary table lists before folding the rest into one row.
MAX_HOST_ROWS = 20


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


def _row(name: str, tally: HostTally, elapsed: float, showWait: bool) -> list[str]:
    p50, p95, p99 = percentiles(tally.latencies, (50, 95, 99))
    waits = tally.waits
    wait = sum(waits) / len(waits) if waits else None
    rate = tally.requests / elapsed if elapsed > 0 else 0.0
    row = [
        name,
        str(tally.requests),
        str(tally.ok),
        str(tally.errorCount),
        str(tally.opened),
        formatPercent(tally.reusePercent),
        formatMs(wait),
        formatMs(p50),
        formatMs(p95),
        formatMs(p99),
        f"{rate:.1f}",
    ]
    if not showWait:
        del row[_WAIT_COLUMN]
    return row


_COLUMNS = (
    "reqs",
    "ok",
    "errors",
    "new\nconns",
    "reuse",
    "wait\nms",
    "p50\nms",
    "p95\nms",
    "p99\nms",
    "req/s",
)


# Where "wait" is in a row (the host first).
_WAIT_COLUMN = 1 + _COLUMNS.index("wait\nms")


def summaryTable(
    run: RunTally, title: str = "pooled-http summary", showWait: bool = False
) -> Table:
    """
    The end-of-run table: one row per host (the busiest L{MAX_HOST_ROWS}
    hosts, the others folded into one row) and a totals row.  Latencies are
    those of the successful requests; "new conns" counts the requests that
    were handed a newly opened connection, "reuse" the share of requests
    handed a reused one, "wait" the mean time requests took to get a
    connection (in the pool's queue and connecting).

    @param run: The tallies of the run.
    @param title: The table title.
    @param showWait: Whether to show the "wait" column (C{--trace} runs:
        the table is kept within 80 columns otherwise).
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
        if name == "wait\nms" and not showWait:
            continue
        width = max(len(line) for line in name.split("\n"))
        table.add_column(name, justify="right", no_wrap=True, min_width=width)
    hosts = sorted(run.hosts.items(), key=lambda item: (-item[1].requests, item[0]))
    shown, rest = hosts[:MAX_HOST_ROWS], hosts[MAX_HOST_ROWS:]
    for name, tally in shown:
        table.add_row(*_row(name, tally, elapsed, showWait))
    if rest:
        folded = HostTally()
        for _, tally in rest:
            folded.merge(tally)
        table.add_row(*_row(f"({len(rest)} more hosts)", folded, elapsed, showWait))
    table.add_section()
    table.add_row(*_row("total", run.totals(), elapsed, showWait), style="bold")
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
