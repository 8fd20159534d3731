"""
The contract between a pool and its connections, in both directions.

A connection class (Twisted's HTTP/1.1 protocol, our own HTTP/1.1 protocol,
an HTTP/2 connection, ...) plugs into the pool by meeting L{PoolConnection}
and talking back only through the L{ConnectionOwner} it is handed when it
is built.  The pool never reaches into a connection's wire protocol, and a
connection never reaches into the pool: a new kind of connection needs no
change in the pool.

A L{ConnectionFactory} builds connections: C{factory(owner, key)}.  It is
called when the endpoint's transport is connected (from a Twisted protocol
factory's C{buildProtocol}), so what it returns must also be a Twisted
L{twisted.internet.interfaces.IProtocol}.  Right after building, the pool sets C{serial} on the
connection.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.iweb import IResponse

from ._lifecycle import Lifecycle
from .errors import PoolError

__all__ = ["ConnectionOwner", "PoolConnection", "ConnectionFactory"]


class ConnectionOwner(Protocol):
    """
    What a connection may see of the pool that owns it, and the reports it
    makes to it (four, and two more from a multiplexed connection).

    The settings are read when they are needed, so a change of a pool
    setting reaches connections that are already open.
    """

    @property
    def reactor(self) -> Any:
        """
        The reactor every timer of the connection is scheduled on (an
        L{twisted.internet.interfaces.IReactorTime}).
        """

    @property
    def responseTimeout(self) -> float | None:
        """
        Seconds from the request being written to its response headers, or
        L{None}.
        """

    @property
    def readTimeout(self) -> float | None:
        """
        Seconds without body bytes while a response is being delivered, or
        L{None}.
        """

    @property
    def lenientHeaders(self) -> bool:
        """
        Whether response header lines without a colon are skipped rather
        than failing the response (a connection may read it once, when it
        is built).
        """

    @property
    def maxHeaderBytes(self) -> int:
        """
        Bytes the status line and headers of a response may take.
        """

    @property
    def maxConcurrentStreams(self) -> int:
        """
        Requests a multiplexed connection may carry at once, at most.
        """

    def connectionCapacityChanged(self, connection: PoolConnection) -> None:
        """
        A multiplexed connection's C{capacity} changed (the server's
        settings changed, or it takes no new request: C{0}).  For such a
        connection, C{connectionQuiescent} reports one request done.
        """

    def streamTimedOut(self, connection: PoolConnection, error: PoolError) -> None:
        """
        A timer of one request on a multiplexed connection fired (response
        headers, body read): that request fails with C{error} and its
        stream is reset; the connection goes on (it still reports the
        request done with C{connectionQuiescent}).
        """

    def connectionQuiescent(self, connection: PoolConnection) -> None:
        """
        The connection finished its response and can take another request.
        It is reported I{before} the body's protocol hears the body is done
        (as Twisted's protocol does), so a request made from that
        notification already finds the connection back in the pool.
        """

    def connectionGivenUp(self, connection: PoolConnection, reason: Failure) -> None:
        """
        The connection decided to close itself (C{Connection: close}, a
        response it cannot frame, bytes arriving while it is idle) and is
        about to ask its transport to go.
        """

    def connectionTimedOut(self, connection: PoolConnection, error: PoolError) -> None:
        """
        A timer of the connection fired (response headers, body read, TLS
        handshake); the connection aborts its transport right after and
        fails its request with C{error}.
        """

    def connectionLost(
        self, connection: PoolConnection, previous: Lifecycle, reason: Failure
    ) -> None:
        """
        The connection's transport is gone; it was in state C{previous}
        when that happened and is C{CLOSED} now.
        """


class PoolConnection(Protocol):
    """
    What the pool uses of a connection.

    @ivar key: The pool key it belongs to.
    @ivar serial: Set by the pool: grows with every connection it opens.
    @ivar lifecycle: A L{Lifecycle}, changed only with L{moveTo}: the pool
        moves a connection between C{ACTIVE} and C{IDLE}, the connection
        moves itself to C{CLOSING} (in L{close}) and to C{CLOSED} (when
        its transport is gone).
    @ivar createdAt: When it was opened, in reactor seconds.
    @ivar requestsServed: Requests sent on it.
    @ivar keepAliveTimeout: The server's C{Keep-Alive: timeout=N}, if any.
    @ivar keepAliveMax: The server's C{Keep-Alive: max=M}, if any.
    @ivar reusable: C{False} once the server said it will not serve
        another request (an HTTP/1.0 response without keep-alive).
    @ivar timeoutError: The pool error that ended it, if a timer did.
    @ivar abortedByPool: Set by the pool when it aborts the connection to
        shut down (the grace period of C{closeCachedConnections} or
        C{close} is over): its request fails and is not retried.
    @ivar transport: Its transport, or L{None} before it is connected.
    @ivar trace: Set by the pool when it has trace observers: the
        L{pooled_http.trace.RequestTrace} of the request in flight, which
        the connection tells when the request's head and body are written
        and the response's head and body are in (and clears when the
        response is done); L{None} otherwise.
    @ivar capacity: L{None} for a connection that carries one request at a
        time (HTTP/1.1); for a multiplexed one (HTTP/2), how many requests
        it may carry at once now, read by the pool when the connection is
        up and after each C{connectionCapacityChanged} report.  Every
        request on it is handed out as its own lease, and each one done is
        reported with C{connectionQuiescent}.
    """

    key: Hashable
    serial: int
    lifecycle: Lifecycle
    createdAt: float
    requestsServed: int
    keepAliveTimeout: float | None
    keepAliveMax: int | None
    reusable: bool
    timeoutError: PoolError | None
    abortedByPool: bool
    transport: Any
    trace: Any
    capacity: int | None

    @property
    def stale(self) -> bool:
        """
        Whether the transport can no longer carry a request although it is
        not gone yet (disconnecting, or the peer's TLS C{close_notify} seen).
        """

    @property
    def state(self) -> str:
        """
        The wire protocol's own state, for display and compatibility with
        code that inspects Twisted's protocol (C{"QUIESCENT"}, ...).
        """

    def moveTo(self, new: Lifecycle) -> None:
        """
        Make a lifecycle transition.
        """

    def request(self, request: Any) -> Deferred[IResponse]:
        """
        Send one request (a L{twisted.web._newclient.Request}) and return
        the Deferred of its response, as L{twisted.web._newclient.HTTP11ClientProtocol} does.
        """

    def abort(self) -> Deferred[None]:
        """
        Abort the connection, failing its request; fires once it is gone.
        """

    def close(self, gracePeriod: float) -> None:
        """
        Close politely; abort if the transport is not gone after
        C{gracePeriod} seconds.
        """

    def abortTransport(self) -> None:
        """
        Drop the transport at once.
        """

    def whenLost(self) -> Deferred[None]:
        """
        A Deferred that fires once the transport is gone.
        """

    def handOff(self, give: Callable[[], object]) -> None:
        """
        Run C{give} (which hands the connection to a waiting request) as
        soon as the connection can take a new request.
        """

    def awaitHandshake(self, remaining: float, timeout: float) -> None:
        """
        The transport is connected; if a TLS handshake is still under way,
        keep the connect timeout running (C{remaining} seconds left of
        C{timeout}) until it completes.
        """


#: Builds a connection for the pool: C{factory(owner, key)}.
ConnectionFactory = Callable[[ConnectionOwner, Hashable], PoolConnection]
