"""
Reading responses on an L{pooled_http._http11.HTTP11Connection}: bytes fed
to llhttp (through C{httptools}), its callbacks, the rules of framing
(stated once, in L{ResponseReading._headersComplete}), and the end of a
response, whole or failed.

Anything the client cannot frame for sure fails the request at once with a
L{FramingError} (a L{ParseError}) inside L{ResponseFailed}, and the
connection is never reused.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web._newclient import ParseError, ResponseFailed
from twisted.web.iweb import UNKNOWN_LENGTH

from ._http11head import (
    _CONNECTION_CONTROL,
    _CONNECTION_TOKENS,
    _NO_BODY_CODES,
    _NO_CONTROL,
    _NO_HEADERS,
    _VERSIONS,
    _buildHeaders,
    _lenientHead,
    _tokens,
    _version,
)
from ._http11response import RESPONSE_DONE, _Response
from ._lifecycle import Lifecycle
from ._timers import cancelCall
from .errors import FramingError, PoolError, ResponseHeadersTooLargeError

if TYPE_CHECKING:
    from twisted.internet.base import DelayedCall
    from twisted.web.iweb import IResponse

    from ._contract import ConnectionOwner
    from ._http11request import _BodyWriter

__all__ = ["ResponseReading"]

_log = Logger()


class _StopParsing(Exception):
    """
    Raised from a parser callback to make llhttp stop where it is.
    """


_DONE = RESPONSE_DONE
_SERVER_CLOSE = Failure(ConnectionDone("Connection: close"))
_EARLY_RESPONSE = Failure(
    ConnectionDone("the response came before the request was sent whole")
)


def _handOver(d: Deferred[Any], response: _Response | None) -> None:
    """
    Fire C{d} with a response whose body is already over, then let its
    C{connectionTransport} go.
    """
    d.callback(response)
    if response is not None:
        response.connectionTransport = None


class ResponseReading:
    """
    The reading half of L{pooled_http._http11.HTTP11Connection}: what it
    does with the bytes of a response.
    """

    # What the connection holds that reading uses (set in its constructor).
    if TYPE_CHECKING:
        key: Hashable
        owner: ConnectionOwner
        lifecycle: Lifecycle
        lenientHeaders: bool
        reusable: bool
        transport: Any
        timeoutError: PoolError | None
        _reactor: Any
        _state: str
        _parser: Any
        _spareParser: Any
        _request: Any
        _deferred: Deferred[IResponse] | None
        _response: _Response | None
        _writer: _BodyWriter | None
        _responseTimer: DelayedCall | None
        _readTimer: DelayedCall | None
        _pendingHandOff: Callable[[], object] | None
        _pending: list[tuple[bytes, bytes]]
        _control: dict[bytes, list[bytes]]
        _phrase: bytes
        _headBuffer: bytes
        _maxHeaderBytes: int
        _headRaw: int
        _headSize: int
        _framingBytes: int
        _aborting: bool
        _closeDelimited: bool
        _extraData: bool
        _finishing: bool
        _givenUp: bool
        _headComplete: bool
        _headOnly: bool
        _interim: bool
        _messageDone: bool
        _persistent: bool
        _received: bool
        trace: Any
        _readingPaused: bool

        def _runHandOff(self) -> None: ...
        def _stopRequestTimers(self) -> None: ...
        def _requestEnded(self) -> None: ...
        def _noteKeepAlive(self, values: Iterable[bytes] | None) -> None: ...
        def _deliverResponse(self, response: _Response) -> None: ...
        def _giveUp(self, reason: Failure) -> None: ...
        def _readTimedOut(self, timeout: float) -> None: ...
        def _resumeReading(self) -> None: ...

    def dataReceived(self, data: bytes) -> None:
        """
        Feed the bytes of a response to llhttp and act on what it found.
        """
        if not data or self._aborting or self.timeoutError is not None:
            return  # nothing, or a connection on its way out
        if self._deferred is None and self._response is None:
            if not (self._givenUp or self._aborting or self._state != "QUIESCENT"):
                # Bytes nobody asked for: the connection is out of step.
                self._giveUp(
                    Failure(ParseError("data on an idle connection", data[:64]))
                )
            return
        self._received = True
        readTimer = self._readTimer
        if readTimer is not None:
            readTimer.reset(self.owner.readTimeout or 0)
        if self._headComplete:
            # Counted until body bytes come: chunk framing and trailers
            # (which httptools keeps whole) are bounded like a head.
            self._framingBytes += len(data)
        try:
            if self.lenientHeaders and not self._headComplete:
                self._feedLenient(data)
            else:
                self._feed(data)
        except ParseError as e:
            self._parseFailed(Failure(e))
            return
        except HttpParserUpgrade:
            self._parseFailed(
                Failure(FramingError("unexpected 101 Switching Protocols", data[:64]))
            )
            return
        except HttpParserError as e:
            cause = e.__context__
            if isinstance(cause, _StopParsing):
                pass
            elif isinstance(cause, Exception):
                self._parseFailed(Failure(cause))
                return
            else:
                self._parseFailed(Failure(FramingError(f"llhttp: {e}", data[:64])))
                return
        if self._messageDone:
            self._finishResponse()
            return
        if not self._headComplete:
            self._headRaw += len(data)
            limit = self._maxHeaderBytes
            if self._headRaw > limit and self._deferred is not None:
                self._parseFailed(
                    Failure(ResponseHeadersTooLargeError(self.key, limit))
                )
            return
        if self._framingBytes > self._maxHeaderBytes:
            self._parseFailed(
                Failure(
                    FramingError(
                        f"more than maxHeaderBytes={self._maxHeaderBytes} bytes of "
                        f"chunk framing or trailers from {self.key!r} without "
                        "body bytes",
                        data[:64],
                    )
                )
            )
            return
        response = self._response
        if (
            response is not None
            and self._state == "WAITING"
            and self._deferred is not None
        ):
            self._deliverResponse(response)

    def _feedLenient(self, data: bytes) -> None:
        """
        Keep the head until it is whole, then feed it: as it came when
        llhttp takes it so (the common case: a clean head), else cleaned
        (see L{_lenientHead}) by a new parser; what follows goes on as
        usual.
        """
        buffered = self._headBuffer + data
        limit = self._maxHeaderBytes
        while not self._headComplete:
            end = buffered.find(b"\r\n\r\n")
            if end >= 0 and self._feedCleanHead(buffered[: end + 4]):
                buffered = buffered[end + 4 :]
            else:
                found = _lenientHead(buffered)
                if found is None:
                    if len(buffered) > limit:
                        self._headBuffer = b""
                        raise ResponseHeadersTooLargeError(self.key, limit)
                    self._headBuffer = buffered
                    return
                head, buffered = found
                self._feed(head)
            self._headBuffer = b""
            if self._messageDone:
                self._extraData = self._extraData or bool(buffered.strip(b"\r\n"))
                return
        if buffered:
            self._feed(buffered)

    def _feedCleanHead(self, head: bytes) -> bool:
        """
        Feed a whole head as it came; if llhttp (or a callback, before the
        head is in) refuses it, undo what its parse counted, give the
        connection a new parser and return C{False}: the head is then fed
        cleaned, which decides the outcome as if it had come first.  A head
        llhttp takes whole is one cleaning leaves as it is.
        """
        headSize = self._headSize
        try:
            self._feed(head)
        except (HttpParserError, ParseError):
            if self._headComplete:
                raise
            self._headSize = headSize
            self._parser = HttpResponseParser(self)
            return False
        return True

    def _feed(self, data: bytes) -> None:
        parser = self._parser
        if not self._headOnly:
            parser.feed_data(data)
            return
        # llhttp cannot be told that a response to HEAD has no body: feed it
        # up to each line end, so the head is known to end where the bytes
        # fed end, and a new parser reads the next response.
        start = 0
        size = len(data)
        while start < size:
            end = data.find(b"\n", start)
            end = size if end < 0 else end + 1
            parser.feed_data(data[start:end])
            if self._messageDone:
                self._parser = None
                if data[end:].strip(b"\r\n"):
                    self._extraData = True
                return
            start = end

    # llhttp's callbacks

    def on_message_begin(self) -> None:
        """
        llhttp: a response starts (a second one before the first was
        finished with stops the parse).
        """
        if self._messageDone:
            # A second response before the first was finished with.
            self._extraData = True
            raise _StopParsing()
        self._phrase = b""
        self._pending = []
        self._control = {}

    def on_status(self, status: bytes) -> None:
        """
        llhttp: (part of) the reason phrase.
        """
        self._phrase += status
        self._headSize += len(status)

    def on_header(self, name: bytes, value: bytes) -> None:
        """
        llhttp: one header line, counted against C{maxHeaderBytes}; the
        connection-control ones are kept apart, as Twisted keeps them out
        of C{Response.headers}.
        """
        if self._headComplete:
            return  # a trailer of a chunked body: Twisted ignores them too
        self._headSize += len(name) + len(value) + 4
        limit = self._maxHeaderBytes
        if self._headSize > limit:
            raise ResponseHeadersTooLargeError(self.key, limit)
        lowered = name.lower()
        if lowered in _CONNECTION_CONTROL:
            control = self._control
            values = control.get(lowered)
            if values is None:
                control[lowered] = [value]
            else:
                values.append(value)
            if not (self._headOnly and lowered == b"content-length"):
                return
        self._pending.append((name, value))

    def on_headers_complete(self) -> None:
        """
        llhttp: the head is in; an interim one (1xx) is skipped, an unasked
        101 refused.
        """
        parser = self._parser
        code = parser.get_status_code()
        self._headComplete = True
        if 100 <= code < 200:
            if code == 101:
                raise FramingError("unexpected 101 Switching Protocols", b"")
            # An interim response (100 Continue, 103 Early Hints): skipped,
            # as Twisted does; llhttp goes on to the final one.
            self._interim = True
            return
        self._headersComplete(parser, code)

    def on_body(self, data: bytes) -> None:
        """
        llhttp: body bytes, for the response.
        """
        self._framingBytes = 0
        response = self._response
        if response is not None:
            response._bodyData(data)

    def on_message_complete(self) -> None:
        """
        llhttp: the response (or an interim one) is complete.
        """
        if self._interim:
            self._interim = False
            self._headComplete = False
            return
        self._messageDone = True

    # Framing

    def _headersComplete(self, parser: Any, code: int) -> None:
        """
        The final response head is in: decide how its body is framed,
        refusing what cannot be framed for sure, and build the response.
        """
        pending, self._pending = self._pending, _NO_HEADERS
        headers = _buildHeaders(pending)
        control, self._control = self._control, _NO_CONTROL
        versionText = parser.get_http_version()
        version = _VERSIONS.get(versionText) or _version(versionText)
        length: int | object = UNKNOWN_LENGTH
        closeDelimited = False
        if code in _NO_BODY_CODES or self._headOnly:
            length = 0
        else:
            encodings = control.get(b"transfer-encoding")
            lengths = control.get(b"content-length")
            if encodings:
                last = b",".join(encodings).split(b",")[-1].strip().lower()
                if last != b"chunked":
                    raise FramingError(
                        "Transfer-Encoding does not end in chunked",
                        b",".join(encodings),
                    )
            elif lengths:
                # llhttp has already refused anything but one number.
                length = int(lengths[0])
            else:
                closeDelimited = True
        connection = control.get(b"connection")
        if connection:
            tokens = _CONNECTION_TOKENS.get(tuple(connection)) or _tokens(connection)
        else:
            tokens = frozenset()
        if b"close" in tokens:
            self._persistent = False
        if version < (b"HTTP", 1, 1) and b"keep-alive" not in tokens:
            # HTTP/1.0 keeps a connection only when asked to.
            self.reusable = False
        keepAlive = control.get(b"keep-alive")
        if keepAlive:
            self._noteKeepAlive(keepAlive)
        self._closeDelimited = closeDelimited
        if self._responseTimer is not None:
            cancelCall(self._responseTimer)
            self._responseTimer = None
        this: Any = self
        self._response = _Response(
            this,
            version,
            code,
            self._phrase,
            headers,
            length,
            self._request,
            self.transport,
        )
        trace = self.trace
        if trace is not None:
            trace.responseHeaders(code, version)
        if self._headOnly:
            # llhttp would wait for a body: the head is the whole response.
            self._messageDone = True
            return
        timeout = self.owner.readTimeout
        if timeout is not None and length != 0:
            self._readTimer = self._reactor.callLater(
                timeout, self._readTimedOut, timeout
            )

    # The end of a response

    # The end of a response

    def _finishResponse(self) -> None:
        """
        The response is complete.  First the connection is made ready for
        another request (nothing of this one is left on it); then the owner
        hears the connection is quiescent, or that it is given up; then the
        body protocol is told; then the request's Deferred fires if it has
        not (a body-less or short response, as Twisted: after the report).
        A waiting request handed this connection from inside the report
        starts only after all that.
        """
        self._messageDone = False
        self._headComplete = False
        trace = self.trace
        if trace is not None:
            self.trace = None
            trace.responseDone()
        # A parser holds about a kilobyte: an idle connection keeps none.  A
        # request made on this connection before this returns (one waiting
        # for it, or one made from the body's callbacks) parses its response
        # with the same one, which llhttp has made ready for the next
        # message; it is dropped below otherwise.
        self._spareParser, self._parser = self._parser, None
        if self._readTimer is not None:
            cancelCall(self._readTimer)
            self._readTimer = None
        response, self._response = self._response, None
        d: Deferred[Any] | None = self._deferred
        self._deferred = None
        transmitting = self._state == "TRANSMITTING"
        self._requestEnded()
        reusable = (
            self._persistent
            and not transmitting
            and not self._extraData
            and self.lifecycle is not Lifecycle.CLOSED
        )
        if transmitting:
            # The server answered before the request body was all sent: as
            # on Twisted's protocol, the connection is given up and the body
            # goes on until the transport is gone (which stops it).
            self._state = "TRANSMITTING_AFTER_RECEIVING_RESPONSE"
        else:
            self._state = "QUIESCENT"
        if self._readingPaused:
            self._resumeReading()
        if not reusable:
            if self._extraData:
                why = Failure(FramingError("bytes after the response", b""))
            elif transmitting:
                why = _EARLY_RESPONSE
            else:
                why = _SERVER_CLOSE
            self._spareParser = None
            self._giveUp(why)
            if response is not None:
                response._end(_DONE, handedOver=d is None)
            if d is not None:
                _handOver(d, response)
            return
        assert response is not None
        self._finishing = True
        try:
            # The pool hears first, as from Twisted's protocol: a request
            # made when the body's protocol is told the body is done (the
            # next request of a sequential loop) finds this connection back
            # in the pool instead of opening another one.
            if self.lifecycle is Lifecycle.ACTIVE and not self._aborting:
                try:
                    this: Any = self
                    self.owner.connectionQuiescent(this)
                except Exception:
                    # As Twisted: keeping a connection is an optimisation.
                    _log.failure(
                        "while reporting {connection!r} quiescent", connection=self
                    )
                    self._giveUp(Failure())
            response._end(_DONE, handedOver=d is None)
            if d is not None:
                _handOver(d, response)
        finally:
            self._finishing = False
        self._runHandOff()
        self._spareParser = None

    def _parseFailed(self, reason: Failure) -> None:
        """
        The response cannot be framed or parsed: fail it at once and give
        the connection up.
        """
        self._messageDone = self._headComplete = False
        self._stopRequestTimers()
        self._parser = None
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.stop()
        response, self._response = self._response, None
        d: Deferred[Any] | None = self._deferred
        self._deferred = None
        self._requestEnded()
        deliver = d is not None and response is not None and self._state == "WAITING"
        self._giveUp(reason)
        failed = Failure(ResponseFailed([reason], response))
        if deliver:
            # The head was good and the body's framing broke in the same
            # read: the caller gets the response, its body gets the error.
            assert d is not None and response is not None
            d.callback(response)
            response._end(failed)
        elif d is not None:
            d.errback(failed)
        elif response is not None:
            response._end(failed)
