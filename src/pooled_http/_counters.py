"""
The pool's books of what it has done (L{Counters}), and the two views of
them with the core's: the L{PoolStats} snapshot and the one-line C{repr}.
"""

from __future__ import annotations

from collections.abc import Hashable

from ._core import PoolCore
from .stats import CloseReason, KeyStats, PoolStats, WaitStats

__all__ = ["Counters", "snapshot", "summary"]


class Counters:
    """
    What the pool has done since it was created.
    """

    __slots__ = (
        "closed",
        "retried",
        "timedOut",
        "failed",
        "waits",
        "waitSum",
        "waitMax",
    )

    def __init__(self) -> None:
        self.closed: dict[str, int] = dict.fromkeys(CloseReason.ALL, 0)
        self.retried = 0
        self.timedOut = 0
        self.failed = 0
        self.waits = 0
        self.waitSum = 0.0
        self.waitMax = 0.0

    def waited(self, seconds: float) -> None:
        """
        A connection was handed out after C{seconds} of waiting.
        """
        self.waits += 1
        self.waitSum += seconds
        if seconds > self.waitMax:
            self.waitMax = seconds


def snapshot(core: PoolCore, c: Counters) -> PoolStats:
    """
    A pool's L{PoolStats}: current counts in total and per key, and
    counters since the pool was created.
    """
    idle = inUse = connecting = waiting = closing = streams = 0
    perKey: dict[Hashable, KeyStats] = {}
    for key, bucket in core.buckets.items():
        k = KeyStats(
            idle=len(bucket.idle),
            inUse=len(bucket.inUse),
            connecting=len(bucket.connecting),
            waiting=len(bucket.waiters),
            opened=bucket.opened,
            reused=bucket.reused,
            closing=len(bucket.closing),
            streams=sum(bucket.streams.values()) if bucket.streams else 0,
        )
        perKey[key] = k
        idle += k.idle
        inUse += k.inUse
        connecting += k.connecting
        waiting += k.waiting
        closing += k.closing
        streams += k.streams
    return PoolStats(
        idle=idle,
        inUse=inUse,
        connecting=connecting,
        waiting=waiting,
        opened=core.opened,
        reused=core.reused,
        closed=dict(c.closed),
        retried=c.retried,
        timedOut=c.timedOut,
        failed=c.failed,
        waitTime=WaitStats(
            count=c.waits,
            mean=(c.waitSum / c.waits) if c.waits else 0.0,
            max=c.waitMax,
        ),
        perKey=perKey,
        closing=closing,
        streams=streams,
    )


def summary(core: PoolCore, c: Counters) -> str:
    """
    A pool's one-line C{repr}: its state, counts, limits and totals.
    """
    inUse = connecting = waiting = 0
    for bucket in core.buckets.values():
        inUse += len(bucket.inUse)
        connecting += len(bucket.connecting)
        waiting += len(bucket.waiters)
    state = "closed" if core.closed else "open"
    return (
        f"<HTTPConnectionPool {state} keys={len(core.buckets)} "
        f"idle={core.idleCount} inUse={inUse} connecting={connecting} "
        f"closing={core.closingCount} waiting={waiting} "
        f"limits={core.perHostLimit}/key,{core.globalLimit} total "
        f"opened={core.opened} reused={core.reused} "
        f"closed={sum(c.closed.values())}>"
    )
