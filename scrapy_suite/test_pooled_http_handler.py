"""
Scrapy's own download-handler tests, run against
L{pooled_http.scrapy.PooledDownloadHandler}: the test classes of
C{tests/utils/bases/download_handlers_http.py} from Scrapy's source
distribution, each subclassed with our handler the way Scrapy's
C{tests/test_downloader_handler_twisted_http11.py} subclasses them with
C{HTTP11DownloadHandler}.

This module is copied into the unpacked distribution's C{tests/} by
C{.ci/scrapy-suite}; it is not part of pooled_http's own suite.

Left out, with the reason:

- C{TestRealWebsiteBase}: it downloads from a public web site (the tests
  here reach loopback addresses only).
- C{TestTunnelingErrors} of Scrapy's module: it tests
  C{HTTP11DownloadHandler} itself (its C{TunnelError}), not the bases.
"""

from __future__ import annotations

from typing import Any

import pytest

from pooled_http.scrapy import PooledDownloadHandler

try:
    from tests.utils.bases import download_handlers_http as bases
except ImportError:  # Scrapy before 2.18 kept the bases in a test module
    from tests import test_downloader_handlers_http_base as bases  # type: ignore[no-redef]

TestHttpBase = bases.TestHttpBase
TestHttpProxyBase = bases.TestHttpProxyBase
TestHttpsBase = bases.TestHttpsBase
TestHttpsCustomCiphersBase = bases.TestHttpsCustomCiphersBase
TestHttpsInvalidDNSIdBase = bases.TestHttpsInvalidDNSIdBase
TestHttpsInvalidDNSPatternBase = bases.TestHttpsInvalidDNSPatternBase
TestHttpsTLSVersionBase = bases.TestHttpsTLSVersionBase
TestHttpsWrongHostnameBase = bases.TestHttpsWrongHostnameBase
TestHttpWithCrawlerBase = bases.TestHttpWithCrawlerBase
TestMitmProxyBase = bases.TestMitmProxyBase
TestSimpleHttpsBase = bases.TestSimpleHttpsBase

pytestmark = pytest.mark.requires_reactor

HANDLER = "pooled_http.scrapy.PooledDownloadHandler"


class PooledHandlerMixin:
    @property
    def download_handler_cls(self) -> type[PooledDownloadHandler]:
        return PooledDownloadHandler

    @property
    def settings_dict(self) -> dict[str, Any] | None:
        return {"DOWNLOAD_HANDLERS": {"http": HANDLER, "https": HANDLER}}


class TestHttp(PooledHandlerMixin, TestHttpBase):
    pass


class TestHttps(PooledHandlerMixin, TestHttpsBase):
    pass


class TestSimpleHttps(PooledHandlerMixin, TestSimpleHttpsBase):
    pass


class TestHttpsWrongHostname(PooledHandlerMixin, TestHttpsWrongHostnameBase):
    pass


class TestHttpsInvalidDNSId(PooledHandlerMixin, TestHttpsInvalidDNSIdBase):
    pass


class TestHttpsInvalidDNSPattern(PooledHandlerMixin, TestHttpsInvalidDNSPatternBase):
    pass


class TestHttpsCustomCiphers(PooledHandlerMixin, TestHttpsCustomCiphersBase):
    pass


class TestHttpsTLSVersion(PooledHandlerMixin, TestHttpsTLSVersionBase):
    pass


class TestHttpWithCrawler(PooledHandlerMixin, TestHttpWithCrawlerBase):
    pass


class TestHttpsWithCrawler(TestHttpWithCrawler):
    is_secure = True


class TestHttpProxy(PooledHandlerMixin, TestHttpProxyBase):
    pass


class TestHttpsProxy(PooledHandlerMixin, TestHttpProxyBase):
    is_secure = True


@pytest.mark.requires_mitmproxy
class TestMitmProxy(PooledHandlerMixin, TestMitmProxyBase):
    # http://, https:// (TLS to the proxy, TLS in TLS for https targets)
    # and socks5:// proxies, with the credentials Scrapy's proxy middleware
    # puts in Proxy-Authorization.
    handler_supports_socks = True
