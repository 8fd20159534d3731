"""
The Scrapy settings a L{pooled_http.scrapy.PooledDownloadHandler} reads,
turned into the keyword arguments of its pools once, when it is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["HandlerConfig", "POOLED_HTTP_SETTINGS"]

#: Our own settings, each with the pool attribute it sets and its default
#: (L{None}: the pool's own default, or disabled where the pool allows it).
POOLED_HTTP_SETTINGS: dict[str, str] = {
    "POOLED_HTTP_POOL_TIMEOUT": "poolTimeout",
    "POOLED_HTTP_IDLE_TIMEOUT": "cachedConnectionTimeout",
    "POOLED_HTTP_MAX_CONNECTION_AGE": "maxConnectionAge",
    "POOLED_HTTP_MAX_REQUESTS_PER_CONNECTION": "maxRequestsPerConnection",
    "POOLED_HTTP_MAX_CONNECTIONS_PER_HOST": "maxConnectionsPerHost",
    "POOLED_HTTP_MAX_CONNECTIONS": "maxConnections",
    "POOLED_HTTP_CONNECT_TIMEOUT": "connectTimeout",
    "POOLED_HTTP_CLOSE_GRACE_PERIOD": "closeGracePeriod",
}


def _number(settings: Any, name: str) -> float | None:
    """
    A numeric setting, or L{None} when it is unset or empty.

    @raise ValueError: Naming the setting, if it is not a number.
    """
    value = settings.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, not {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, not {value!r}") from None


@dataclass(frozen=True)
class HandlerConfig:
    """
    What a handler takes from the crawler's settings.

    @ivar poolArgs: Keyword arguments of every pool the handler makes.
    @ivar proxyPoolArgs: Those of the pool for requests through a proxy,
        where every request to one proxy shares one pool key: its per-key
        cap is the global one.
    @ivar downloadTimeout: C{DOWNLOAD_TIMEOUT}: the default whole-download
        deadline of a request without C{meta["download_timeout"]}.
    @ivar maxSize: C{DOWNLOAD_MAXSIZE} (0: no limit).
    @ivar warnSize: C{DOWNLOAD_WARNSIZE} (0: no warning).
    @ivar failOnDataLoss: C{DOWNLOAD_FAIL_ON_DATALOSS}.
    @ivar tlsVerboseLogging: C{DOWNLOADER_CLIENT_TLS_VERBOSE_LOGGING}.
    @ivar bindAddress: C{DOWNLOAD_BIND_ADDRESS} as C{(host, port)}, or
        L{None}.
    @ivar proxyAuthEncoding: C{HTTPPROXY_AUTH_ENCODING}, the encoding of the
        credentials in a C{Proxy-Authorization: Basic} header.
    """

    poolArgs: dict[str, Any]
    proxyPoolArgs: dict[str, Any]
    downloadTimeout: float | None
    maxSize: int
    warnSize: int
    failOnDataLoss: bool
    tlsVerboseLogging: bool
    bindAddress: tuple[str, int] | None
    proxyAuthEncoding: str

    @classmethod
    def fromSettings(cls, settings: Any) -> HandlerConfig:
        """
        Read a crawler's settings.

        C{CONCURRENT_REQUESTS_PER_IP} (when not 0) or else
        C{CONCURRENT_REQUESTS_PER_DOMAIN} caps the connections per pool key,
        C{CONCURRENT_REQUESTS} those over all keys, C{DOWNLOAD_TIMEOUT}
        the whole of each download (the handler's deadline) and each
        connection attempt; the C{POOLED_HTTP_*} settings override or add
        to these.

        @param settings: The crawler's C{Settings}.
        @raise ValueError: Naming the setting, for a value that is not a
            number or that the pool refuses.
        """
        perIP = settings.getint("CONCURRENT_REQUESTS_PER_IP")
        perKey = perIP if perIP > 0 else settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN")
        total = settings.getint("CONCURRENT_REQUESTS")
        downloadTimeout = _number(settings, "DOWNLOAD_TIMEOUT")
        if downloadTimeout is not None and downloadTimeout <= 0:
            downloadTimeout = None
        poolArgs: dict[str, Any] = {
            "maxConnectionsPerHost": max(perKey, 1),
            "maxConnections": max(total, perKey, 1),
            # The handler's own deadline bounds each download as a whole
            # (C{meta["download_timeout"]} or this), as Scrapy's handler
            # does: response and read timers of the pool, of the same
            # length and started later, could never fire first, but would
            # cost two timers per request (and cut a request whose meta
            # asks for longer).  A connection attempt may outlive the
            # request that started it, so it keeps its own bound.
            "connectTimeout": downloadTimeout,
            "lenientHeaders": True,
        }
        for name, attribute in POOLED_HTTP_SETTINGS.items():
            value = _number(settings, name)
            if value is None:
                continue
            if attribute in {
                "maxRequestsPerConnection",
                "maxConnectionsPerHost",
                "maxConnections",
            }:
                if not value.is_integer():
                    raise ValueError(f"{name} must be a whole number, not {value!r}")
                value = int(value)
            if value <= 0 and attribute in {"poolTimeout", "maxConnectionAge"}:
                poolArgs[attribute] = None
                continue
            poolArgs[attribute] = value
        poolArgs["maxConnections"] = max(
            poolArgs["maxConnections"], poolArgs["maxConnectionsPerHost"]
        )
        proxyPoolArgs = dict(poolArgs)
        proxyPoolArgs["maxConnectionsPerHost"] = poolArgs["maxConnections"]
        bindAddress = settings.get("DOWNLOAD_BIND_ADDRESS")
        return cls(
            poolArgs=poolArgs,
            proxyPoolArgs=proxyPoolArgs,
            downloadTimeout=downloadTimeout,
            maxSize=settings.getint("DOWNLOAD_MAXSIZE"),
            warnSize=settings.getint("DOWNLOAD_WARNSIZE"),
            failOnDataLoss=settings.getbool("DOWNLOAD_FAIL_ON_DATALOSS"),
            tlsVerboseLogging=settings.getbool("DOWNLOADER_CLIENT_TLS_VERBOSE_LOGGING"),
            bindAddress=normalizeBindAddress(bindAddress),
            proxyAuthEncoding=settings.get("HTTPPROXY_AUTH_ENCODING") or "latin-1",
        )


def normalizeBindAddress(value: Any) -> tuple[str, int] | None:
    """
    C{DOWNLOAD_BIND_ADDRESS} or C{meta["bindaddress"]} as C{(host, port)}:
    a bare host binds to any port.

    @param value: A host, a C{(host, port)} pair, or L{None}.
    @return: The pair, or L{None}.
    """
    if not value:
        return None
    if isinstance(value, str):
        return (value, 0)
    host, port = value
    return (str(host), int(port))
