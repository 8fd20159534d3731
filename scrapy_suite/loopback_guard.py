"""
A pytest plugin for running Scrapy's download-handler tests here: name
resolution answers only for loopback names and addresses, so no test (and
no module-level probe of Scrapy's test package) sends a DNS query to any
server; every other name fails as a name that does not exist.

Loaded with C{-p loopback_guard} so that it patches L{socket} before
Scrapy's test package or Twisted's resolver import it.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any

# Scrapy's cookies middleware reads the public suffix list through
# tldextract, which would download it: the snapshot tldextract ships does.
os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""

_realGetaddrinfo = socket.getaddrinfo
_realGethostbyname = socket.gethostbyname

_LOOPBACK_NAMES = {"localhost", "localhost.", "localhost.localdomain"}


def _isLoopback(host: Any) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]")
    if host in ("", "0.0.0.0", "::") or host.lower() in _LOOPBACK_NAMES:
        return True
    if host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _refuse(host: Any) -> socket.gaierror:
    return socket.gaierror(
        socket.EAI_NONAME, f"Name or service not known: {host!r} (loopback only)"
    )


def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    """
    L{socket.getaddrinfo} for loopback hosts; any other fails.
    """
    if not _isLoopback(host):
        raise _refuse(host)
    return _realGetaddrinfo(host, port, *args, **kwargs)


def gethostbyname(host: str) -> str:
    """
    L{socket.gethostbyname} for loopback hosts; any other fails.
    """
    if not _isLoopback(host):
        raise _refuse(host)
    return _realGethostbyname(host)


socket.getaddrinfo = getaddrinfo
socket.gethostbyname = gethostbyname


def pytest_configure(config: Any) -> None:
    """
    Check that Twisted's resolver, which binds L{socket.getaddrinfo} when
    it is first imported, bound the guarded one.
    """
    import twisted.internet._resolver as resolver

    if resolver.getaddrinfo is not getaddrinfo:
        raise RuntimeError(
            "twisted.internet._resolver was imported before loopback_guard: "
            "load it first with -p loopback_guard"
        )
