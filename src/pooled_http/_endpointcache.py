"""
An endpoint factory for a stock L{twisted.web.client.Agent} that builds the
endpoint of each destination once.

A stock C{Agent} builds a new L{twisted.internet.endpoints.HostnameEndpoint}
for every request, which IDNA-encodes the host name each time (with the
pure-Python C{idna} package when it is installed), and for C{https} asks its
TLS policy for a new connection creator (a new OpenSSL context with the
default policy).  A pool cannot spare that work: the endpoint is built
before the pool sees the request.  L{CachingEndpointFactory}, given to
L{twisted.web.client.Agent.usingEndpointFactory}, remembers the endpoint of
each C{(scheme, host, port)}; connecting through it is what connecting
through a new one would be (the host name is resolved on every connect).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.web.client import URI, BrowserLikePolicyForHTTPS
from twisted.web.iweb import IAgentEndpointFactory, IPolicyForHTTPS
from zope.interface import implementer

from ._routes import directEndpoint
from ._settings import Setting

__all__ = ["CachingEndpointFactory", "DEFAULT_MAX_CACHED_ENDPOINTS", "CONNECT_TIMEOUT"]

#: How many destinations a L{CachingEndpointFactory} (or a
#: L{pooled_http.PooledAgent}) remembers by default.
DEFAULT_MAX_CACHED_ENDPOINTS = 4096

#: The rule for C{maxCachedEndpoints}, wherever it is given.
MAX_CACHED_ENDPOINTS = Setting("maxCachedEndpoints", integer=True)

#: The rule for an agent's or endpoint factory's C{connectTimeout} (the
#: pool's own setting of that name follows the same one).
CONNECT_TIMEOUT = Setting("connectTimeout", optional=True)


@implementer(IAgentEndpointFactory)
class CachingEndpointFactory:
    """
    The endpoints a stock L{twisted.web.client.Agent} would build, built
    once per destination::

        from twisted.web.client import Agent
        from pooled_http import CachingEndpointFactory, HTTPConnectionPool

        pool = HTTPConnectionPool(reactor)
        agent = Agent.usingEndpointFactory(
            reactor, CachingEndpointFactory(reactor), pool=pool
        )

    The endpoints are those of C{Agent(reactor, contextFactory,
    connectTimeout, bindAddress)}: TCP by
    L{twisted.internet.endpoints.HostnameEndpoint}, TLS for C{https} and
    C{wss} by C{contextFactory}.  The least recently used destination is
    forgotten beyond C{maxCachedEndpoints}.

    @ivar maxCachedEndpoints: How many destinations it remembers.
    """

    def __init__(
        self,
        reactor: Any,
        contextFactory: Any = None,
        connectTimeout: float | None = None,
        bindAddress: Any = None,
        *,
        maxCachedEndpoints: int = DEFAULT_MAX_CACHED_ENDPOINTS,
    ) -> None:
        """
        @param reactor: The reactor connections are made with.
        @param contextFactory: The L{IPolicyForHTTPS} deciding how https
            servers are verified; a L{BrowserLikePolicyForHTTPS} if not
            given, as for C{Agent}.
        @param connectTimeout: The C{timeout} of each
            L{twisted.internet.endpoints.HostnameEndpoint}.
        @param bindAddress: The local address client sockets bind to.
        @param maxCachedEndpoints: How many destinations to remember.
        @raise TypeError: If C{contextFactory} does not provide
            L{IPolicyForHTTPS}.
        @raise ValueError: If C{maxCachedEndpoints} is not a positive whole
            number.
        """
        if contextFactory is None:
            contextFactory = BrowserLikePolicyForHTTPS()
        if not IPolicyForHTTPS.providedBy(contextFactory):
            raise TypeError(
                f"contextFactory must provide IPolicyForHTTPS, not {contextFactory!r}"
            )
        self.maxCachedEndpoints = MAX_CACHED_ENDPOINTS.validate(maxCachedEndpoints)
        self._reactor = reactor
        self._policy = contextFactory
        self._endpointArgs: dict[str, Any] = {"bindAddress": bindAddress}
        connectTimeout = CONNECT_TIMEOUT.validate(connectTimeout)
        if connectTimeout is not None:
            self._endpointArgs["timeout"] = connectTimeout
        self._endpoints: OrderedDict[tuple[bytes, bytes, int], Any] = OrderedDict()

    def __repr__(self) -> str:
        return (
            f"<CachingEndpointFactory {len(self._endpoints)}/"
            f"{self.maxCachedEndpoints} endpoints>"
        )

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        """
        The endpoint for C{uri}'s destination: the one built before, or a
        new one.

        @param uri: The request's parsed URI.
        @raise twisted.web.error.SchemeNotSupported: For a scheme other
            than C{http}, C{https}, C{ws} and C{wss}.
        @raise ValueError: If the host is not ASCII.
        """
        key = (uri.scheme, uri.host, uri.port)
        endpoints = self._endpoints
        endpoint = endpoints.get(key)
        if endpoint is not None:
            endpoints.move_to_end(key)
            return endpoint
        endpoint = directEndpoint(
            self._reactor, *key, self._policy, self._endpointArgs
        )
        endpoints[key] = endpoint
        if len(endpoints) > self.maxCachedEndpoints:
            endpoints.popitem(last=False)
        return endpoint
