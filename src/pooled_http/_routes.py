"""
What a L{pooled_http.PooledAgent} works out once per destination: the
schemes it knows, the identity of a TLS policy in a pool key, the route
(key, endpoint, I{Host} value) of a destination, and URI parsing that does
not depend on the Twisted installed.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import Any
from urllib.parse import unquote_to_bytes

from twisted.internet.abstract import isIPv6Address
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.web._newclient import Request, _ensureValidURI
from twisted.web.client import URI
from twisted.web.error import SchemeNotSupported
from twisted.web.http_headers import Headers

from ._http11head import _oneHeader
from ._proxyurl import basicAuthorization
from ._tls import wrapClientTLS

__all__ = ["TLSPolicyIdentity", "directEndpoint", "parseURI"]

_PLAIN_SCHEMES = frozenset({b"http", b"ws"})
_TLS_SCHEMES = frozenset({b"https", b"wss"})
_DEFAULT_PORTS = frozenset({(b"http", 80), (b"https", 443)})

#: Methods known to be tokens, so that checking one costs a set lookup.
_GOOD_METHODS = frozenset(
    {b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE"}
)


class TLSPolicyIdentity:
    """
    The identity of a TLS policy (or endpoint factory), as the last element
    of a pool key.

    Two identities are equal if and only if they wrap the very same object,
    whatever that object's own C{__eq__} says. The wrapped object is kept
    alive by the identity, so its C{id()} can never be reused by another
    policy while a key naming it exists.

    @ivar policy: The wrapped object.
    """

    __slots__ = ("policy", "_hash")

    def __init__(self, policy: object) -> None:
        """
        @param policy: The TLS policy (an L{twisted.web.iweb.IPolicyForHTTPS}) or the
            L{twisted.web.iweb.IAgentEndpointFactory} whose identity this is.
        """
        self.policy = policy
        self._hash = hash(id(policy))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TLSPolicyIdentity):
            return self.policy is other.policy
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        if isinstance(other, TLSPolicyIdentity):
            return self.policy is not other.policy
        return NotImplemented

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"<{type(self.policy).__name__} at {id(self.policy):#x}>"


def directEndpoint(
    reactor: Any,
    scheme: bytes,
    host: bytes,
    port: int,
    policy: Any,
    endpointArgs: dict[str, Any],
    wrapCreator: Any = None,
) -> IStreamClientEndpoint:
    """
    The endpoint of a direct connection to a destination, as
    L{twisted.web.client.Agent} builds it: TCP by L{HostnameEndpoint}, with
    TLS by C{policy} for C{https}/C{wss}.

    @param reactor: The reactor.
    @param scheme: C{http}, C{https}, C{ws} or C{wss}.
    @param host: The host, as in the URI.
    @param port: The port.
    @param policy: The L{twisted.web.iweb.IPolicyForHTTPS}.
    @param endpointArgs: C{timeout} and C{bindAddress} for
        L{HostnameEndpoint}.
    @param wrapCreator: Called with the TLS connection creator to wrap it
        (ALPN), or L{None}.
    @raise SchemeNotSupported: For any other scheme.
    @raise ValueError: If the host is not ASCII.
    """
    if scheme not in _PLAIN_SCHEMES and scheme not in _TLS_SCHEMES:
        raise SchemeNotSupported(f"Unsupported scheme: {scheme!r}")
    try:
        textHost = host.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError(
            f"The host of the provided URI ({host!r}) contains "
            "non-ASCII octets, it should be ASCII decodable."
        ) from None
    endpoint: Any = HostnameEndpoint(reactor, textHost, port, **endpointArgs)
    if scheme in _TLS_SCHEMES:
        creator = policy.creatorForNetloc(host, port)
        if wrapCreator is not None:
            creator = wrapCreator(creator)
        endpoint = wrapClientTLS(creator, endpoint)
    return endpoint


class _Route:
    """
    Everything a L{PooledAgent} works out once per destination.

    @ivar key: The pool key.
    @ivar endpoint: The endpoint new connections are opened with.
    @ivar hostValue: The value of the I{Host} header.
    @ivar forward: Whether requests go to an HTTP proxy in absolute form.
    @ivar proxyAuthorization: The I{Proxy-Authorization} value added to
        forwarded requests, or L{None}.
    """

    __slots__ = (
        "key",
        "endpoint",
        "hostValue",
        "forward",
        "proxyAuthorization",
    )

    def __init__(
        self,
        key: Hashable,
        endpoint: IStreamClientEndpoint,
        hostValue: bytes,
        forward: bool = False,
        proxyAuthorization: bytes | None = None,
    ) -> None:
        self.key = key
        self.endpoint = endpoint
        self.hostValue = hostValue
        self.forward = forward
        self.proxyAuthorization = proxyAuthorization

    def hostHeaders(self) -> Headers:
        """
        New request headers holding only the I{Host} header, as
        C{Headers().addRawHeader(b"Host", hostValue)} makes them.
        """
        return _oneHeader(b"Host", self.hostValue)


#: The plainest absolute URIs: a lowercase C{http} or C{https} scheme, a
#: host name or IPv4 address, an optional port, a path without parameters
#: (C{;}) that does not start with C{//}, an optional query, no fragment,
#: no user info, no byte that is not printable ASCII.  What
#: L{URI.fromBytes} makes of them is plain to see, so they are parsed
#: with this one expression (crawlers send each URI once: no cache helps).
_PLAIN_URI = re.compile(
    rb"(https?)://([A-Za-z0-9.-]+)(?::([0-9]{1,5}))?"
    rb"(/(?!/)[\x21-\x22\x24-\x3a\x3c-\x3e\x40-\x7e]*)?"
    rb"(?:\?([\x21-\x22\x24-\x7e]*))?"
)


class _URI(URI):
    """
    A L{URI} whose C{originForm} is put together without C{urlunparse}
    where that gives the same bytes: no parameters, a path that is empty
    or starts with a single C{/}.
    """

    @property
    def originForm(self) -> bytes:
        """
        The path and query, as L{URI.originForm}.
        """
        path = self.path
        if self.params or path[:2] == b"//" or (path and path[:1] != b"/"):
            return bytes(URI.originForm.fget(self))  # type: ignore[attr-defined]
        query = self.query
        if query:
            return bytes(path + b"?" + query)
        return bytes(path or b"/")


def parseURI(uri: bytes) -> URI:
    """
    Parse an absolute request URI as L{twisted.web.client.Agent} does,
    with the default port of C{https} and C{wss} 443 and of every other
    scheme 80, whatever the installed Twisted's L{URI} knows.

    @param uri: The URI.
    @return: The parsed URI.
    @raise ValueError: If it is not a valid URI.
    """
    uri = uri.strip()
    plain = _PLAIN_URI.fullmatch(uri)
    if plain is not None:
        scheme, host, port, path, query = plain.groups()
        if port is None:
            netloc = host
            number = 443 if scheme == b"https" else 80
        else:
            netloc = host + b":" + port
            number = int(port)
        return _URI(scheme, netloc, host, number, path or b"", b"", query or b"", b"")
    uri = _ensureValidURI(splitUserinfo(uri)[0])
    scheme = uri.split(b":", 1)[0].lower()
    return _URI.fromBytes(uri, defaultPort=443 if scheme in _TLS_SCHEMES else 80)


def splitUserinfo(uri: bytes) -> tuple[bytes, bytes | None]:
    """
    Take the user info (C{user:password@}) out of an absolute URI's
    authority; an C{@} in the path, query or fragment stays.

    @param uri: The URI.
    @return: The URI without it, and the user info (still percent-encoded)
        or L{None}.
    """
    start = uri.find(b"//")
    if start < 0:
        return uri, None
    start += 2
    end = len(uri)
    for separator in (b"/", b"?", b"#"):
        found = uri.find(separator, start, end)
        if found >= 0:
            end = found
    at = uri.rfind(b"@", start, end)
    if at < 0:
        return uri, None
    return uri[:start] + uri[at + 1 :], uri[start:at]


def uriAuthorization(uri: bytes) -> bytes | None:
    """
    The C{Authorization} value for the user info of a URI, as curl,
    requests, httpx and aiohttp send it: C{Basic} with the percent-decoded
    user name and password.

    @param uri: The URI.
    @return: C{b"Basic ..."}, or L{None} if the URI has no user info.
    """
    userinfo = splitUserinfo(uri.strip())[1]
    if userinfo is None:
        return None
    user, _, password = userinfo.partition(b":")
    return basicAuthorization(unquote_to_bytes(user), unquote_to_bytes(password))


def _checkRequestShape() -> bool:
    """
    Whether the installed Twisted's L{Request} holds just the attributes
    L{newRequest} sets (so that it may set them itself).
    """
    headers = Headers()
    probe = Request._construct(b"GET", b"/", headers, None, True, None)
    expected = {
        "method": b"GET",
        "uri": b"/",
        "headers": headers,
        "bodyProducer": None,
        "persistent": True,
        "_parsedURI": None,
    }
    return type(getattr(probe, "__dict__", None)) is dict and vars(probe) == expected


_SET_FIELDS = _checkRequestShape()


def newRequest(
    method: bytes,
    uri: bytes,
    headers: Headers,
    bodyProducer: Any,
    persistent: bool,
    parsedURI: URI,
) -> Request:
    """
    A L{Request} as C{Request._construct} builds it, for a method and a
    request URI the agent has already checked (so without checking them
    again, where the installed Twisted's L{Request} allows it).

    @param method: A valid method.
    @param uri: A valid request URI (origin or absolute form).
    @param headers: The request headers.
    @param bodyProducer: The body's producer, or L{None}.
    @param persistent: Whether to ask for a persistent connection.
    @param parsedURI: The parsed absolute URI.
    @return: The request.
    """
    if not _SET_FIELDS:  # pragma: no cover - a Request of another shape
        return Request._construct(
            method, uri, headers, bodyProducer, persistent, parsedURI
        )
    request: Any = Request.__new__(Request)
    request.__dict__ = {
        "method": method,
        "uri": uri,
        "headers": headers,
        "bodyProducer": bodyProducer,
        "persistent": persistent,
        "_parsedURI": parsedURI,
    }
    return request


def _computeHostValue(scheme: bytes, host: bytes, port: int) -> bytes:
    """
    Compute the value of the I{Host} header exactly as
    L{twisted.web.client.Agent} does: IPv6 literals in brackets, the port
    left out when it is the scheme's default.

    @param scheme: The URI scheme.
    @param host: The host, without brackets.
    @param port: The port.
    @return: The header value.
    """
    if isIPv6Address(host.decode("ascii", "replace")):
        host = b"[" + host + b"]"
    if (scheme, port) in _DEFAULT_PORTS:
        return host
    return b"%b:%d" % (host, port)
