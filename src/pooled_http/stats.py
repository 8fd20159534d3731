"""
Frozen snapshots of what a pool is doing, returned by
L{pooled_http.HTTPConnectionPool.stats}, and L{percentiles}, the one
definition of a latency percentile the command line and the benchmarks
report.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

__all__ = ["CloseReason", "KeyStats", "PoolStats", "WaitStats", "percentiles"]


class CloseReason:
    """
    The reasons a pool closes a connection, as counted in
    L{PoolStats.closed} and named in log events.
    """

    IDLE_TIMEOUT = "idle timeout"
    SERVER_CLOSED = "server closed"
    EVICTED = "evicted"
    ERROR = "error"
    SHUTDOWN = "shutdown"
    EXPIRED = "expired"
    NOT_REUSABLE = "not reusable"
    TOO_MANY_IDLE = "too many idle"

    ALL = (
        IDLE_TIMEOUT,
        SERVER_CLOSED,
        EVICTED,
        ERROR,
        SHUTDOWN,
        EXPIRED,
        NOT_REUSABLE,
        TOO_MANY_IDLE,
    )


@dataclass(frozen=True)
class WaitStats:
    """
    How long requests waited before a connection was handed out.

    @ivar count: How many connections were handed out.
    @ivar mean: Mean wait, in seconds (0.0 when C{count} is 0).
    @ivar max: Longest wait, in seconds.
    """

    count: int = 0
    mean: float = 0.0
    max: float = 0.0


class KeyStats(NamedTuple):
    """
    What the pool holds for one key right now, and what it did for it while
    the key has been in the pool.  An immutable named tuple: a snapshot of
    10,000 keys is built in milliseconds.

    @ivar idle: Connections waiting in the pool to be reused.
    @ivar inUse: Connections handed out and not yet back.
    @ivar connecting: Connection attempts under way.
    @ivar waiting: Requests queued for a free slot.
    @ivar opened: Connections opened for the key.
    @ivar reused: Times an idle connection of the key was handed out again.
    @ivar closing: Connections being closed: they still count against the
        limits until their transport is gone.
    @ivar streams: Requests in flight on the key's HTTP/2 connections (each
        of them is also counted once in C{inUse} while it carries any).
    """

    idle: int = 0
    inUse: int = 0
    connecting: int = 0
    waiting: int = 0
    opened: int = 0
    reused: int = 0
    closing: int = 0
    streams: int = 0

    @property
    def total(self) -> int:
        """
        Slots the key occupies: idle + in use + connecting + closing.
        """
        return self.idle + self.inUse + self.connecting + self.closing


def _emptyMapping() -> Mapping[str, int]:
    return MappingProxyType({})


@dataclass(frozen=True)
class PoolStats:
    """
    A snapshot of a pool: current totals, per-key counts, and counters since
    the pool was created.

    @ivar idle: Idle connections over all keys.
    @ivar inUse: Connections in use over all keys.
    @ivar connecting: Connection attempts under way over all keys.
    @ivar waiting: Requests waiting for a slot over all keys.
    @ivar opened: Connections successfully opened since start.
    @ivar reused: Times an idle connection was handed out again.
    @ivar closed: Connections closed, by reason (see L{CloseReason}).
    @ivar retried: Requests retried on another connection.
    @ivar timedOut: Timeouts of any kind (pool, connect, response, read).
    @ivar failed: Connection attempts that failed (timeouts included).
    @ivar waitTime: How long requests waited for a connection.
    @ivar perKey: L{KeyStats} of every key that currently has a connection,
        a connection attempt or a waiting request.
    @ivar closing: Connections being closed over all keys: they still count
        against the limits until their transport is gone.
    @ivar streams: Requests in flight on HTTP/2 connections over all keys.
    """

    idle: int = 0
    inUse: int = 0
    connecting: int = 0
    waiting: int = 0
    opened: int = 0
    reused: int = 0
    closed: Mapping[str, int] = field(default_factory=_emptyMapping)
    retried: int = 0
    timedOut: int = 0
    failed: int = 0
    waitTime: WaitStats = field(default_factory=WaitStats)
    perKey: Mapping[Hashable, KeyStats] = field(default_factory=dict)
    closing: int = 0
    streams: int = 0

    @property
    def total(self) -> int:
        """
        Slots counted against the limits: idle + in use + connecting +
        closing.
        """
        return self.idle + self.inUse + self.connecting + self.closing

    @property
    def closedTotal(self) -> int:
        """
        Connections closed for any reason.
        """
        return sum(self.closed.values())


def percentiles(values: Iterable[float], points: Sequence[float]) -> list[float | None]:
    """
    Nearest-rank percentiles of a sample.

    The C{p}th percentile of C{n} sorted values is the value of rank
    M{ceil(p * n / 100)} (ranks start at 1), and the smallest value for
    C{p = 0}: always one of the values, never an interpolation between two.
    For an even count the median (C{p = 50}) is therefore the lower of the
    two middle values: of C{[1, 2, 3, 4]} it is C{2}.

    @param values: The sample, in any order.
    @param points: The percentiles wanted, each between 0 and 100.
    @return: One value per point, in the order of C{points}; L{None} for
        each point when the sample is empty.
    @raise ValueError: If a point is not between 0 and 100.
    """
    for point in points:
        if not 0 <= point <= 100:
            raise ValueError(
                f"percentile points must be between 0 and 100, not {point!r}"
            )
    ordered = sorted(values)
    count = len(ordered)
    if not count:
        return [None for _ in points]
    # p * count is exact for whole p; dividing afterwards keeps a whole rank
    # whole (p / 100 * count can land just above it and skip a rank).
    return [ordered[max(1, math.ceil(point * count / 100)) - 1] for point in points]
