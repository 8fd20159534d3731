"""
L{pooled_http._h2machine._H2Connection.receiveFrames}: the C{DATA} frames
it takes in itself end as C{h2}'s C{receive_data} would end them: the same
bodies and ends in the same order, the same windows and stream states, and
the same errors, whole or split at every byte.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

try:
    from h2.config import H2Configuration
    from h2.connection import H2Connection
    from h2.events import DataReceived, StreamEnded
    from h2.settings import SettingCodes

    from pooled_http._h2machine import _H2Connection
except ImportError:  # pragma: no cover - h2 missing
    SKIP = "h2 is not installed"
else:
    SKIP = ""

_REQUEST = [
    (b":method", b"GET"),
    (b":scheme", b"https"),
    (b":authority", b"127.0.0.1"),
    (b":path", b"/"),
]


def _config(client: bool) -> Any:
    return H2Configuration(
        client_side=client,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=False,
        normalize_inbound_headers=False,
    )


def _pair(
    streams: int = 2,
    streamWindow: int | None = None,
    headerListSize: int | None = None,
) -> tuple[Any, Any]:
    """
    A client (ours) and a server with the settings exchanged and
    C{streams} requests sent (streams 1, 3, ...), none answered.

    @param streamWindow: The window the client grants each stream, if not
        C{h2}'s default (the connection's stays the default).
    @param headerListSize: The largest header list the client decodes, if
        not C{h2}'s default.
    """
    client = _H2Connection(config=_config(True))
    if headerListSize is not None:
        client.decoder.max_header_list_size = headerListSize
    server = H2Connection(config=_config(False))
    client.initiate_connection()
    if streamWindow is not None:
        client.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: streamWindow})
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    for i in range(streams):
        client.send_headers(1 + 2 * i, _REQUEST, end_stream=True)
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.data_to_send()
    return client, server


def _normal(found: list[Any]) -> list[tuple[Any, ...]]:
    """
    Events and taken-in frames in one form: C{("data", id, bytes,
    flow-controlled length)}, C{("end", id)}, or the event's type and
    stream.
    """
    out: list[tuple[Any, ...]] = []
    for item in found:
        if type(item) is tuple:
            streamId, data, length, ended = item
            out.append(("data", streamId, data, length))
            if ended:
                out.append(("end", streamId))
        elif isinstance(item, DataReceived):
            out.append(("data", item.stream_id, item.data, item.flow_controlled_length))
        elif isinstance(item, StreamEnded):
            out.append(("end", item.stream_id))
        else:
            out.append(
                (
                    type(item).__name__,
                    getattr(item, "stream_id", None),
                    getattr(item, "headers", None),
                )
            )
    return out


def _state(client: Any) -> tuple[Any, ...]:
    return (
        client.state_machine.state,
        client._inbound_flow_control_window_manager.current_window_size,
        sorted(
            (
                streamId,
                stream.state_machine.state,
                stream.state_machine.stream_closed_by,
                stream._inbound_window_manager.current_window_size,
            )
            for streamId, stream in client.streams.items()
        ),
        client.data_to_send(),
    )


def _outcome(
    feed: Callable[[Any, bytes], list[Any]], client: Any, chunks: list[bytes]
) -> tuple[Any, ...]:
    found: list[Any] = []
    error = None
    try:
        for chunk in chunks:
            found.extend(feed(client, chunk))
    except Exception as e:
        error = type(e)
    return (_normal(found), error, _state(client))


class _SameOutcome(SynchronousTestCase):
    """
    Each script of server frames gives the same outcome through
    C{receiveFrames} as through C{receive_data}, fed whole and split at
    every byte.
    """

    if SKIP:
        skip = SKIP

    def assertSameOutcome(
        self, script: Callable[[Any], object], **pairOptions: Any
    ) -> None:
        """
        Run C{script(server)} against two like client/server pairs; feed
        what the server wrote to one client with C{receiveFrames}, to the
        other with C{receive_data}: whole, then split in two at every
        byte (at most 600 places: a long script is split at every
        M{n}th byte and around every frame header) on fresh pairs.
        """
        _, server = _pair(**pairOptions)
        script(server)
        wire = server.data_to_send()
        self.assertTrue(wire)
        places = set(range(1, len(wire), max(1, len(wire) // 500)))
        at = 0
        while at + 9 <= len(wire):
            places.update(range(max(1, at - 1), min(len(wire), at + 11)))
            at += 9 + int.from_bytes(wire[at : at + 3], "big")
        splits = [[wire]] + [[wire[:i], wire[i:]] for i in sorted(places)]
        for chunks in splits:
            outcomes = []
            for feed in (_H2Connection.receiveFrames, H2Connection.receive_data):
                client, peer = _pair(**pairOptions)
                script(peer)
                self.assertEqual(peer.data_to_send(), wire)
                outcomes.append(_outcome(feed, client, chunks))
            self.assertEqual(outcomes[0], outcomes[1], f"split {len(chunks[0])}")


class ReceiveFramesTests(_SameOutcome):
    """
    C{DATA} frames: bodies, ends, padding, windows, and the frames that
    are h2's to refuse.
    """

    def test_bodiesAndEnds(self) -> None:
        """
        Heads, bodies in several frames, an empty frame that ends a stream,
        and a body whose last frame ends it, on two interleaved streams.
        """

        def script(server: Any) -> None:
            server.send_headers(1, [(b":status", b"200")])
            server.send_headers(3, [(b":status", b"200")])
            server.send_data(1, b"a" * 100)
            server.send_data(3, b"b" * 10, end_stream=True)
            server.send_data(1, b"c" * 5)
            server.send_data(1, b"", end_stream=True)

        self.assertSameOutcome(script)

    def test_taken(self) -> None:
        """
        A plain C{DATA} frame is taken in by C{receiveFrames} itself (a
        tuple, not C{h2}'s event).
        """
        client, server = _pair(1)
        server.send_headers(1, [(b":status", b"200")])
        server.send_data(1, b"xyz", end_stream=True)
        found = client.receiveFrames(server.data_to_send())
        self.assertEqual(found[-1], (1, b"xyz", 3, True))

    def test_padded(self) -> None:
        """
        A padded frame (left to h2) counts its padding against the window.
        """

        def script(server: Any) -> None:
            server.send_headers(1, [(b":status", b"200")])
            server.send_data(1, b"p" * 20, pad_length=7)
            server.send_data(1, b"q", end_stream=True)

        self.assertSameOutcome(script)

    def test_pastTheWindow(self) -> None:
        """
        More body than the stream's window is a flow-control error, the
        same one.
        """

        def script(server: Any) -> None:
            server.send_headers(1, [(b":status", b"200")])
            server.send_data(1, b"x" * 16384)
            server.send_data(1, b"x" * 16384)
            server.send_data(1, b"x" * 16384)
            server.send_data(1, b"x" * 16384)
            server.send_data(1, b"x" * 100)

        # h2's server keeps to our window: write the frame it would refuse.
        def overfill(server: Any) -> None:
            server.outbound_flow_control_window = 1 << 30
            server.streams[1].outbound_flow_control_window = 1 << 30
            script(server)

        self.assertSameOutcome(overfill)

    def test_pastTheStreamWindow(self) -> None:
        """
        More body than a stream's window, within the connection's, is a
        flow-control error too; a body that fills it exactly is not.
        """

        def script(server: Any) -> None:
            server.send_headers(1, [(b":status", b"200")])
            server.send_headers(3, [(b":status", b"200")])
            server.send_data(3, b"y" * 1000)
            server.streams[1].outbound_flow_control_window = 1 << 20
            server.send_data(1, b"x" * 1001)

        self.assertSameOutcome(script, streamWindow=1000)

    def test_dataBeforeHeaders(self) -> None:
        """
        Body bytes before the response head are a protocol error.
        """

        def script(server: Any) -> None:
            server.streams[1].state_machine.headers_sent = True
            server._data_to_send += _dataFrame(1, b"early")

        self.assertSameOutcome(script)

    def test_unknownStream(self) -> None:
        """
        A frame on a stream never opened is h2's to refuse.
        """

        def script(server: Any) -> None:
            server._data_to_send += _dataFrame(7, b"nobody")

        self.assertSameOutcome(script)

    def test_afterTheEnd(self) -> None:
        """
        A frame on a stream the server already ended is h2's to refuse.
        """

        def script(server: Any) -> None:
            server.send_headers(1, [(b":status", b"200")], end_stream=True)
            server._data_to_send += _dataFrame(1, b"late")

        self.assertSameOutcome(script)

    def test_insideAHeaderBlock(self) -> None:
        """
        A C{DATA} frame between a C{HEADERS} frame and its C{CONTINUATION}
        is h2's to refuse.
        """

        def script(server: Any) -> None:
            server.send_headers(1, [(b":status", b"200")])
            server.send_data(1, b"ok")
            # HEADERS of stream 3 without END_HEADERS, then DATA on 1.
            server._data_to_send += (
                b"\x00\x00\x01\x01\x00\x00\x00\x00\x03\x88" + _dataFrame(1, b"x")
            )

        self.assertSameOutcome(script)

    def test_tooLarge(self) -> None:
        """
        A frame above our frame size is refused on its header, by h2.
        """

        def script(server: Any) -> None:
            server.send_headers(1, [(b":status", b"200")])
            server._data_to_send += _dataFrame(1, b"x" * 16385)

        self.assertSameOutcome(script)


def _frame(kind: int, streamId: int, data: bytes, flags: int = 0) -> bytes:
    return (
        len(data).to_bytes(3, "big")
        + bytes([kind, flags])
        + streamId.to_bytes(4, "big")
        + data
    )


def _dataFrame(streamId: int, data: bytes, flags: int = 0) -> bytes:
    return _frame(0, streamId, data, flags)


class ReceiveHeadsTests(_SameOutcome):
    """
    The same for response heads: interim, ending the stream, trailers,
    split in C{CONTINUATION} frames, too large, undecodable.
    """

    def test_interimThenFinal(self) -> None:
        """
        A 103 then the response, with the body.
        """

        def script(server: Any) -> None:
            server.send_headers(1, [(b":status", b"103"), (b"link", b"</a>")])
            server.send_headers(1, [(b":status", b"200"), (b"x-a", b"1")])
            server.send_data(1, b"body", end_stream=True)

        self.assertSameOutcome(script)

    def test_headEndsStream(self) -> None:
        """
        A head with C{END_STREAM}: a response without a body.
        """

        def script(server: Any) -> None:
            server.send_headers(1, [(b":status", b"204")], end_stream=True)
            server.send_headers(3, [(b":status", b"304")], end_stream=True)

        self.assertSameOutcome(script)

    def test_interimEndsStream(self) -> None:
        """
        An interim head with C{END_STREAM} is a protocol error.
        """

        def script(server: Any) -> None:
            block = server.encoder.encode([(b":status", b"100")])
            server._data_to_send += _frame(1, 1, block, 0x5)

        self.assertSameOutcome(script)

    def test_trailers(self) -> None:
        """
        Trailers after a body (left to h2).
        """

        def script(server: Any) -> None:
            server.send_headers(1, [(b":status", b"200")])
            server.send_data(1, b"abc")
            server.send_headers(1, [(b"x-checksum", b"1")], end_stream=True)

        self.assertSameOutcome(script)

    def test_continuation(self) -> None:
        """
        A head split over C{HEADERS} and C{CONTINUATION} (left to h2).
        """

        def script(server: Any) -> None:
            block = server.encoder.encode(
                [(b":status", b"200"), (b"x-long", b"v" * 300)]
            )
            server._data_to_send += _frame(1, 1, block[:100]) + _frame(
                9, 1, block[100:], 0x4
            )
            server.send_data(1, b"", end_stream=True)

        self.assertSameOutcome(script)

    def test_pastHeaderListSize(self) -> None:
        """
        A head past the header list size the client announced.
        """

        def script(server: Any) -> None:
            # Twice the size announced; h2's HPACK coding is pure Python
            # and every split codes the block anew, so no bigger.
            server.send_headers(1, [(b":status", b"200"), (b"x-big", b"v" * 2000)])

        self.assertSameOutcome(script, headerListSize=1000)

    def test_undecodable(self) -> None:
        """
        A header block HPACK cannot decode.
        """

        def script(server: Any) -> None:
            server._data_to_send += _frame(1, 1, b"\xff\xff\xff\xff", 0x4)

        self.assertSameOutcome(script)
