"""
The lease: what L{HTTPConnectionPool.getConnection} hands out.  One
connection for one request, with Twisted's C{request()} and C{abort()},
that sends a failed request again on another connection when the retry
policy allows it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.python.failure import Failure
from twisted.web._newclient import Request
from twisted.web.iweb import IResponse

from ._contract import PoolConnection
from ._retry import RetryPolicy
from .errors import PoolError
from .trace import RequestTrace

__all__ = ["Lease", "Retrier"]

#: Asks the pool for another lease to retry on: C{retrier(key, endpoint,
#: reason, trace)} counts the retry and returns a Deferred of a lease on a
#: connection opened after the failure, or L{None} if the pool no longer
#: retries (it is closing).
Retrier = Callable[
    [Hashable, IStreamClientEndpoint, Failure, "RequestTrace | None"],
    "Deferred[Lease] | None",
]


class Lease:
    """
    One connection lent for one request.

    @ivar key: The pool key.
    @ivar reused: Whether the connection had served a request before.
    @ivar connection: The underlying L{PoolConnection}.
    @ivar trace: The attempt's L{RequestTrace} when the pool has observers.
    """

    __slots__ = (
        "connection",
        "key",
        "reused",
        "trace",
        "_endpoint",
        "_policy",
        "_retrier",
    )

    def __init__(
        self,
        connection: PoolConnection,
        endpoint: IStreamClientEndpoint,
        reused: bool,
        policy: RetryPolicy | None,
        retrier: Retrier,
        trace: RequestTrace | None = None,
    ) -> None:
        """
        @param connection: The connection lent.
        @param endpoint: The endpoint a retry opens a new connection with.
        @param reused: Whether it served a request before.
        @param policy: The retry policy, or L{None} for no retries.
        @param retrier: How to get another lease for a retry.
        @param trace: The attempt's trace, or L{None}.
        """
        self.connection = connection
        self.key = connection.key
        self.reused = reused
        self._endpoint = endpoint
        self._policy = policy
        self._retrier = retrier
        self.trace = trace

    def __repr__(self) -> str:
        return f"<pooled connection to {self.key!r} reused={self.reused}>"

    @property
    def state(self) -> str:
        """
        The wire protocol state of the connection (C{"QUIESCENT"}, ...).
        """
        return self.connection.state

    @property
    def transport(self) -> Any:
        """
        The connection's transport.
        """
        return self.connection.transport

    def request(self, request: Request) -> Deferred[IResponse]:
        """
        Send C{request} on the connection.

        @return: A Deferred firing with the response, or failing with
            Twisted's request failures or a pooled_http timeout error.
        """
        connection = self.connection
        trace = self.trace
        if trace is not None:
            trace.starting(request)
            connection.trace = trace
        d: Deferred[Any] = connection.request(request)
        return d.addErrback(self._failed, request, connection)

    def _failed(
        self, failure: Failure, request: Request, connection: PoolConnection
    ) -> Any:
        timeoutError = connection.timeoutError
        if timeoutError is not None and not failure.check(PoolError):
            failure = Failure(timeoutError)
        trace = self.trace
        if trace is not None:
            trace.failed(failure)
        policy = self._policy
        if (
            policy is None
            or connection.abortedByPool
            or not policy.shouldRetry(
                request.method, failure, request.bodyProducer is not None, self.reused
            )
        ):
            return failure
        retry = self._retrier(self.key, self._endpoint, failure, trace)
        if retry is None:
            return failure
        nextPolicy = policy.increment(failure)

        def send(lease: Lease) -> Deferred[IResponse]:
            lease._policy = nextPolicy
            return lease.request(request)

        return retry.addCallback(send)

    def abort(self) -> Deferred[None]:
        """
        Abort the connection, failing its request.
        """
        return self.connection.abort()
