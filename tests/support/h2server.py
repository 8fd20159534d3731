"""
A small scripted HTTP/2 server for fault tests: a Twisted protocol on h2's
server-side connection, over TLS (ALPN C{h2}) on loopback.  By default it
answers every request with C{200} and the body C{b"<method> <path>
<request body length>"} once the request is complete; a test changes what
it does by overriding the hooks of L{Script}.
"""

from __future__ import annotations

from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes, Settings
from twisted.internet import ssl
from twisted.internet.protocol import Factory, Protocol

from tests.support.servers import LOOPBACK, TLSMaterial


class Script:
    """
    What the server does; override the hooks.

    @ivar settings: Settings the server sends in its preface.
    @ivar preface: Whether it sends its preface at all.
    @ivar connections: Every L{H2ServerProtocol} made, in order.
    @ivar requests: C{(connection index, stream id, method, path)} of every
        request received.
    @ivar resets: C{(connection index, stream id, error code)} of every
        RST_STREAM received.
    @ivar maxOpen: The most streams open at once on any connection.
    @ivar goAways: C{(connection index, error code)} of every GOAWAY
        received.
    """

    settings: dict[int, int] = {}
    #: More of h2's configuration (say, to send malformed headers).
    config: dict[str, Any] = {}
    preface = True
    #: Whether to keep every connection and request (a long soak does not).
    record = True

    def __init__(self) -> None:
        self.connections: list[H2ServerProtocol] = []
        self.connectionCount = 0
        self.live: set[H2ServerProtocol] = set()
        self.requests: list[tuple[int, int, bytes, bytes]] = []
        self.resets: list[tuple[int, int, int]] = []
        self.goAways: list[tuple[int, int]] = []
        self.maxOpen = 0

    def requestReceived(self, proto: H2ServerProtocol, streamId: int) -> None:
        """
        A request's headers arrived (nothing to do by default).
        """

    def requestComplete(self, proto: H2ServerProtocol, streamId: int) -> None:
        """
        A whole request arrived: answer it.
        """
        proto.respond(streamId)

    def connectionLost(self, proto: H2ServerProtocol) -> None:
        """
        A connection is gone (nothing to do by default).
        """


class H2ServerProtocol(Protocol):
    """
    One connection of the scripted server.
    """

    def __init__(self, script: Script) -> None:
        self.script = script
        self.index = script.connectionCount
        script.connectionCount += 1
        if script.record:
            script.connections.append(self)
        script.live.add(self)
        self.state: dict[str, Any] = {}
        self.h2 = H2Connection(
            H2Configuration(client_side=False, header_encoding=None, **script.config)
        )
        self.headers: dict[int, dict[bytes, bytes]] = {}
        self.bodies: dict[int, bytearray] = {}
        self.pendingData: dict[int, bytes] = {}
        self.open: set[int] = set()
        self.lost = False

    def connectionMade(self) -> None:
        if not self.script.preface:
            return
        self.h2.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: 100,
                **self.script.settings,
            },
        )
        self.h2.initiate_connection()
        self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.lost:
            self.transport.write(data)

    def dataReceived(self, data: bytes) -> None:
        if not self.script.preface:
            return
        try:
            events = self.h2.receive_data(data)
        except ProtocolError:
            self.flush()
            self.transport.loseConnection()
            return
        for event in events:
            if isinstance(event, RequestReceived):
                headers = dict(event.headers)
                self.headers[event.stream_id] = headers
                self.bodies[event.stream_id] = bytearray()
                self.open.add(event.stream_id)
                self.script.maxOpen = max(self.script.maxOpen, len(self.open))
                if self.script.record:
                    self.script.requests.append(
                        (
                            self.index,
                            event.stream_id,
                            headers[b":method"],
                            headers[b":path"],
                        )
                    )
                self.script.requestReceived(self, event.stream_id)
            elif isinstance(event, DataReceived):
                self.bodies.setdefault(event.stream_id, bytearray()).extend(
                    event.data
                )
                if event.flow_controlled_length:
                    self.h2.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
            elif isinstance(event, StreamEnded):
                self.script.requestComplete(self, event.stream_id)
            elif isinstance(event, StreamReset):
                self.open.discard(event.stream_id)
                self.script.resets.append(
                    (self.index, event.stream_id, int(event.error_code))
                )
            elif isinstance(event, WindowUpdated):
                self.sendPending()
            elif isinstance(event, ConnectionTerminated):
                self.script.goAways.append((self.index, int(event.error_code)))
        self.flush()

    def respond(
        self, streamId: int, status: int = 200, body: bytes | None = None
    ) -> None:
        """
        Answer stream C{streamId}.
        """
        if streamId not in self.open or self.lost:
            return
        headers = self.headers[streamId]
        if body is None:
            body = b"%s %s %d" % (
                headers[b":method"],
                headers[b":path"],
                len(self.bodies.get(streamId, b"")),
            )
        self.h2.send_headers(
            streamId,
            [(b":status", b"%d" % status), (b"content-length", b"%d" % len(body))],
            end_stream=not body,
        )
        self.pendingData[streamId] = body
        self.sendPending()
        self.flush()

    def sendPending(self) -> None:
        for streamId, data in list(self.pendingData.items()):
            while data:
                window = min(
                    self.h2.local_flow_control_window(streamId),
                    self.h2.max_outbound_frame_size,
                )
                if window <= 0:
                    break
                self.h2.send_data(streamId, data[:window])
                data = data[window:]
            if data:
                self.pendingData[streamId] = data
            else:
                del self.pendingData[streamId]
                self.h2.end_stream(streamId)
                self.open.discard(streamId)
        self.flush()

    def reset(self, streamId: int, code: int) -> None:
        self.h2.reset_stream(streamId, code)
        self.open.discard(streamId)
        self.flush()

    def goAway(self, lastStreamId: int) -> None:
        self.h2.close_connection(last_stream_id=lastStreamId)
        self.flush()

    def changeSettings(self, settings: dict[int, int]) -> None:
        self.h2.update_settings(settings)
        self.flush()

    def connectionLost(self, reason: Any = None) -> None:
        self.lost = True
        self.script.live.discard(self)
        self.script.connectionLost(self)


class H2ServerFactory(Factory):
    noisy = False

    def __init__(self, script: Script) -> None:
        self.script = script

    def buildProtocol(self, addr: Any) -> H2ServerProtocol:
        return H2ServerProtocol(self.script)


def serverTLSOptions(tls: TLSMaterial, protocols: list[bytes]) -> Any:
    """
    Server TLS options for loopback that offer C{protocols} by ALPN.
    """
    cert = tls.ca.issue_cert(LOOPBACK)
    pem = cert.private_key_and_cert_chain_pem.bytes()
    private = ssl.PrivateCertificate.loadPEM(pem)
    return ssl.CertificateOptions(
        privateKey=private.privateKey.original,
        certificate=private.original,
        acceptableProtocols=protocols,
    )


__all__ = [
    "Script",
    "H2ServerProtocol",
    "H2ServerFactory",
    "serverTLSOptions",
    "SettingCodes",
]
