"""
The exceptions pooled_http raises, and L{isTemporaryNetworkError}.

Every pool error derives from L{PoolError} and carries the pool key it is
about.  Timeout errors also derive from the Twisted exception that code
written for the stock pool already handles, so an existing C{except
ResponseNeverReceived} or C{failure.check(ResponseFailed)} keeps working:

    - L{ConnectTimeoutError} is a L{twisted.internet.error.TimeoutError};
    - L{ResponseTimeoutError} is a L{ResponseNeverReceived};
    - L{ReadTimeoutError} is a L{ResponseFailed}.
"""

from __future__ import annotations

import socket
from collections.abc import Hashable
from typing import Any

from twisted.internet import error as ierror
from twisted.internet.defer import CancelledError
from twisted.python.failure import Failure
from twisted.web._newclient import (
    ParseError,
    RequestGenerationFailed,
    ResponseFailed,
    ResponseNeverReceived,
    _DataLoss,
    _WrapperException,
)
from twisted.web.http import PotentialDataLoss

__all__ = [
    "PoolError",
    "PoolTimeoutError",
    "PoolClosedError",
    "ConnectTimeoutError",
    "ResponseTimeoutError",
    "ReadTimeoutError",
    "ResponseHeadersTooLargeError",
    "FramingError",
    "LifecycleError",
    "StreamResetError",
    "UnprocessedStreamError",
    "HTTP2ProtocolError",
    "HTTP2UnavailableError",
    "isTemporaryNetworkError",
    "wrappedReasons",
    "isCancellation",
    "ProxyURLError",
    "ProxyError",
    "ProxyAuthenticationRequired",
    "ProxyUnreachableError",
    "ProxyProtocolError",
]


class PoolError(Exception):
    """
    Base class of every error raised by pooled_http.

    @ivar key: The pool key (for L{twisted.web.client.Agent}, a
        C{(scheme, host, port)} tuple) the error is about, or L{None}.
    @ivar message: The human-readable explanation.
    """

    def __init__(self, message: str, key: Hashable | None = None) -> None:
        Exception.__init__(self, message)
        self.message = message
        self.key = key

    def __str__(self) -> str:
        return self.message


class PoolTimeoutError(PoolError):
    """
    C{getConnection} waited C{poolTimeout} seconds for a free connection slot.

    @ivar limit: The name and value of the limit that was reached, e.g.
        C{"maxConnectionsPerHost=8"}.
    @ivar waited: How long the request waited, in seconds.
    """

    def __init__(self, key: Hashable, limit: str, waited: float) -> None:
        PoolError.__init__(
            self,
            f"no connection to {key!r} became free within {waited:g} s "
            f"({limit} reached); raise the limit, raise poolTimeout, "
            f"or make sure response bodies are read so connections come back",
            key,
        )
        self.limit = limit
        self.waited = waited


class PoolClosedError(PoolError):
    """
    The pool was closed (L{HTTPConnectionPool.close}) before a connection
    could be handed out.
    """

    def __init__(self, key: Hashable | None = None) -> None:
        PoolError.__init__(
            self,
            f"the connection pool is closed; no new connection to {key!r} can be made",
            key,
        )


class ConnectTimeoutError(PoolError, ierror.TimeoutError):
    """
    Opening a connection (TCP connect and any TLS handshake) took longer than
    C{connectTimeout}; the connection attempt was cancelled.

    @ivar timeout: The timeout, in seconds.
    """

    def __init__(self, key: Hashable, timeout: float) -> None:
        message = f"connecting to {key!r} took longer than connectTimeout={timeout:g} s"
        ierror.TimeoutError.__init__(self, message)
        PoolError.__init__(self, message, key)
        self.timeout = timeout


class ResponseTimeoutError(PoolError, ResponseNeverReceived):
    """
    No response headers arrived within C{responseTimeout} seconds of the
    request being sent; the connection was aborted.

    @ivar timeout: The timeout, in seconds.
    """

    def __init__(self, key: Hashable, timeout: float) -> None:
        ResponseNeverReceived.__init__(self, [])
        PoolError.__init__(
            self,
            f"no response headers from {key!r} within responseTimeout="
            f"{timeout:g} s; the connection was aborted",
            key,
        )
        self.timeout = timeout


class ReadTimeoutError(PoolError, ResponseFailed):
    """
    No response body bytes arrived for C{readTimeout} seconds while a
    response was being delivered; the connection was aborted.

    @ivar timeout: The timeout, in seconds.
    """

    def __init__(self, key: Hashable, timeout: float) -> None:
        ResponseFailed.__init__(self, [])
        PoolError.__init__(
            self,
            f"no response body bytes from {key!r} for readTimeout="
            f"{timeout:g} s; the connection was aborted",
            key,
        )
        self.timeout = timeout


class ResponseHeadersTooLargeError(PoolError, ParseError):
    """
    The response's status line and headers grew past C{maxHeaderBytes}
    without ending, or one header line past Twisted's line limit; the
    connection was closed.  Reaches callers inside
    Twisted's L{ResponseFailed}, like any other malformed response.

    @ivar limit: The limit, in bytes.
    """

    def __init__(self, key: Hashable, limit: int, line: bool = False) -> None:
        if line:
            message = (
                f"a response header line from {key!r} is longer than {limit} "
                "bytes; the connection was closed"
            )
        else:
            message = (
                f"the response headers from {key!r} exceed maxHeaderBytes={limit}; "
                "the connection was closed"
            )
        ParseError.__init__(self, message, b"")
        PoolError.__init__(self, message, key)
        self.limit = limit


class FramingError(ParseError, ValueError):
    """
    A response the client cannot frame for sure (conflicting or negative
    C{Content-Length}, a C{Transfer-Encoding} not ending in C{chunked}, an
    unasked C{101}, a broken chunk, anything llhttp refuses); the request
    fails with it inside L{ResponseFailed} and the connection is not reused.
    A L{ParseError}, as Twisted reports malformed responses, and a
    L{ValueError}, as Twisted reports a bad C{Content-Length}.
    """


class LifecycleError(PoolError):
    """
    A connection was asked to make a transition its lifecycle does not allow.
    This indicates a bug in pooled_http, never a network problem.
    """


class StreamResetError(PoolError, ResponseFailed):
    """
    The server reset one HTTP/2 stream (C{RST_STREAM}): that request
    failed, the connection and its other requests go on.  A
    L{ResponseFailed}, so code written for HTTP/1.1 failures catches it.

    @ivar streamId: The stream.
    @ivar errorCode: The HTTP/2 error code the server gave (an int).
    """

    def __init__(self, key: Hashable, streamId: int, errorCode: int) -> None:
        ResponseFailed.__init__(self, [])
        PoolError.__init__(
            self,
            f"the server reset HTTP/2 stream {streamId} to {key!r} "
            f"with {_h2ErrorName(errorCode)}",
            key,
        )
        self.streamId = streamId
        self.errorCode = errorCode


class UnprocessedStreamError(PoolError, ResponseNeverReceived):
    """
    The server said it never processed this HTTP/2 request: it sent
    C{GOAWAY} with a last stream id below the request's, or refused the
    stream (C{REFUSED_STREAM}), or the connection was going away before
    the request could start.  The retry policy sends such a request again
    whatever its method (unless a body producer had started writing): on
    a new connection, or on any when the server refused the stream while
    busy with others (the connection goes on, holding new streams until
    others finish).

    @ivar bodyStarted: Whether the request's body producer had started.
    @ivar refused: Whether the server refused the stream (C{REFUSED_STREAM})
        while busy with other streams of the connection.
    """

    def __init__(
        self,
        key: Hashable,
        why: str,
        bodyStarted: bool = False,
        refused: bool = False,
    ) -> None:
        ResponseNeverReceived.__init__(self, [])
        PoolError.__init__(
            self, f"the HTTP/2 request to {key!r} was not processed: {why}", key
        )
        self.bodyStarted = bodyStarted
        self.refused = refused


class HTTP2ProtocolError(PoolError, ResponseFailed):
    """
    The server broke the HTTP/2 protocol (or the connection failed at the
    HTTP/2 level): every request in flight on the connection failed with
    it and the connection was closed.

    @ivar detail: What went wrong, as the HTTP/2 layer put it.
    """

    def __init__(self, key: Hashable, detail: str) -> None:
        ResponseFailed.__init__(self, [])
        PoolError.__init__(
            self, f"HTTP/2 connection to {key!r} failed: {detail}", key
        )
        self.detail = detail


class HTTP2UnavailableError(PoolError, ImportError):
    """
    C{http2=True} was asked for, but the C{h2} package is not installed:
    install the C{pooled_http[http2]} extra.
    """

    def __init__(self) -> None:
        message = (
            "http2=True needs the h2 package: "
            "pip install 'pooled_http[http2]'"
        )
        ImportError.__init__(self, message)
        PoolError.__init__(self, message)


def _h2ErrorName(code: int) -> str:
    """
    The name of an HTTP/2 error code (RFC 9113, section 7), or its number.
    """
    names = (
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    )
    code = int(code)
    return names[code] if 0 <= code < len(names) else f"error code {code:#x}"


# Markers Twisted adds beside the real reason when a body is cut short.
_DATA_LOSS = (_DataLoss, PotentialDataLoss)

#: How deep L{wrappedReasons} callers look into nested wrapper exceptions.
MAX_WRAPPER_DEPTH = 10


def wrappedReasons(exc: BaseException) -> list[BaseException]:
    """
    The exceptions a Twisted wrapper exception (L{ResponseNeverReceived},
    L{ResponseFailed}, L{RequestGenerationFailed}, ...) carries, with the
    data-loss markers Twisted adds beside the real reason left out.

    This is the one place that knows how Twisted wraps the causes of a
    failed request; everything that looks inside them goes through it.

    @param exc: Any exception.
    @return: The wrapped exceptions, in order; empty if C{exc} wraps none.
    """
    if not isinstance(exc, _WrapperException):
        return []
    values = []
    for reason in exc.reasons or ():
        value = reason.value if isinstance(reason, Failure) else reason
        if value is not None and not isinstance(value, _DATA_LOSS):
            values.append(value)
    return values


def isCancellation(exc: BaseException, depth: int = 0) -> bool:
    """
    Tell whether an exception, or any exception it wraps, comes from a
    cancelled Deferred or connection attempt.

    @param exc: Any exception.
    @param depth: How deep the search already is (callers leave it at 0).
    @return: Whether C{exc} is, or wraps, a cancellation.
    """
    if isinstance(exc, (CancelledError, ierror.ConnectingCancelledError)):
        return True
    if depth >= MAX_WRAPPER_DEPTH:
        return False
    return any(isCancellation(inner, depth + 1) for inner in wrappedReasons(exc))


# Failures that mean "try again later may work".
_TEMPORARY: tuple[type[BaseException], ...] = (
    ConnectTimeoutError,
    ResponseTimeoutError,
    ReadTimeoutError,
    PoolTimeoutError,
    ierror.ConnectionRefusedError,
    ierror.ConnectionLost,
    ierror.ConnectionDone,
    ierror.ConnectionAborted,
    ierror.TCPTimedOutError,
    ierror.TimeoutError,
    ierror.NoRouteError,
    ierror.ConnectError,
    ConnectionResetError,
    ConnectionRefusedError,
    ConnectionAbortedError,
    BrokenPipeError,
    TimeoutError,
)

# Failures that will fail again the same way.
_PERMANENT: tuple[type[BaseException], ...] = (
    CancelledError,
    ierror.ConnectingCancelledError,
    PoolClosedError,
    ParseError,
    RequestGenerationFailed,
)


def _dnsIsTemporary(exc: BaseException) -> bool | None:
    """
    Classify a name-resolution failure, or return L{None} if C{exc} is not
    one.  A name that does not exist is permanent; a resolver that did not
    answer is temporary.
    """
    if isinstance(exc, socket.gaierror):
        return exc.errno in (socket.EAI_AGAIN, getattr(socket, "EAI_SYSTEM", -11))
    try:
        from twisted.names import error as nerror
    except ImportError:  # pragma: no cover - twisted.names ships with Twisted
        return None
    if isinstance(exc, nerror.DNSNameError):
        return False
    if isinstance(
        exc,
        (
            nerror.DNSServerError,
            nerror.DNSQueryTimeoutError,
            nerror.DNSQueryRefusedError,
        ),
    ):
        return True
    if isinstance(exc, ierror.DNSLookupError):
        # Twisted reports both "no such name" and "resolver down" as a
        # DNSLookupError; only the message tells them apart.
        text = str(exc).lower()
        return any(
            word in text
            for word in (
                "timeout",
                "timed out",
                "temporar",
                "again",
                "unavailable",
                "refused",
            )
        )
    return None


def _tlsError(exc: BaseException) -> bool:
    """
    Return C{True} if C{exc} is a TLS or certificate failure.
    """
    try:
        from OpenSSL import SSL
    except ImportError:  # pragma: no cover - optional dependency
        SSL = None  # type: ignore[assignment]
    if SSL is not None and isinstance(exc, SSL.Error):
        return True
    try:
        from service_identity import VerificationError
    except ImportError:  # pragma: no cover - optional dependency
        return False
    return isinstance(exc, VerificationError)


def isTemporaryNetworkError(failureOrException: Failure | BaseException) -> bool:
    """
    Tell whether a failed request may succeed if simply tried again later.

    C{True} for refused, reset or aborted connections, every timeout
    (connect, response, read, pool), a resolver that did not answer, and a
    response that was never received because the connection dropped.
    C{False} for certificate and other TLS failures, a host name that does
    not exist, malformed responses, cancellation and a closed pool.

    Twisted wraps the real causes in L{ResponseNeverReceived},
    L{ResponseFailed} and friends; those are looked into: the result is
    C{True} only if every wrapped reason is temporary.

    @param failureOrException: A L{Failure} or an exception.
    @return: Whether the error is a temporary network error.
    """
    exc: Any = failureOrException
    if isinstance(exc, Failure):
        exc = exc.value
    return exc is not None and _isTemporary(exc, 0)


def _isTemporary(exc: BaseException, depth: int) -> bool:
    if depth > MAX_WRAPPER_DEPTH:
        return False
    if _tlsError(exc):
        return False
    if isinstance(exc, ProxyError):
        return exc.temporary
    if isinstance(exc, PoolError):
        return isinstance(exc, _TEMPORARY)
    dns = _dnsIsTemporary(exc)
    if dns is not None:
        return dns
    if isinstance(exc, _WrapperException):
        values = wrappedReasons(exc)
        if not values:
            return isinstance(exc, ResponseNeverReceived)
        return all(_isTemporary(v, depth + 1) for v in values)
    if isinstance(exc, _PERMANENT):
        return False
    return isinstance(exc, _TEMPORARY)


class ProxyURLError(PoolError, ValueError):
    """
    A proxy setting is not a URL pooled_http can use.  The message names the
    setting and shows the value with any password replaced by C{***}.

    @ivar setting: The name of the setting (C{"proxy"}, C{"https_proxy"}, ...).
    """

    def __init__(self, setting: str, shown: str, why: str) -> None:
        PoolError.__init__(
            self,
            f"{setting}={shown!r} is not a usable proxy URL: {why}; write it as "
            "http://, https://, socks5:// or socks5h:// followed by "
            "[user:password@]host[:port]",
        )
        self.setting = setting


class ProxyError(PoolError):
    """
    A proxy did not give a connection to the target: it could not be
    reached, refused the tunnel, or answered something that is not the
    protocol.

    @ivar proxy: The proxy URL without its credentials, e.g.
        C{"http://127.0.0.1:3128"}.
    @ivar status: For a refused C{CONNECT}, the proxy's status code (for a
        refused SOCKS5 request, the SOCKS5 reply code); otherwise L{None}.
    @ivar reason: The reason phrase that came with C{status}, or L{None}.
    @ivar temporary: Whether trying again later may succeed.
    """

    def __init__(
        self,
        proxy: str,
        message: str,
        key: Hashable | None = None,
        status: int | None = None,
        reason: str | None = None,
        temporary: bool = False,
    ) -> None:
        PoolError.__init__(self, f"proxy {proxy}: {message}", key)
        self.proxy = proxy
        self.status = status
        self.reason = reason
        self.temporary = temporary


class ProxyAuthenticationRequired(ProxyError):
    """
    The proxy answered C{407 Proxy Authentication Required} (or refused a
    SOCKS5 username and password): put working credentials in the proxy
    URL's userinfo (C{http://user:password@host:port}).
    """


class ProxyUnreachableError(ProxyError):
    """
    The proxy itself could not be connected to (refused, unreachable, name
    not found); the target was never tried.
    """


class ProxyProtocolError(ProxyError):
    """
    The proxy answered with bytes that are not an HTTP C{CONNECT} response
    (or a SOCKS5 reply); it is probably not the kind of proxy the URL's
    scheme says.
    """


#: CONNECT status codes worth trying again: the proxy could not reach the
#: target (or was overloaded) this time.
TEMPORARY_CONNECT_STATUSES = frozenset({502, 503, 504})
