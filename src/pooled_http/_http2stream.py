"""
One request on an L{pooled_http._http2.HTTP2Connection}: its HTTP/2
stream, the request headers (translated by L{pooled_http._h2headers}), the request
body sent under flow control, the response delivered with back-pressure,
and its own response and read timers.

Back-pressure: body bytes are acknowledged to the server (a
C{WINDOW_UPDATE}) only once they were handed to the body protocol.  While
the protocol has paused the response (or has not been given yet and
L{pooled_http._http11response.BODY_BUFFER_LIMIT} bytes wait), arriving
bytes are held unacknowledged, so the server runs out of that stream's
window and stops sending on it; the connection's window is much larger
than the streams' together, so the other streams go on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.base import DelayedCall
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionAborted
from twisted.internet.interfaces import IConsumer
from twisted.python.failure import Failure
from twisted.web._newclient import (
    RequestGenerationFailed,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.http import RESPONSES
from twisted.web.iweb import UNKNOWN_LENGTH
from zope.interface import implementer

from ._h2headers import requestHeaders, responseHeaders
from ._http11response import RESPONSE_DONE, _Response
from ._timers import cancelCall
from .errors import FramingError, ReadTimeoutError, ResponseTimeoutError

if TYPE_CHECKING:
    from ._http2 import HTTP2Connection

__all__ = ["Stream"]

_VERSION = (b"HTTP", 2, 0)

#: The HTTP/2 error codes the streams reset with.
_NO_ERROR = 0
_PROTOCOL_ERROR = 1
_CANCEL = 8


@implementer(IConsumer)
class _BodyConsumer:
    """
    What a request's body producer writes to: bytes go out as far as the
    stream's flow-control window allows, the rest waits and the producer
    is paused until the window opens again.
    """

    def __init__(self, stream: Stream) -> None:
        self._stream = stream

    def write(self, data: bytes) -> None:
        """
        Send C{data} (or keep it until the window allows).
        """
        self._stream._queueBody(data)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """
        Not used: the body producer is paused and resumed directly.
        """

    def unregisterProducer(self) -> None:
        """
        Not used.
        """


class Stream:
    """
    One request and its response on an HTTP/2 connection.

    @ivar streamId: The stream id, once the request was started.
    @ivar request: The L{twisted.web._newclient.Request}.
    @ivar deferred: Fires with the response, or fails.
    @ivar response: The response, once its headers arrived.
    @ivar trace: The L{pooled_http.trace.RequestTrace} of the request, taken
        from the connection (where the lease put it), or L{None}.
    """

    def __init__(self, connection: HTTP2Connection, request: Any) -> None:
        self._connection = connection
        self.request = request
        self.trace: Any = connection.trace
        connection.trace = None
        self.streamId = 0
        self.deferred: Deferred[Any] = Deferred(self._cancel)
        self.response: _Response | None = None
        self._outbound: list[bytes] = []
        self._bodyDone = request.bodyProducer is None
        self.bodyStarted = False
        self._producerPaused = False
        self._held: list[tuple[bytes, int]] = []
        #: The body length the response announced (or implies), if any.
        self._expected: int | None = None
        self._received = 0
        self._paused = False
        self._ended = False
        self._sentEnd = False
        self._done = False
        self._responseTimer: DelayedCall | None = None
        self._readTimer: DelayedCall | None = None

    def __repr__(self) -> str:
        return f"<HTTP/2 stream {self.streamId} of {self._connection.key!r}>"

    # Starting

    def start(self, streamId: int, scheme: bytes) -> None:
        """
        Send the request's headers (and start its body) as stream
        C{streamId}.
        """
        self.streamId = streamId
        self._sentEnd = self._bodyDone
        connection = self._connection
        h2 = connection.h2
        h2.send_headers(
            streamId, requestHeaders(self.request, scheme), end_stream=self._bodyDone
        )
        trace = self.trace
        if trace is not None:
            trace.stream(streamId)
            trace.headersSent()
            if self._bodyDone:
                trace.bodySent()
        owner = connection.owner
        timeout = owner.responseTimeout
        if timeout is not None:
            self._responseTimer = owner.reactor.callLater(
                timeout, self._responseTimedOut, timeout
            )
        producer = self.request.bodyProducer
        if producer is not None:
            self.bodyStarted = True
            try:
                d = producer.startProducing(_BodyConsumer(self))
            except BaseException:
                self._bodyFailed(Failure())
                return
            d.addCallbacks(self._bodyWritten, self._bodyFailed)

    # The request body

    def _queueBody(self, data: bytes) -> None:
        if self._done or not data:
            return
        self._outbound.append(data)
        self.sendBody()

    def sendBody(self) -> None:
        """
        Send what the window allows of the body kept so far; pause or
        resume the body producer to match.
        """
        if self._done or not self.streamId:
            return
        h2 = self._connection.h2
        outbound = self._outbound
        while outbound:
            window = h2.local_flow_control_window(self.streamId)
            size = min(window, h2.max_outbound_frame_size)
            if size <= 0:
                break
            chunk = outbound[0]
            if len(chunk) > size:
                outbound[0] = chunk[size:]
                chunk = chunk[:size]
            else:
                outbound.pop(0)
            h2.send_data(self.streamId, chunk)
        producer = self.request.bodyProducer
        if outbound and not self._producerPaused and producer is not None:
            self._producerPaused = True
            pause = getattr(producer, "pauseProducing", None)
            if pause is not None:
                pause()
        elif not outbound and self._producerPaused and producer is not None:
            self._producerPaused = False
            resume = getattr(producer, "resumeProducing", None)
            if resume is not None:
                resume()
        if not outbound and self._bodyDone and not self._sentEnd:
            self._sentEnd = True
            h2.end_stream(self.streamId)
            if self.trace is not None:
                self.trace.bodySent()
        self._connection.flush()

    def _bodyWritten(self, ignored: object) -> None:
        self._bodyDone = True
        self.sendBody()

    def _bodyFailed(self, failure: Failure) -> None:
        if self._done:
            return
        self._reset()
        self._fail(Failure(RequestGenerationFailed([failure])))

    # The response

    def headersReceived(self, headers: list[tuple[bytes, bytes]]) -> None:
        """
        The response's headers arrived: fire the request's Deferred.
        """
        try:
            code, fields, lengthValue = responseHeaders(
                headers, self._connection.checkedHeaders
            )
        except ValueError as e:
            self._malformed(str(e))
            return
        if code < 200:
            return
        cancelCall(self._responseTimer)
        self._responseTimer = None
        length: int | object = UNKNOWN_LENGTH
        if self.request.method == b"HEAD" or code in (204, 304):
            length = self._expected = 0
        elif lengthValue is not None:
            length = self._expected = lengthValue
        this: Any = self
        response = _Response(
            this,
            _VERSION,
            code,
            RESPONSES.get(code, b""),
            fields,
            length,
            self.request,
            self._connection.transport,
        )
        self.response = response
        if self.trace is not None:
            self.trace.responseHeaders(code, _VERSION)
        self._startReadTimer()
        self.deferred.callback(response)

    def dataReceived(self, data: bytes, flowLength: int) -> None:
        """
        Body bytes arrived: hand them on, or hold them while paused.
        """
        if self._done or self.response is None:
            self._connection.acknowledge(self.streamId, flowLength)
            return
        expected = self._expected
        if expected is not None:
            self._received += len(data)
            if self._received > expected:
                self._malformed(
                    f"{self._received} body bytes past content-length {expected}"
                    if expected or self.response.code not in (204, 304)
                    else f"a body in a {self.response.code} response"
                )
                self._connection.acknowledge(self.streamId, flowLength)
                return
        if self._paused or self._held:
            self._held.append((data, flowLength))
            return
        self._startReadTimer()
        self.response._bodyData(data)
        self._connection.acknowledge(self.streamId, flowLength)

    def ended(self) -> None:
        """
        The server ended its side of the stream: the response is complete.
        """
        if self.response is None:
            if not self._done:
                self._reset()
                self._fail(
                    Failure(ResponseNeverReceived([Failure(ConnectionAborted())]))
                )
            return
        expected = self._expected
        if expected is not None and self._received < expected:
            self._malformed(
                f"the stream ended after {self._received} of its "
                f"content-length {expected} body bytes"
            )
            return
        self._ended = True
        if not self._bodyDone or self._outbound:
            # The server answered before the body was all sent: it does
            # not want the rest.
            self._reset(closeOnly=True)
        self._finish(None)

    def _finish(self, reason: Failure | None) -> None:
        """
        The stream is over: free its slot, then end the body (at once, or
        once the held bytes have been delivered).
        """
        if self._done:
            return
        self._release()
        response = self.response
        if response is None:
            return
        self._endTrace(reason)
        if reason is None:
            if self._held:
                return
            reason = RESPONSE_DONE
        self._dropHeld()
        response._end(reason)

    def fail(self, failure: Failure) -> None:
        """
        The stream cannot go on (the connection is gone, the server reset
        it, a GOAWAY left it out): fail the request or the body.
        """
        if self._done and not self._held:
            return
        if self._done:
            # Held bytes of a complete response are lost with it.
            self._dropHeld()
            if self.response is not None:
                self.response._end(failure)
            return
        self._fail(failure)

    def _fail(self, failure: Failure) -> None:
        response = self.response
        self._release()
        if response is None:
            if not self.deferred.called:
                self.deferred.errback(failure)
            return
        self._dropHeld()
        # The request's Deferred has fired: the body's failure is the
        # attempt's end, which only the stream can report.
        self._endTrace(failure)
        reason = failure
        if not failure.check(ResponseFailed):
            reason = Failure(ResponseFailed([failure]))
        response._end(reason)

    def _malformed(self, why: str) -> None:
        """
        The server sent a malformed response on this stream (RFC 9113,
        8.1.1): reset the stream with C{PROTOCOL_ERROR} and fail the
        request (or its body) with a L{FramingError} naming the stream, in
        a L{ResponseFailed}, as a malformed HTTP/1.1 response fails.  The
        connection and its other streams go on.
        """
        if self._done:
            return
        self._connection.resetStream(self, _PROTOCOL_ERROR)
        error = FramingError(
            f"malformed response on HTTP/2 stream {self.streamId} "
            f"from {self._connection.key!r}: {why}",
            b"",
        )
        self._fail(Failure(ResponseFailed([Failure(error)])))

    def _dropHeld(self) -> None:
        """
        Forget the body bytes held for the body protocol, giving their
        room back to the connection's window.
        """
        held, self._held = self._held, []
        size = sum(flowLength for _, flowLength in held)
        if size:
            self._connection.acknowledge(self.streamId, size)

    def _release(self) -> None:
        """
        The stream is over (once): stop its timers and body producer and
        free its slot on the connection.
        """
        if self._done:
            return
        self._done = True
        self._stopTimers()
        self._stopProducer()
        self._connection.streamDone(self)

    def _endTrace(self, reason: Failure | None) -> None:
        """
        Tell the request's trace (once) that its response is done, or with
        C{reason} that it failed after its headers.
        """
        trace, self.trace = self.trace, None
        if trace is None:
            return
        if reason is None:
            trace.responseDone()
        else:
            trace.failed(reason)

    def _stopProducer(self) -> None:
        producer = self.request.bodyProducer
        if not self._bodyDone and producer is not None and self.bodyStarted:
            self._bodyDone = True
            try:
                producer.stopProducing()
            except Exception:
                pass

    def _reset(self, closeOnly: bool = False) -> None:
        """
        Reset the stream (C{CANCEL}; C{NO_ERROR} when the response is
        complete and only the rest of the request body is not wanted).
        """
        self._connection.resetStream(self, _NO_ERROR if closeOnly else _CANCEL)

    # Timers

    def _startReadTimer(self) -> None:
        timeout = self._connection.owner.readTimeout
        if timeout is None or self._paused:
            return
        timer = self._readTimer
        if timer is not None and timer.active():
            timer.reset(timeout)
        else:
            self._readTimer = self._connection.owner.reactor.callLater(
                timeout, self._readTimedOut, timeout
            )

    def _stopTimers(self) -> None:
        cancelCall(self._responseTimer)
        cancelCall(self._readTimer)
        self._responseTimer = self._readTimer = None

    def pendingCalls(self) -> list[DelayedCall]:
        """
        The stream's timers still to run.
        """
        calls = (self._responseTimer, self._readTimer)
        return [call for call in calls if call is not None and call.active()]

    def _responseTimedOut(self, timeout: float) -> None:
        self._responseTimer = None
        self._timedOut(ResponseTimeoutError(self._connection.key, timeout))

    def _readTimedOut(self, timeout: float) -> None:
        self._readTimer = None
        self._timedOut(ReadTimeoutError(self._connection.key, timeout))

    def _timedOut(self, error: Any) -> None:
        connection = self._connection
        this: Any = connection
        connection.owner.streamTimedOut(this, error)
        self._reset()
        self._fail(Failure(error))

    def _cancel(self, d: Deferred[Any]) -> None:
        """
        The request's Deferred was cancelled: reset the stream; the
        Deferred fails with L{twisted.internet.defer.CancelledError}.
        """
        if not self._done:
            self._reset()
            self._release()

    # The response's view of its stream (what _Response calls)

    def _pauseReading(self) -> None:
        if self._paused:
            return
        self._paused = True
        cancelCall(self._readTimer)
        self._readTimer = None

    def _resumeReading(self) -> None:
        if not self._paused:
            return
        self._paused = False
        held, self._held = self._held, []
        response = self.response
        connection = self._connection
        for index, (data, flowLength) in enumerate(held):
            if response is None:
                break
            response._bodyData(data)
            connection.acknowledge(self.streamId, flowLength)
            if self._paused:
                self._held = held[index + 1 :] + self._held
                connection.flush()
                return
        connection.flush()
        if self._done and response is not None:
            response._end(RESPONSE_DONE)
        else:
            self._startReadTimer()

    def _abortResponse(self, response: _Response) -> None:
        """
        The body protocol does not want the rest: reset the stream.
        """
        if not self._done:
            self._reset()
            self._release()
            reason = Failure(ResponseFailed([Failure(ConnectionAborted())]))
            self._endTrace(reason)
            # Ended on the next turn, as an aborted HTTP/1.1 connection
            # is: a body Deferred cancelled fails with CancelledError.
            self._connection.owner.reactor.callLater(0, response._end, reason)
        elif self._held:
            self._dropHeld()
            response._end(Failure(ResponseFailed([Failure(ConnectionAborted())])))
