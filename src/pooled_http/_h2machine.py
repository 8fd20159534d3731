"""
Our subclasses of C{h2}'s client connection and stream state machines, for
L{pooled_http._http2}: a cheaper count of open streams, a connection kept
open after a C{GOAWAY} for the streams it still completes, frames taken in
without a trace log line formatted for each, request header blocks framed
without re-encoding, no I{Content-Length} checks of C{h2}'s own (a
malformed response is a stream error, checked by
L{pooled_http._http2stream.Stream}), and the common C{DATA} frame taken in
without C{h2}'s frame and event objects.  They lean on C{h2}'s internals
and are tested against the C{h2} releases declared.
"""

from __future__ import annotations

from struct import Struct
from typing import Any

from h2.connection import ConnectionState, H2Connection, _decode_headers
from h2.errors import ErrorCodes
from h2.exceptions import ProtocolError, StreamClosedError, StreamIDTooLowError
from h2.stream import H2Stream, StreamInputs, StreamState
from h2.utilities import HeaderValidationFlags
from hyperframe.frame import RstStreamFrame

__all__: list[str] = []

#: A frame header: length (24 bits, as 16 + 8), type, flags, stream id.
_FRAME_HEADER = Struct(">HBBBL")

#: Frame types and flags (RFC 9113, section 6).
_DATA = 0x0
_HEADERS = 0x1
_CONTINUATION = 0x9
_END_STREAM = 0x1
_END_HEADERS = 0x4
#: The flags of a C{HEADERS} frame that holds a whole block, with
#: C{END_STREAM} added.
_WHOLE_HEAD = _END_HEADERS | _END_STREAM

#: The states in which a stream takes the server's C{DATA} frames.
_RECEIVING = (StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL)

#: How many streams (open, or closed and not yet forgotten) the state
#: machine may keep before it counts the open ones exactly.
_COUNT_AT = 128


#: The header validation flags of every header block: unused, as h2's
#: header validation and normalisation are all off.
_NO_FLAGS = HeaderValidationFlags(
    is_client=True, is_trailer=False, is_response_header=False, is_push_promise=False
)


class _Framed:
    """
    A frame already serialized, as C{h2} takes the frames a stream's
    C{send_headers} returns (their C{serialize()} and C{body_len}).
    """

    __slots__ = ("body_len", "_frame")

    def __init__(self, frame: bytes, bodyLength: int) -> None:
        self._frame = frame
        self.body_len = bodyLength

    def serialize(self) -> bytes:
        return self._frame


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
        The frames of a request's header block, as C{h2} makes them but
        serialized at once, for the one kind of block sent here: a
        client's request headers from
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
        streamId = self.stream_id
        if end_stream:
            machine.process_input(StreamInputs.SEND_END_STREAM)
        frames: list[Any] = []
        kind, flags = _HEADERS, _END_STREAM if end_stream else 0
        start = 0
        while True:
            piece = block[start : start + size]
            start += size
            last = start >= len(block)
            frames.append(
                _Framed(
                    _FRAME_HEADER.pack(
                        len(piece) >> 8,
                        len(piece) & 0xFF,
                        kind,
                        flags | _END_HEADERS if last else flags,
                        streamId,
                    )
                    + piece,
                    len(piece),
                )
            )
            if last:
                break
            kind, flags = _CONTINUATION, 0
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

    #: The start of a frame not all read yet (see L{receiveFrames}).
    _unread = b""

    def receiveFrames(self, data: bytes) -> list[Any]:
        """
        What C{receive_data} does, the same frames in the same order, but
        the common frames of a response are taken in here, without C{h2}'s
        frame objects (L{_takes} says which): a C{DATA} frame without
        padding, for which the list holds C{(streamId, data,
        flowControlledLength, endStream)} where C{h2} would put a
        C{DataReceived} (and a C{StreamEnded}) event; and a response's
        C{HEADERS} frame holding its whole block, without padding or
        priority, for which it holds C{h2}'s events (L{_head}).  The other
        frames, and any frame the checks are not sure of, go to
        C{receive_data}, which raises what it raises.  A frame not all read
        waits here for the rest.

        @param data: Bytes from the server.
        @return: C{h2}'s events and those tuples, in frame order.
        """
        if self._unread:
            data = self._unread + data
            self._unread = b""
        size = len(data)
        found: list[Any] = []
        given = at = 0  # data[given:at] is still to go to h2
        # As h2: the limit in force when the bytes came.
        maxSize = self.max_inbound_frame_size
        while size - at >= 9:
            high, low, kind, flags, streamId = _FRAME_HEADER.unpack_from(data, at)
            length = high << 8 | low
            if length > maxSize:
                # h2 refuses it as soon as it reads its header.
                found.extend(self.receive_data(data[given:]))
                return found
            end = at + 9 + length
            if end > size:
                break
            if (
                (kind == _DATA and flags | _END_STREAM == _END_STREAM)
                or (kind == _HEADERS and flags | _END_STREAM == _WHOLE_HEAD)
            ) and streamId in self.streams:
                if at > given:
                    found.extend(self.receive_data(data[given:at]))
                    given = at
                stream = self.streams.get(streamId)
                if stream is not None and self._takes(stream, kind, length):
                    ended = flags & _END_STREAM == _END_STREAM
                    if kind == _DATA:
                        stream._inbound_window_manager.window_consumed(length)
                        self._inbound_flow_control_window_manager.window_consumed(
                            length
                        )
                        if ended:
                            stream.state_machine.process_input(
                                StreamInputs.RECV_END_STREAM
                            )
                        found.append((streamId, data[at + 9 : end], length, ended))
                    else:
                        found.extend(self._head(stream, data[at + 9 : end], ended))
                    given = end
            at = end
        if at > given:
            found.extend(self.receive_data(data[given:at]))
        if at < size:
            self._unread = data[at:]
        return found

    def _takes(self, stream: H2Stream, kind: int, length: int) -> bool:
        """
        Whether L{receiveFrames} may take in a frame of C{kind} and
        C{length} on C{stream} (whose flags it checked) as C{h2} would:
        the connection open, no header block half read, the stream open on
        the server's side; for C{DATA}, the stream's head in and room in
        both windows (so C{h2} would raise nothing, and do nothing else
        than shrink them and see the stream's end); for C{HEADERS}, the
        stream's head not in yet (trailers are left to C{h2}).
        """
        machine = stream.state_machine
        if not (
            self.state_machine.state is ConnectionState.CLIENT_OPEN
            and not self.incoming_buffer._headers_buffer
            and machine.state in _RECEIVING
        ):
            return False
        if kind == _HEADERS:
            return not machine.headers_received
        return bool(
            machine.headers_received
            and length <= stream._inbound_window_manager.current_window_size
            and length <= self._inbound_flow_control_window_manager.current_window_size
        )

    def _head(self, stream: H2Stream, block: bytes, ended: bool) -> list[Any]:
        """
        A whole header block for C{stream}, taken in as C{h2} takes a
        C{HEADERS} frame (the stream decides what it is: a response, or an
        interim one), and its errors treated as C{receive_data} treats
        them: the connection is ended with the error's code.

        @return: C{h2}'s events for it.
        """
        try:
            headers = _decode_headers(self.decoder, block)
            events: list[Any] = stream.receive_headers(
                headers, ended, self.config.header_encoding
            )[1]
        except ProtocolError as e:
            self._terminate_connection(e.error_code)
            raise
        return events

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
