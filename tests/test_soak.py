"""
A reduced soak in the test suite: 2,000 requests (and 1,000 over TLS,
directly, through a scripted CONNECT proxy and through squid) through one
pool against a loopback server that kills a seeded random 5% of
its connections at random points (before headers, mid-body, while idle).  Runs the same code as
benchmarks/soak.py, which does 50,000 and also checks memory.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

from twisted.internet import reactor
from twisted.trial import unittest

from tests.support.protocols import onEachProtocol
from tests.support.proxyservers import SQUID

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def loadSoak() -> Any:
    """
    Import benchmarks/soak.py by path.
    """
    name = "pooled_http_benchmarks_soak"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(ROOT, "benchmarks", "soak.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@onEachProtocol
class SoakTests(unittest.TestCase):
    """
    Nothing is lost, doubled or leaked when connections die at random.

    @cvar protocol: The wire protocol of the soak's pool.
    """

    timeout = 60
    protocol = "auto"

    async def test_soak(self) -> None:
        """
        Every request ends with a response or a typed error, no POST is
        processed twice, file descriptors return to their starting count,
        the pool is at rest and no DelayedCall is left.
        """
        soak = loadSoak()
        result = await soak.runSoak(
            reactor,
            requests=2000,
            seed=20,
            killRate=0.05,
            concurrency=8,
            maxSeconds=25,
            protocol=self.protocol,
        )
        self.assertEqual(result.protocol, self.protocol)
        self.assertEqual(result.problems(checkMemory=False), [])
        self.assertEqual(result.requests, 2000)
        self.assertEqual(result.succeeded + sum(result.errors.values()), 2000)
        self.assertGreater(sum(result.kills.values()), 0, "the server killed nothing")
        self.assertGreater(result.succeeded, 1800)

    async def soakTLS(self, seed: int, proxy: str | None = None) -> Any:
        """
        Soak over TLS with 1,000 requests; check nothing was lost.

        @return: The soak's result.
        """
        soak = loadSoak()
        result = await soak.runSoak(
            reactor,
            requests=1000,
            seed=seed,
            killRate=0.05,
            concurrency=8,
            maxSeconds=25,
            tls=True,
            proxy=proxy,
            protocol=self.protocol,
        )
        self.assertEqual(result.protocol, self.protocol)
        self.assertEqual(result.problems(checkMemory=False), [])
        self.assertEqual(result.succeeded + sum(result.errors.values()), 1000)
        self.assertGreater(sum(result.kills.values()), 0, "the server killed nothing")
        return result

    async def test_soakTLS(self) -> None:
        """
        The same over TLS, with 1,000 requests.
        """
        await self.soakTLS(seed=21)

    async def test_soakThroughProxy(self) -> None:
        """
        The same over TLS through a CONNECT proxy, with 1,000 requests:
        one CONNECT per connection the server saw, nothing lost.
        """
        result = await self.soakTLS(seed=22, proxy="scripted")
        self.assertEqual(result.tunnels, result.connections)
        self.assertGreater(result.tunnels, 0)

    async def test_soakThroughSquid(self) -> None:
        """
        The same through a real squid: squid's access log shows one CONNECT
        per connection the server saw, and nothing is lost.
        """
        if SQUID is None:
            raise unittest.SkipTest(
                "squid is not installed (apt-get install squid); the soak "
                "through squid needs it"
            )
        result = await self.soakTLS(seed=23, proxy="squid")
        self.assertEqual(result.tunnels, result.connections)
        self.assertGreater(result.tunnels, 0)


class HTTP2SoakTests(unittest.TestCase):
    """
    The soak over HTTP/2, against a server that drops connections with
    streams in flight, resets streams, sends GOAWAY mid-burst and after N
    streams, and delays responses.
    """

    timeout = 60

    async def test_soakHTTP2(self) -> None:
        """
        2,000 requests over HTTP/2: every request ends with a response or a
        typed error, no POST the server processed is sent again (those it
        refused or left above a GOAWAY's last stream id may be), file
        descriptors and the pool are back at rest, no DelayedCall is left.
        """
        try:
            import h2  # noqa: F401
        except ImportError:
            raise unittest.SkipTest(
                "h2 is not installed (pip install 'pooled_http[http2]'); "
                "the HTTP/2 soak needs it"
            ) from None
        soak = loadSoak()
        result = await soak.runSoak(
            reactor,
            requests=2000,
            seed=24,
            killRate=0.1,
            concurrency=8,
            maxSeconds=25,
            http2=True,
        )
        self.assertTrue(result.http2)
        self.assertEqual(result.problems(checkMemory=False), [])
        self.assertEqual(result.requests, 2000)
        self.assertEqual(result.succeeded + sum(result.errors.values()), 2000)
        for kind in ("GOAWAY after N streams", "RST_STREAM REFUSED_STREAM"):
            self.assertGreater(result.kills[kind], 0, kind)
        self.assertGreater(sum(result.kills.values()), 0, "the server killed nothing")
        self.assertNotIn("HTTP2ProtocolError", result.errors)
        self.assertGreater(result.succeeded, 1500)
