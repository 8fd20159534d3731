"""
Our own HTTP/1.1 client connection: responses parsed by llhttp (through
C{httptools}), requests serialized here, and the pool's contract
(L{pooled_http._contract.PoolConnection}) met directly, without patching
Twisted's protocol.

One request at a time: L{HTTP11Connection.request} writes a
L{twisted.web._newclient.Request} and returns a Deferred that fires with an
L{IResponse} once the response head has arrived and the request has been
written whole.  The rules of framing are stated once, in
L{HTTP11Connection._headersComplete}: anything the client cannot frame for
sure fails the request at once with a L{ParseError} inside L{ResponseFailed}
and the connection is never reused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from typing import Any

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser
from twisted.internet.base import DelayedCall
from twisted.internet.defer import AlreadyCalledError, Deferred, fail, succeed
from twisted.internet.error import ConnectionClosed, ConnectionDone
from twisted.internet.interfaces import (
    IConsumer,
    IHandshakeListener,
    IPushProducer,
    ISSLTransport,
    ITCPTransport,
)
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web._newclient import (
    BadHeaders,
    ConnectionAborted,
    ExcessWrite,
    ParseError,
    RequestGenerationFailed,
    RequestNotSent,
    RequestTransmissionFailed,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
    WrongBodyLength,
    _DataLoss,
)
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IResponse
from zope.interface import implementer

from ._contract import ConnectionOwner
from ._lifecycle import Lifecycle, LifecycleMixin
from ._timers import cancelCall
from .errors import (
    ConnectTimeoutError,
    PoolError,
    ReadTimeoutError,
    ResponseHeadersTooLargeError,
    ResponseTimeoutError,
)

try:
    from twisted.web.http_headers import InvalidHeaderName
except ImportError:  # pragma: no cover - Twisted older than 24.10

    class InvalidHeaderName(ValueError):  # type: ignore[no-redef]
        """
        HTTP header names must be tokens, per RFC 9110 section 5.1.
        """


__all__ = ["HTTP11Connection", "FramingError", "BODY_BUFFER_LIMIT"]

_log = Logger()

#: Bytes of a response body kept before C{deliverBody} is called (or while
#: its protocol has paused it) before the transport stops reading.
BODY_BUFFER_LIMIT = 65536

# Response headers Twisted keeps out of C{Response.headers}: they frame the
# message and are the connection's business.
_CONNECTION_CONTROL = frozenset(
    {
        b"content-length",
        b"connection",
        b"keep-alive",
        b"te",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-connection",
    }
)

_NO_BODY_CODES = (204, 304)

# What a method or header name may be (an RFC 9110 token), and a URI (RFC
# 3986: visible ASCII), as Twisted checks them.
_TOKEN = re.compile(rb"\A[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_VALID_URI = re.compile(rb"\A[\x21-\x7e]+\Z")

# Names already checked, so the check costs a dict lookup per header; capped
# so that a caller inventing names cannot grow it without bound.
_GOOD_NAMES: dict[bytes, None] = {}
_GOOD_NAMES_MAX = 10_000
_GOOD_METHODS = frozenset(
    {b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE"}
)

# llhttp's version string -> Twisted's version tuple.
_VERSIONS: dict[str, tuple[bytes, int, int]] = {}

# What a connection holds between heads: never appended to (each head
# starts with lists of its own).
_NO_HEADERS: list[tuple[bytes, bytes]] = []

# A Connection header's values -> its tokens, for the few values servers
# send; capped like the header names.
_CONNECTION_TOKENS: dict[tuple[bytes, ...], frozenset[bytes]] = {}
_CONNECTION_TOKENS_MAX = 1000

# One shared end-of-body reason: it carries no traceback and nothing in it
# changes, so every response may be told with the same object.
_DONE = Failure(ResponseDone("Response body fully received"))
_SERVER_CLOSE = Failure(ConnectionDone("Connection: close"))
_EARLY_RESPONSE = Failure(
    ConnectionDone("the response came before the request was sent whole")
)


class FramingError(ParseError, ValueError):
    """
    A response the client cannot frame for sure (conflicting or negative
    C{Content-Length}, a C{Transfer-Encoding} not ending in C{chunked}, an
    unasked C{101}, a broken chunk, anything llhttp refuses).  A
    L{ParseError}, as Twisted reports malformed responses, and a
    L{ValueError}, as Twisted reports a bad C{Content-Length}.
    """


class _StopParsing(Exception):
    """
    Raised from a parser callback to make llhttp stop where it is.
    """


def _checkedName(name: bytes) -> bytes:
    """
    Return C{name} if it is a valid header name.

    @raise InvalidHeaderName: If it is not (it holds CR, LF, NUL, a space,
        a colon, ...).
    """
    if name in _GOOD_NAMES:
        return name
    if not isinstance(name, bytes) or not _TOKEN.match(name):
        raise InvalidHeaderName(name)
    if len(_GOOD_NAMES) < _GOOD_NAMES_MAX:
        _GOOD_NAMES[name] = None
    return name


def _checkedValue(value: bytes) -> bytes:
    """
    Neutralise line breaks in a header value as Twisted's L{Headers} does.
    """
    if b"\r" in value or b"\n" in value:
        return b" ".join(value.splitlines())
    return value


def serializeHead(request: Any, framing: bytes | None) -> bytes:
    """
    Build the request line and headers of C{request}, refusing anything that
    could inject a line (as Twisted's C{Request._writeHeaders} does).

    @param request: A L{twisted.web._newclient.Request}.
    @param framing: The C{Content-Length} or C{Transfer-Encoding} line to
        add, or L{None}.
    @return: The head, ending with the empty line.
    @raise ValueError: If the method or the URI holds a character it may
        not (CR, LF, NUL, a space, ...), naming which.
    @raise InvalidHeaderName: If a header name is not a token.
    @raise BadHeaders: If there is not exactly one C{Host} header.
    """
    method = request.method
    if method not in _GOOD_METHODS and (
        not isinstance(method, bytes) or not _TOKEN.match(method)
    ):
        raise ValueError(f"Invalid method {method!r}")
    uri = request.uri
    if not isinstance(uri, bytes) or not _VALID_URI.match(uri):
        raise ValueError(f"Invalid URI {uri!r}")
    parts = [method, b" ", uri, b" HTTP/1.1\r\n"]
    if not request.persistent:
        parts.append(b"Connection: close\r\n")
    if framing is not None:
        parts.append(framing)
    hosts = 0
    for name, values in request.headers.getAllRawHeaders():
        name = _checkedName(name)
        if name.lower() == b"host":
            hosts += len(values)
        for value in values:
            parts += (name, b": ", _checkedValue(value), b"\r\n")
    if hosts != 1:
        raise BadHeaders("Exactly one Host header required")
    parts.append(b"\r\n")
    return b"".join(parts)


def _noteKeepAlive(connection: HTTP11Connection, values: list[bytes]) -> None:
    """
    Remember the server's C{Keep-Alive: timeout=N, max=M} on C{connection}.
    """
    for value in values:
        for part in value.split(b","):
            name, _, number = part.strip().partition(b"=")
            try:
                parsed = int(number.strip())
            except ValueError:
                continue
            if parsed < 0:
                continue
            name = name.strip().lower()
            if name == b"timeout":
                connection.keepAliveTimeout = float(parsed)
            elif name == b"max":
                connection.keepAliveMax = parsed


def _tokens(values: list[bytes]) -> frozenset[bytes]:
    """
    The lowercased tokens of a comma-separated header's values.
    """
    key = tuple(values)
    tokens = _CONNECTION_TOKENS.get(key)
    if tokens is None:
        tokens = frozenset(t.strip().lower() for v in values for t in v.split(b","))
        if len(_CONNECTION_TOKENS) < _CONNECTION_TOKENS_MAX:
            _CONNECTION_TOKENS[key] = tokens
    return tokens


def _version(text: str) -> tuple[bytes, int, int]:
    """
    Twisted's version tuple for llhttp's C{"1.1"}.
    """
    version = _VERSIONS.get(text)
    if version is None:
        major, _, minor = text.partition(".")
        version = _VERSIONS[text] = (b"HTTP", int(major), int(minor))
    return version


def _lenientHead(data: bytes) -> tuple[bytes, bytes] | None:
    """
    Find the end of a response head in C{data} and return it with header
    lines that have no colon dropped and bare LFs made CRLF, and the bytes
    after it; or L{None} if the head is not complete yet.
    """
    ends = [i for i in (data.find(b"\n\r\n"), data.find(b"\n\n")) if i >= 0]
    if not ends:
        return None
    end = min(ends)
    size = 3 if data[end + 1 : end + 2] == b"\r" else 2
    lines = data[: end + 1].split(b"\n")[:-1]
    kept = [lines[0].rstrip(b"\r")]
    for line in lines[1:]:
        line = line.rstrip(b"\r")
        if b":" in line:
            kept.append(line)
    return b"\r\n".join(kept) + b"\r\n\r\n", data[end + size :]


@implementer(IResponse, IPushProducer)
class _Response:
    """
    One response: the L{IResponse} a request's Deferred fires with, and the
    transport its body protocol is given (pause, resume, stop, abort).

    Body bytes that arrive before L{deliverBody} are kept, and the
    connection stops reading once L{BODY_BUFFER_LIMIT} of them wait.
    """

    __slots__ = (
        "version",
        "code",
        "phrase",
        "headers",
        "length",
        "request",
        "previousResponse",
        "_connection",
        "_protocol",
        "_buffer",
        "_buffered",
        "_ended",
        "_paused",
        "_abandoned",
        "__weakref__",
    )

    # Twisted's transport proxy says so too: the body protocol keeps
    # getting bytes until the connection is gone.
    disconnecting = False

    def __init__(
        self,
        connection: HTTP11Connection,
        version: tuple[bytes, int, int],
        code: int,
        phrase: bytes,
        headers: Headers,
        length: int | object,
        request: Any,
    ) -> None:
        self.version = version
        self.code = code
        self.phrase = phrase
        self.headers = headers
        self.length = length
        self.request = request
        self.previousResponse: IResponse | None = None
        self._connection: HTTP11Connection | None = connection
        self._protocol: Any = None
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._ended: Failure | None = None
        self._paused = False
        self._abandoned = False

    def __repr__(self) -> str:
        return f"<Response {self.code} {self.phrase!r} length={self.length!r}>"

    def setPreviousResponse(self, response: IResponse) -> None:
        """
        Set the response this one was redirected from.
        """
        self.previousResponse = response

    def deliverBody(self, protocol: Any) -> None:
        """
        Hand the body to C{protocol}: its C{makeConnection} gets this
        response as transport, then the bytes kept so far, then
        C{connectionLost} once the body is done.

        @raise RuntimeError: If a protocol was already given.
        """
        if self._protocol is not None:
            raise RuntimeError(f"Response already has protocol {self._protocol!r}")
        self._protocol = protocol
        protocol.makeConnection(self)
        buffered, self._buffer = self._buffer, []
        self._buffered = 0
        for data in buffered:
            protocol.dataReceived(data)
        ended = self._ended
        if ended is not None:
            self._ended = None
            protocol.connectionLost(ended)
            return
        self._updateReading()

    def _bodyData(self, data: bytes) -> None:
        protocol = self._protocol
        if protocol is not None:
            protocol.dataReceived(data)
            return
        if self._connection is None:
            return
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered > BODY_BUFFER_LIMIT:
            self._updateReading()

    def _end(self, reason: Failure) -> None:
        """
        The body is over, for C{reason}: tell the protocol, or keep the
        reason for L{deliverBody}.
        """
        if self._connection is None:
            return
        self._connection = None
        protocol = self._protocol
        if protocol is None:
            self._ended = reason
            return
        try:
            protocol.connectionLost(reason)
        except AlreadyCalledError:
            # readBody's protocol fails its Deferred again after the caller
            # cancelled it (which is what aborted the connection): nothing
            # is lost by ignoring that.
            if not self._abandoned:
                _log.failure("body protocol {protocol!r} failed", protocol=protocol)
        except Exception:
            _log.failure("body protocol {protocol!r} failed", protocol=protocol)

    def _updateReading(self) -> None:
        connection = self._connection
        if connection is None:
            return
        if self._paused or (
            self._protocol is None and self._buffered > BODY_BUFFER_LIMIT
        ):
            connection._pauseReading()
        else:
            connection._resumeReading()

    # The body protocol's transport

    def pauseProducing(self) -> None:
        """
        Stop reading from the connection until L{resumeProducing}.
        """
        self._paused = True
        self._updateReading()

    def resumeProducing(self) -> None:
        """
        Read from the connection again.
        """
        self._paused = False
        self._updateReading()

    def stopProducing(self) -> None:
        """
        The body is not wanted: drop the connection.
        """
        self.abortConnection()

    def loseConnection(self) -> None:
        """
        The body is not wanted: drop the connection.
        """
        self.abortConnection()

    def abortConnection(self) -> None:
        """
        Drop the connection at once, if this response is still using it
        (cancelling L{twisted.web.client.readBody} comes here).
        """
        connection = self._connection
        if connection is not None:
            self._abandoned = True
            connection._abortResponse(self)


@implementer(IConsumer, IPushProducer)
class _BodyWriter:
    """
    Writes a request body from its L{twisted.web.iweb.IBodyProducer} to the transport, framed
    by its length or chunked, and stands between the transport and the
    producer as the transport's producer.
    """

    __slots__ = (
        "_connection",
        "_producer",
        "_transport",
        "_remaining",
        "_done",
        "_stopped",
    )

    def __init__(
        self, connection: HTTP11Connection, producer: Any, transport: Any
    ) -> None:
        self._connection = connection
        self._producer = producer
        self._transport = transport
        length = producer.length
        self._remaining: int | None = None if length is UNKNOWN_LENGTH else length
        self._done = False
        self._stopped = False

    def start(self) -> None:
        """
        Register as the transport's producer and start the body producer.
        """
        self._transport.registerProducer(self, True)
        d = self._producer.startProducing(self)
        d.addCallbacks(self._produced, self._failed)

    def write(self, data: bytes) -> None:
        """
        Write body bytes (chunk-framed when the length is unknown).

        @raise ExcessWrite: If the producer said the body is over.
        """
        if self._done:
            if self._stopped:
                # We stopped it (the response came, the request failed or
                # was cancelled): what it still writes goes nowhere.
                return
            self._producer.stopProducing()
            raise ExcessWrite()
        remaining = self._remaining
        if remaining is None:
            if data:
                self._transport.writeSequence((b"%x\r\n" % len(data), data, b"\r\n"))
            return
        if len(data) > remaining:
            self.stop()
            self._connection._writeFailed(
                Failure(WrongBodyLength("too many bytes written"))
            )
            return
        self._remaining = remaining - len(data)
        self._transport.write(data)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """
        Nothing to do: the body producer is already ours.
        """

    def unregisterProducer(self) -> None:
        """
        Nothing to do: the end of the body is the producer's Deferred.
        """

    def _produced(self, ignored: object) -> None:
        if self._done:
            return
        remaining = self._remaining
        if remaining:
            self.stop()
            self._connection._writeFailed(
                Failure(WrongBodyLength("too few bytes written"))
            )
            return
        self._done = True
        if remaining is None:
            self._transport.write(b"0\r\n\r\n")
        self._transport.unregisterProducer()
        self._connection._requestWritten()

    def _failed(self, reason: Failure) -> None:
        if self._done:
            return
        self._done = True
        self._transport.unregisterProducer()
        self._connection._writeFailed(reason)

    def stop(self) -> None:
        """
        Stop the body: the request failed, was cancelled, or its response
        already came.
        """
        if self._done:
            return
        self._done = self._stopped = True
        self._transport.unregisterProducer()
        try:
            self._producer.stopProducing()
        except Exception:
            # As Twisted: a producer failing to stop is logged, not raised.
            _log.failure("stopping body producer {producer!r}", producer=self._producer)

    def pauseProducing(self) -> None:
        """
        The transport's buffer is full.
        """
        if not self._done:
            self._producer.pauseProducing()

    def resumeProducing(self) -> None:
        """
        The transport's buffer drained.
        """
        if not self._done:
            self._producer.resumeProducing()

    def stopProducing(self) -> None:
        """
        The transport is gone.
        """
        self.stop()


@implementer(IHandshakeListener)
class HTTP11Connection(LifecycleMixin, Protocol):
    """
    One HTTP/1.1 client connection on llhttp, meeting
    L{pooled_http._contract.PoolConnection}.

    @ivar owner: The L{ConnectionOwner} it reports to.
    @ivar key: The pool key it belongs to.
    @ivar serial: Set by the pool.
    @ivar generation: Set by the pool.
    @ivar createdAt: When it was built (reactor seconds).
    @ivar lastUsed: When it last started a request.
    @ivar requestsServed: Requests sent on it.
    @ivar keepAliveTimeout: The server's C{Keep-Alive: timeout=N}, if sent.
    @ivar keepAliveMax: The server's C{Keep-Alive: max=M}, if sent.
    @ivar reusable: C{False} once the server said it will not serve another
        request (an HTTP/1.0 response without keep-alive).
    @ivar timeoutError: The pool error that ended it, if a timer did.
    @ivar idleTimer: The pool's idle timer while C{IDLE}.
    @ivar lenientHeaders: Whether response header lines without a colon are
        skipped (and bare LF line ends accepted) rather than failing.
    @ivar handshakeDone: Whether the TLS handshake has completed.
    """

    # Slots keep an idle connection small (no per-instance dictionary).
    __slots__ = (
        "_aborting",
        "_closeDelimited",
        "_control",
        "_deferred",
        "_extraData",
        "_finishing",
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
        "generation",
        "handshakeDone",
        "idleTimer",
        "keepAliveMax",
        "keepAliveTimeout",
        "key",
        "lastUsed",
        "lenientHeaders",
        "lifecycle",
        "owner",
        "requestsServed",
        "reusable",
        "serial",
        "timeoutError",
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
        self.owner = owner
        self.key = key
        # IReactorTime's methods, typed for zope, confuse mypy: keep it Any.
        reactor: Any = owner.reactor
        self._reactor = reactor
        self.lifecycle = Lifecycle.ACTIVE
        now: float = reactor.seconds()
        self.createdAt = now
        self.lastUsed = now
        self.serial = 0
        self.generation = 0
        self.requestsServed = 0
        self.keepAliveTimeout: float | None = None
        self.keepAliveMax: int | None = None
        self.reusable = True
        self.timeoutError: PoolError | None = None
        self.idleTimer: DelayedCall | None = None
        if lenientHeaders is None:
            lenientHeaders = bool(getattr(owner, "lenientHeaders", False))
        self.lenientHeaders = lenientHeaders
        self.handshakeDone = False
        self._handshakeTimer: DelayedCall | None = None
        self._graceTimer: DelayedCall | None = None
        self._responseTimer: DelayedCall | None = None
        self._readTimer: DelayedCall | None = None
        self._state = "QUIESCENT"
        self._parser: Any = None
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
        self._control: list[tuple[bytes, bytes]] = _NO_HEADERS
        self._readingPaused = False
        self._finishing = False
        self._givenUp = False
        self._aborting = False
        self._pendingHandOff: Callable[[], object] | None = None
        self._lostWatchers: list[Deferred[None]] | None = None

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

    @property
    def stale(self) -> bool:
        """
        Whether the transport can no longer carry a request although
        C{connectionLost} has not arrived: it is disconnecting, or its TLS
        layer has seen the peer's C{close_notify}.
        """
        transport: Any = self.transport
        return (
            transport is None
            or bool(getattr(transport, "disconnecting", False))
            or bool(getattr(transport, "disconnected", False))
            or bool(getattr(transport, "_lostTLSConnection", False))
        )

    def pendingCalls(self) -> list[DelayedCall]:
        """
        The connection's own timers that are still to run (the pool lists
        them when it reports what is pending).
        """
        calls = (
            self._handshakeTimer,
            self._responseTimer,
            self._readTimer,
            self._graceTimer,
        )
        return [call for call in calls if call is not None and call.active()]

    def handOff(self, give: Callable[[], object]) -> None:
        """
        Run C{give}, which hands this connection to a waiting request, as
        soon as the connection can take a new request: at once, or after
        the response being finished is done with.
        """
        if self._finishing:
            self._pendingHandOff = give
        else:
            give()

    def whenLost(self) -> Deferred[None]:
        """
        Return a Deferred that fires once the transport is gone.
        """
        if self.lifecycle is Lifecycle.CLOSED:
            return succeed(None)
        d: Deferred[None] = Deferred()
        if self._lostWatchers is None:
            self._lostWatchers = [d]
        else:
            self._lostWatchers.append(d)
        return d

    def close(self, gracePeriod: float) -> None:
        """
        Close the transport politely; abort it if it is not gone after
        C{gracePeriod} seconds.
        """
        if self.lifecycle is Lifecycle.CLOSED:
            return
        if self.lifecycle is not Lifecycle.CLOSING:
            self.moveTo(Lifecycle.CLOSING)
        self._stopRequestTimers()
        cancelCall(self.idleTimer)
        self.idleTimer = None
        transport: Any = self.transport
        if transport is None:
            return
        transport.loseConnection()
        if self._graceTimer is None:
            self._graceTimer = self._reactor.callLater(gracePeriod, self.abortTransport)

    def abortTransport(self) -> None:
        """
        Drop the transport at once.
        """
        transport: Any = self.transport
        if self.lifecycle is Lifecycle.CLOSED or transport is None:
            return
        transport.abortConnection()

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

    # TLS

    def awaitHandshake(self, remaining: float, timeout: float) -> None:
        """
        The transport is connected; if it is TLS and the handshake is still
        going, the connect timeout keeps running until it completes.

        @param remaining: Seconds left of the connect timeout.
        @param timeout: The whole connect timeout, for the error message.
        """
        if self.handshakeDone or not ISSLTransport.providedBy(self.transport):
            return
        self._handshakeTimer = self._reactor.callLater(
            max(0.0, remaining), self._handshakeTimedOut, timeout
        )

    def _handshakeTimedOut(self, timeout: float) -> None:
        self._handshakeTimer = None
        self._timedOut(ConnectTimeoutError(self.key, timeout))

    def handshakeCompleted(self) -> None:
        """
        The TLS handshake finished: the connect phase is over.
        """
        self.handshakeDone = True
        cancelCall(self._handshakeTimer)
        self._handshakeTimer = None

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
        self.lastUsed = self._reactor.seconds()
        self._state = "TRANSMITTING"
        self._request = request
        self._persistent = request.persistent
        self._headOnly = request.method == b"HEAD"
        self._received = False
        self._framingBytes = self._headRaw = self._headSize = 0
        self._maxHeaderBytes = self.owner.maxHeaderBytes
        self._parser = HttpResponseParser(self)
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
        transport.write(head)
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

    def _timedOut(self, error: PoolError) -> None:
        """
        A timer fired: remember why (the request fails with C{error}), tell
        the owner, and abort.
        """
        self.timeoutError = error
        self.owner.connectionTimedOut(self, error)
        self.abortTransport()

    def _responseTimedOut(self, timeout: float) -> None:
        self._responseTimer = None
        self._timedOut(ResponseTimeoutError(self.key, timeout))

    def _readTimedOut(self, timeout: float) -> None:
        self._readTimer = None
        error = ReadTimeoutError(self.key, timeout)
        response, self._response = self._response, None
        if response is not None:
            response._end(Failure(error))
        self._timedOut(error)

    def _stopRequestTimers(self) -> None:
        cancelCall(self._responseTimer)
        cancelCall(self._readTimer)
        self._responseTimer = self._readTimer = None

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
        Keep the head until it is whole, then feed it cleaned (see
        L{_lenientHead}); what follows goes on as usual.
        """
        buffered = self._headBuffer + data
        limit = self._maxHeaderBytes
        while not self._headComplete:
            found = _lenientHead(buffered)
            if found is None:
                if len(buffered) > limit:
                    self._headBuffer = b""
                    raise ResponseHeadersTooLargeError(self.key, limit)
                self._headBuffer = buffered
                return
            head, buffered = found
            self._headBuffer = b""
            self._feed(head)
            if self._messageDone:
                self._extraData = self._extraData or bool(buffered.strip(b"\r\n"))
                return
        if buffered:
            self._feed(buffered)

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
        self._control = []

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
            self._control.append((lowered, value))
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
        headers = Headers()
        pending, self._pending = self._pending, _NO_HEADERS
        if pending:
            add = headers.addRawHeader
            for name, value in pending:
                add(name, value)
        control: dict[bytes, list[bytes]] = {}
        for name, value in self._control:
            values = control.get(name)
            if values is None:
                control[name] = [value]
            else:
                values.append(value)
        self._control = _NO_HEADERS
        version = _version(parser.get_http_version())
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
        tokens = _tokens(connection) if connection else frozenset()
        if b"close" in tokens:
            self._persistent = False
        if version < (b"HTTP", 1, 1) and b"keep-alive" not in tokens:
            # HTTP/1.0 keeps a connection only when asked to.
            self.reusable = False
        keepAlive = control.get(b"keep-alive")
        if keepAlive:
            _noteKeepAlive(self, keepAlive)
        self._closeDelimited = closeDelimited
        cancelCall(self._responseTimer)
        self._responseTimer = None
        self._response = _Response(
            self, version, code, self._phrase, headers, length, self._request
        )
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

    def _finishResponse(self) -> None:
        """
        The response is complete.  First the connection is made ready for
        another request (nothing of this one is left on it); then the body
        protocol is told; then the owner hears the connection is quiescent,
        or that it is given up; then the request's Deferred fires if it has
        not (a body-less or short response, as Twisted: after the report).
        A waiting request handed this connection from inside the report
        starts only after all that.
        """
        self._messageDone = False
        self._headComplete = False
        # A parser holds about a kilobyte: an idle connection keeps none, and
        # the next request makes a new one (a fraction of a microsecond).
        self._parser = None
        cancelCall(self._readTimer)
        self._readTimer = None
        response, self._response = self._response, None
        d: Deferred[Any] | None = self._deferred
        self._deferred = None
        transmitting = self._state == "TRANSMITTING"
        self._request = None
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
        self._resumeReading()
        if not reusable:
            if self._extraData:
                why = Failure(FramingError("bytes after the response", b""))
            elif transmitting:
                why = _EARLY_RESPONSE
            else:
                why = _SERVER_CLOSE
            self._giveUp(why)
            if response is not None:
                response._end(_DONE)
            if d is not None:
                d.callback(response)
            return
        assert response is not None
        self._finishing = True
        try:
            response._end(_DONE)
            # The body's protocol may have aborted the connection, or (used
            # without a pool) started the next request on it already.
            if (
                self._state == "QUIESCENT"
                and self.lifecycle is Lifecycle.ACTIVE
                and not self._aborting
            ):
                try:
                    self.owner.connectionQuiescent(self)
                except Exception:
                    # As Twisted: keeping a connection is an optimisation.
                    _log.failure(
                        "while reporting {connection!r} quiescent", connection=self
                    )
                    self._giveUp(Failure())
            if d is not None:
                d.callback(response)
        finally:
            self._finishing = False
        pending, self._pendingHandOff = self._pendingHandOff, None
        if pending is not None:
            pending()

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
        self._request = None
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
        move to C{CLOSED}, tell the owner and fire L{whenLost}.
        """
        self._stopRequestTimers()
        cancelCall(self.idleTimer)
        cancelCall(self._handshakeTimer)
        cancelCall(self._graceTimer)
        self.idleTimer = self._handshakeTimer = self._graceTimer = None
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
                and reason.check(ConnectionClosed)
            ):
                response._end(Failure(PotentialDataLoss()))
            else:
                response._end(
                    Failure(ResponseFailed([cause, Failure(_DataLoss())], response))
                )
        self._request = None
        previous = self.lifecycle
        if previous is not Lifecycle.CLOSED:
            self.moveTo(Lifecycle.CLOSED)
        self.owner.connectionLost(self, previous, reason)
        watchers, self._lostWatchers = self._lostWatchers, None
        for watcher in watchers or ():
            watcher.callback(None)
