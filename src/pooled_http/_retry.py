"""
The retry policy: an immutable value that decides whether a failed request
may be sent again on another connection.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from twisted.python.failure import Failure
from twisted.web._newclient import (
    RequestNotSent,
    RequestTransmissionFailed,
    ResponseNeverReceived,
)

from ._settings import flag
from .errors import (
    PoolError,
    ReadTimeoutError,
    ResponseTimeoutError,
    UnprocessedStreamError,
    isCancellation,
)

__all__ = ["RetryPolicy", "IDEMPOTENT_METHODS"]

#: The methods Twisted's pool retries: idempotent and without side effects
#: a second attempt could double.
IDEMPOTENT_METHODS: frozenset[bytes] = frozenset(
    {b"GET", b"HEAD", b"OPTIONS", b"DELETE", b"TRACE"}
)

_NOTHING_PROCESSED: tuple[type[BaseException], ...] = (
    RequestNotSent,
    RequestTransmissionFailed,
    ResponseNeverReceived,
)


@dataclass(frozen=True)
class RetryPolicy:
    """
    Which failed requests are sent again, and how many times.

    The default follows Twisted's own rule: a request with an idempotent
    method that failed on a I{reused} connection before any response byte
    arrived is retried once, on a new connection.  It goes one step further
    than Twisted for a request with a body: Twisted never retries one, this
    policy retries it when not one byte of it was written
    (L{RequestNotSent}), because then the body producer was never started.
    A cancelled request is never retried, nor is one that failed after any
    part of its response arrived.  An HTTP/2 request the server says it
    never processed (L{UnprocessedStreamError}: above a C{GOAWAY}'s last
    stream id, or refused) is retried whatever its method, on a new
    connection too, unless its body producer had started; such retries
    count against their own budget, L{unprocessedRetries}, so a request
    that meets a second C{GOAWAY} on its new connection goes on again,
    a bounded number of times.

    L{increment} returns a new policy with one retry fewer, so a policy can
    travel with a request without being shared state.

    @ivar retries: How many more times a request may be retried.
    @ivar unprocessedRetries: How many more times a request the server
        said it never processed may be sent again (apart from
        C{retries}); C{0} turns those retries off.
    @ivar methods: The methods that may be retried.
    @ivar nothingProcessed: Failure types that prove the server did not
        process the request (nothing of the response arrived).
    @ivar onlyReusedConnections: Retry only failures on connections that had
        already served a request (the server may have timed them out), as
        Twisted does.  With C{False}, failures on new connections are retried
        as well.
    @ivar retryTimeouts: Whether a L{ResponseTimeoutError} on an idempotent
        request may be retried.  Off by default: a server too slow once is
        usually too slow twice.
    """

    retries: int = 1
    unprocessedRetries: int = 4
    methods: frozenset[bytes] = IDEMPOTENT_METHODS
    nothingProcessed: tuple[type[BaseException], ...] = _NOTHING_PROCESSED
    onlyReusedConnections: bool = True
    retryTimeouts: bool = False

    def __post_init__(self) -> None:
        for name in ("retries", "unprocessedRetries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"RetryPolicy.{name} must be an int, not {value!r}")
            if value < 0:
                raise ValueError(f"RetryPolicy.{name} must be >= 0, not {value!r}")
        for name in ("onlyReusedConnections", "retryTimeouts"):
            flag(f"RetryPolicy.{name}", getattr(self, name))
        given: Any = self.methods
        methods = () if isinstance(given, (bytes, str)) else tuple(given)
        if (not methods and given) or not all(type(m) is bytes for m in methods):
            # A str would never match a request's method (bytes).
            raise TypeError(
                f"RetryPolicy.methods must be a collection of bytes, not {given!r}"
            )
        object.__setattr__(self, "methods", frozenset(m.upper() for m in methods))

    def increment(self, failure: Failure | None = None) -> RetryPolicy:
        """
        Return the policy to use for the next attempt: one retry fewer.

        @param failure: Why the attempt failed: an
            L{UnprocessedStreamError} takes one of the
            C{unprocessedRetries}, anything else (or L{None}) one of the
            C{retries}.
        """
        if failure is not None and failure.check(UnprocessedStreamError):
            return replace(self, unprocessedRetries=max(0, self.unprocessedRetries - 1))
        return replace(self, retries=max(0, self.retries - 1))

    def shouldRetry(
        self,
        method: bytes,
        failure: Failure,
        hasBody: bool,
        reusedConnection: bool,
    ) -> bool:
        """
        Decide whether a failed attempt may be sent again.

        @param method: The request method.
        @param failure: Why the attempt failed.
        @param hasBody: Whether the request has a body producer.
        @param reusedConnection: Whether the attempt was made on a connection
            that had served a request before.
        @return: C{True} if the request should be sent again.
        """
        exc = failure.value
        if isinstance(exc, UnprocessedStreamError):
            if self.unprocessedRetries <= 0:
                return False
            return not (hasBody and exc.bodyStarted)
        if self.retries <= 0:
            return False
        if method.upper() not in self.methods:
            return False
        if self.onlyReusedConnections and not reusedConnection:
            return False
        if isinstance(exc, ReadTimeoutError):
            return False
        if isinstance(exc, ResponseTimeoutError):
            return self.retryTimeouts
        if isinstance(exc, PoolError):
            return False
        if not isinstance(exc, self.nothingProcessed):
            return False
        if isCancellation(exc):
            return False
        if hasBody and not isinstance(exc, RequestNotSent):
            # A body producer cannot be replayed once it started writing;
            # only a request of which nothing was written may go again.
            return False
        return True
