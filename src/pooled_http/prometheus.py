"""
A collector for C{prometheus_client} (the C{pooled_http[prometheus]}
extra) that exposes a pool's L{stats()<pooled_http.HTTPConnectionPool.stats>}
each time the registry is scraped::

    from prometheus_client import REGISTRY
    from pooled_http.prometheus import PoolCollector
    REGISTRY.register(PoolCollector(pool, name="api"))

Every metric has a C{pool} label (the C{name} given); the per-key metrics
also have a C{key} label, C{scheme://host:port} (and C{via} the proxy URL,
without its credentials, for a tunnel; C{proxy} and the proxy URL for a
forwarding proxy's connections), for the C{maxKeys} busiest keys of the
moment (slots held plus requests waiting), the rest added up under
C{key="other"}: the number of series stays bounded however many hosts a
crawler visits.  Keys that differ only in their TLS policy or proxy
credentials share a label and are added up.  A key the pool's agents did
not make is labelled C{custom}, never by its C{repr}.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from ._redact import keyLabel
from .stats import KeyStats, PoolStats

__all__ = ["PoolCollector", "keyLabel"]

#: The C{key} label of the keys beyond the busiest.
OTHER = "other"


def _busy(stats: KeyStats) -> tuple[int, int]:
    return (stats.total + stats.waiting, stats.opened + stats.reused)


def groupKeys(stats: PoolStats, maxKeys: int) -> dict[str, KeyStats]:
    """
    The per-key stats by label: the C{maxKeys} busiest labels, and the rest
    added up as L{OTHER}.
    """
    byLabel: dict[str, KeyStats] = {}
    for key, keyStats in stats.perKey.items():
        label = keyLabel(key)
        known = byLabel.get(label)
        byLabel[label] = keyStats if known is None else _add(known, keyStats)
    if len(byLabel) <= maxKeys:
        return byLabel
    ranked = sorted(byLabel.items(), key=lambda item: _busy(item[1]), reverse=True)
    kept = dict(ranked[:maxKeys])
    rest = KeyStats()
    for _, keyStats in ranked[maxKeys:]:
        rest = _add(rest, keyStats)
    kept[OTHER] = _add(kept[OTHER], rest) if OTHER in kept else rest
    return kept


def _add(a: KeyStats, b: KeyStats) -> KeyStats:
    return KeyStats(*(x + y for x, y in zip(a, b, strict=True)))


class PoolCollector(Collector):
    """
    Exposes one pool's stats to a C{prometheus_client} registry.
    """

    def __init__(self, pool: Any, name: str = "default", maxKeys: int = 20) -> None:
        """
        @param pool: An L{HTTPConnectionPool<pooled_http.HTTPConnectionPool>}.
        @param name: The C{pool} label.
        @param maxKeys: How many keys get a label of their own.
        @raise ValueError: If C{maxKeys} is not a positive integer.
        @raise TypeError: If C{pool} has no C{stats()} or C{name} is not a
            non-empty string (it would fail every scrape of the registry).
        """
        if isinstance(maxKeys, bool) or not isinstance(maxKeys, int) or maxKeys < 1:
            raise ValueError(f"maxKeys must be a positive integer, not {maxKeys!r}")
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, not {name!r}")
        if not callable(getattr(pool, "stats", None)):
            raise TypeError(f"pool must be an HTTPConnectionPool, not {pool!r}")
        self.pool = pool
        self.name = name
        self.maxKeys = maxKeys

    def describe(self) -> list[Metric]:
        """
        No description ahead of a scrape: the registry collects once at
        registration to learn the names.
        """
        return list(self.collect())

    def collect(self) -> Iterator[Metric]:
        """
        Read the pool's stats and yield its metric families.
        """
        stats: PoolStats = self.pool.stats()
        pool = [self.name]
        connections = GaugeMetricFamily(
            "pooled_http_connections",
            "Connections of the pool by state.",
            labels=["pool", "state"],
        )
        for state, value in (
            ("idle", stats.idle),
            ("in_use", stats.inUse),
            ("connecting", stats.connecting),
            ("closing", stats.closing),
        ):
            connections.add_metric([*pool, state], value)
        yield connections
        yield self._gauge(
            "pooled_http_waiting_requests",
            "Requests waiting for a connection.",
            stats.waiting,
        )
        for name, help, value in (
            ("connections_opened", "Connections opened.", stats.opened),
            ("connections_reused", "Idle connections handed out again.", stats.reused),
            ("retries", "Requests sent again on another connection.", stats.retried),
            ("timeouts", "Timeouts of any kind (pool, connect, response, read).", stats.timedOut),
            ("connect_failures", "Connection attempts that failed.", stats.failed),
        ):  # fmt: skip
            counter = CounterMetricFamily("pooled_http_" + name, help, labels=["pool"])
            counter.add_metric(pool, value)
            yield counter
        closed = CounterMetricFamily(
            "pooled_http_connections_closed",
            "Connections closed, by reason.",
            labels=["pool", "reason"],
        )
        for reason, value in sorted(stats.closed.items()):
            closed.add_metric([*pool, reason.replace(" ", "_")], value)
        yield closed
        wait = stats.waitTime
        summary = SummaryMetricFamily(
            "pooled_http_wait_seconds",
            "Time requests waited for a connection.",
            labels=["pool"],
        )
        summary.add_metric(pool, wait.count, wait.mean * wait.count)
        yield summary
        yield self._gauge(
            "pooled_http_wait_max_seconds",
            "The longest wait for a connection since the pool was created.",
            wait.max,
        )
        yield from self._perKey(stats)

    def _gauge(self, name: str, help: str, value: float) -> GaugeMetricFamily:
        gauge = GaugeMetricFamily(name, help, labels=["pool"])
        gauge.add_metric([self.name], value)
        return gauge

    def _perKey(self, stats: PoolStats) -> Iterator[Metric]:
        groups = groupKeys(stats, self.maxKeys)
        connections = GaugeMetricFamily(
            "pooled_http_key_connections",
            "Connections of the pool by key and state.",
            labels=["pool", "key", "state"],
        )
        waiting = GaugeMetricFamily(
            "pooled_http_key_waiting_requests",
            "Requests waiting for a connection, by key.",
            labels=["pool", "key"],
        )
        opened = CounterMetricFamily(
            "pooled_http_key_connections_opened",
            "Connections opened for a key while it has been in the pool.",
            labels=["pool", "key"],
        )
        reused = CounterMetricFamily(
            "pooled_http_key_connections_reused",
            "Idle connections of a key handed out again while it has been in the pool.",
            labels=["pool", "key"],
        )
        for label, keyStats in groups.items():
            labels = [self.name, label]
            for state, value in (
                ("idle", keyStats.idle),
                ("in_use", keyStats.inUse),
                ("connecting", keyStats.connecting),
                ("closing", keyStats.closing),
            ):
                connections.add_metric([*labels, state], value)
            waiting.add_metric(labels, keyStats.waiting)
            opened.add_metric(labels, keyStats.opened)
            reused.add_metric(labels, keyStats.reused)
        yield connections
        yield waiting
        yield opened
        yield reused
