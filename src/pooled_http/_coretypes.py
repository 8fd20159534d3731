"""
The values the pool's policy core (L{pooled_http._core}) works with: one
waiting C{getConnection} call (L{Waiter}), one thing the pool must do
(L{Action}), and everything held for one key (L{Bucket}).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from enum import Enum
from typing import Any

__all__ = ["WaiterState", "Waiter", "ActionKind", "Action", "Bucket"]


class WaiterState(Enum):
    """
    Where one C{getConnection} call stands.
    """

    WAITING = "waiting"
    CONNECTING = "connecting"
    DONE = "done"


class Waiter:
    """
    One C{getConnection} call.  The pool hangs its own bookkeeping (the
    Deferred, the endpoint, timers) on it; the core reads only C{key},
    C{minSerial}, C{state}, C{mayMultiplex} and C{coalescing}.

    @ivar key: The pool key.
    @ivar minSerial: Only a connection whose C{serial} is at least this will
        do: a retry asks for a connection opened after the one that failed.
    @ivar state: A L{WaiterState}.
    @ivar mayMultiplex: Whether the connection opened for it may turn out
        to carry several requests at once (HTTP/2 offered by ALPN): while it
        is being opened, the key's other waiters wait for it.
    @ivar coalescing: Set by the core while its connection is being opened
        and the key's other waiters wait for it.
    @ivar request: The request to send on the connection once one is
        handed over (the pool's C{_send}), or L{None} when the caller is
        given the lease itself (C{getConnection}).
    @ivar started: The Deferred of that request's response once sent.
    @ivar canceller: Called with the waiter when its Deferred is cancelled
        (see L{cancel}).
    """

    __slots__ = (
        "key",
        "minSerial",
        "state",
        "mayMultiplex",
        "coalescing",
        "endpoint",
        "deferred",
        "enqueuedAt",
        "timer",
        "connecting",
        "connectTimer",
        "timedOut",
        "cancelled",
        "trace",
        "request",
        "started",
        "canceller",
    )

    def __init__(self, key: Hashable, minSerial: int = 0) -> None:
        self.key = key
        self.minSerial = minSerial
        self.state = WaiterState.WAITING
        self.mayMultiplex = False
        self.coalescing = False
        self.endpoint: Any = None
        self.deferred: Any = None
        self.enqueuedAt = 0.0
        self.timer: Any = None
        self.connecting: Any = None
        self.connectTimer: Any = None
        self.timedOut = False
        self.cancelled = False
        self.trace: Any = None
        self.request: Any = None
        self.started: Any = None
        self.canceller: Any = None

    def cancel(self, d: Any) -> None:
        """
        The canceller of its Deferred (a bound method: no closure to make
        for every waiter): tell C{canceller}.
        """
        self.canceller(self)


class ActionKind(Enum):
    """
    What the pool must do.
    """

    #: Give C{connection} to C{waiter}; C{reused} says whether it was idle.
    HAND = "hand"
    #: Open a new connection for C{waiter}.
    CONNECT = "connect"
    #: Close C{connection}; C{reason} is a L{CloseReason}.
    CLOSE = "close"
    #: Keep C{connection} idle (start its idle timer).
    PARK = "park"
    #: Fail C{waiter}: the pool is shutting down.
    FAIL = "fail"


class Action:
    """
    One thing the pool must carry out.
    """

    __slots__ = ("kind", "waiter", "connection", "reused", "reason")

    def __init__(
        self,
        kind: ActionKind,
        waiter: Waiter | None = None,
        connection: Any = None,
        reused: bool = False,
        reason: str = "",
    ) -> None:
        self.kind = kind
        self.waiter = waiter
        self.connection = connection
        self.reused = reused
        self.reason = reason

    def __repr__(self) -> str:
        return (
            f"Action({self.kind.value}, waiter={self.waiter!r}, "
            f"connection={self.connection!r}, reused={self.reused}, "
            f"reason={self.reason!r})"
        )


class Bucket:
    """
    Everything the pool holds for one key.

    @ivar idle: Idle connections, oldest first (a dict used as an ordered
        set: the most recently returned is handed out first).
    @ivar inUse: Connections handed out.
    @ivar connecting: Waiters whose connection is being opened.
    @ivar closing: Connections being closed.  They keep their slot until the
        transport is gone, so the limits hold as the server sees them.
    @ivar waiters: Waiters queued for a slot, oldest first.
    @ivar opened: Connections opened for this key while it has been known.
    @ivar reused: Idle connections of this key handed out again.
    @ivar capacity: For each connection of the key that carries several
        requests at once (HTTP/2), how many it may carry now; C{0} once it
        takes no new ones (it is draining).  Connections not in it carry one
        at a time.
    @ivar streams: Requests in flight on each such connection in use.
    @ivar spare: Those of them in use that can take another request now.
    @ivar negotiating: Connections being opened that may turn out to carry
        several requests at once; while there is one, the key opens no other.
    @ivar multiplexed: What the last connection opened with C{mayMultiplex}
        turned out to be: L{None} while nothing is known, C{False} for
        HTTP/1.1 and after a failed attempt (the key's waiters then connect
        in parallel, as over HTTP/1.1, until a multiplexed one comes up).
    """

    __slots__ = (
        "key",
        "idle",
        "inUse",
        "connecting",
        "closing",
        "waiters",
        "opened",
        "reused",
        "capacity",
        "streams",
        "spare",
        "negotiating",
        "multiplexed",
    )

    def __init__(self, key: Hashable) -> None:
        self.key = key
        self.idle: dict[Any, None] = {}
        self.inUse: set[Any] = set()
        self.connecting: set[Waiter] = set()
        self.closing: set[Any] = set()
        self.waiters: deque[Waiter] = deque()
        self.opened = 0
        self.reused = 0
        self.capacity: dict[Any, int] = {}
        self.streams: dict[Any, int] = {}
        self.spare: dict[Any, None] = {}
        self.negotiating = 0
        self.multiplexed: bool | None = None

    @property
    def total(self) -> int:
        """
        Slots the key occupies.
        """
        return (
            len(self.idle) + len(self.inUse) + len(self.connecting) + len(self.closing)
        )

    def empty(self) -> bool:
        """
        Whether the key holds nothing at all.
        """
        return not (
            self.idle or self.inUse or self.connecting or self.closing or self.waiters
        )
