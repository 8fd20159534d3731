"""
L{pooled_http.prometheus}: the registry's text output for a pool after real
requests, the bounded C{key} labels, and no secret in any label.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.trial import unittest

from pooled_http import PooledAgent
from pooled_http.stats import KeyStats, PoolStats
from tests.faults._base import FaultTestCase

try:
    from prometheus_client import CollectorRegistry, generate_latest

    from pooled_http.prometheus import OTHER, PoolCollector, keyLabel
except ImportError:  # pragma: no cover
    PoolCollector = None  # type: ignore[assignment,misc]

SKIP = "prometheus_client is not installed (pip install pooled_http[prometheus])"


class _StatsPool:
    def __init__(self, stats: PoolStats) -> None:
        self._stats = stats

    def stats(self) -> PoolStats:
        return self._stats


def scrape(pool: Any, **kwargs: Any) -> str:
    registry = CollectorRegistry()
    registry.register(PoolCollector(pool, **kwargs))
    return generate_latest(registry).decode("utf-8")


class LabelTests(unittest.TestCase):
    """
    Key labels and their bound.
    """

    if PoolCollector is None:
        skip = SKIP

    def test_keyLabels(self) -> None:
        """
        Agent keys become C{scheme://host:port}, without user info; tunnel
        keys add the proxy URL; forwarding keys name the proxy; anything
        else is C{custom}.
        """
        agent = PooledAgent(reactor, proxy="http://alice:s3cr3t@127.0.0.1:3128")
        tunnel, _ = agent.endpointFor(b"https://127.0.0.1:8443/")
        forward, _ = agent.endpointFor(b"http://127.0.0.1:8080/")
        self.assertEqual(
            keyLabel(tunnel), "https://127.0.0.1:8443 via http://127.0.0.1:3128"
        )
        self.assertEqual(keyLabel(forward), "proxy http://127.0.0.1:3128")
        self.assertEqual(
            keyLabel((b"http", b"alice:pw@127.0.0.1", 80)), "http://127.0.0.1:80"
        )
        self.assertEqual(
            keyLabel((b"https", b"::1", 443, object())), "https://[::1]:443"
        )
        self.assertEqual(keyLabel("token-abc"), "custom")
        self.assertEqual(keyLabel(("x", "password")), "custom")

    def test_busiestKeys(self) -> None:
        """
        Only the C{maxKeys} busiest keys get a label; the others are added
        up under C{other}; keys with the same label are added up.
        """
        perKey = {
            (b"http", b"127.0.0.%d" % (i,), 80): KeyStats(inUse=i, opened=i)
            for i in range(1, 6)
        }
        perKey[(b"http", b"127.0.0.5", 80, "another policy")] = KeyStats(idle=1)
        stats = PoolStats(inUse=15, idle=1, waiting=0, perKey=perKey)
        text = scrape(_StatsPool(stats), name="p", maxKeys=2)
        self.assertIn(
            'pooled_http_key_connections{key="http://127.0.0.5:80",pool="p",'
            'state="in_use"} 5.0',
            text,
        )
        self.assertIn(
            'pooled_http_key_connections{key="http://127.0.0.5:80",pool="p",'
            'state="idle"} 1.0',
            text,
        )
        self.assertIn(
            'pooled_http_key_connections{key="http://127.0.0.4:80",pool="p",'
            'state="in_use"} 4.0',
            text,
        )
        self.assertIn(
            f'pooled_http_key_connections{{key="{OTHER}",pool="p",state="in_use"}} 6.0',
            text,
        )
        self.assertEqual(text.count("pooled_http_key_waiting_requests{"), 3)
        self.assertRaises(ValueError, PoolCollector, _StatsPool(stats), maxKeys=0)

    def test_badNameOrPool(self) -> None:
        """
        A C{name} that is not a non-empty string, or a C{pool} without
        C{stats()}, is refused when the collector is made, not at every
        scrape of the registry it would break.
        """
        pool = _StatsPool(PoolStats())
        for name in (None, 1, b"api", ""):
            error = self.assertRaises(TypeError, PoolCollector, pool, name=name)
            self.assertIn("name must be", str(error))
        error = self.assertRaises(TypeError, PoolCollector, None)
        self.assertIn("pool must be", str(error))


class CollectorTests(FaultTestCase):
    """
    A real pool's stats after requests through a proxy with credentials.
    """

    if PoolCollector is None:
        skip = SKIP

    async def test_registryOutput(self) -> None:
        """
        After two requests the output has the totals, the closed reasons,
        the wait summary and the per-key series, and no credential.
        """
        from tests.support.proxyservers import ScriptedProxy, startTarget
        from tests.test_proxy_scripted import forwardingScript

        proxy = ScriptedProxy(reactor, script=forwardingScript)
        self.addCleanup(proxy.stop)
        target = startTarget(reactor)
        self.addCleanup(target.stop)
        pool = self.makePool()
        agent = PooledAgent(
            reactor, pool=pool, proxy=f"http://alice:s3cr3t@127.0.0.1:{proxy.port}"
        )
        url = b"http://127.0.0.1:%d/" % (target.port,)
        await self.fetchOk(agent, url)
        await self.fetchOk(agent, url)
        text = scrape(pool, name="api")
        for line in (
            'pooled_http_connections{pool="api",state="idle"} 1.0',
            'pooled_http_connections{pool="api",state="in_use"} 0.0',
            'pooled_http_waiting_requests{pool="api"} 0.0',
            'pooled_http_connections_opened_total{pool="api"} 1.0',
            'pooled_http_connections_reused_total{pool="api"} 1.0',
            'pooled_http_retries_total{pool="api"} 0.0',
            'pooled_http_timeouts_total{pool="api"} 0.0',
            'pooled_http_connections_closed_total{pool="api",reason="idle_timeout"} 0.0',
            'pooled_http_wait_seconds_count{pool="api"} 2.0',
            f'pooled_http_key_connections{{key="proxy http://127.0.0.1:{proxy.port}",'
            'pool="api",state="idle"} 1.0',
        ):
            self.assertIn(line, text)
        self.assertNotIn("s3cr3t", text)
        self.assertNotIn("alice", text)
