"""
The pool's structured log events: one L{Logger}, one function.

Every event is logged at debug level with a C{pooledHttpEvent} field named
C{pooled_http.<event>} (C{open}, C{reuse}, C{close}, C{evict}, C{timeout},
C{retry}, C{shutdown}), the pool key and a reason, so an observer can
filter on it.  No event carries a header or a credential.

The trace hooks (L{pooled_http.trace}) are the other way to see inside:
per pool, per request attempt, every step, and nothing at all when no
observer is registered.  The log events stay apart from them: they are
global (any C{twisted.logger} observer sees every pool's), few (opening,
closing, retries, timeouts), and cost a log call whether or not anyone
listens, which the hooks must not.
"""

from __future__ import annotations

from collections.abc import Hashable

from twisted.logger import Logger

__all__ = ["emit"]

_log = Logger(namespace="pooled_http")


def emit(event: str, key: Hashable | None, reason: str) -> None:
    """
    Log the event C{pooled_http.<event>} about C{key}.

    @param event: The event's short name.
    @param key: The pool key it is about, or L{None} for the whole pool.
    @param reason: What happened, in words.
    """
    _log.debug(
        "{pooledHttpEvent}: {key!r}: {reason}",
        pooledHttpEvent="pooled_http." + event,
        key=key,
        reason=reason,
    )
