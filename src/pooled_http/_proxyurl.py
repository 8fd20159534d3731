"""
Proxy URLs: L{ProxyURL}, which keeps its credentials out of C{repr},
messages and pool keys (a keyed fingerprint stands in for them), and
L{parseProxy}, which reads one from a setting.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from urllib.parse import unquote, urlsplit

from twisted.internet.abstract import isIPv6Address

from ._redact import splitUserInfo, withoutPassword
from .errors import ProxyURLError

__all__ = ["ProxyURL", "parseProxy", "DEFAULT_PROXY_PORTS"]

#: Default ports of the proxy schemes when the URL has none.
DEFAULT_PROXY_PORTS = {"http": 80, "https": 443, "socks5": 1080, "socks5h": 1080}

# The key of the credential fingerprints: new in every process, so a
# fingerprint seen in stats or a log cannot be checked against guesses
# anywhere else.
_FINGERPRINT_KEY = os.urandom(32)


def basicAuthorization(username: bytes, password: bytes) -> bytes:
    """
    The value of a C{Basic} I{Authorization} (or I{Proxy-Authorization})
    header.

    @param username: The user name.
    @param password: The password.
    @return: C{b"Basic "} and the base64 of C{username:password}.
    """
    return b"Basic " + base64.b64encode(username + b":" + password)


#: What a 407 error tells the user to do.
CREDENTIALS_HINT = (
    "put working credentials in the proxy URL (scheme://user:password@host:port)"
)


class ProxyURL:
    """
    A parsed proxy URL.

    Equal URLs (same scheme, host, port and credentials) are equal and hash
    alike.  C{repr}, L{url} and L{keyPart} never contain the password.

    @ivar scheme: C{"http"}, C{"https"}, C{"socks5"} or C{"socks5h"}.
    @ivar host: The proxy's host name or IP address (IPv6 without brackets).
    @ivar port: The proxy's port.
    @ivar username: The user name from the URL's userinfo, or L{None}.
    """

    __slots__ = ("scheme", "host", "port", "username", "_password", "_hash")

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        """
        @param scheme: The scheme.
        @param host: The host.
        @param port: The port.
        @param username: The user name, or L{None} for none.
        @param password: The password, or L{None} for none.
        """
        self.scheme = scheme
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self._hash = hash((scheme, host, port, username, password))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProxyURL):
            return NotImplemented
        return (
            self.scheme,
            self.host,
            self.port,
            self.username,
            self._password,
        ) == (other.scheme, other.host, other.port, other.username, other._password)

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"<ProxyURL {self.url}>"

    @property
    def hasCredentials(self) -> bool:
        """
        Whether the URL carries a user name.
        """
        return self.username is not None

    @property
    def url(self) -> str:
        """
        The URL without credentials, e.g. C{"http://127.0.0.1:3128"}.
        """
        host = f"[{self.host}]" if isIPv6Address(self.host) else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def fingerprint(self) -> str | None:
        """
        A keyed hash of the credentials (L{None} without them): tells
        different credentials apart in pool keys without revealing them.
        """
        if self.username is None:
            return None
        secret = f"{self.username}\0{self._password or ''}".encode()
        return hmac.new(_FINGERPRINT_KEY, secret, hashlib.sha256).hexdigest()[:16]

    @property
    def keyPart(self) -> tuple[str, str | None]:
        """
        What a pool key holds of this proxy: C{(url, fingerprint)}.
        """
        return (self.url, self.fingerprint)

    def basicCredentials(self) -> bytes | None:
        """
        The value of a C{Proxy-Authorization} header for this proxy.

        @return: C{b"Basic ..."}, or L{None} without credentials.
        """
        if self.username is None:
            return None
        return basicAuthorization(
            self.username.encode(), (self._password or "").encode()
        )

    def socksCredentials(self) -> tuple[bytes, bytes] | None:
        """
        The user name and password for SOCKS5 authentication.

        @return: C{(username, password)}, or L{None} without credentials.
        """
        if self.username is None:
            return None
        return self.username.encode(), (self._password or "").encode()


def parseProxy(value: str | bytes | ProxyURL, setting: str = "proxy") -> ProxyURL:
    """
    Parse a proxy URL.

    A URL without a scheme is an C{http://} proxy, as for curl.  The port
    defaults to 80 (C{http}), 443 (C{https}) or 1080 (SOCKS).  The userinfo
    may be percent-encoded.

    @param value: The URL, or an already parsed L{ProxyURL}.
    @param setting: The name of the setting, for the error message.
    @return: The parsed URL.
    @raise ProxyURLError: If C{value} is not a usable proxy URL.
    """
    if isinstance(value, ProxyURL):
        return value
    if isinstance(value, bytes):
        raw = value
        try:
            value = raw.decode("ascii")
        except UnicodeDecodeError:
            raise ProxyURLError(
                setting, withoutPassword(raw.decode("ascii", "replace"), hasPath=False), "not ASCII"
            ) from None
    if not isinstance(value, str):
        raise ProxyURLError(setting, repr(type(value)), "not a str or bytes URL")
    text = value.strip()
    shown = withoutPassword(text, hasPath=False)
    if "://" not in text:
        text = "http://" + text
    userInfo = splitUserInfo(text, hasPath=False)[1] or ""
    if any(delimiter in userInfo for delimiter in "/?#"):
        raise ProxyURLError(
            setting,
            shown,
            "its user info holds /, ? or #: percent-encode them (%2F, %3F, %23)",
        )
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ProxyURLError(
            setting, shown, "the port is not a number 0-65535"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PROXY_PORTS:
        raise ProxyURLError(setting, shown, f"the scheme {scheme!r} is not supported")
    host = parts.hostname
    if not host:
        raise ProxyURLError(setting, shown, "it has no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ProxyURLError(setting, shown, "a proxy URL has no path or query")
    if port is None:
        port = DEFAULT_PROXY_PORTS[scheme]
    if port == 0:
        raise ProxyURLError(setting, shown, "port 0 cannot be connected to")
    username = None if parts.username is None else unquote(parts.username)
    password = None if parts.password is None else unquote(parts.password)
    return ProxyURL(scheme, host, port, username, password)
