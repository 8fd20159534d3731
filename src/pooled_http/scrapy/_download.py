"""
One download of a L{pooled_http.scrapy.PooledDownloadHandler}: the request
sent through the route's agent, the response's body read under the size
limits, the Scrapy response built, all under the whole-download deadline;
its outcome goes straight to what C{download_request} awaits (an asyncio
future on the asyncio reactor, else a Deferred), with one callback per
stage instead of a chain of them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from time import monotonic
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urldefrag

from scrapy import signals
from scrapy.exceptions import DownloadCancelledError, DownloadTimeoutError
from twisted.internet import ssl
from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers as TxHeaders
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer

from .._http11response import connectionTransport
from ._body import (
    BodyReader,
    BytesProducer,
    checkStopDownload,
    makeResponse,
    maxSizeMessage,
    scrapyHeaders,
    warnSizeMessage,
)
from ._config import normalizeBindAddress
from ._errors import scrapyError
from ._routing import routeOf
from ._tls import logTLS

if TYPE_CHECKING:
    from . import PooledDownloadHandler
    from ._deadlines import Deadline

__all__ = ["Download", "FutureResult"]

logger = logging.getLogger("pooled_http.scrapy")

#: Peer address text -> its C{ipaddress} object (shared: they are
#: immutable), so that a response costs no address parse.
_ADDRESSES: dict[str, Any] = {}
_ADDRESSES_MAX = 4096


def _ipAddress(host: str) -> Any:
    address = _ADDRESSES.get(host)
    if address is None:
        address = ipaddress.ip_address(host)
        if len(_ADDRESSES) >= _ADDRESSES_MAX:
            _ADDRESSES.clear()
        _ADDRESSES[host] = address
    return address


#: A response's version tuple -> Scrapy's C{protocol} text (the few
#: versions servers answer with).
_PROTOCOLS: dict[Any, str] = {}


class FutureResult(asyncio.Future[Any]):
    """
    What C{download_request} awaits on the asyncio reactor: cancelling it
    (Scrapy cancelling the download's task) cancels the download.
    """

    download: Download | None = None

    def cancel(self, msg: Any = None) -> bool:
        """
        Cancel the future, then the download.
        """
        cancelled = super().cancel(msg)
        download = self.download
        if cancelled and download is not None:
            download.cancel()
        return cancelled


def _abandon(txresponse: Any) -> None:
    """
    Drop a response's connection without reading its body.
    """

    class _Drop:
        def makeConnection(self, transport: Any) -> None:
            transport.stopProducing()

        def dataReceived(self, data: bytes) -> None:
            pass

        def connectionLost(self, reason: Any) -> None:
            pass

    txresponse.deliverBody(_Drop())


class Download:
    """
    One download, from the request to the Scrapy response or exception.
    """

    __slots__ = (
        "_handler",
        "_request",
        "_url",
        "_result",
        "_stage",
        "_reader",
        "_deadline",
        "_timeout",
        "_timedOut",
        "_start",
        "_parts",
    )

    def __init__(self, handler: PooledDownloadHandler, request: Any, result: Any) -> None:
        """
        @param handler: The handler.
        @param request: The Scrapy request.
        @param result: A L{FutureResult} or a L{Deferred}: gets the response
            or the Scrapy exception.
        """
        self._handler = handler
        self._request = request
        url = request.url
        self._url: str = urldefrag(url)[0] if "#" in url else url
        self._result = result
        self._stage: Deferred[Any] | None = None
        self._reader: BodyReader | None = None
        self._deadline: Deadline | None = None
        self._timeout: float | None = None
        self._timedOut = False
        self._start = 0.0
        self._parts: tuple[Any, ...] = ()

    def start(self) -> Any:
        """
        Send the request.

        @return: The result given.
        """
        handler = self._handler
        config = handler._config
        request = self._request
        timeout = request.meta.get("download_timeout") or config.downloadTimeout
        try:
            route = routeOf(
                request, config.bindAddress, config.proxyAuthEncoding, normalizeBindAddress
            )
            agent = handler._agents.agentFor(route)
            headers = TxHeaders(request.headers)
            if route.proxy is not None and not route.forwardsProxyAuthorization:
                # Its credentials went into the proxy URL: the header must
                # never reach the target.
                headers.removeHeader(b"Proxy-Authorization")
            body = request.body
            self._start = monotonic()
            d: Deferred[Any] = agent.request(
                request.method.encode("ascii"),
                self._url.encode("ascii"),
                headers,
                cast("IBodyProducer", BytesProducer(body)) if body else None,
            )
        except Exception as e:
            self._fail(scrapyError(e))
            return self._result
        self._stage = d
        if timeout:
            self._timeout = timeout
            self._deadline = handler._deadlines.add(timeout, self._expire)
        d.addCallbacks(self._responded, self._failed)
        return self._result

    def cancel(self) -> None:
        """
        The awaiting side gave up: stop the current stage.
        """
        stage = self._stage
        if stage is not None:
            stage.cancel()
            return
        reader = self._reader
        if reader is not None:
            self._reader = None
            reader.cancel()
            self._failedWith(CancelledError())

    def _expire(self) -> None:
        self._deadline = None
        self._timedOut = True
        self.cancel()

    def _finished(self) -> bool:
        """
        Whether the result has been given (or cancelled), after which
        nothing more is told.
        """
        result = self._result
        if isinstance(result, Deferred):
            return bool(result.called)
        return bool(result.done())

    def _succeed(self, response: Any) -> None:
        deadline = self._deadline
        if deadline is not None:
            self._deadline = None
            deadline.cancel()
        if self._finished():
            return
        result = self._result
        if isinstance(result, Deferred):
            result.callback(response)
        else:
            result.set_result(response)

    def _fail(self, error: BaseException) -> None:
        deadline = self._deadline
        if deadline is not None:
            self._deadline = None
            deadline.cancel()
        if self._finished():
            return
        result = self._result
        if isinstance(result, Deferred):
            result.errback(Failure(error))
        else:
            result.set_exception(error)

    def _failed(self, failure: Failure) -> None:
        self._stage = None
        error = failure.value
        assert error is not None
        self._failedWith(error)

    def _failedWith(self, error: BaseException) -> None:
        if self._timedOut:
            timeoutError = DownloadTimeoutError(
                f"Getting {self._url} took longer than {self._timeout} seconds."
            )
            timeoutError.__cause__ = error
            self._fail(timeoutError)
        else:
            self._fail(scrapyError(error))

    def _connectionInfo(self, txresponse: Any) -> tuple[Any, Any]:
        transport = connectionTransport(txresponse)
        if transport is None:
            return None, None
        certificate = None
        getPeerCertificate = getattr(transport, "getPeerCertificate", None)
        if getPeerCertificate is not None:
            peer = getPeerCertificate()
            if peer is not None:
                certificate = ssl.Certificate(peer)
            if self._handler._config.tlsVerboseLogging:
                logTLS(transport, self._request)
        address = None
        try:
            address = _ipAddress(transport.getPeer().host)
        except (AttributeError, ValueError):
            pass
        return certificate, address

    def _responded(self, txresponse: Any) -> None:
        self._stage = None
        request = self._request
        meta = request.meta
        meta["download_latency"] = monotonic() - self._start
        try:
            self._read(txresponse, request, meta)
        except Exception as e:
            self._fail(scrapyError(e))

    def _read(self, txresponse: Any, request: Any, meta: Any) -> None:
        handler = self._handler
        config = handler._config
        crawler = handler.crawler
        headers = scrapyHeaders(txresponse)
        certificate, address = self._connectionInfo(txresponse)
        version = txresponse.version
        protocol = _PROTOCOLS.get(version)
        if protocol is None:
            protocol = f"{version[0].decode('ascii')}/{version[1]}.{version[2]}"
            if len(_PROTOCOLS) < 16:
                _PROTOCOLS[version] = protocol
        length = txresponse.length
        expected = -1 if length is UNKNOWN_LENGTH else int(length)
        self._parts = (int(txresponse.code), headers, certificate, address, protocol)
        stop = checkStopDownload(
            signals.headers_received,
            crawler,
            request,
            headers=headers,
            body_length=length,
        )
        if stop is not None:
            _abandon(txresponse)
            self._bodyDone((b"", None, stop))
            return
        if expected == 0:
            self._bodyDone((b"", None, None))
            return
        maxSize = meta.get("download_maxsize", config.maxSize)
        warnSize = meta.get("download_warnsize", config.warnSize)
        if maxSize and expected > maxSize:
            message = maxSizeMessage(expected, maxSize, request, expected=True)
            logger.warning(message)
            _abandon(txresponse)
            raise DownloadCancelledError(message)
        warned = bool(warnSize and expected > warnSize)
        if warned:
            logger.warning(warnSizeMessage(expected, warnSize, request, expected=True))

        url = self._url
        reader = BodyReader(
            self._bodyDone,
            self._bodyFailed,
            request,
            crawler,
            maxSize,
            warnSize,
            meta.get("download_fail_on_dataloss", config.failOnDataLoss),
            warned,
            lambda: handler._warnDataLoss(url),
        )
        self._reader = reader
        txresponse.deliverBody(reader)

    def _bodyFailed(self, error: BaseException) -> None:
        self._reader = None
        self._failedWith(error)

    def _bodyDone(self, result: tuple[bytes, list[str] | None, Any]) -> None:
        self._reader = None
        body, flags, stop = result
        status, headers, certificate, address, protocol = self._parts
        try:
            response = makeResponse(
                url=self._url,
                status=status,
                headers=headers,
                body=body,
                flags=flags,
                certificate=certificate,
                ipAddress=address,
                protocol=protocol,
                stopDownload=stop,
            )
        except Exception as e:
            self._fail(scrapyError(e))
            return
        self._succeed(response)
