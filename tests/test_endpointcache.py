"""
L{CachingEndpointFactory}: the endpoints a stock L{Agent} builds, built once
per destination, on a memory reactor and over loopback.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import URI, Agent, BrowserLikePolicyForHTTPS, readBody
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import IAgentEndpointFactory, IPolicyForHTTPS
from zope.interface import implementer
from zope.interface.verify import verifyObject

from pooled_http import CachingEndpointFactory
from tests.support.servers import TLSMaterial
from tests.test_agent import _LoopbackMixin


@implementer(IPolicyForHTTPS)
class _CountingPolicy:
    """
    A TLS policy that counts the connection creators asked of it.
    """

    def __init__(self) -> None:
        self.asked: list[tuple[bytes, int]] = []
        self._policy = BrowserLikePolicyForHTTPS()

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        self.asked.append((hostname, port))
        return self._policy.creatorForNetloc(hostname, port)


class CachingEndpointFactoryTests(SynchronousTestCase):
    """
    Which endpoint each URI gets, and what is refused.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.policy = _CountingPolicy()
        self.factory = CachingEndpointFactory(self.reactor, self.policy)

    def endpoint(self, uri: bytes) -> Any:
        return self.factory.endpointForURI(URI.fromBytes(uri))

    def test_interface(self) -> None:
        """
        It provides L{IAgentEndpointFactory}.
        """
        self.assertTrue(verifyObject(IAgentEndpointFactory, self.factory))

    def test_onePerDestination(self) -> None:
        """
        URIs of one C{(scheme, host, port)} get the same endpoint, other
        destinations their own.
        """
        first = self.endpoint(b"http://127.0.0.1:8080/a")
        self.assertIsInstance(first, HostnameEndpoint)
        self.assertIs(self.endpoint(b"http://127.0.0.1:8080/b?c"), first)
        self.assertIsNot(self.endpoint(b"http://127.0.0.1:8081/a"), first)
        self.assertIsNot(self.endpoint(b"http://localhost:8080/a"), first)

    def test_httpsOneCreator(self) -> None:
        """
        An https destination asks the policy for its connection creator
        once, however many requests go to it.
        """
        first = self.endpoint(b"https://127.0.0.1:8443/a")
        self.assertIs(self.endpoint(b"https://127.0.0.1:8443/b"), first)
        self.assertNotIsInstance(first, HostnameEndpoint)
        self.assertEqual(self.policy.asked, [(b"127.0.0.1", 8443)])

    def test_leastRecentlyUsedForgotten(self) -> None:
        """
        Beyond C{maxCachedEndpoints}, the least recently used destination
        is forgotten.
        """
        factory = CachingEndpointFactory(self.reactor, maxCachedEndpoints=2)
        uris = [URI.fromBytes(b"http://127.0.0.1:%d/" % (p,)) for p in (1, 2, 3)]
        one = factory.endpointForURI(uris[0])
        two = factory.endpointForURI(uris[1])
        self.assertIs(factory.endpointForURI(uris[0]), one)
        factory.endpointForURI(uris[2])
        self.assertIs(factory.endpointForURI(uris[0]), one)
        self.assertIsNot(factory.endpointForURI(uris[1]), two)
        self.assertEqual(repr(factory), "<CachingEndpointFactory 2/2 endpoints>")

    def test_unsupportedScheme(self) -> None:
        """
        Another scheme is refused with L{SchemeNotSupported}, as by Agent.
        """
        self.assertRaises(SchemeNotSupported, self.endpoint, b"ftp://127.0.0.1/")

    def test_nonASCIIHost(self) -> None:
        """
        A host that is not ASCII is refused with a L{ValueError} naming it.
        """
        uri = URI.fromBytes(b"http://127.0.0.1/")
        uri.host = "h\u00e9".encode()
        error = self.assertRaises(ValueError, self.factory.endpointForURI, uri)
        self.assertIn("non-ASCII", str(error))

    def test_badArguments(self) -> None:
        """
        A policy that is not an L{IPolicyForHTTPS} and a cache size that is
        not a positive whole number are refused, naming the argument.
        """
        error = self.assertRaises(
            TypeError, CachingEndpointFactory, self.reactor, object()
        )
        self.assertIn("contextFactory", str(error))
        for bad in (0, -1, 1.5, True, "3", None):
            error = self.assertRaises(
                ValueError,
                CachingEndpointFactory,
                self.reactor,
                maxCachedEndpoints=bad,
            )
            self.assertIn("maxCachedEndpoints", str(error))
        for bad in ("5", -1, 0, True):
            error = self.assertRaises(
                ValueError, CachingEndpointFactory, self.reactor, connectTimeout=bad
            )
            self.assertIn("connectTimeout", str(error))


class StockAgentTests(_LoopbackMixin, TestCase):
    """
    A stock L{Agent} on the factory and a pooled_http pool, over loopback.
    """

    async def fetchAll(self, scheme: bytes, tls: Any, policy: Any) -> None:
        self.startServer(tls)
        pool = self.makePool()
        factory = CachingEndpointFactory(reactor, policy)
        agent = Agent.usingEndpointFactory(reactor, factory, pool=pool)
        for _ in range(3):
            response = await agent.request(b"GET", self.url(b"/hello", scheme))
            self.assertEqual(await readBody(response), self.hello)
        self.assertEqual(pool.stats().opened, 1)
        self.assertEqual(pool.stats().reused, 2)
        self.assertEqual(repr(factory), "<CachingEndpointFactory 1/4096 endpoints>")

    async def test_http(self) -> None:
        """
        Requests over http reuse one connection and one endpoint.
        """
        await self.fetchAll(b"http", None, None)

    async def test_https(self) -> None:
        """
        Over https the factory's policy verifies the server.
        """
        material = TLSMaterial()
        await self.fetchAll(b"https", material.serverOptions(), material.clientPolicy())
