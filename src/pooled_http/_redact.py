"""
What of a pool key or a request URL may be shown (in spans, metric labels,
trace files): the scheme, host and port, never the user info Twisted's
L{twisted.web.client.URI} leaves in the host, never a proxy credential or
a TLS policy's C{repr}, and no value of a signature query parameter.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any
from urllib.parse import parse_qsl, urlencode

__all__ = [
    "keyLabel",
    "keyAttributes",
    "fullURL",
    "hostOf",
    "text",
    "splitUserInfo",
    "withoutPassword",
]

_SCHEMES = (b"http", b"https", b"ws", b"wss")

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

# Query parameters whose values are secrets (signed URLs).
_SECRET_QUERY = frozenset({"AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature"})


def text(value: Any) -> str:
    """
    C{value} as text (bytes decoded as ASCII).
    """
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return str(value)


def hostOf(value: Any) -> str:
    """
    A host as Twisted's URI parsed it, without the user info it leaves in.
    """
    return text(value).rpartition("@")[2]


def splitUserInfo(url: str, hasPath: bool = True) -> tuple[str, str | None, str]:
    """
    Split a URL around its user info.

    @param url: A URL as given, with or without C{scheme://}.
    @param hasPath: Whether the URL may have a path, query or fragment (a
        request URL): its user info ends at the last C{@} before the first
        C{/}, C{?} or C{#}.  A proxy URL has none, so its user info ends at
        the last C{@}: a password holding an unencoded C{/}, C{?}, C{#} or
        C{@} is all in it.
    @return: C{(prefix, userInfo, rest)}: the C{scheme://} (or nothing),
        the user info (L{None} when there is none) and what follows its
        C{@}.
    """
    scheme, sep, rest = url.partition("://")
    prefix = scheme + sep
    if not sep:
        prefix, rest = "", url
    end = len(rest)
    if hasPath:
        for delimiter in "/?#":
            found = rest.find(delimiter, 0, end)
            if found >= 0:
                end = found
    at = rest.rfind("@", 0, end)
    if at < 0:
        return prefix, None, rest
    return prefix, rest[:at], rest[at + 1 :]


def withoutPassword(url: str, hasPath: bool = True) -> str:
    """
    A URL as it may be shown: the password of its user info replaced by
    C{***} (the user name kept); where the user info ends is
    L{splitUserInfo}'s rule.
    """
    if "@" not in url:
        return url  # most URLs: nothing to look for (the command's, each)
    prefix, userInfo, rest = splitUserInfo(url, hasPath)
    if userInfo is None:
        return url
    user, colon, _ = userInfo.partition(":")
    return f"{prefix}{user}{':***' if colon else ''}@{rest}"


def _isAgentKey(key: Hashable) -> bool:
    return (
        isinstance(key, tuple)
        and len(key) >= 3
        and key[0] in _SCHEMES
        and isinstance(key[2], int)
    )


def keyAttributes(key: Hashable) -> dict[str, Any]:
    """
    C{url.scheme}, C{server.address} and C{server.port} of a pool key of
    C{PooledAgent} or C{Agent}, C{(scheme, host, port, ...)}; none for
    other keys (a forwarding proxy's, a custom one): they name no server.
    """
    if not _isAgentKey(key):
        return {}
    assert isinstance(key, tuple)
    return {
        "url.scheme": text(key[0]),
        "server.address": hostOf(key[1]),
        "server.port": key[2],
    }


def keyLabel(key: Hashable) -> str:
    """
    A pool key as a short label: C{scheme://host:port} (plus C{via} the
    proxy URL for a tunnel), C{proxy} and the proxy URL for a forwarding
    proxy's connections, C{custom} for any other key, never its C{repr}.
    """
    if not isinstance(key, tuple) or not key:
        return "custom"
    if key[0] == b"http-proxy" and len(key) >= 2 and isinstance(key[1], str):
        return f"proxy {key[1]}"
    if not _isAgentKey(key):
        return "custom"
    host = hostOf(key[1])
    if ":" in host:
        host = f"[{host}]"
    label = f"{text(key[0])}://{host}:{key[2]}"
    if len(key) >= 6 and isinstance(key[4], str):
        label += f" via {key[4]}"
    return label


def fullURL(parsedURI: Any) -> str:
    """
    The URL of a request as it may be shown: no user info, no fragment, and
    the values of signature query parameters replaced by C{REDACTED}; the
    path's C{;params} kept.

    @param parsedURI: A L{twisted.web.client.URI}.
    """
    scheme = text(parsedURI.scheme)
    host = hostOf(parsedURI.host)
    if ":" in host:
        host = f"[{host}]"
    port = parsedURI.port
    authority = host if port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    path = text(parsedURI.path) or "/"
    params = text(parsedURI.params)
    if params:
        path += ";" + params
    query = text(parsedURI.query)
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(name in _SECRET_QUERY for name, _ in pairs):
            query = urlencode(
                [
                    (name, "REDACTED" if name in _SECRET_QUERY else value)
                    for name, value in pairs
                ]
            )
        path += "?" + query
    return f"{scheme}://{authority}{path}"
