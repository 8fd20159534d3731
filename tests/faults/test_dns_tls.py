"""
Faults before a connection exists: a host name that does not resolve, a
resolver that is down (a stub resolver, never the machine's DNS), and TLS
that fails - an untrusted certificate, the wrong host name, a handshake that
never completes (faults 12, 13).
"""

from __future__ import annotations

from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet import reactor
from twisted.internet.error import DNSLookupError

from pooled_http import errors
from tests.faults._base import FaultTestCase
from tests.support.failures import innermost
from tests.support.protocols import onEachProtocol
from tests.support.servers import ResolverReactor, StubResolver, TLSMaterial


@onEachProtocol
class DNSTests(FaultTestCase):
    """
    Fault 12: a name that does not resolve fails with L{DNSLookupError}, not
    a temporary error; a resolver that never answers ends in
    L{errors.ConnectTimeoutError}, a temporary error.  The pool holds
    nothing afterwards.
    """

    def setUp(self) -> None:
        self.resolver = StubResolver({"ok.test": "127.0.0.1"}, silent={"down.test"})
        self.resolvingReactor = ResolverReactor(reactor, self.resolver)

    async def test_resolves(self) -> None:
        server = self.startServer()
        pool = self.makePool()
        agent = self.makeAgent(pool, reactor=self.resolvingReactor)
        url = b"http://ok.test:%d/" % (server.port,)
        self.assertEqual(await self.fetchOk(agent, url), b"ok")
        self.assertIn("ok.test", self.resolver.lookups)
        self.assertEqual(
            server.requests[0].header(b"host"), b"ok.test:%d" % (server.port,)
        )
        await self.assertPoolAtRest(pool, idle=1)

    async def test_nameDoesNotExist(self) -> None:
        pool = self.makePool()
        agent = self.makeAgent(pool, reactor=self.resolvingReactor)
        failure = await self.failureOf(self.request(agent, b"http://nx.test:80/"))
        self.assertIsInstance(failure, DNSLookupError)
        self.assertFalse(errors.isTemporaryNetworkError(failure))
        await self.assertPoolAtRest(pool, idle=0)
        self.assertEqual(pool.stats().opened, 0)

    async def test_resolverDown(self) -> None:
        pool = self.makePool(connectTimeout=0.3)
        agent = self.makeAgent(pool, reactor=self.resolvingReactor)
        failure = await self.failureOf(self.request(agent, b"http://down.test:80/"))
        self.assertIsInstance(failure, errors.ConnectTimeoutError)
        self.assertTrue(errors.isTemporaryNetworkError(failure))
        await self.assertPoolAtRest(pool, idle=0)
        self.assertEqual(pool.stats().opened, 0)


@onEachProtocol
class TLSTests(FaultTestCase):
    """
    Fault 13: TLS failures are not temporary and not retried; a handshake
    that never completes ends in L{errors.ConnectTimeoutError}.
    """

    def setUp(self) -> None:
        self.tls = TLSMaterial()

    async def test_trusted(self) -> None:
        server = self.startServer(tls=self.tls.serverOptions())
        pool = self.makePool()
        agent = self.makeAgent(pool, contextFactory=self.tls.clientPolicy())
        for _ in range(2):
            self.assertEqual(await self.fetchOk(agent, server.url()), b"ok")
        self.assertEqual(len(server.connections), 1)
        await self.assertPoolAtRest(pool, idle=1)

    async def _tlsFailure(
        self, serverIdentities: tuple[str, ...], clientTLS: TLSMaterial
    ) -> None:
        server = self.startServer(tls=self.tls.serverOptions(serverIdentities))
        pool = self.makePool()
        agent = self.makeAgent(pool, contextFactory=clientTLS.clientPolicy())
        failure = await self.failureOf(self.request(agent, server.url()))
        self.assertFalse(errors.isTemporaryNetworkError(failure), innermost(failure))
        self.assertTrue(
            any(
                isinstance(e, (SSL.Error, VerificationError))
                for e in innermost(failure)
            ),
            innermost(failure),
        )
        await self.waitLost(server, 0)
        self.assertEqual(len(server.connections), 1)
        self.assertEqual(server.requests, [])
        await self.assertPoolAtRest(pool, idle=0)

    async def test_untrustedCertificate(self) -> None:
        await self._tlsFailure(("127.0.0.1",), TLSMaterial())

    async def test_wrongHostName(self) -> None:
        await self._tlsFailure(("wrong.test",), self.tls)

    async def test_handshakeNeverCompletes(self) -> None:
        server = self.startServer()  # plain TCP: it never answers a ClientHello
        pool = self.makePool(connectTimeout=0.3)
        agent = self.makeAgent(pool, contextFactory=self.tls.clientPolicy())
        url = b"https://127.0.0.1:%d/" % (server.port,)
        failure = await self.failureOf(self.request(agent, url))
        self.assertIsInstance(failure, errors.ConnectTimeoutError)
        self.assertTrue(errors.isTemporaryNetworkError(failure))
        await self.waitLost(server, 0)
        await self.assertPoolAtRest(pool, idle=0)
        self.assertEqual(server.requests, [])
