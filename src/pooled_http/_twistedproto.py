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

from collections.abc import Hashable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web._newclient import HTTP11ClientProtocol, Request
from twisted.web.http import _ChunkedTransferDecoder, _IdentityTransferDecoder
from twisted.web.iweb import IResponse
from zope.interface import implementer

from ._connbase import ConnectionBase
from ._contract import ConnectionOwner
from ._lifecycle import Lifecycle
from ._timers import cancelCall
from .errors import (
    FramingError,
    ReadTimeoutError,
    ResponseHeadersTooLargeError,
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


#: The largest chunk size a chunked body may announce: what fits in 64
#: bits, as llhttp allows.  A larger one is no real chunk.
MAX_CHUNK_SIZE = 2**64 - 1


def _refuseUnsureFraming(parser: Any) -> bool:
    """
    Refuse, when a response's head is in, what Twisted's parser would
    frame wrongly, wait on for ever, or frame differently from one release
    to the next: a C{101 Switching Protocols} nobody asked for (Twisted
    skips it like a C{100 Continue} and reads the other protocol's bytes
    as the response), a negative C{Content-Length} (refused from Twisted
    24.7 on) and more than one C{Content-Length} value, even the same one
    (refused by Twisted 24.3, read by later releases; llhttp refuses it).

    @param parser: The request's C{HTTPClientParser}, its head parsed.
    @return: Whether the connection may be reused after this response:
        not when C{Content-Length} comes beside C{Transfer-Encoding}
        (Twisted frames by the latter, as RFC 9112 says; the server may
        have meant the former).
    @raise FramingError: For a C{101} response, or a C{Content-Length}
        that is negative or not one value.
    """
    if parser.response.code == 101:
        raise FramingError("unexpected 101 Switching Protocols", b"")
    headers = parser.connHeaders
    lengths = headers.getRawHeaders(b"content-length", ())
    for value in lengths:
        if value.strip().startswith(b"-"):
            raise FramingError("negative Content-Length", value)
    if len(lengths) > 1 or any(b"," in value for value in lengths):
        raise FramingError("more than one Content-Length", b", ".join(lengths))
    return not (lengths and headers.hasHeader(b"transfer-encoding"))


class _BoundedChunkedDecoder(_ChunkedTransferDecoder):
    """
    Twisted's chunked decoder, refusing a chunk size past
    L{MAX_CHUNK_SIZE} at once (Twisted's own would deliver what follows
    and wait for bytes that never come).
    """

    def _dataReceived_CHUNK_LENGTH(self) -> bool:
        found: bool = _ChunkedTransferDecoder._dataReceived_CHUNK_LENGTH(self)
        if found and self.length > MAX_CHUNK_SIZE:
            raise FramingError(f"chunk size past {MAX_CHUNK_SIZE}", b"")
        return found


#: The transfer decoders of each request's parser.
_TRANSFER_DECODERS = {b"chunked": _BoundedChunkedDecoder}


class _Silent(Protocol):
    """
    Takes the place of a body protocol that gave up: hears the rest.
    """


@implementer(IHandshakeListener)
class TwistedHTTP11Connection(ConnectionBase, HTTP11ClientProtocol):
    """
    One pooled HTTP/1.1 connection on Twisted's L{HTTP11ClientProtocol}.

    The pool metadata, timers and closing are L{ConnectionBase}'s.
    """

    def __init__(self, owner: ConnectionOwner, key: Hashable) -> None:
        """
        @param owner: What the connection reports to and reads its settings
            and reactor from.
        @param key: The pool key it belongs to.
        """
        HTTP11ClientProtocol.__init__(self, owner.connectionQuiescent)
        self._state = "QUIESCENT"
        self._initConnection(owner, key)
        self._awaitingHeaders = False
        # Inside Twisted's allHeadersReceived (which may end the body
        # before it fires the request's Deferred).
        self._inHead = False
        self._headBytes = 0
        self._requestParser: Any = None

    def __repr__(self) -> str:
        return (
            f"<TwistedHTTP11Connection {self.key!r} {self.lifecycle.value} "
            f"requests={self.requestsServed}>"
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
            trace = self.trace
            if trace is not None:
                trace.headersSent()
                if state == "WAITING":
                    trace.bodySent()
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
            parser._transferDecoders = _TRANSFER_DECODERS
            allHeadersReceived = parser.allHeadersReceived

            def framedHeadersReceived() -> None:
                if not _refuseUnsureFraming(parser):
                    self.reusable = False
                response = getattr(parser, "response", None)
                if response is not None:
                    # See pooled_http._http11response.connectionTransport.
                    response.connectionTransport = self.transport
                self._inHead = True
                try:
                    allHeadersReceived()
                finally:
                    self._inHead = False
                if response is not None and parser.state == "DONE":
                    # The body was over before the Deferred fired (and
                    # its callbacks have run by now).
                    response.connectionTransport = None
                trace = self.trace
                if trace is not None:
                    # None after a 1xx head: the parser starts over.
                    response = getattr(parser, "response", None)
                    if response is not None and response.code >= 200:
                        trace.responseHeaders(response.code, response.version)

            parser.allHeadersReceived = framedHeadersReceived
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
        trace = self.trace
        if trace is not None:
            trace.bodySent()
        timeout = self.owner.responseTimeout
        if (
            timeout is not None
            and self._awaitingHeaders
            and self._responseTimer is None
        ):
            self._responseTimer = self.owner.reactor.callLater(
                timeout, self._responseTimedOut, timeout
            )

    def dataReceived(self, data: bytes) -> None:
        """
        Feed the parser; note when headers arrive and when body bytes flow.
        """
        readTimer = self._readTimer
        if readTimer is not None and readTimer.active():
            readTimer.reset(self.owner.readTimeout or 0)
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
        limit = self.owner.maxHeaderBytes
        if self._headBytes > limit and self._parser is parser:
            # Bounded memory against a server that never ends its headers.
            self._awaitingHeaders = False
            self._giveUp(Failure(ResponseHeadersTooLargeError(self.key, limit)))

    def _headersReceived(self, parser: Any) -> None:
        self._awaitingHeaders = False

        cancelCall(self._responseTimer)
        self._responseTimer = None
        timeout = self.owner.readTimeout
        if timeout is not None and self._parser is parser and self._readTimer is None:
            self._readTimer = self.owner.reactor.callLater(
                timeout, self._readTimedOut, timeout
            )

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
            self._dropTransport(parser)
        self._timedOut(error)

    def _stopRequestTimers(self) -> None:
        ConnectionBase._stopRequestTimers(self)
        self._awaitingHeaders = False

    def _finishResponse_WAITING(self, rest: bytes) -> None:
        """
        The response is complete: remember what the server said about
        keeping the connection alive, stop the request timers, and let
        Twisted decide whether the connection is quiescent.
        """
        trace = self.trace
        if trace is not None:
            self.trace = None
            trace.responseDone()
        parser: Any = self._parser
        if parser is not None:
            self._noteKeepAlive(parser.connHeaders.getRawHeaders(b"keep-alive"))
            self._dropTransport(parser)
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
        self._runHandOff()

    _finishResponse_TRANSMITTING = _finishResponse_WAITING

    def _dropTransport(self, parser: Any) -> None:
        """
        The body of the parser's response is over: let its
        C{connectionTransport} go, unless the request's Deferred has not
        fired yet (then L{request}'s C{framedHeadersReceived} does, once it
        has).
        """
        response = getattr(parser, "response", None)
        if response is not None and not self._inHead:
            response.connectionTransport = None

    def _giveUp(self, reason: Failure) -> None:
        """
        Twisted closes the connection itself (C{Connection: close}, a parse
        error, data on an idle connection): tell the pool at once so the slot
        is freed, then let the transport go.
        """
        if self.lifecycle not in (Lifecycle.CLOSING, Lifecycle.CLOSED):
            self.owner.connectionGivenUp(self, reason)
        HTTP11ClientProtocol._giveUp(self, reason)

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:  # noqa: B008
        """
        The transport is gone: cancel every timer, tell the parser and the
        owner, and fire L{pooled_http._connbase.ConnectionBase.whenLost} watchers.
        """
        self._stopRequestTimers()
        self._connectionGone()
        parser: Any = self._parser
        decoder = getattr(parser, "bodyDecoder", None)
        if (
            self.endedHere
            and isinstance(decoder, _IdentityTransferDecoder)
            and decoder.contentLength is None
        ):
            # A body that ends with the connection, cut short by this side
            # (a shutdown's abort): Twisted would call it complete but for a
            # PotentialDataLoss; a length still owed makes it a data loss,
            # as on our own protocol.
            decoder.contentLength = 1
        if parser is not None:
            self._dropTransport(parser)
        HTTP11ClientProtocol.connectionLost(self, reason)
        if self.trace is not None:
            self._traceLost(reason)
        previous = self.lifecycle
        if previous is not Lifecycle.CLOSED:
            self.moveTo(Lifecycle.CLOSED)
            self.owner.connectionLost(self, previous, reason)
        self._fireLost()
