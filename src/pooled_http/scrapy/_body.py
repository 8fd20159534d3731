"""
Reading one response for Scrapy: the body protocol that enforces
C{DOWNLOAD_MAXSIZE} and C{DOWNLOAD_WARNSIZE}, sends the C{bytes_received}
signal and tells a complete body from a truncated one; the request body
producer; and the Scrapy C{Response} built at the end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pydispatch import dispatcher
from scrapy import responsetypes, signals
from scrapy.exceptions import (
    DownloadCancelledError,
    ResponseDataLossError,
    StopDownload,
)
from scrapy.http import (
    Headers,
    HtmlResponse,
    JsonResponse,
    Response,
    TextResponse,
    XmlResponse,
)
from scrapy.responsetypes import ResponseTypes
from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone, ResponseFailed
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers as TxHeaders
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

__all__ = [
    "BodyReader",
    "BytesProducer",
    "checkStopDownload",
    "makeResponse",
    "responseClass",
    "maxSizeMessage",
    "scrapyHeaders",
    "warnSizeMessage",
]

logger = logging.getLogger("pooled_http.scrapy")


def maxSizeMessage(size: int, limit: int, request: Any, *, expected: bool) -> str:
    """
    The warning, and the error's message, when a body passes
    C{DOWNLOAD_MAXSIZE}: worded as Scrapy's own handlers word it, so log
    filters keep matching.
    """
    prefix = "Expected to receive" if expected else "Received"
    return (
        f"{prefix} {size} bytes which is larger than download "
        f"max size ({limit}) in request {request}."
    )


def warnSizeMessage(size: int, limit: int, request: Any, *, expected: bool) -> str:
    """
    The warning when a body passes C{DOWNLOAD_WARNSIZE}.
    """
    prefix = "Expected to receive" if expected else "Received"
    return (
        f"{prefix} {size} bytes which is larger than download "
        f"warn size ({limit}) in request {request}."
    )


#: Whether Scrapy's C{Headers} is the plain dictionary of title-cased byte
#: names to lists of byte values that L{scrapyHeaders} fills directly.
_PLAIN_HEADERS = issubclass(Headers, dict) and (
    Headers().normkey(b"x-content-md5") == b"X-Content-Md5"
)
_setItem = dict.__setitem__
_update = dict.update


def scrapyHeaders(txresponse: Any) -> Headers:
    """
    A Twisted response's headers as Scrapy's C{Headers}, with the
    C{Content-Length} Twisted keeps apart put back: what
    C{Headers.update} makes of them (names title-cased, the values of
    names that title-case alike joined in one list, a C{Content-Length}
    among them replacing the one put back), filled in one go when they
    come as Twisted's C{Headers} keeps them (byte names and values).
    """
    headers = Headers()
    length = txresponse.length
    raw = txresponse.headers
    if type(raw) is TxHeaders and _PLAIN_HEADERS:
        merged: dict[bytes, list[bytes]] = {}
        for name, values in raw.getAllRawHeaders():
            key = name.title()
            kept = merged.get(key)
            if kept is None:
                merged[key] = list(values)
            else:
                kept.extend(values)
        if length is not UNKNOWN_LENGTH:
            _setItem(headers, b"Content-Length", [str(length).encode()])
        _update(headers, merged)
        return headers
    if length is not UNKNOWN_LENGTH:
        headers[b"Content-Length"] = str(length).encode()
    headers.update(raw.getAllRawHeaders())
    return headers


def checkStopDownload(
    signal: object, crawler: Any, request: Any, **kwargs: Any
) -> StopDownload | None:
    """
    Send C{signal} and return the C{StopDownload} a handler raised, if any
    (nothing is sent when nobody listens).
    """
    if not _hasReceivers(crawler, signal):
        return None
    results = crawler.signals.send_catch_log(
        signal=signal, request=request, spider=crawler.spider, **kwargs
    )
    for handler, result in results:
        if isinstance(result, Failure) and isinstance(result.value, StopDownload):
            logger.debug(
                "Download stopped for %s from signal handler %s",
                request,
                getattr(handler, "__qualname__", handler),
            )
            return result.value
    return None


#: The bytes Scrapy's C{binary_is_text} takes for binary: the control
#: characters but NUL, tab, line feed and carriage return.
_BINARY = bytes([*range(1, 9), 11, 12, *range(14, 32)])

_STOCK = (ResponseTypes.from_args, ResponseTypes.from_body)

#: The response classes Scrapy ships, whose constructors only copy the
#: headers they are given: L{makeResponse} hands them theirs instead.
_STOCK_CLASSES = frozenset(
    {Response, TextResponse, HtmlResponse, XmlResponse, JsonResponse}
)


class _ClassMemo:
    """
    What L{responseClass} knows of one C{ResponseTypes}: whether it is
    Scrapy's own (C{stock}: the body scan may be done here) and whether
    its class choice from headers and file names is too (C{remembers}: the
    class C{from_headers} gives for each (C{Content-Type},
    C{Content-Encoding}, C{Content-Disposition}) and what C{from_filename}
    gives for a URL whose last path segment has no dot, so no extension,
    are remembered).  It stands while the object, its methods and the
    tables they read are the ones it saw (C{classes} compared whole, the
    C{mimetypes} maps by identity and size).
    """

    __slots__ = (
        "types",
        "state",
        "classes",
        "stock",
        "remembers",
        "byHeaders",
        "noExtension",
    )

    def __init__(self, types: Any) -> None:
        self.types = types
        self.state = _state(types)
        self.classes = dict(types.classes)
        kind = type(types)
        overridden = vars(types)
        self.stock = (kind.from_args, kind.from_body) == _STOCK and not (
            "from_args" in overridden or "from_body" in overridden
        )
        self.remembers = (
            self.stock
            and _PLAIN_HEADERS
            and _methods(kind) == _STOCK_METHODS
            and not _OVERRIDES.intersection(overridden)
        )
        self.byHeaders: dict[tuple[Any, Any, Any], type[Response]] = {}
        self.noExtension: type[Response] | None = None

    def current(self, types: Any) -> bool:
        """
        Whether this memo still describes C{types}.
        """
        return (
            types is self.types
            and _state(types) == self.state
            and types.classes == self.classes
        )


def _methods(kind: type) -> tuple[Any, ...]:
    return (
        kind.from_args,  # type: ignore[attr-defined]
        kind.from_body,  # type: ignore[attr-defined]
        kind.from_headers,  # type: ignore[attr-defined]
        kind.from_content_type,  # type: ignore[attr-defined]
        kind.from_content_disposition,  # type: ignore[attr-defined]
        kind.from_mimetype,  # type: ignore[attr-defined]
        kind.from_filename,  # type: ignore[attr-defined]
    )


_STOCK_METHODS = _methods(ResponseTypes)
_OVERRIDES = frozenset(m.__name__ for m in _STOCK_METHODS)


def _state(types: Any) -> tuple[Any, ...]:
    """
    What a change to C{types} would change: its class's methods, its own
    attributes, and its C{mimetypes} tables.
    """
    mimetypes = types.mimetypes
    typesMap = mimetypes.types_map[True]
    return (
        _methods(type(types)),
        len(vars(types)),
        mimetypes,
        typesMap,
        len(typesMap),
        len(mimetypes.suffix_map),
        len(mimetypes.encodings_map),
    )


#: The memo of the C{ResponseTypes} last asked (Scrapy has one).
_MEMO: list[_ClassMemo | None] = [None]
_MEMO_MAX = 256


def responseClass(headers: Headers, url: str, body: bytes) -> type[Response]:
    """
    The Scrapy response class of a download, as
    C{responsetypes.from_args(headers=..., url=..., body=...)} picks it;
    without Scrapy's byte-by-byte scan of the body when its stock
    C{ResponseTypes} is in use (a body whose headers and URL say nothing,
    as C{application/octet-stream}, would cost a scan of up to 5,000 bytes
    in Python per page), and with what the headers and an extension-less
    URL give remembered (the same few header values come back page after
    page).
    """
    types = responsetypes.responsetypes
    memo = _MEMO[0]
    if memo is None or not memo.current(types):
        memo = _MEMO[0] = _ClassMemo(types)
    if not memo.stock:
        return types.from_args(headers=headers, url=url, body=body)
    if memo.remembers and type(headers) is Headers:
        get = dict.get
        kept = get(headers, b"Content-Type")
        contentType = kept[-1] if kept else None
        kept = get(headers, b"Content-Encoding")
        encoding = kept[-1] if kept else None
        kept = get(headers, b"Content-Disposition")
        key = (contentType, encoding, kept[-1] if kept else None)
        cls = memo.byHeaders.get(key)
        if cls is None:
            cls = types.from_headers(headers)
            if len(memo.byHeaders) >= _MEMO_MAX:
                memo.byHeaders.clear()
            memo.byHeaders[key] = cls
        if cls is Response:
            if "." in url[url.rfind("/") + 1 :] or url.startswith("data:"):
                cls = types.from_filename(url)
            else:
                cls = memo.noExtension
                if cls is None:
                    cls = memo.noExtension = types.from_filename(url)
    else:
        cls = types.from_headers(headers)
        if cls is Response:
            cls = types.from_filename(url)
    if cls is not Response:
        return cls
    chunk = body[:5000]
    if len(chunk.translate(None, _BINARY)) != len(chunk):
        return types.from_mimetype("application/octet-stream")
    # Each mark starts with "<", which one memchr finds; the marks' own
    # searches can be slow (a body of one repeated letter of a mark).
    if b"<" in chunk:
        lowered = chunk.lower()
        if b"<html>" in lowered:
            return types.from_mimetype("text/html")
        if b"<?xml" in lowered:
            return types.from_mimetype("text/xml")
        if b"<!doctype html>" in lowered:
            return types.from_mimetype("text/html")
    return types.from_mimetype("text")


def makeResponse(
    url: str,
    status: int,
    headers: Headers,
    body: bytes = b"",
    flags: list[str] | None = None,
    certificate: Any = None,
    ipAddress: Any = None,
    protocol: str | None = None,
    stopDownload: StopDownload | None = None,
) -> Response:
    """
    The Scrapy response of a download, of the class Scrapy's
    C{responsetypes} picks; with a C{StopDownload}, flagged
    C{download_stopped} and, if the stop is a failure, raised with the
    response attached.
    """
    cls = responseClass(headers, url, body)
    # The constructors of Scrapy's own classes would only copy the
    # headers, name by name: they get them as they are.
    stock = cls in _STOCK_CLASSES
    response = cls(
        url=url,
        status=status,
        headers=None if stock else headers,
        body=body,
        flags=flags,
        certificate=certificate,
        ip_address=ipAddress,
        protocol=protocol,
    )
    if stock:
        response.headers = headers
    if stopDownload is not None:
        response.flags.append("download_stopped")
        if stopDownload.fail:
            stopDownload.response = response
            raise stopDownload
    return response


@implementer(IBodyProducer)
class BytesProducer:
    """
    A request body already in memory.

    @ivar length: Its length.
    """

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer: Any) -> Deferred[None]:
        """
        Write the whole body.
        """
        consumer.write(self._body)
        return succeed(None)

    def pauseProducing(self) -> None:
        """
        Nothing to pause: the body is written at once.
        """

    def stopProducing(self) -> None:
        """
        Nothing to stop: the body is written at once.
        """


class BodyReader(Protocol):
    """
    Collects one response body for Scrapy, and tells its download how it
    ended, once: C{done((body, flags, stopDownload))} with flags
    C{["partial"]} for a body the server ended by closing without a length,
    C{["dataloss"]} for a truncated one when data loss is allowed; or
    C{failed(error)} with C{DownloadCancelledError} past the maximum size,
    C{ResponseDataLossError} for a truncated body when it is not allowed,
    or the connection's own failure.  Nothing is told after L{cancel}.
    """

    def __init__(
        self,
        done: Callable[[tuple[bytes, list[str] | None, StopDownload | None]], None],
        failed: Callable[[BaseException], None],
        request: Any,
        crawler: Any,
        maxSize: int,
        warnSize: int,
        failOnDataLoss: bool,
        warned: bool,
        onDataLoss: Callable[[], None],
    ) -> None:
        self._done: Callable[[Any], None] | None = done
        self._failedWith = failed
        self._request = request
        self._crawler = crawler
        self._maxSize = maxSize
        self._warnSize = warnSize
        self._failOnDataLoss = failOnDataLoss
        self._warned = warned
        self._onDataLoss = onDataLoss
        self._chunks: list[bytes] = []
        self._received = 0
        self._signal = _hasReceivers(crawler, signals.bytes_received)

    def abort(self) -> None:
        """
        Drop the connection, if the body is still coming.
        """
        transport = self.transport
        if transport is not None:
            transport.stopProducing()

    def cancel(self) -> None:
        """
        The download gave up: drop the connection, and tell nothing more.
        """
        self._done = None
        self._chunks = []
        self.abort()

    def _finish(
        self, flags: list[str] | None = None, stop: StopDownload | None = None
    ) -> None:
        done = self._done
        if done is not None:
            self._done = None
            done((b"".join(self._chunks), flags, stop))

    def _fail(self, error: BaseException) -> None:
        if self._done is not None:
            self._done = None
            self._failedWith(error)

    def dataReceived(self, data: bytes) -> None:
        """
        Keep C{data}, unless the body is already over for us.
        """
        if self._done is None:
            return
        self._chunks.append(data)
        self._received += len(data)
        if self._signal:
            stop = checkStopDownload(
                signals.bytes_received, self._crawler, self._request, data=data
            )
            if stop is not None:
                self.abort()
                self._finish(stop=stop)
                return
        maxSize = self._maxSize
        if maxSize and self._received > maxSize:
            message = maxSizeMessage(
                self._received, maxSize, self._request, expected=False
            )
            logger.warning(message)
            self._chunks = []
            self.abort()
            self._fail(DownloadCancelledError(message))
            return
        warnSize = self._warnSize
        if warnSize and not self._warned and self._received > warnSize:
            self._warned = True
            logger.warning(
                warnSizeMessage(self._received, warnSize, self._request, expected=False)
            )

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        The body is over: complete, ended by the connection's close, or
        cut short.
        """
        if self._done is None:
            return
        # isinstance, not Failure.check: that compares qualified names
        # built anew for each class asked about.
        ended = reason.value
        if isinstance(ended, ResponseDone):
            self._finish()
            return
        if isinstance(ended, PotentialDataLoss):
            self._finish(flags=["partial"])
            return
        if _isDataLoss(reason):
            if not self._failOnDataLoss:
                self._finish(flags=["dataloss"])
                return
            self._onDataLoss()
            error = ResponseDataLossError(str(reason.value))
            error.__cause__ = reason.value
            self._fail(error)
            return
        assert ended is not None
        self._fail(ended)


def _isDataLoss(reason: Failure) -> bool:
    """
    Whether a body ended because the connection closed before the length
    its framing announced (Twisted's C{_DataLoss} inside C{ResponseFailed}).
    """
    if not isinstance(reason.value, ResponseFailed):
        return False
    return any(
        type(inner.value).__name__ == "_DataLoss"
        for inner in getattr(reason.value, "reasons", ())
    )


def _hasReceivers(crawler: Any, signal: object) -> bool:
    """
    Whether anything may listen to C{signal} from the crawler's signals:
    the tables C{pydispatch}'s C{getAllReceivers} reads (this sender or
    any, this signal or any) hold no receiver.  Sending a signal nobody
    listens to costs a walk through them for nothing (and per body chunk,
    more than reading the chunk), so an unwatched one is not sent.  A
    dead receiver still counts: the signal is then sent, which finds
    nobody, as before.
    """
    sender = getattr(crawler.signals, "sender", dispatcher.Anonymous)
    connections = dispatcher.connections
    anySignal = dispatcher.Any
    for table in (connections.get(id(sender)), connections.get(id(anySignal))):
        if table and (table.get(signal) or table.get(anySignal)):
            return True
    return False
