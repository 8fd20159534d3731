"""
The lifecycle of a pooled connection, as data: the states, the transitions
allowed between them, and the one method that makes a transition.

This is the pool's view of a connection and is kept apart from the wire
protocol's own state (which request is being written, which response is
being parsed): every connection class, whatever protocol it speaks, has the
same lifecycle.
"""

from __future__ import annotations

from collections.abc import Hashable
from enum import Enum

from .errors import LifecycleError

__all__ = ["Lifecycle", "LifecycleMixin"]


class Lifecycle(Enum):
    """
    Where a pooled connection is in its life.

        - C{ACTIVE}: handed out for a request;
        - C{IDLE}: back in the pool, waiting to be reused;
        - C{CLOSING}: the pool (or the connection itself) decided to close
          it and asked the transport to; it keeps its slot until the
          transport is gone, so the limits hold as the server sees them;
        - C{CLOSED}: the transport reported C{connectionLost}.
    """

    ACTIVE = "active"
    IDLE = "idle"
    CLOSING = "closing"
    CLOSED = "closed"


#: The lifecycle's transitions, as data: state -> the states it may go to.
TRANSITIONS: dict[Lifecycle, tuple[Lifecycle, ...]] = {
    Lifecycle.ACTIVE: (Lifecycle.IDLE, Lifecycle.CLOSING, Lifecycle.CLOSED),
    Lifecycle.IDLE: (Lifecycle.ACTIVE, Lifecycle.CLOSING, Lifecycle.CLOSED),
    Lifecycle.CLOSING: (Lifecycle.CLOSED,),
    Lifecycle.CLOSED: (),
}

# The same keyed by value: a str's hash is cached, an Enum's is computed.
_NEXT = {state.value: allowed for state, allowed in TRANSITIONS.items()}


class LifecycleMixin:
    """
    The lifecycle part of a connection class: a C{lifecycle} attribute
    that starts C{ACTIVE} and changes only through L{moveTo}.

    @ivar key: The pool key (named in errors).
    @ivar lifecycle: The current L{Lifecycle}.
    """

    key: Hashable
    lifecycle: Lifecycle = Lifecycle.ACTIVE

    def moveTo(self, new: Lifecycle) -> None:
        """
        Make a lifecycle transition.

        @param new: The state to go to.
        @raise LifecycleError: If L{TRANSITIONS} does not allow it.
        """
        if new not in _NEXT[self.lifecycle._value_]:
            raise LifecycleError(
                f"connection to {self.key!r} cannot go from "
                f"{self.lifecycle.value} to {new.value}",
                self.key,
            )
        self.lifecycle = new
