"""
The connection on Twisted's own protocol: L{HTTP11ClientProtocol} with the
pool's lifecycle, metadata, and the timers of one request (response
headers, body reads), meeting L{pooled_http._contract.PoolConnection}.  It
reports to the L{ConnectionOwner} it is built with when it comes back
quiescent, gives up, times out, or is lost, and reads nothing else of the
pool.

This module is the only one that touches Twisted's private protocol
internals (the parser, C{_state}, C{_finishResponse_WAITING}).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from twisted.internet.base import DelayedCall
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IHandshakeListener, ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web._newclient import HTTP11ClientProtocol, Request
from twisted.web.iweb import IResponse
from zope.interface import implementer

from ._contract import ConnectionOwner
from ._lifecycle import Lifecycle, LifecycleMixin
from ._timers import activeCalls, cancelCall
from .errors import (
    ConnectTimeoutError,
    PoolError,
    ReadTimeoutError,
    ResponseHeadersTooLargeError,
    ResponseTimeoutError,
)

__all__ = ["TwistedHTTP11Connection"]


class _StateWatch:
    """
    Stands in for L{HTTP11ClientProtocol}'s C{_state} attribute to see the
    moment a request has been fully written (C{TRANSMITTING} to
    C{WAITING}).  It defines only C{__set__}: reads find the value in the
    instance's dictionary at C level, so the watch costs nothing on the
    many reads Twisted makes, only a call on each of the few writes.
    """

    def __set__(self, instance: TwistedHTTP11Connection, value: str) -> None:
        values = instance.__dict__
        previous = values.get("_state")
        values["_state"] = value
        if value == "WAITING" and previous == "TRANSMITTING":
            instance._requestWritten()


class _Silent(Protocol):
    """
    Takes the place of a body protocol that gave up: hears the rest.
    """


@implementer(IHandshakeListener)
class TwistedHTTP11Connection(LifecycleMixin, HTTP11ClientProtocol):
    """
    One pooled HTTP/1.1 connection on Twisted's L{HTTP11ClientProtocol}.

    @ivar key: The pool key it belongs to.
    @ivar lifecycle: A L{Lifecycle}; change it only with L{LifecycleMixin.moveTo}.
    @ivar createdAt: When the connection was opened (reactor seconds).
    @ivar requestsServed: Requests sent on it.
    @ivar serial: Set by the pool: grows with every connection it opens.
    @ivar keepAliveTimeout: The server's C{Keep-Alive: timeout=N}, if sent.
    @ivar keepAliveMax: The server's C{Keep-Alive: max=M}, if sent: no more
        than M requests are sent on the connection.
    @ivar reusable: C{False} once the server said the connection will not
        serve another request (an HTTP/1.0 response without keep-alive).
    @ivar timeoutError: The pool error that ended the connection (a
        timeout), reported to the request in place of Twisted's generic one.
    """

    def __init__(self, owner: ConnectionOwner, key: Hashable) -> None:
        """
        @param owner: What the connection reports to and reads its settings
            and reactor from.
        @param key: The pool key it belongs to.
        """
        HTTP11ClientProtocol.__init__(self, owner.connectionQuiescent)
        self._state = "QUIESCENT"
        self._owner = owner
        self.key = key
        self.lifecycle = Lifecycle.ACTIVE
        self.createdAt = owner.reactor.seconds()
        self.requestsServed = 0
        self.serial = 0
        self.keepAliveTimeout: float | None = None
        self.keepAliveMax: int | None = None
        self.reusable = True
        self.timeoutError: PoolError | None = None
        self.handshakeTimer: DelayedCall | None = None
        self.handshakeDone = False
        self._responseTimer: DelayedCall | None = None
        self._readTimer: DelayedCall | None = None
        self._graceTimer: DelayedCall | None = None
        self._awaitingHeaders = False
        self._headBytes = 0
        self._requestParser: Any = None
        self._lostWatchers: list[Deferred[None]] = []
        self._finishing = False
        self._pendingHandOff: Callable[[], object] | None = None

    def __repr__(self) -> str:
        return (
            f"<TwistedHTTP11Connection {self.key!r} {self.lifecycle.value} "
            f"requests={self.requestsServed}>"
        )

    # Lifecycle

    def pendingCalls(self) -> list[DelayedCall]:
        """
        The connection's timers that are still to run.
        """
        return activeCalls(
            (self.handshakeTimer, self._responseTimer, self._readTimer, self._graceTimer)
        )

    def handOff(self, give: Callable[[], object]) -> None:
        """
        Run C{give}, which hands this connection to a waiting request, as
        soon as the connection can take a new request.
        """
        if self._finishing:
            self._pendingHandOff = give
        else:
            give()

    def whenLost(self) -> Deferred[None]:
        """
        Return a Deferred that fires once the transport is gone.
        """
        if self.lifecycle is Lifecycle.CLOSED:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._lostWatchers.append(d)
        return d

    def close(self, gracePeriod: float) -> None:
        """
        Close the transport politely; abort it if it has not gone away after
        C{gracePeriod} seconds (a peer that never finishes closing must not
        hang the pool).
        """
        if self.lifecycle is Lifecycle.CLOSED:
            return
        if self.lifecycle is not Lifecycle.CLOSING:
            self.moveTo(Lifecycle.CLOSING)
        self._stopRequestTimers()
        transport: Any = self.transport
        if transport is None:
            return
        transport.loseConnection()
        if self._graceTimer is None and self.lifecycle is Lifecycle.CLOSING:
            self._graceTimer = self._owner.reactor.callLater(
                gracePeriod, self.abortTransport
            )

    def abortTransport(self) -> None:
        """
        Drop the transport at once.
        """
        if self.lifecycle is Lifecycle.CLOSED or self.transport is None:
            return
        transport: Any = self.transport
        abort = getattr(transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:  # pragma: no cover - every TCP/TLS transport has it
            transport.loseConnection()

    # TLS

    def awaitHandshake(self, remaining: float, timeout: float) -> None:
        """
        The transport is connected; if it is TLS and the handshake is still
        going, the connect timeout keeps running until it completes.

        @param remaining: Seconds left of the connect timeout.
        @param timeout: The whole connect timeout, for the error message.
        """
        if self.handshakeDone or not ISSLTransport.providedBy(self.transport):
            return
        self.handshakeTimer = self._owner.reactor.callLater(
            max(0.0, remaining), self._handshakeTimedOut, timeout
        )

    def _handshakeTimedOut(self, timeout: float) -> None:
        self.handshakeTimer = None
        self._timedOut(ConnectTimeoutError(self.key, timeout))

    def handshakeCompleted(self) -> None:
        """
        The TLS handshake finished: the connect phase is over.
        """
        self.handshakeDone = True
        cancelCall(self.handshakeTimer)
        self.handshakeTimer = None

    @property
    def stale(self) -> bool:
        """
        Whether the transport can no longer carry a request although
        C{connectionLost} has not arrived yet: it is disconnecting, or its
        TLS layer has already seen the peer's C{close_notify}.
        """
        transport: Any = self.transport
        return (
            transport is None
            or bool(getattr(transport, "disconnecting", False))
            or bool(getattr(transport, "disconnected", False))
            or bool(getattr(transport, "_lostTLSConnection", False))
        )

    # Requests

    def request(self, request: Request) -> Deferred[IResponse]:
        """
        Send a request, arming the response-header timer.
        """
        self.requestsServed += 1
        d = HTTP11ClientProtocol.request(self, request)
        state = self._state
        if state == "TRANSMITTING" or state == "WAITING":
            proxy: Any = self._transportProxy
            # The transport a body's protocol gets: give it abortConnection,
            # so cancelling readBody() aborts this connection (and frees its
            # slot) while the body is still coming, and does nothing once
            # the response is over and the connection serves someone else.
            proxy.abortConnection = lambda: self._abortFromBody(proxy)
            parser: Any = self._parser
            self._requestParser = parser
            # Twisted closes a connection with an over-long header line as
            # if the response had ended cleanly: say what happened.
            parser.lineLengthExceeded = self._headerLineTooLong
            self._awaitingHeaders = True
            self._headBytes = 0
            if state == "WAITING":
                self._requestWritten()
        return d

    def _abortFromBody(self, proxy: Any) -> None:
        """
        The body's protocol aborted its transport (C{readBody} cancelled):
        abort the connection, and tell that protocol nothing more, since it
        has given up (C{readBody}'s Deferred has already failed with
        L{twisted.internet.defer.CancelledError}; a second failure would be an AlreadyCalledError).
        """
        if proxy._producer is None:
            return
        parser: Any = self._parser
        response = getattr(parser, "response", None)
        if response is not None and response._bodyProtocol is not None:
            response._bodyProtocol = _Silent()
        self.abortTransport()

    def _headerLineTooLong(self, line: bytes) -> None:
        parser: Any = self._parser
        limit = getattr(parser, "MAX_LENGTH", len(line))
        self._awaitingHeaders = False
        self._giveUp(Failure(ResponseHeadersTooLargeError(self.key, limit, line=True)))

    _state: str = _StateWatch()  # type: ignore[assignment]

    def _requestWritten(self) -> None:
        """
        The whole request is on the wire: the response timer starts.
        """
        timeout = self._owner.responseTimeout
        if timeout is not None and self._awaitingHeaders and self._responseTimer is None:
            self._responseTimer = self._owner.reactor.callLater(
                timeout, self._responseTimedOut, timeout
            )

    def dataReceived(self, data: bytes) -> None:
        """
        Feed the parser; note when headers arrive and when body bytes flow.
        """
        readTimer = self._readTimer
        if readTimer is not None and readTimer.active():
            readTimer.reset(self._owner.readTimeout or 0)
        parser = self._requestParser
        HTTP11ClientProtocol.dataReceived(self, data)
        # The bytes may have finished this response and, from the caller's
        # callbacks, started the next request: only look at the parser of
        # the request these bytes were for.
        if not self._awaitingHeaders or parser is None:
            return
        if parser is not self._requestParser:
            return
        if (
            getattr(parser, "response", None) is not None
            and getattr(parser, "_responseDeferred", None) is None
        ):
            self._headersReceived(parser)
            return
        self._headBytes += len(data)
        limit = self._owner.maxHeaderBytes
        if self._headBytes > limit and self._parser is parser:
            # Bounded memory against a server that never ends its headers.
            self._awaitingHeaders = False
            self._giveUp(Failure(ResponseHeadersTooLargeError(self.key, limit)))

    def _headersReceived(self, parser: Any) -> None:
        self._awaitingHeaders = False
        cancelCall(self._responseTimer)
        self._responseTimer = None
        timeout = self._owner.readTimeout
        if timeout is not None and self._parser is parser and self._readTimer is None:
            self._readTimer = self._owner.reactor.callLater(
                timeout, self._readTimedOut, timeout
            )

    def _timedOut(self, error: PoolError) -> None:
        """
        A timer of this connection fired: remember why, so the request
        fails with C{error}, and abort.
        """
        self.timeoutError = error
        self._owner.connectionTimedOut(self, error)
        self.abortTransport()

    def _responseTimedOut(self, timeout: float) -> None:
        self._responseTimer = None
        self._timedOut(ResponseTimeoutError(self.key, timeout))

    def _readTimedOut(self, timeout: float) -> None:
        self._readTimer = None
        error = ReadTimeoutError(self.key, timeout)
        parser: Any = self._parser
        response = getattr(parser, "response", None) if parser is not None else None
        if response is not None:
            # Hand the typed error to the body's protocol ourselves and
            # silence the parser, so it does not report a generic loss.
            parser.bodyDecoder = None
            parser.state = "DONE"  # twisted.web._newclient.DONE
            response._bodyDataFinished(Failure(error))
        self._timedOut(error)

    def _stopRequestTimers(self) -> None:
        cancelCall(self._responseTimer)
        cancelCall(self._readTimer)
        self._responseTimer = self._readTimer = None
        self._awaitingHeaders = False

    def _finishResponse_WAITING(self, rest: bytes) -> None:
        """
        The response is complete: remember what the server said about
        keeping the connection alive, stop the request timers, and let
        Twisted decide whether the connection is quiescent.
        """
        parser: Any = self._parser
        if parser is not None:
            self._noteKeepAlive(parser.connHeaders.getRawHeaders(b"keep-alive"))
            response = getattr(parser, "response", None)
            if response is not None and tuple(response.version[1:]) < (1, 1):
                # HTTP/1.0 keeps a connection only when asked to.
                tokens = b",".join(
                    parser.connHeaders.getRawHeaders(b"connection", [])
                ).lower()
                if b"keep-alive" not in tokens:
                    self.reusable = False
        self._stopRequestTimers()
        self._finishing = True
        try:
            HTTP11ClientProtocol._finishResponse_WAITING(self, rest)
        finally:
            self._finishing = False
        # Twisted calls the quiescent callback before it detaches the old
        # response parser: a waiting request may only be given this
        # connection once that is done, or its new parser would be detached.
        if self._requestParser is parser:
            # Do not keep the finished response's parser (headers, buffers,
            # Deferreds) alive while the connection sits idle; a request
            # started from the response's callbacks has its own by now.
            self._requestParser = None
        pending, self._pendingHandOff = self._pendingHandOff, None
        if pending is not None:
            pending()

    _finishResponse_TRANSMITTING = _finishResponse_WAITING

    def _noteKeepAlive(self, values: Sequence[bytes] | None) -> None:
        if not values:
            return
        for value in values:
            for part in value.split(b","):
                name, _, number = part.strip().partition(b"=")
                try:
                    parsed = int(number.strip())
                except ValueError:
                    continue
                if parsed < 0:
                    continue
                name = name.strip().lower()
                if name == b"timeout":
                    self.keepAliveTimeout = float(parsed)
                elif name == b"max":
                    self.keepAliveMax = parsed

    def _giveUp(self, reason: Failure) -> None:
        """
        Twisted closes the connection itself (C{Connection: close}, a parse
        error, data on an idle connection): tell the pool at once so the slot
        is freed, then let the transport go.
        """
        if self.lifecycle not in (Lifecycle.CLOSING, Lifecycle.CLOSED):
            self._owner.connectionGivenUp(self, reason)
        HTTP11ClientProtocol._giveUp(self, reason)

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:  # noqa: B008
        """
        The transport is gone: cancel every timer, tell the parser and the
        owner, and fire L{whenLost} watchers.
        """
        self._stopRequestTimers()
        cancelCall(self.handshakeTimer)
        cancelCall(self._graceTimer)
        self.handshakeTimer = self._graceTimer = None
        HTTP11ClientProtocol.connectionLost(self, reason)
        previous = self.lifecycle
        if previous is not Lifecycle.CLOSED:
            self.moveTo(Lifecycle.CLOSED)
            self._owner.connectionLost(self, previous, reason)
        watchers, self._lostWatchers = self._lostWatchers, []
        for d in watchers:
            d.callback(None)
