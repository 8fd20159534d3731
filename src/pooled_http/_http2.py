"""
An HTTP/2 connection for the pool, on C{h2} (the C{pooled_http[http2]}
extra), behind the same contract as the HTTP/1.1 ones
(L{pooled_http._contract}): many requests at once, each one a stream
(L{pooled_http._http2stream}), up to the connection's I{capacity} — the
smaller of the server's C{SETTINGS_MAX_CONCURRENT_STREAMS} and the pool's
C{maxConcurrentStreams}.

It reports to its owner as the HTTP/1.1 connections do, with one
difference: C{connectionQuiescent} means I{one stream is done}, and
C{connectionCapacityChanged} says when the server's settings change the
capacity, or when it is 0 (a C{GOAWAY} arrived: no new stream).

The connection is built by L{pooled_http._negotiate} once ALPN chose
C{h2}; L{whenReady} fires once the server's first C{SETTINGS} frame
arrived, so the pool's connect timeout covers TLS and the SETTINGS
exchange.  This module imports C{h2}: import it only when HTTP/2 is used.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Any

import h2.events as ev
from h2.config import H2Configuration
from h2.errors import ErrorCodes
from h2.exceptions import (
    DenialOfServiceError,
    ProtocolError,
)
from h2.settings import SettingCodes
from hpack.exceptions import OversizedHeaderListError
from twisted.internet.base import DelayedCall
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web._newclient import ResponseFailed, ResponseNeverReceived

from ._connbase import ConnectionBase
from ._contract import ConnectionOwner
from ._h2headers import CheckedHeaders
from ._h2load import LearntLimit
from ._h2machine import _H2Connection
from ._hpackcache import CachingDecoder, CachingEncoder
from ._http2stream import Stream
from ._lifecycle import Lifecycle
from .errors import (
    HTTP2ProtocolError,
    ResponseHeadersTooLargeError,
    StreamResetError,
    UnprocessedStreamError,
)

__all__ = ["HTTP2Connection", "STREAM_WINDOW"]

#: The flow-control window each stream grants the server (our
#: C{SETTINGS_INITIAL_WINDOW_SIZE}): the most body bytes held for a
#: response nobody reads.
STREAM_WINDOW = 1 << 20

_MAX_WINDOW = (1 << 31) - 1

class HTTP2Connection(ConnectionBase, Protocol):
    """
    One HTTP/2 connection of the pool.

    @ivar h2: The C{h2} state machine.
    @ivar capacity: How many requests it may carry at once now; C{0} once
        it takes no new one.
    @ivar goingAway: Whether the server sent C{GOAWAY} (or we did).
    """

    def __init__(self, owner: ConnectionOwner, key: Hashable) -> None:
        """
        @param owner: What it reports to.
        @param key: The pool key.
        """
        self._initConnection(owner, key)
        self.handshakeDone = True
        self.transport: Any = None
        self.h2 = _H2Connection(
            config=H2Configuration(
                client_side=True,
                header_encoding=None,
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
                # Checked in Stream.headersReceived, much faster.
                validate_inbound_headers=False,
                # It only joins split Cookie fields, which responses have not.
                normalize_inbound_headers=False,
            )
        )
        # Same coders, with a memo of the blocks just coded (a burst of
        # like requests and responses codes each block once).
        decoder = CachingDecoder()
        decoder.max_header_list_size = self.h2.decoder.max_header_list_size
        self.h2.encoder = CachingEncoder()
        self.h2.decoder = decoder
        self.capacity: int | None = 1
        self.goingAway = False
        self._streams: dict[int, Stream] = {}
        self._waiting: deque[Stream] = deque()
        self._learnt = LearntLimit()
        self._ready: Deferred[HTTP2Connection] | None = Deferred()
        self._announced = False
        self._settingsSeen = False
        self._scheme = b"https"
        self._receiving = False
        #: The connection's receive window granted so far.
        self._connectionWindow = 65535
        #: The response header lists already checked on this connection.
        self.checkedHeaders: CheckedHeaders = {}

    def __repr__(self) -> str:
        return (
            f"<HTTP2Connection {self.key!r} streams={len(self._streams)} "
            f"capacity={self.capacity}>"
        )

    @property
    def state(self) -> str:
        """
        C{"QUIESCENT"} when no stream is open, C{"TRANSMITTING"} otherwise.
        """
        if self.lifecycle is Lifecycle.CLOSED:
            return "CONNECTION_LOST"
        return "TRANSMITTING" if self._streams or self._waiting else "QUIESCENT"

    @property
    def streamsInFlight(self) -> int:
        """
        Requests open on the connection (and waiting for a stream).
        """
        return len(self._streams) + len(self._waiting)

    def whenReady(self) -> Deferred[HTTP2Connection]:
        """
        A Deferred that fires with this connection once the server's
        first C{SETTINGS} frame arrived, or fails if the connection is lost
        before.  Only one caller may ask.
        """
        d = self._ready
        assert d is not None
        return d

    # The transport

    def connectionMade(self) -> None:
        """
        Send the connection preface and our settings: no server push, our
        stream window, and a connection window larger than every stream's
        together (so one unread body stops its stream, not the others).
        """
        h2 = self.h2
        h2.initiate_connection()
        h2.update_settings(
            {
                SettingCodes.ENABLE_PUSH: 0,
                SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                SettingCodes.MAX_HEADER_LIST_SIZE: self.owner.maxHeaderBytes,
            }
        )
        self._growConnectionWindow()
        self.flush()

    def _growConnectionWindow(self) -> None:
        """
        Make the connection's receive window larger than the windows of
        the pool's C{maxConcurrentStreams} streams together (it only
        grows).
        """
        streams = max(1, self.owner.maxConcurrentStreams)
        window = min(_MAX_WINDOW, STREAM_WINDOW * (streams + 1))
        if window > self._connectionWindow:
            self.h2.increment_flow_control_window(window - self._connectionWindow)
            self._connectionWindow = window

    def ownerSettingsChanged(self) -> None:
        """
        The pool's C{maxConcurrentStreams} changed: the capacity follows
        it (for new streams; those open go on), and so does the
        connection's window.
        """
        if self.lifecycle is Lifecycle.CLOSED:
            return
        self._growConnectionWindow()
        self.flush()
        self._updateCapacity()

    def flush(self, now: bool = False) -> None:
        """
        Write what the state machine has to send (while received bytes are
        being taken in, once they all have been: one write for all the
        streams they touched).

        @param now: Write at once all the same (the transport is about to
            be closed).
        """
        if self._receiving and not now:
            return
        data = self.h2.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def acknowledge(self, streamId: int, size: int) -> None:
        """
        C{size} flow-controlled bytes of stream C{streamId} were consumed.
        """
        if size and self.lifecycle is not Lifecycle.CLOSED:
            self.h2.acknowledge_received_data(size, streamId)
            self.flush()

    def dataReceived(self, data: bytes) -> None:
        """
        Feed the state machine and act on its events.
        """
        receiving, self._receiving = self._receiving, True
        try:
            events = self.h2.receiveFrames(data)
        except ProtocolError as e:
            self._receiving = receiving
            self.flush()
            error: Exception
            if isinstance(e, DenialOfServiceError) and isinstance(
                e.__cause__, OversizedHeaderListError
            ):
                # A header block past the MAX_HEADER_LIST_SIZE we announced:
                # the setting's own error (the connection cannot go on, its
                # header compression state is lost).
                error = ResponseHeadersTooLargeError(self.key, self.owner.maxHeaderBytes)
            else:
                error = HTTP2ProtocolError(self.key, str(e) or type(e).__name__)
            self._broken(error)
            return
        handlers = _HANDLERS
        try:
            for event in events:
                handler = handlers.get(type(event))
                if handler is not None:
                    handler(self, event)
                if self.lifecycle is Lifecycle.CLOSED:
                    return
        finally:
            self._receiving = receiving
        self.flush()
        if self._settingsSeen:
            # Announced once everything that arrived with the first
            # SETTINGS has been taken in (a second SETTINGS frame, say).
            self._settingsSeen = False
            ready, self._ready = self._ready, None
            if ready is not None:
                self._announced = True
                ready.callback(self)

    # The events (dispatched by type through _HANDLERS)

    def _onData(self, event: Any) -> None:
        streamId = event.stream_id
        stream = self._streams.get(streamId)
        if stream is not None:
            stream.dataReceived(event.data or b"", event.flow_controlled_length)
        else:
            self.acknowledge(streamId, event.flow_controlled_length)

    def _onDataFrame(self, frame: tuple[int, bytes, int, bool]) -> None:
        # A DATA frame taken in by _H2Connection.receiveFrames: what
        # _onData, then (at its end) _onEnded do with h2's events.
        streamId, data, length, ended = frame
        stream = self._streams.get(streamId)
        if stream is None:
            self.acknowledge(streamId, length)
            return
        stream.dataReceived(data, length)
        if ended and self.lifecycle is not Lifecycle.CLOSED:
            stream = self._streams.get(streamId)
            if stream is not None:
                stream.ended()

    def _onResponse(self, event: Any) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is not None:
            stream.headersReceived(event.headers)

    def _onEnded(self, event: Any) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is not None:
            stream.ended()

    def _onWindow(self, event: Any) -> None:
        if event.stream_id:
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream.sendBody()
        else:
            for each in list(self._streams.values()):
                each.sendBody()

    def _onReset(self, event: Any) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is not None:
            self._streamReset(stream, event.error_code)

    def _onSettings(self, event: Any) -> None:
        self._settingsChanged(event.changed_settings)

    def _onGoAway(self, event: Any) -> None:
        self._goAway(event.last_stream_id, event.error_code)

    def _onPush(self, event: Any) -> None:
        self.h2.reset_stream(event.pushed_stream_id, ErrorCodes.REFUSED_STREAM)

    # Settings and capacity

    def _settingsChanged(self, changed: dict[Any, Any]) -> None:
        if SettingCodes.INITIAL_WINDOW_SIZE in changed:
            for stream in list(self._streams.values()):
                stream.sendBody()
        self._updateCapacity()
        self._startWaiting()
        if self._ready is not None:
            self._settingsSeen = True

    def _advertisedLimit(self) -> int:
        return int(self.h2.remote_settings.max_concurrent_streams)

    def _serverLimit(self) -> int:
        return self._learnt.applied(self._advertisedLimit())

    def _refused(self, stream: Stream) -> bool:
        """
        The server refused C{stream}: learn from it (L{LearntLimit}).

        @return: Whether it was refused while busy with older streams (the
            retry may then go on this connection).
        """
        older = sum(1 for streamId in self._streams if streamId < stream.streamId)
        if not self._learnt.refused(older):
            return False
        self._updateCapacity()
        return True

    def _updateCapacity(self) -> None:
        if self.goingAway:
            capacity = 0
        else:
            capacity = max(1, min(self._serverLimit(), self.owner.maxConcurrentStreams))
        if capacity != self.capacity:
            self.capacity = capacity
            if self._announced and self.lifecycle is not Lifecycle.CLOSED:
                this: Any = self
                self.owner.connectionCapacityChanged(this)

    # Requests

    def request(self, request: Any) -> Deferred[Any]:
        """
        Send one request on a new stream (or as soon as the server allows
        another stream) and return the Deferred of its response.
        """
        stream = Stream(self, request)
        if self.goingAway or self.lifecycle in (Lifecycle.CLOSING, Lifecycle.CLOSED):
            # Handed out as the server said GOAWAY: the slot it took is
            # given back as the request fails (and the lease retries it).
            self._waiting.append(stream)
            stream.fail(
                Failure(
                    UnprocessedStreamError(self.key, "the connection is going away")
                )
            )
            return stream.deferred
        self.requestsServed += 1
        if len(self._streams) < self._serverLimit():
            self._start(stream)
        else:
            self._waiting.append(stream)
        return stream.deferred

    def _start(self, stream: Stream) -> None:
        try:
            streamId = self.h2.get_next_available_stream_id()
        except ProtocolError:
            # Stream ids ran out: this connection takes no new stream.
            self._stopNewStreams()
            stream.fail(Failure(UnprocessedStreamError(self.key, "no stream id left")))
            return
        self._streams[streamId] = stream
        try:
            stream.start(streamId, self._scheme)
        except ProtocolError as e:
            # The state machine refused the stream (the server's settings
            # changed under it): it was never sent.
            stream.fail(Failure(UnprocessedStreamError(self.key, f"not sent: {e}")))
        self.flush()

    def _startWaiting(self) -> None:
        while self._waiting and len(self._streams) < self._serverLimit():
            self._start(self._waiting.popleft())

    def streamDone(self, stream: Stream) -> None:
        """
        C{stream} is over: free its slot and tell the owner (one request
        done), then start a request waiting for a stream.
        """
        if self._streams.get(stream.streamId) is stream:
            del self._streams[stream.streamId]
            if stream.response is not None and self._learnt.answered(
                self._advertisedLimit()
            ):
                self._updateCapacity()
        else:
            try:
                self._waiting.remove(stream)
            except ValueError:
                return
        self.flush()
        if self.lifecycle is Lifecycle.ACTIVE:
            this: Any = self
            self.owner.connectionQuiescent(this)
        self._startWaiting()

    def resetStream(self, stream: Stream, code: int) -> None:
        """
        Reset C{stream} with error C{code}.
        """
        if stream.streamId and self.lifecycle is not Lifecycle.CLOSED:
            try:
                self.h2.reset_stream(stream.streamId, code)
            except ProtocolError:
                pass
            self.flush()

    def _streamReset(self, stream: Stream, code: int) -> None:
        failure: Failure
        if code == ErrorCodes.REFUSED_STREAM and stream.response is None:
            failure = Failure(
                UnprocessedStreamError(
                    self.key,
                    "the server refused the stream",
                    stream.bodyStarted,
                    refused=self._refused(stream),
                )
            )
        else:
            failure = Failure(StreamResetError(self.key, stream.streamId, code))
        stream.fail(failure)

    # Going away

    def _stopNewStreams(self) -> None:
        if not self.goingAway:
            self.goingAway = True
            self.reusable = False
            self._updateCapacity()

    def _goAway(self, lastStreamId: int, errorCode: int) -> None:
        """
        The server sent C{GOAWAY}: the streams above C{lastStreamId} were
        never processed and fail as such (the lease retries them); those
        at or below it finish; no new stream starts.
        """
        self._stopNewStreams()
        unprocessed = [s for i, s in self._streams.items() if i > lastStreamId]
        unprocessed.extend(self._waiting)
        for stream in unprocessed:
            stream.fail(
                Failure(
                    UnprocessedStreamError(
                        self.key,
                        f"the server sent GOAWAY with last stream id {lastStreamId}",
                        stream.bodyStarted,
                    )
                )
            )
        if not self._announced:
            self.abortTransport()

    def close(self, gracePeriod: float) -> None:
        """
        Close politely: send C{GOAWAY}, then close the transport (aborted
        if it is not gone after C{gracePeriod} seconds).
        """
        if self.lifecycle in (Lifecycle.CLOSED, Lifecycle.CLOSING):
            return
        if self.transport is not None:
            try:
                self.h2.close_connection()
            except ProtocolError:
                pass
            self.flush(now=True)
        ConnectionBase.close(self, gracePeriod)

    def abort(self) -> Deferred[None]:
        """
        Abort the connection, failing every request on it.
        """
        d = self.whenLost()
        self.abortTransport()
        return d

    def _broken(self, error: Exception) -> None:
        """
        The connection cannot go on: fail every stream with C{error}, tell
        the owner it is given up, and drop the transport.
        """
        failure = Failure(error)
        self._failAll(failure)
        if self._announced and self.lifecycle is Lifecycle.ACTIVE:
            this: Any = self
            self.owner.connectionGivenUp(this, failure)
        self.abortTransport()

    def _failAll(self, failure: Failure) -> None:
        streams = list(self._streams.values()) + list(self._waiting)
        self._streams.clear()
        self._waiting.clear()
        for stream in streams:
            stream.fail(failure)

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        """
        The transport is gone: fail what was in flight, move to C{CLOSED},
        tell the owner and fire the
        L{whenLost<pooled_http._connbase.ConnectionBase.whenLost>} watchers.
        """
        if self.lifecycle is Lifecycle.CLOSED:
            return
        self._connectionGone()
        previous = self.lifecycle
        self.lifecycle = Lifecycle.CLOSED
        streams = list(self._streams.values()) + list(self._waiting)
        self._streams.clear()
        self._waiting.clear()
        for stream in streams:
            if stream.response is None:
                stream.fail(Failure(ResponseNeverReceived([reason])))
            else:
                stream.fail(Failure(ResponseFailed([reason])))
        ready, self._ready = self._ready, None
        if ready is not None:
            ready.errback(
                reason
                if not reason.check(ConnectionDone)
                else Failure(ConnectionLost("closed before the HTTP/2 SETTINGS"))
            )
        if self._announced:
            this: Any = self
            self.owner.connectionLost(this, previous, reason)
        self._fireLost()

    def pendingCalls(self) -> list[DelayedCall]:
        """
        The connection's and its streams' timers still to run.
        """
        calls = ConnectionBase.pendingCalls(self)
        for stream in self._streams.values():
            calls.extend(stream.pendingCalls())
        return calls


#: What the connection does with each kind of event (the others, such as
#: informational responses, are ignored).
_HANDLERS: dict[type, Any] = {
    ev.DataReceived: HTTP2Connection._onData,
    tuple: HTTP2Connection._onDataFrame,
    ev.ResponseReceived: HTTP2Connection._onResponse,
    ev.StreamEnded: HTTP2Connection._onEnded,
    ev.WindowUpdated: HTTP2Connection._onWindow,
    ev.StreamReset: HTTP2Connection._onReset,
    ev.RemoteSettingsChanged: HTTP2Connection._onSettings,
    ev.ConnectionTerminated: HTTP2Connection._onGoAway,
    ev.PushedStreamReceived: HTTP2Connection._onPush,
}


def http2ConnectionFactory(owner: ConnectionOwner, key: Hashable) -> HTTP2Connection:
    """
    The L{pooled_http._contract.ConnectionFactory} of HTTP/2 connections.
    """
    return HTTP2Connection(owner, key)
