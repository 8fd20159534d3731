"""
C{assertPoolAtRest}: what a pool must look like when a test is over.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.base import DelayedCall
from twisted.internet.task import Clock

if TYPE_CHECKING:  # pragma: no cover

    from .._pool import HTTPConnectionPool

from ._transport import _NetworkCall


def _poolTimers(pool: Any) -> list[DelayedCall] | None:
    """
    The pool's active timers, or L{None} if they cannot be told apart from
    the reactor's other timers.
    """
    pending = getattr(pool, "_pendingCalls", None)
    if callable(pending):
        return [c for c in pending() if c.active()]
    reactor = getattr(pool, "_reactor", None)
    if isinstance(reactor, Clock):
        calls: list[Any] = list(reactor.getDelayedCalls())
        return [c for c in calls if c.active() and not isinstance(c.func, _NetworkCall)]
    return None


def _describeCall(call: DelayedCall, now: float) -> str:
    function = call.func
    name = getattr(function, "__qualname__", None) or repr(function)
    owner = getattr(function, "__self__", None)
    if owner is not None:
        name = f"{type(owner).__name__}.{getattr(function, '__name__', name)}"
    return f"{name} due in {call.getTime() - now:g} s"


def assertPoolAtRest(pool: HTTPConnectionPool, *, allowIdle: bool = False) -> None:
    """
    Fail unless C{pool} has nothing going on: no connection in use, no
    connection attempt, no request waiting, no connection still closing, no
    idle connection (unless C{allowIdle}) and no timer of its own left on
    the reactor.

    Timers are those of C{pool._pendingCalls()} when the pool offers it;
    otherwise, when the pool runs on a L{twisted.internet.task.Clock}, every active call on that
    clock except the L{MemoryNetwork}'s own; otherwise they are not checked.
    With C{allowIdle}, idle connections and their idle timers are allowed.

    Usable from any test framework: call it after C{yield pool.close()}
    (or after the test's requests are done, with C{allowIdle=True}).

    @param pool: The pool to check.
    @param allowIdle: Whether idle connections are allowed.
    @raise AssertionError: Listing, per key, what is left, and the pending
        timers.
    """
    __tracebackhide__ = True
    stats = pool.stats()
    problems: list[str] = []
    for key, counts in stats.perKey.items():
        parts = [
            f"{number} {label}"
            for number, label in (
                (counts.inUse, "in use"),
                (counts.connecting, "connecting"),
                (counts.waiting, "waiting"),
                (counts.closing, "closing"),
                (0 if allowIdle else counts.idle, "idle"),
            )
            if number
        ]
        if parts:
            problems.append(f"  {key!r}: {', '.join(parts)}")
    timers = None if allowIdle and stats.idle else _poolTimers(pool)
    if timers:
        now = pool._reactor.seconds()
        problems.append(f"  {len(timers)} pending timer(s):")
        problems.extend(
            "    " + _describeCall(call, now)
            for call in sorted(timers, key=lambda c: c.getTime())
        )
    if problems:
        raise AssertionError("pool is not at rest:\n" + "\n".join(problems))


# A real server on the loopback interface
