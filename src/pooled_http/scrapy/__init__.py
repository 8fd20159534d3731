"""
A Scrapy download handler on pooled_http (the C{scrapy} extra).

Enable it for both schemes in a project's settings::

    DOWNLOAD_HANDLERS = {
        "http": "pooled_http.scrapy.PooledDownloadHandler",
        "https": "pooled_http.scrapy.PooledDownloadHandler",
    }

It stands in for Scrapy's C{HTTP11DownloadHandler}: the same settings, the
same request meta keys, the same exceptions and the same responses, on a
pool with a hard cap per host and overall, timeouts on every phase and a
close that never hangs.  Scrapy 2.15 or newer (the C{async}
C{download_request} and C{close} of Scrapy's handler API, and the
exceptions of C{scrapy.exceptions} its handlers raise).
"""

from __future__ import annotations

import ipaddress
import logging
from time import monotonic
from typing import Any, cast
from urllib.parse import urldefrag

from scrapy import signals
from scrapy.core.downloader.handlers.base import BaseDownloadHandler
from scrapy.exceptions import (
    DownloadCancelledError,
    DownloadTimeoutError,
    NotConfigured,
)
from scrapy.http import Response
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet import ssl
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers as TxHeaders
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer

from ._body import (
    BodyReader,
    BytesProducer,
    checkStopDownload,
    makeResponse,
    maxSizeMessage,
    scrapyHeaders,
    warnSizeMessage,
)
from ._config import HandlerConfig, normalizeBindAddress
from ._errors import scrapyError
from ._routing import routeOf
from ._shared import SharedPools, sharedPoolsFor, statsValues
from ._tls import contextFactoryFor, logTLS

__all__ = ["PooledDownloadHandler", "statsValues"]

logger = logging.getLogger("pooled_http.scrapy")


def _dataLossMessage(url: str) -> str:
    return (
        f"Got data loss in {url}. If you want to process broken "
        f"responses set the setting DOWNLOAD_FAIL_ON_DATALOSS = False"
        f" -- This message won't be shown in further requests"
    )


class PooledDownloadHandler(BaseDownloadHandler):
    """
    Scrapy's download handler for C{http} and C{https} on pooled_http.

    Settings read: C{CONCURRENT_REQUESTS_PER_DOMAIN} (or
    C{CONCURRENT_REQUESTS_PER_IP} when not 0) caps connections per host,
    C{CONCURRENT_REQUESTS} over all hosts; C{DOWNLOAD_TIMEOUT} (and
    C{meta["download_timeout"]}) bounds the whole download and each phase;
    C{DOWNLOAD_MAXSIZE}, C{DOWNLOAD_WARNSIZE}, C{DOWNLOAD_FAIL_ON_DATALOSS}
    (and their meta keys), C{DOWNLOAD_BIND_ADDRESS} (and
    C{meta["bindaddress"]}), the TLS settings through Scrapy's context
    factory, C{DOWNLOADER_CLIENT_TLS_VERBOSE_LOGGING}, C{meta["proxy"]} with
    the C{Proxy-Authorization} header; and the C{POOLED_HTTP_*} settings
    (see L{pooled_http.scrapy._config.POOLED_HTTP_SETTINGS}).

    @ivar pool: The pool of direct requests (shared with the crawl's other
        handler).
    """

    lazy = False

    def __init__(self, crawler: Any) -> None:
        """
        @param crawler: The crawler.
        @raise NotConfigured: If the crawler runs without a Twisted reactor.
        @raise ValueError: Naming the setting, for a bad setting.
        """
        settings = crawler.settings
        if not settings.getbool("TWISTED_REACTOR_ENABLED", True):
            raise NotConfigured(f"{type(self).__name__} requires a Twisted reactor.")
        super().__init__(crawler)
        _installIDNAFallbacks()
        from twisted.internet import reactor

        self._reactor: Any = reactor
        self._config = HandlerConfig.fromSettings(settings)
        config = self._config
        self._shared = sharedPoolsFor(
            crawler, lambda: SharedPools(reactor, config, contextFactoryFor(crawler))
        )
        self.pool = self._shared.pool
        self._agents = self._shared.agents
        self._transports = self._shared.transports
        self._dataLossWarned = False
        self._closing: Deferred[None] | None = None

    async def download_request(self, request: Any) -> Response:
        """
        Download C{request}.

        @param request: The Scrapy request.
        @return: Its Scrapy response.
        @raise Exception: The exceptions of C{scrapy.exceptions} Scrapy's
            own handlers raise.
        """
        return await maybe_deferred_to_future(self._download(request))

    def _download(self, request: Any) -> Deferred[Response]:
        config = self._config
        url = urldefrag(request.url)[0]
        timeout = request.meta.get("download_timeout") or config.downloadTimeout
        try:
            route = routeOf(
                request, config.bindAddress, config.proxyAuthEncoding, normalizeBindAddress
            )
            agent = self._agents.agentFor(route)
            headers = TxHeaders(request.headers)
            if route.proxy is not None and not route.forwardsProxyAuthorization:
                # Its credentials went into the proxy URL: the header must
                # never reach the target.
                headers.removeHeader(b"Proxy-Authorization")
            body = request.body
            start = monotonic()
            d: Deferred[Any] = agent.request(
                request.method.encode("ascii"),
                url.encode("ascii"),
                headers,
                cast("IBodyProducer", BytesProducer(body)) if body else None,
            )
        except Exception as e:
            failed: Deferred[Response] = Deferred()
            failed.errback(Failure(scrapyError(e)))
            return failed
        meta = request.meta

        def latency(txresponse: Any) -> Any:
            meta["download_latency"] = monotonic() - start
            return txresponse

        d.addCallback(latency)
        d.addCallback(self._bodyReady, request, url)
        if not timeout:
            return d.addErrback(_failed)
        timedOut: list[bool] = []

        def expire() -> None:
            timedOut.append(True)
            d.cancel()

        timer = self._reactor.callLater(timeout, expire)

        def stopTimer(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            if timedOut and isinstance(result, Failure):
                error = DownloadTimeoutError(
                    f"Getting {url} took longer than {timeout} seconds."
                )
                error.__cause__ = result.value
                return Failure(error)
            return result

        d.addBoth(stopTimer)
        return d.addErrback(_failed)

    def _connectionInfo(self, txresponse: Any, request: Any) -> tuple[Any, Any]:
        transport = self._transports.pop(txresponse, None)
        if transport is None:
            return None, None
        certificate = None
        getPeerCertificate = getattr(transport, "getPeerCertificate", None)
        if getPeerCertificate is not None:
            peer = getPeerCertificate()
            if peer is not None:
                certificate = ssl.Certificate(peer)
            if self._config.tlsVerboseLogging:
                logTLS(transport, request)
        address = None
        try:
            address = ipaddress.ip_address(transport.getPeer().host)
        except (AttributeError, ValueError):
            pass
        return certificate, address

    def _bodyReady(self, txresponse: Any, request: Any, url: str) -> Any:
        config = self._config
        meta = request.meta
        headers = scrapyHeaders(txresponse)
        certificate, address = self._connectionInfo(txresponse, request)
        version = txresponse.version
        protocol = f"{version[0].decode('ascii')}/{version[1]}.{version[2]}"
        length = txresponse.length
        expected = -1 if length is UNKNOWN_LENGTH else int(length)

        def finish(
            body: bytes, flags: list[str] | None = None, stop: Any = None
        ) -> Response:
            return makeResponse(
                url=url,
                status=int(txresponse.code),
                headers=headers,
                body=body,
                flags=flags,
                certificate=certificate,
                ipAddress=address,
                protocol=protocol,
                stopDownload=stop,
            )

        stop = checkStopDownload(
            signals.headers_received,
            self.crawler,
            request,
            headers=headers,
            body_length=length,
        )
        if stop is not None:
            _abandon(txresponse)
            return finish(b"", stop=stop)
        if expected == 0:
            return finish(b"")
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

        reader: BodyReader

        def cancel(_: Deferred[Any]) -> None:
            reader.abort()

        finished: Deferred[Any] = Deferred(cancel)
        reader = BodyReader(
            finished,
            request,
            self.crawler,
            maxSize,
            warnSize,
            meta.get("download_fail_on_dataloss", config.failOnDataLoss),
            warned,
            lambda: self._warnDataLoss(url),
        )
        txresponse.deliverBody(reader)
        return finished.addCallback(lambda result: finish(*result))

    def _warnDataLoss(self, url: str) -> None:
        if not self._dataLossWarned:
            self._dataLossWarned = True
            logger.warning(_dataLossMessage(url))

    async def close(self) -> None:
        """
        Close the crawl's pools, once the crawl's other handler (Scrapy
        builds one per scheme) is closed too: idle connections at once,
        those still in use after the pools' C{closeGracePeriod}; returns
        once every connection is gone, which never takes longer than that
        grace period.  The pools' statistics go to the crawl's stats
        collector first.
        """
        if self._closing is None:
            stats = getattr(self.crawler, "stats", None)
            self._closing = self._shared.release(stats)
        await maybe_deferred_to_future(self._closing)


def _failed(failure: Failure) -> Failure:
    """
    A download's failure, as the Scrapy exception for it.
    """
    error = failure.value
    assert error is not None
    return Failure(scrapyError(error))


def _installIDNAFallbacks() -> None:
    """
    Let Twisted connect to host names the C{idna} package rejects (emoji
    labels in punycode, underscores) as Scrapy's own handler does, with the
    fallback Scrapy installs for it, where this Scrapy has one.
    """
    try:
        from scrapy.core.downloader._idna_patch import (
            _install_twisted_idna_fallbacks,
        )
    except ImportError:  # pragma: no cover - a Scrapy without it
        return
    _install_twisted_idna_fallbacks()


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
