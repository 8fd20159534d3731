"""
Our subclasses of C{h2}'s client connection and stream state machines, for
L{pooled_http._http2}: a cheaper count of open streams, a connection kept
open after a C{GOAWAY} for the streams it still completes, frames taken in
without a trace log line formatted for each, request header blocks framed
without re-encoding, and no I{Content-Length} checks of C{h2}'s own (a
malformed response is a stream error, checked by
L{pooled_http._http2stream.Stream}).  They lean on C{h2}'s internals and
are tested against the C{h2} releases declared.
"""

from __future__ import annotations

from typing import Any

from h2.connection import ConnectionState, H2Connection
from h2.errors import ErrorCodes
from h2.exceptions import StreamClosedError, StreamIDTooLowError
from h2.stream import H2Stream, StreamInputs
from h2.utilities import HeaderValidationFlags
from hyperframe.frame import ContinuationFrame, HeadersFrame, RstStreamFrame

__all__: list[str] = []

#: How many streams (open, or closed and not yet forgotten) the state
#: machine may keep before it counts the open ones exactly.
_COUNT_AT = 128


#: The header validation flags of every header block: unused, as h2's
#: header validation and normalisation are all off.
_NO_FLAGS = HeaderValidationFlags(
    is_client=True, is_trailer=False, is_response_header=False, is_push_promise=False
)


class _H2Stream(H2Stream):
    """
    C{h2}'s stream state machine, without its I{Content-Length} checks and
    without building header validation flags nothing reads.

    C{h2} raises a body longer or shorter than the response's
    I{Content-Length} (or an invalid one) as a connection error: it sends
    C{GOAWAY}, loses the events of the frames read before it and every
    other stream on the connection.  RFC 9113 (8.1.1) makes such a
    response malformed, a stream error, so L{pooled_http._http2stream.Stream}
    checks the length itself and resets only that stream.
    """

    def _initialize_content_length(self, headers: Any) -> None:
        pass

    def _track_content_length(self, length: int, end_stream: bool) -> None:
        pass

    def _build_hdr_validation_flags(self, events: Any) -> HeaderValidationFlags:
        return _NO_FLAGS

    def send_headers(
        self, headers: Any, encoder: Any, end_stream: bool = False
    ) -> list[Any]:
        """
        The frames of a request's header block, as C{h2} makes them, for
        the one kind of block sent here: a client's request headers from
        L{pooled_http._http2stream.requestHeaders}, already bytes, in lower
        case, C{:method} first and C{:authority} third, never trailers.
        (C{h2} re-encodes every block to bytes, checks for an informational
        response, which only a server sends, and reads the method and
        authority by walking the block.)
        """
        machine = self.state_machine
        machine.process_input(StreamInputs.SEND_HEADERS)
        block = encoder.encode(headers)
        size = self.max_outbound_frame_size or len(block) or 1
        first = HeadersFrame(self.stream_id)
        first.data = block[:size]
        frames: list[Any] = [first]
        for start in range(size, len(block), size):
            more = ContinuationFrame(self.stream_id)
            more.data = block[start : start + size]
            frames.append(more)
        frames[-1].flags.add("END_HEADERS")
        if end_stream:
            machine.process_input(StreamInputs.SEND_END_STREAM)
            first.flags.add("END_STREAM")
        self.request_method = headers[0][1]
        if self._authority is None:
            self._authority = headers[2][1]
        return frames


class _H2Connection(H2Connection):
    """
    C{h2}'s client state machine, with a cheaper stream count, kept open
    after a C{GOAWAY} arrives, its streams without their I{Content-Length}
    checks (L{_H2Stream}).

    C{h2} takes no frame at all once a C{GOAWAY} arrived (not even those
    after it in the same read), but the streams up to its last stream id
    may still complete (RFC 9113, section 6.8).  No new stream starts on a
    connection going away (L{pooled_http._http2.HTTP2Connection.goingAway}).

    C{h2} counts the open outbound streams, walking all of them, before
    every new stream (to refuse one above the server's
    C{SETTINGS_MAX_CONCURRENT_STREAMS}) and forgets the closed ones as it
    goes: a burst of M{n} requests walked M{n^2/2} streams.  While the
    streams it holds are fewer than the server's limit and than
    L{_COUNT_AT}, their number is an upper bound of the open ones that
    answers that check the same way; beyond, it counts exactly (and
    forgets the closed ones), so at most L{_COUNT_AT} closed streams are
    kept a little longer than they would be.
    """

    @property
    def open_outbound_streams(self) -> int:
        """
        The open outbound streams, or an upper bound of them below the
        server's limit (see the class docstring).
        """
        held = len(self.streams)
        if held < _COUNT_AT and held < self.remote_settings.max_concurrent_streams:
            return held
        count: int = H2Connection.open_outbound_streams.fget(self)  # type: ignore[attr-defined]
        return count

    def _begin_new_stream(self, stream_id: int, allowed_ids: Any) -> H2Stream:
        stream = H2Connection._begin_new_stream(self, stream_id, allowed_ids)
        stream.__class__ = _H2Stream
        return stream

    def _receive_frame(self, frame: Any) -> Any:
        """
        Take one frame in, as C{h2} does, without formatting it for a trace
        log line first (C{h2} formats every frame, logged or not).  A frame
        on a stream we or the server reset is answered with C{RST_STREAM};
        one on a stream closed otherwise is a connection error (RFC 9113,
        5.1), raised.
        """
        try:
            frames, events = self._frame_dispatch_table[frame.__class__](frame)
        except StreamClosedError as e:
            if not self._stream_is_closed_by_reset(e.stream_id):
                raise
            self._resetAgain(e.stream_id, e.error_code)
            result: list[Any] = e._events
            return result
        except StreamIDTooLowError as e:
            if self._stream_is_closed_by_reset(e.stream_id):
                self._resetAgain(e.stream_id, ErrorCodes.STREAM_CLOSED)
                return []
            if self._stream_is_closed_by_end(e.stream_id):
                raise StreamClosedError(e.stream_id) from e
            raise
        self._prepare_for_sending(frames)
        return events

    def _resetAgain(self, streamId: int, code: int) -> None:
        frame = RstStreamFrame(streamId)
        frame.error_code = code
        self._prepare_for_sending([frame])

    def _receive_goaway_frame(self, frame: Any) -> Any:
        result = H2Connection._receive_goaway_frame(self, frame)
        if self.state_machine.state is ConnectionState.CLOSED:
            self.state_machine.state = ConnectionState.CLIENT_OPEN
        return result
