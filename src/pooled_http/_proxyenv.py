"""
Which proxy the environment asks for, by curl's rules.

Pure functions over a mapping of environment variables, so they are tested
with tables and never read C{os.environ} themselves:

    - C{http_proxy} for C{http://} (and C{ws://}) targets, C{https_proxy}
      for C{https://} (and C{wss://}), C{all_proxy} for either when the
      scheme's own variable is not set;
    - each name in lower case wins over the same name in upper case;
    - C{HTTP_PROXY} is ignored when C{REQUEST_METHOD} is set: in a CGI
      program any client can set it with a C{Proxy:} request header
      ("httpoxy");
    - C{no_proxy} is a comma-separated list of host names (matching the name
      and its subdomains, with or without a leading dot), C{host:port},
      IP addresses and CIDR ranges; C{*} alone turns proxying off.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

__all__ = [
    "environmentValue",
    "environmentVariable",
    "proxyFromEnvironment",
    "noProxyMatches",
]

_SCHEME_VARIABLES = {
    "http": "http_proxy",
    "ws": "http_proxy",
    "https": "https_proxy",
    "wss": "https_proxy",
}


def environmentVariable(environ: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """
    The proxy variable in effect for C{name}, lower case first.

    @param environ: The environment.
    @param name: The lower-case name, e.g. C{"https_proxy"}.
    @return: C{(variable, value)}: the name as set (C{"HTTPS_PROXY"} when
        only the upper-case one is; for error messages) and the value with
        surrounding blanks removed; L{None} if it is not set or empty.  A
        lower-case variable that is set but empty hides the upper-case one.
    """
    value = environ.get(name)
    if value is None:
        upper = name.upper()
        if upper == "HTTP_PROXY" and "REQUEST_METHOD" in environ:
            return None
        value = environ.get(upper)
        name = upper
    if value is None:
        return None
    value = value.strip()
    return (name, value) if value else None


def environmentValue(environ: Mapping[str, str], name: str) -> str | None:
    """
    The value of a proxy variable, as L{environmentVariable} finds it.

    @return: The value, or L{None} if it is not set or empty.
    """
    found = environmentVariable(environ, name)
    return None if found is None else found[1]


def _splitHostPort(entry: str) -> tuple[str, int | None]:
    """
    Split a C{no_proxy} entry into host and optional port.

    @param entry: C{host}, C{host:port}, C{[v6]}, C{[v6]:port}, a bare IPv6
        address or a CIDR range.
    @return: C{(host, port)}; C{port} is L{None} when the entry has none.
    """
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        if rest.startswith(":") and rest[1:].isdigit():
            return host, int(rest[1:])
        return host, None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        if port.isdigit():
            return host, int(port)
    return entry, None


def _asAddress(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def noProxyMatches(noProxy: str, host: str, port: int) -> bool:
    """
    Tell whether a target is excluded from proxying by a C{no_proxy} list.

    @param noProxy: The list, e.g. C{"localhost,.example.com,127.64.0.0/10"}.
    @param host: The target host (a name or an IP address, IPv6 with or
        without brackets).
    @param port: The target port.
    @return: Whether the target must be reached directly.
    """
    host = host.strip("[]").rstrip(".").lower()
    address = _asAddress(host)
    for raw in noProxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entryHost, entryPort = _splitHostPort(entry)
        if entryPort is not None and entryPort != port:
            continue
        if address is not None:
            try:
                network = ipaddress.ip_network(entryHost, strict=False)
            except ValueError:
                continue
            if address in network:
                return True
            continue
        domain = entryHost.lstrip(".").rstrip(".")
        if domain and (host == domain or host.endswith("." + domain)):
            return True
    return False


def proxyFromEnvironment(
    environ: Mapping[str, str], scheme: str, host: str, port: int
) -> tuple[str, str] | None:
    """
    The proxy the environment asks for to reach one target.

    @param environ: The environment.
    @param scheme: The target's scheme (C{"http"}, C{"https"}, ...).
    @param host: The target host.
    @param port: The target port.
    @return: C{(variable, url)}: the name of the variable the URL came from
        (for error messages) and the URL, or L{None} for a direct connection.
    """
    noProxy = environmentValue(environ, "no_proxy")
    if noProxy is not None and noProxyMatches(noProxy, host, port):
        return None
    for name in (_SCHEME_VARIABLES.get(scheme.lower()), "all_proxy"):
        if name is None:
            continue
        found = environmentVariable(environ, name)
        if found is not None:
            return found
    return None
