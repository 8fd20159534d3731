"""
The HTTP/2 soak's server: the scripted HTTP/2 server of
L{tests.support.h2server} with a seeded chaos script.

Each connection lives for a random number of streams and then ends
politely (C{GOAWAY} naming the last stream it will answer, then the
connection closes once those are answered).  A seeded share of the
connections is killed at a random stream instead: dropped with streams in
flight, dropped in the middle of a response body, or sent a C{GOAWAY} in
the middle of a burst whose last stream id leaves out streams already
received.  Some streams are reset (C{REFUSED_STREAM}: never processed;
C{INTERNAL_ERROR}: processed, then reset), some answered after a delay.

The script counts each request id it I{processed}: every stream whose
request reached the application, whatever became of its response.
Streams refused, or above the last stream id of a C{GOAWAY}, did not, and
are not counted; so a client may retry those, and only those, and no id
is ever counted twice.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

from tests.support.h2server import (
    H2ServerFactory,
    H2ServerProtocol,
    Script,
    serverTLSOptions,
)
from tests.support.servers import LOOPBACK, TLSMaterial


class H2ChaosScript(Script):
    """
    The soak's HTTP/2 script (see the module docstring).

    @ivar body: The body of every whole response.
    @ivar kills: Connections killed, by point, and streams reset or
        delayed, by kind.
    @ivar processed: How many times each request id was processed.
    """

    record = False
    POINTS = ("drop in flight", "drop mid-body", "GOAWAY mid-burst")

    def __init__(
        self,
        reactor: Any,
        seed: int,
        killRate: float = 0.05,
        refuseRate: float = 0.01,
        internalErrorRate: float = 0.005,
        delayRate: float = 0.1,
        maxStreamsPerConnection: int = 40,
        bodySize: int = 2048,
    ) -> None:
        super().__init__()
        self.reactor = reactor
        self.random = random.Random(seed)
        self.killRate = killRate
        self.refuseRate = refuseRate
        self.internalErrorRate = internalErrorRate
        self.delayRate = delayRate
        self.maxStreamsPerConnection = maxStreamsPerConnection
        self.body = bytes(self.random.getrandbits(8) for _ in range(bodySize))
        self.kills: Counter[str] = Counter()
        self.processed: Counter[bytes] = Counter()

    def _fate(self, proto: H2ServerProtocol) -> dict[str, Any]:
        state = proto.state
        if "lifetime" not in state:
            lifetime = self.random.randint(1, self.maxStreamsPerConnection)
            state.update(lifetime=lifetime, taken=0, maxId=0, lastId=None, calls=set())
            if self.random.random() < self.killRate:
                state["killAt"] = self.random.randrange(lifetime)
                state["point"] = self.random.choice(self.POINTS)
        return state

    def _count(self, proto: H2ServerProtocol, streamId: int) -> None:
        state = proto.state
        state["maxId"] = max(state["maxId"], streamId)
        requestId = proto.headers[streamId].get(b"x-request-id")
        if requestId is not None:
            self.processed[requestId] += 1

    def requestComplete(self, proto: H2ServerProtocol, streamId: int) -> None:
        state = self._fate(proto)
        lastId = state["lastId"]
        if lastId is not None and streamId > lastId:
            # Above our GOAWAY's last stream id: never processed.
            return
        if lastId is None:
            index = state["taken"]
            state["taken"] += 1
            if state.get("killAt") == index:
                self._kill(proto, streamId, state["point"])
                return
        chance = self.random.random()
        if chance < self.refuseRate:
            self.kills["RST_STREAM REFUSED_STREAM"] += 1
            proto.reset(streamId, ErrorCodes.REFUSED_STREAM)
        elif chance < self.refuseRate + self.internalErrorRate:
            self._count(proto, streamId)
            self.kills["RST_STREAM INTERNAL_ERROR"] += 1
            proto.reset(streamId, ErrorCodes.INTERNAL_ERROR)
        else:
            self._count(proto, streamId)
            if chance < self.refuseRate + self.internalErrorRate + self.delayRate:
                self.kills["delayed"] += 1
                self._later(
                    proto, self.random.uniform(0.0, 0.02), self._answer, proto, streamId
                )
            else:
                self._answer(proto, streamId)
        if lastId is None and state["taken"] >= state["lifetime"]:
            self.kills["GOAWAY after N streams"] += 1
            self._goAway(proto, state["maxId"])
        self._closeIfDone(proto)

    def _kill(self, proto: H2ServerProtocol, streamId: int, point: str) -> None:
        self.kills[point] += 1
        if point == "GOAWAY mid-burst":
            # Leave out this stream and every other not yet processed.
            self._goAway(proto, proto.state["maxId"])
            # This stream is answered only if a lower one is still open.
            self.requestComplete(proto, streamId)
            return
        self._count(proto, streamId)
        if point == "drop in flight":
            proto.transport.abortConnection()
            return
        # Drop mid-body: the headers and part of the body, then the end.
        h2 = proto.h2
        h2.send_headers(
            streamId,
            [(b":status", b"200"), (b"content-length", b"%d" % len(self.body))],
        )
        h2.send_data(streamId, self.body[: self.random.randrange(1, len(self.body))])
        proto.flush()
        self._later(proto, 0.005, proto.transport.abortConnection)

    def _answer(self, proto: H2ServerProtocol, streamId: int) -> None:
        proto.respond(streamId, body=self.body)
        self._closeIfDone(proto)

    def _goAway(self, proto: H2ServerProtocol, lastStreamId: int) -> None:
        """
        Send C{GOAWAY} with C{lastStreamId}, keeping the connection open
        (h2's own C{close_connection} would refuse every frame after it)
        until the streams up to C{lastStreamId} are answered.
        """
        proto.state["lastId"] = lastStreamId
        proto.flush()
        frame = GoAwayFrame(0)
        frame.last_stream_id = lastStreamId
        frame.error_code = ErrorCodes.NO_ERROR
        if not proto.lost:
            proto.transport.write(frame.serialize())

    def _closeIfDone(self, proto: H2ServerProtocol) -> None:
        lastId = proto.state.get("lastId")
        if lastId is None or proto.lost or proto.state.get("closing"):
            return
        if not any(streamId <= lastId for streamId in proto.open):
            proto.state["closing"] = True
            proto.transport.loseConnection()

    def _later(self, proto: H2ServerProtocol, delay: float, f: Any, *args: Any) -> None:
        calls = proto.state["calls"]

        def run() -> None:
            calls.discard(call)
            f(*args)

        call = self.reactor.callLater(delay, run)
        calls.add(call)

    def connectionLost(self, proto: H2ServerProtocol) -> None:
        for call in proto.state.get("calls", ()):
            if call.active():
                call.cancel()
        proto.state.get("calls", set()).clear()


class H2ChaosServer:
    """
    A loopback HTTP/2 server (TLS, ALPN C{h2}) running an L{H2ChaosScript}.

    @ivar script: The script.
    """

    def __init__(self, reactor: Any, script: Script, tls: TLSMaterial) -> None:
        self.reactor = reactor
        self.script = script
        self.tls = tls
        self.port: Any = None

    def start(self) -> H2ChaosServer:
        """
        Listen on a free loopback port.
        """
        self.port = self.reactor.listenSSL(
            0,
            H2ServerFactory(self.script),
            serverTLSOptions(self.tls, [b"h2"]),
            interface=LOOPBACK,
        )
        return self

    def url(self, path: bytes = b"/") -> bytes:
        """
        The C{https://} URL of C{path} on this server.
        """
        return b"https://%s:%d%s" % (
            LOOPBACK.encode(),
            self.port.getHost().port,
            path,
        )

    @property
    def connectionCount(self) -> int:
        """
        Connections accepted.
        """
        return self.script.connectionCount

    @property
    def processed(self) -> Counter[bytes]:
        """
        Request ids processed, with how many times each.
        """
        processed: Counter[bytes] = getattr(self.script, "processed", Counter())
        return processed

    async def stop(self) -> None:
        """
        Stop listening and drop the connections left.
        """
        await self.port.stopListening()
        for proto in list(self.script.live):
            proto.transport.abortConnection()
