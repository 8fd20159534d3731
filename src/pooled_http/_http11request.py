"""
Writing a request on an L{pooled_http._http11.HTTP11Connection}: the head,
serialized with Twisted's guarantees against request and header injection,
and the body, from its L{twisted.web.iweb.IBodyProducer}, framed by its
length or chunked.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web._newclient import BadHeaders, ExcessWrite, WrongBodyLength
from twisted.web.iweb import UNKNOWN_LENGTH
from zope.interface import implementer

from ._http11head import _CR, _LF

if TYPE_CHECKING:
    from ._http11 import HTTP11Connection

try:
    from twisted.web.http_headers import InvalidHeaderName
except ImportError:  # pragma: no cover - Twisted older than 24.10

    class InvalidHeaderName(ValueError):  # type: ignore[no-redef]
        """
        HTTP header names must be tokens, per RFC 9110 section 5.1.
        """


__all__ = ["serializeHead", "InvalidHeaderName"]

_log = Logger()

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
    Neutralise line breaks in a header value as Twisted's L{twisted.web.http_headers.Headers} does.
    """
    if _CR in value or _LF in value:
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
    goodNames = _GOOD_NAMES
    for name, values in request.headers.getAllRawHeaders():
        if name not in goodNames:
            name = _checkedName(name)
        if name.lower() == b"host":
            hosts += len(values)
        for value in values:
            if _CR in value or _LF in value:
                value = _checkedValue(value)
            parts += (name, b": ", value, b"\r\n")
    if hosts != 1:
        raise BadHeaders("Exactly one Host header required")
    parts.append(b"\r\n")
    return b"".join(parts)


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
