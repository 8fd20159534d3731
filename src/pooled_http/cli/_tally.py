"""
What the C{pooled-http} command counts: the outcome of each URL (one JSON
line of output) and running tallies of a run, by host.  Plain values, drawn
by L{pooled_http.cli._report}.
"""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["INVALID_HOST", "FetchResult", "HostTally", "RunTally"]

#: The host label of URLs that could not be parsed.
INVALID_HOST = "(invalid URL)"


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
    @ivar waitMs: Milliseconds from asking the pool for a connection to
        getting one (queue and connect), or L{None} if it got none.
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
    waitMs: float | None = None

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
            C{elapsed_ms}, C{wait_ms}, C{reused}, C{error}, C{message} (and
            C{body} when bodies are saved).
        """
        record: dict[str, Any] = {
            "index": self.index,
            "url": self.url,
            "status": self.status,
            "bytes": self.bytes,
            "elapsed_ms": round(self.elapsedMs, 3),
            "wait_ms": None if self.waitMs is None else round(self.waitMs, 3),
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
    @ivar waits: Milliseconds each request that got a connection waited
        for it.
    """

    requests: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    opened: int = 0
    reused: int = 0
    bytes: int = 0
    latencies: array[float] = field(default_factory=lambda: array("d"))
    waits: array[float] = field(default_factory=lambda: array("d"))

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
        if result.waitMs is not None:
            self.waits.append(result.waitMs)
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
        self.waits.extend(other.waits)

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
