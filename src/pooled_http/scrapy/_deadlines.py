"""
The whole-download deadlines of a crawl's handlers, on one reactor timer.

Every download has a deadline (C{DOWNLOAD_TIMEOUT} or
C{meta["download_timeout"]}), and nearly every download ends long before
it.  A reactor timer per download costs a C{callLater} and a C{cancel}
each, which on Scrapy's asyncio reactor also reschedule the event loop's
own timer; here a download costs a heap entry, and one reactor timer waits
for the earliest deadline still pending.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heapify, heappop, heappush
from itertools import count
from typing import Any

__all__ = ["Deadline", "Deadlines"]

#: Below this many entries, cancelled ones are left for the timer to drop.
_COMPACT_MIN = 64


class Deadline:
    """
    One pending deadline: L{Deadlines.add} made it, L{cancel} drops it.
    """

    __slots__ = ("when", "order", "expire", "_owner")

    def __init__(
        self, when: float, order: int, expire: Callable[[], None], owner: Deadlines
    ) -> None:
        self.when = when
        self.order = order
        self.expire: Callable[[], None] | None = expire
        self._owner = owner

    def __lt__(self, other: Deadline) -> bool:
        return (self.when, self.order) < (other.when, other.order)

    def cancel(self) -> None:
        """
        The download is over: its deadline will not fire (a second call
        does nothing).
        """
        if self.expire is not None:
            self.expire = None
            self._owner._cancelled()


class Deadlines:
    """
    Deadlines on one reactor timer, armed for the earliest pending one (or
    for one that was pending: it then fires for nothing) until L{stop}.
    """

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._heap: list[Deadline] = []
        self._pending = 0
        self._order = count()
        self._timer: Any = None
        self._timerAt = 0.0

    def add(self, delay: float, expire: Callable[[], None]) -> Deadline:
        """
        Call C{expire} in C{delay} seconds, unless the returned deadline is
        cancelled first.
        """
        when = self._reactor.seconds() + delay
        deadline = Deadline(when, next(self._order), expire, self)
        heappush(self._heap, deadline)
        self._pending += 1
        if self._timer is None or when < self._timerAt:
            self._arm(when)
        return deadline

    def _arm(self, when: float) -> None:
        timer = self._timer
        if timer is not None and timer.active():
            timer.cancel()
        self._timerAt = when
        self._timer = self._reactor.callLater(
            max(when - self._reactor.seconds(), 0), self._fire
        )

    def _cancelled(self) -> None:
        self._pending -= 1
        heap = self._heap
        if not self._pending:
            # The timer stays: a crawl's downloads come in waves, and
            # arming it again for each would cost what this saves.  When it
            # fires with nothing pending it is gone; L{stop} cancels it.
            heap.clear()
            return
        if len(heap) > _COMPACT_MIN and self._pending < len(heap) // 2:
            heap[:] = [d for d in heap if d.expire is not None]
            heapify(heap)

    def _fire(self) -> None:
        self._timer = None
        heap = self._heap
        now = self._reactor.seconds()
        due: list[Callable[[], None]] = []
        while heap and (heap[0].expire is None or heap[0].when <= now):
            deadline = heappop(heap)
            if deadline.expire is not None:
                due.append(deadline.expire)
                deadline.expire = None
                self._pending -= 1
        if heap:
            self._arm(heap[0].when)
        for expire in due:
            expire()

    def stop(self) -> None:
        """
        Forget every deadline (the handlers are closed).
        """
        for deadline in self._heap:
            deadline.expire = None
        self._heap.clear()
        self._pending = 0
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()
