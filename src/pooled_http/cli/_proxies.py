"""
How C{pooled-http fetch} picks a proxy, like curl: C{--proxy URL} for
every request, C{--noproxy LIST} for the hosts that go direct, and
otherwise the environment (C{http_proxy}, C{https_proxy}, C{all_proxy},
C{no_proxy}), which the command honours by default.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from twisted.web.client import URI

from .._proxyenv import noProxyMatches, proxyFromEnvironment
from .._proxyurl import parseProxy
from ..errors import ProxyURLError
from ._options import UsageError

__all__ = ["proxyArguments"]


def proxyArguments(
    proxy: str | None, noProxy: str | None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """
    The C{proxy} and C{trustEnv} arguments of the command's L{PooledAgent}.

    @param proxy: C{--proxy}, or L{None}.
    @param noProxy: C{--noproxy} (curl's C{no_proxy} syntax), or L{None}.
    @param environ: The environment (the process's by default).
    @return: Keyword arguments for L{pooled_http.PooledAgent}.
    @raise UsageError: For a proxy URL that cannot be used, naming the
        option or variable (never its password).
    """
    if proxy is None and noProxy is None:
        return {"trustEnv": True}
    if proxy is not None:
        try:
            chosen = parseProxy(proxy, "--proxy")
        except ProxyURLError as e:
            raise UsageError(str(e)) from None
        return {"proxy": _bypassing(noProxy, lambda scheme, host, port: chosen)}
    environ = dict(os.environ if environ is None else environ)
    for name in list(environ):
        if name.lower() == "no_proxy":
            del environ[name]
    environ["no_proxy"] = noProxy or ""
    parsed: dict[str, Any] = {}

    def fromEnvironment(scheme: str, host: str, port: int) -> Any:
        found = proxyFromEnvironment(environ, scheme, host, port)
        if found is None:
            return None
        name, value = found
        if value not in parsed:
            parsed[value] = parseProxy(value, name)
        return parsed[value]

    return {"proxy": _bypassing(noProxy, fromEnvironment)}


def _bypassing(
    noProxy: str | None, choose: Callable[[str, str, int], Any]
) -> Callable[[bytes], Any]:
    """
    A C{proxyFor(uri)} that sends the hosts C{noProxy} names direct and
    asks C{choose(scheme, host, port)} for the others.
    """

    def proxyFor(uri: bytes) -> Any:
        parsed = URI.fromBytes(uri.strip())
        host = parsed.host.decode("ascii", "replace")
        if noProxy and noProxyMatches(noProxy, host, parsed.port):
            return None
        return choose(parsed.scheme.decode("ascii", "replace"), host, parsed.port)

    return proxyFor
