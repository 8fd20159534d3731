"""
treq's own integration suite (C{treq.test.test_treq_integration}, shipped
inside treq, run against a local httpbin) with its pool switched to a
persistent L{pooled_http.HTTPConnectionPool}: once under Twisted's stock
L{Agent}, once under L{PooledAgent}.  The tear-down is the one most suites
write: C{return self.pool.closeCachedConnections()}.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import pytest
from twisted.internet import reactor as _reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.ssl import Certificate, trustRootFromCertificates
from twisted.python.url import URL
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS

from pooled_http import HTTPConnectionPool, PooledAgent

pytest.importorskip("httpbin")
treqSuite = pytest.importorskip("treq.test.test_treq_integration")

reactor: Any = _reactor

# One httpbin per scheme for the whole module, logging outside the checkout.
_LOG = os.path.join(tempfile.gettempdir(), "pooled_http-httpbin-error.log")
_parent = pytest.importorskip("treq.test.local_httpbin.parent")
_HTTPBIN = _parent._HTTPBinProcess(https=False, error_log_path=_LOG)
_HTTPBIN_TLS = _parent._HTTPBinProcess(https=True, error_log_path=_LOG)


class _Persistent:
    """
    Replaces the suite's set-up: the same local httpbin, and an agent of
    C{agentClass} over a persistent pooled_http pool.
    """

    agentClass: Any
    https = False
    _httpbin_process: Any

    @inlineCallbacks
    def setUp(self) -> Any:
        description = yield self._httpbin_process.server_description(reactor)
        scheme = "https" if self.https else "http"
        self.baseurl = URL(
            scheme=scheme, host=description.host, port=description.port
        ).asText()
        options: dict[str, Any] = {}
        if self.https:
            root = trustRootFromCertificates([Certificate.loadPEM(description.cacert)])
            options["contextFactory"] = BrowserLikePolicyForHTTPS(root)
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.agent = self.agentClass(reactor, pool=self.pool, **options)

    def tearDown(self) -> Any:
        return self.pool.closeCachedConnections()


class StockAgentHTTPTests(_Persistent, treqSuite.TreqIntegrationTests):
    """
    treq's HTTP tests, stock L{Agent} over a persistent pooled_http pool.
    """

    agentClass = Agent
    _httpbin_process = _HTTPBIN


class StockAgentHTTPSTests(_Persistent, treqSuite.HTTPSTreqIntegrationTests):
    """
    treq's HTTPS tests, stock L{Agent} over a persistent pooled_http pool.
    """

    agentClass = Agent
    https = True
    _httpbin_process = _HTTPBIN_TLS


class PooledAgentHTTPTests(_Persistent, treqSuite.TreqIntegrationTests):
    """
    treq's HTTP tests through L{PooledAgent}.
    """

    agentClass = PooledAgent
    _httpbin_process = _HTTPBIN


class PooledAgentHTTPSTests(_Persistent, treqSuite.HTTPSTreqIntegrationTests):
    """
    treq's HTTPS tests through L{PooledAgent}.
    """

    agentClass = PooledAgent
    https = True
    _httpbin_process = _HTTPBIN_TLS
