"""
The one mapping from the failures of a pooled download to the exceptions
Scrapy's download handlers raise (C{scrapy.exceptions}, Scrapy 2.15 on),
which C{RETRY_EXCEPTIONS} and users' errbacks know.
"""

from __future__ import annotations

from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadCancelledError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
    ResponseDataLossError,
    StopDownload,
    UnsupportedURLSchemeError,
)
from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectionRefusedError, DNSLookupError
from twisted.internet.error import TimeoutError as TxTimeoutError
from twisted.python.failure import Failure
from twisted.web._newclient import RequestNotSent, ResponseNeverReceived
from twisted.web.client import ResponseFailed
from twisted.web.error import SchemeNotSupported

from ..errors import (
    PoolTimeoutError,
    ProxyError,
    ProxyProtocolError,
    ProxyUnreachableError,
    ReadTimeoutError,
    ResponseTimeoutError,
)

__all__ = ["scrapyError"]

# Exceptions a download may end with that are already Scrapy's.
_SCRAPY = (
    CannotResolveHostError,
    DownloadCancelledError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
    ResponseDataLossError,
    StopDownload,
    UnsupportedURLSchemeError,
)


def _inner(error: BaseException) -> list[BaseException]:
    """
    The exceptions Twisted's wrapper exceptions (C{ResponseFailed},
    C{ResponseNeverReceived}, C{RequestNotSent}) carry, or the exception
    itself.
    """
    reasons = getattr(error, "reasons", None)
    if not reasons:
        return [error]
    found: list[BaseException] = []
    for reason in reasons:
        value = reason.value if isinstance(reason, Failure) else reason
        if isinstance(value, BaseException):
            found.extend(_inner(value))
    return found


def scrapyError(error: BaseException) -> BaseException:
    """
    The Scrapy exception for the failure of a download.

    Timeouts of any phase become C{DownloadTimeoutError}, a refused
    connection (to the target or the proxy) C{DownloadConnectionRefusedError},
    a SOCKS proxy's refusal (of the target or of the credentials) too, a
    name that does not resolve C{CannotResolveHostError}, an unknown
    scheme C{UnsupportedURLSchemeError}, a cancellation
    C{DownloadCancelledError}, and every other failure of the connection or
    the response C{DownloadFailedError}; the original is the new
    exception's C{__cause__}.  Anything else is returned as it is.

    @param error: The exception the download failed with.
    @return: The exception to raise.
    """
    if isinstance(error, _SCRAPY):
        return error
    inner = _inner(error)
    mapped: BaseException | None = None
    if any(
        isinstance(e, (TxTimeoutError, PoolTimeoutError, ReadTimeoutError))
        for e in [error, *inner]
    ) or isinstance(error, ResponseTimeoutError):
        mapped = DownloadTimeoutError(str(error))
    elif isinstance(error, SchemeNotSupported):
        mapped = UnsupportedURLSchemeError(str(error))
    elif isinstance(error, CancelledError):
        mapped = DownloadCancelledError(str(error))
    elif (
        any(isinstance(e, ConnectionRefusedError) for e in inner)
        or (
            isinstance(error, ProxyUnreachableError)
            and isinstance(error.__cause__, ConnectionRefusedError)
        )
        or _socksRefused(error)
    ):
        mapped = DownloadConnectionRefusedError(str(error))
    elif any(isinstance(e, DNSLookupError) for e in inner) or (
        isinstance(error, ProxyUnreachableError)
        and isinstance(error.__cause__, DNSLookupError)
    ):
        mapped = CannotResolveHostError(str(error))
    elif isinstance(
        error, (ResponseFailed, ResponseNeverReceived, RequestNotSent, ProxyError)
    ):
        mapped = DownloadFailedError(str(error))
    if mapped is None:
        return error
    mapped.__cause__ = error
    return mapped


def _socksRefused(error: BaseException) -> bool:
    """
    Whether a SOCKS proxy refused the connection: it answered, in SOCKS,
    that it will not connect (to that target, or with those credentials).
    """
    return (
        isinstance(error, ProxyError)
        and not isinstance(error, (ProxyUnreachableError, ProxyProtocolError))
        and error.proxy.startswith("socks")
    )
