"""
Our own HTTP/1.1 client connection: responses parsed by llhttp (through
C{httptools}), requests serialized here, and the pool's contract
(L{pooled_http._contract.PoolConnection}) met directly, without patching
Twisted's protocol.

One request at a time: L{HTTP11Connection.request} writes a
L{twisted.web._newclient.Request} and returns a Deferred that fires with an
L{IResponse} once the response head has arrived and the request has been
written whole.  The parts live beside it: the request's head and body in
L{pooled_http._http11request}, the response and its body in
L{pooled_http._http11response}, what is made of a response head in
L{pooled_http._http11head}, reading and framing in
L{pooled_http._http11reading}; what it shares with the connection on
Twisted's protocol in L{pooled_http._connbase}.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from httptools import HttpResponseParser
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionClosed
from twisted.internet.interfaces import (
    IHandshakeListener,
    ITCPTransport,
)
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web._newclient import (
    ConnectionAborted,
    RequestGenerationFailed,
    RequestNotSent,
    RequestTransmissionFailed,
    ResponseFailed,
    ResponseNeverReceived,
    _DataLoss,
)
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import UNKNOWN_LENGTH, IResponse
from zope.interface import implementer

from ._connbase import ConnectionBase
from ._contract import ConnectionOwner
from ._http11head import _NO_CONTROL, _NO_HEADERS
from ._http11reading import _SERVER_CLOSE, ResponseReading
from ._http11request import _BodyWriter, serializeHead
from ._http11response import BODY_BUFFER_LIMIT, _Response
from ._lifecycle import Lifecycle
from ._sending import sendNow, turnBatch
from .errors import (
    FramingError,
    ReadTimeoutError,
)

__all__ = ["HTTP11Connection", "FramingError", "BODY_BUFFER_LIMIT"]

_log = Logger()


@implementer(IHandshakeListener)
class HTTP11Connection(ResponseReading, ConnectionBase, Protocol):
    """
    One HTTP/1.1 client connection on llhttp, meeting
    L{pooled_http._contract.PoolConnection}.

    The pool metadata, timers and closing are L{ConnectionBase}'s.

    @ivar lenientHeaders: Whether response header lines without a colon are
        skipped (and bare LF line ends accepted) rather than failing.
    """

    # Slots keep an idle connection small (no per-instance dictionary).
    __slots__ = (
        "abortedByPool",
        "_aborting",
        "_batch",
        "_closeDelimited",
        "_control",
        "_deferred",
        "_extraData",
        "_finishing",
        "endedHere",
        "_givenUp",
        "_graceTimer",
        "_handshakeTimer",
        "_headBuffer",
        "_headComplete",
        "_headOnly",
        "_headRaw",
        "_headSize",
        "_interim",
        "_lostWatchers",
        "_maxHeaderBytes",
        "_messageDone",
        "_parser",
        "_spareParser",
        "_pending",
        "_pendingHandOff",
        "_persistent",
        "_phrase",
        "_reactor",
        "_readTimer",
        "_readingPaused",
        "_received",
        "_framingBytes",
        "_request",
        "_response",
        "_responseTimer",
        "_state",
        "_writer",
        "createdAt",
        "handshakeDone",
        "keepAliveMax",
        "keepAliveTimeout",
        "key",
        "lenientHeaders",
        "lifecycle",
        "owner",
        "requestsServed",
        "reusable",
        "serial",
        "timeoutError",
        "trace",
        "transport",
        "connected",
    )

    def __init__(
        self,
        owner: ConnectionOwner,
        key: Hashable,
        lenientHeaders: bool | None = None,
    ) -> None:
        """
        @param owner: What the connection reports to and reads its reactor
            and settings from.
        @param key: The pool key it belongs to.
        @param lenientHeaders: Skip response header lines without a colon;
            L{None} takes the owner's C{lenientHeaders} if it has one, else
            C{False}.
        """
        self._initConnection(owner, key)
        # IReactorTime's methods, typed for zope, confuse mypy: keep it Any.
        reactor: Any = owner.reactor
        self._reactor = reactor
        self._batch = turnBatch(reactor)
        if lenientHeaders is None:
            lenientHeaders = bool(getattr(owner, "lenientHeaders", False))
        self.lenientHeaders = lenientHeaders
        self._state = "QUIESCENT"
        self._parser: Any = None
        self._spareParser: Any = None
        self._request: Any = None
        self._persistent = True
        self._headOnly = False
        self._deferred: Deferred[IResponse] | None = None
        self._writer: _BodyWriter | None = None
        self._response: _Response | None = None
        self._closeDelimited = False
        self._received = False
        self._framingBytes = 0
        self._headRaw = 0
        self._headSize = 0
        self._maxHeaderBytes = owner.maxHeaderBytes
        self._headBuffer = b""
        self._headComplete = False
        self._messageDone = False
        self._extraData = False
        self._interim = False
        self._phrase = b""
        # The headers of the head being parsed (made at its start).
        self._pending: list[tuple[bytes, bytes]] = _NO_HEADERS
        self._control: dict[bytes, list[bytes]] = _NO_CONTROL
        self._readingPaused = False
        self._givenUp = False
        self._aborting = False

    def __repr__(self) -> str:
        return (
            f"<HTTP11Connection {self.key!r} {self.lifecycle.value} "
            f"{self._state} requests={self.requestsServed}>"
        )

    # The contract

    @property
    def state(self) -> str:
        """
        The wire state, named as Twisted's L{twisted.web._newclient.HTTP11ClientProtocol} names it:
        C{QUIESCENT}, C{TRANSMITTING}, C{TRANSMITTING_AFTER_RECEIVING_RESPONSE},
        C{GENERATION_FAILED}, C{WAITING}, C{ABORTING}, C{CONNECTION_LOST}.
        """
        return self._state

    def abort(self) -> Deferred[None]:
        """
        Abort the connection, failing its request (with L{ConnectionAborted}
        inside Twisted's wrapper, as Twisted does); fires once it is gone.
        """
        if self._state == "CONNECTION_LOST" or self.lifecycle is Lifecycle.CLOSED:
            return succeed(None)
        self._aborting = True
        if self._state != "TRANSMITTING":
            self._state = "ABORTING"
        d = self.whenLost()
        self.abortTransport()
        return d

    # Twisted's protocol

    def connectionMade(self) -> None:
        """
        Turn Nagle off, as Twisted's protocol does.
        """
        transport: Any = self.transport
        if ITCPTransport.providedBy(transport):
            transport.setTcpNoDelay(True)

    # Requests

    def request(self, request: Any) -> Deferred[IResponse]:
        """
        Send C{request} and return the Deferred of its response.

        @param request: A L{twisted.web._newclient.Request}.
        @return: A Deferred firing with an L{IResponse} once its head has
            arrived and the request has been written whole; failing with
            L{RequestNotSent} if the connection is busy or closing,
            L{RequestGenerationFailed} if the request could not be written,
            L{RequestTransmissionFailed} if the connection was lost while
            writing it, L{ResponseNeverReceived} or L{ResponseFailed} if the
            response was lost or could not be parsed, or a pool timeout.
        """
        transport: Any = self.transport
        if self._state != "QUIESCENT" or self._givenUp or transport is None:
            return fail(RequestNotSent())
        self.requestsServed += 1
        self._state = "TRANSMITTING"
        self._request = request
        self._batch.busy += 1
        self._persistent = request.persistent
        self._headOnly = request.method == b"HEAD"
        self._received = False
        self._framingBytes = self._headRaw = self._headSize = 0
        self._maxHeaderBytes = self.owner.maxHeaderBytes
        parser = self._spareParser
        if parser is None:
            parser = HttpResponseParser(self)
        else:
            self._spareParser = None
        self._parser = parser
        d: Deferred[IResponse] = Deferred(self._cancelRequest)
        self._deferred = d
        producer = request.bodyProducer
        try:
            if producer is None:
                framing = (
                    b"Content-Length: 0\r\n"
                    if request.method in (b"PUT", b"POST")
                    else None
                )
            elif producer.length is UNKNOWN_LENGTH:
                framing = b"Transfer-Encoding: chunked\r\n"
            else:
                framing = b"Content-Length: %d\r\n" % (producer.length,)
            head = serializeHead(request, framing)
        except BaseException:
            self._writeFailed(Failure())
            return d
        if producer is None:
            self._batch.send(transport, head, self._headWanted)
        else:
            sendNow(transport, head)
        if self.trace is not None:
            self.trace.headersSent()
        if producer is None:
            self._requestWritten()
        else:
            writer = self._writer = _BodyWriter(self, producer, transport)
            try:
                writer.start()
            except BaseException:
                writer._done = True
                self._writeFailed(Failure())
        return d

    def _headWanted(self, transport: Any) -> bool:
        """
        Whether a request head kept for the end of the reactor's turn is
        still to be written to C{transport}: the request is neither over
        nor cancelled, and the connection is not closing.
        """
        return (
            self.transport is transport
            and self._request is not None
            and not self._aborting
            and not self._givenUp
            and not transport.disconnecting
        )

    def _requestEnded(self) -> None:
        """
        The request on the connection is over (answered, failed or lost).
        """
        if self._request is not None:
            self._request = None
            self._batch.busy -= 1

    def _cancelRequest(self, d: Deferred[IResponse]) -> None:
        """
        The caller cancelled the request's Deferred: whatever the phase, the
        connection cannot be trusted with another request.
        """
        if self._deferred is d:
            self._deferred = None
        self._aborting = True
        writer = self._writer
        if writer is not None:
            self._writer = None
            writer.stop()
        self.abortTransport()

    def _requestWritten(self) -> None:
        """
        The whole request is on the wire.
        """
        self._writer = None
        if self._state != "TRANSMITTING":
            return
        self._state = "WAITING"
        if self.trace is not None:
            self.trace.bodySent()
        response = self._response
        if response is not None:
            # The head came while the request was still being written.
            self._deliverResponse(response)
            return
        timeout = self.owner.responseTimeout
        if timeout is not None:
            self._responseTimer = self._reactor.callLater(
                timeout, self._responseTimedOut, timeout
            )

    def _writeFailed(self, reason: Failure) -> None:
        """
        The request could not be written (a bad request, a failing body
        producer): fail it as Twisted does and drop the connection.
        """
        self._writer = None
        if self._state != "TRANSMITTING":
            return
        self._state = "GENERATION_FAILED"
        d, self._deferred = self._deferred, None
        self.abortTransport()
        if d is not None:
            d.errback(Failure(RequestGenerationFailed([reason])))

    def _deliverResponse(self, response: _Response) -> None:
        d: Deferred[Any] | None = self._deferred
        self._deferred = None
        if d is not None:
            d.callback(response)

    # Timers

    def _readTimedOut(self, timeout: float) -> None:
        self._readTimer = None
        error = ReadTimeoutError(self.key, timeout)
        response, self._response = self._response, None
        if response is not None:
            response._end(Failure(error))
        self._timedOut(error)

    # Reading

    def _pauseReading(self) -> None:
        if not self._readingPaused:
            self._readingPaused = True
            transport: Any = self.transport
            if transport is not None:
                transport.pauseProducing()

    def _resumeReading(self) -> None:
        if self._readingPaused:
            self._readingPaused = False
            transport: Any = self.transport
            if transport is not None:
                transport.resumeProducing()

    def _giveUp(self, reason: Failure) -> None:
        """
        Tell the owner the connection is closing itself, and close it.
        """
        if self._givenUp:
            return
        self._givenUp = True
        self._parser = None
        if self.lifecycle not in (Lifecycle.CLOSING, Lifecycle.CLOSED):
            self.owner.connectionGivenUp(self, reason)
        transport: Any = self.transport
        if transport is not None and self.lifecycle is not Lifecycle.CLOSED:
            transport.loseConnection()

    def _abortResponse(self, response: _Response) -> None:
        """
        The body protocol of the current response wants the connection gone.
        """
        if response is self._response:
            self.abortTransport()

    # The end of the connection

    def connectionLost(self, reason: Failure = _SERVER_CLOSE) -> None:
        """
        The transport is gone: stop every timer, fail what was in flight,
        move to C{CLOSED}, tell the owner and fire L{pooled_http._connbase.ConnectionBase.whenLost}.
        """
        self._stopRequestTimers()
        self._connectionGone()
        state = self._state
        self._state = "CONNECTION_LOST"
        self._parser = None
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.stop()
        timeoutError = self.timeoutError
        cause = reason
        if timeoutError is not None:
            cause = Failure(timeoutError)
        elif self._aborting:
            cause = Failure(ConnectionAborted())
        d, self._deferred = self._deferred, None
        response, self._response = self._response, None
        self._requestEnded()
        if d is not None:
            if timeoutError is not None:
                failure = cause
            elif state == "TRANSMITTING":
                failure = Failure(RequestTransmissionFailed([cause]))
            elif self._received:
                failure = Failure(ResponseFailed([cause], response))
            else:
                failure = Failure(ResponseNeverReceived([cause]))
            d.errback(failure)
        elif response is not None:
            if timeoutError is not None:
                response._end(cause)
            elif (
                self._closeDelimited
                and not self._aborting
                and not self.endedHere
                and reason.check(ConnectionClosed)
            ):
                if self.trace is not None:
                    self.trace.responseDone()
                response._end(Failure(PotentialDataLoss()))
            else:
                response._end(
                    Failure(ResponseFailed([cause, Failure(_DataLoss())], response))
                )
        previous = self.lifecycle
        if previous is not Lifecycle.CLOSED:
            self.moveTo(Lifecycle.CLOSED)
        if self.trace is not None:
            self._traceLost(cause)
        self.owner.connectionLost(self, previous, reason)
        self._fireLost()
