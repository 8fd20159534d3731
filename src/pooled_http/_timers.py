"""
The one helper every timer of the pool and its connections goes through.
"""

from __future__ import annotations

from collections.abc import Iterable

from twisted.internet.base import DelayedCall


def cancelCall(call: DelayedCall | None) -> None:
    """
    Cancel a delayed call if there is one and it has not run or been
    cancelled yet; do nothing otherwise.

    @param call: The delayed call, or L{None}.
    """
    if call is not None and call.active():
        call.cancel()


def activeCalls(calls: Iterable[DelayedCall | None]) -> list[DelayedCall]:
    """
    The delayed calls among C{calls} that are still to run.

    @param calls: Delayed calls, or L{None} where there is none.
    @return: Those not yet run or cancelled.
    """
    return [call for call in calls if call is not None and call.active()]
