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

import asyncio
import logging
from typing import Any, cast

from scrapy.core.downloader.handlers.base import BaseDownloadHandler
from scrapy.exceptions import NotConfigured
from scrapy.http import Response
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.defer import Deferred

from ._config import HandlerConfig
from ._download import Download, FutureResult
from ._shared import SharedPools, sharedPoolsFor, statsValues
from ._tls import contextFactoryFor

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
        self._deadlines = self._shared.deadlines
        self._asyncio = _asyncioAvailable()
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
        loop = None
        if self._asyncio:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # pragma: no cover - driven outside the loop
                pass
        if loop is not None:
            future = FutureResult(loop=loop)
            future.download = Download(self, request, future)
            return cast("Response", await future.download.start())
        download = Download(self, request, None)
        download._result = Deferred(lambda _: download.cancel())
        return cast("Response", await maybe_deferred_to_future(download.start()))

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


def _asyncioAvailable() -> bool:
    """
    Whether C{download_request} must give asyncio something to await
    (Scrapy on the asyncio reactor), rather than a Deferred.
    """
    try:
        from scrapy.utils.asyncio import is_asyncio_available
    except ImportError:  # pragma: no cover - a Scrapy without it
        from scrapy.utils.reactor import is_asyncio_reactor_installed

        return bool(is_asyncio_reactor_installed())
    return bool(is_asyncio_available())


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
