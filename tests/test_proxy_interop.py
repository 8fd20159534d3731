"""
Interoperability with real proxies no one here wrote, started by the tests
on loopback ports with configurations written to a temporary directory:

    - squid: absolute-form forwarding, CONNECT, and basic authentication
      through its C{basic_ncsa_auth} helper with an htpasswd file made
      here; its own access log counts the CONNECTs;
    - microsocks: SOCKS5 with a user name and password, C{socks5://} and
      C{socks5h://}; its own log counts the connections it made.

The targets are twisted.web servers on 127.0.0.1 (plain, and TLS with a
certificate made by trustme).  Each test skips, with the reason, when its
proxy is not installed (C{.ci/run} installs both from Debian).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from typing import Any

from twisted.internet import defer, reactor
from twisted.web.client import Agent

from pooled_http import (
    PooledAgent,
    ProxyAuthenticationRequired,
    ProxyEndpointFactory,
)
from tests.faults._base import FaultTestCase
from tests.support import proxyservers as proxies
from tests.support.servers import TLSMaterial, unusedPort

SQUID = proxies.SQUID
NCSA_AUTH = proxies.NCSA_AUTH
accepts = proxies.accepts
launchSquid = proxies.launchSquid
startTarget = proxies.startTarget
stopProcess = proxies.stopProcess
readText = proxies.readText

MICROSOCKS = shutil.which("microsocks")
OPENSSL = shutil.which("openssl")

USER = "alice"
PASSWORD = "wonder-land"

#: How many requests the CONNECT-counting test sends.
REQUESTS = 1000

#: How many of them are in flight at once.
CONCURRENCY = 16

#: Seconds a proxy gets to start listening or to stop.
START_TIMEOUT = 20.0


def htpasswdLine(user: str, password: str) -> str:
    """
    An htpasswd line (Apache MD5) for C{basic_ncsa_auth}.
    """
    assert OPENSSL is not None
    hashed = subprocess.run(
        [OPENSSL, "passwd", "-apr1", "-salt", "pooledht", password],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()
    return f"{user}:{hashed}\n"


class RealProxyTestCase(FaultTestCase):
    """
    Temporary directory, TLS material and targets.
    """

    timeout = 120

    def setUp(self) -> None:
        self.tls = TLSMaterial()
        self.directory = tempfile.mkdtemp(prefix="pooled-http-proxy-")
        # squid started as root runs as an unprivileged user that must write
        # its logs here.
        os.chmod(self.directory, 0o777)
        self.addCleanup(shutil.rmtree, self.directory, True)

    def target(self, tls: bool) -> bytes:
        options = self.tls.serverOptions(("127.0.0.1", "localhost")) if tls else None
        listening = startTarget(reactor, options)
        self.addCleanup(listening.stop)
        return b"%s://127.0.0.1:%d" % (b"https" if tls else b"http", listening.port)

    def agent(self, proxy: Any, **poolOptions: Any) -> PooledAgent:
        return PooledAgent(
            reactor,
            pool=self.makePool(**poolOptions),
            contextFactory=self.tls.clientPolicy(),
            proxy=proxy,
        )


class SquidTests(RealProxyTestCase):
    """
    Through squid.
    """

    if SQUID is None or not os.path.exists(NCSA_AUTH) or OPENSSL is None:
        skip = "squid (with basic_ncsa_auth) or openssl is not installed"

    async def startSquid(self) -> None:
        self.openPort, self.authPort = unusedPort(), unusedPort()
        directory = self.directory
        with open(os.path.join(directory, "htpasswd"), "w") as f:
            f.write(htpasswdLine(USER, PASSWORD))
        os.chmod(os.path.join(directory, "htpasswd"), 0o644)
        self.accessLog = os.path.join(directory, "access.log")
        process = launchSquid(directory, self.openPort, self.authPort)
        self.addCleanup(stopProcess, process)
        log = os.path.join(directory, "cache.log")
        await proxies.waitListening(reactor, self.openPort, process, log, START_TIMEOUT)
        await proxies.waitListening(reactor, self.authPort, process, log, START_TIMEOUT)

    def proxyURL(self, credentials: str | None = None) -> str:
        if credentials is None:
            return f"http://127.0.0.1:{self.openPort}"
        return f"http://{credentials}@127.0.0.1:{self.authPort}"

    def logLines(self, method: str) -> list[str]:
        return [
            line
            for line in readText(self.accessLog).splitlines()
            if f" {method} " in line
        ]

    async def test_connectOncePerConnection(self) -> None:
        """
        1,000 https requests through squid with authentication: squid's
        access log shows one CONNECT per connection the pool opened, not
        one per request.
        """
        await self.startSquid()
        target = self.target(tls=True)
        agent = self.agent(self.proxyURL(f"{USER}:{PASSWORD}"), maxConnectionsPerHost=4)
        semaphore = defer.DeferredSemaphore(CONCURRENCY)

        async def one(i: int) -> None:
            body = await self.fetchOk(agent, target + b"/r/%d" % (i,))
            echoed = json.loads(body)
            assert echoed["uri"] == f"/r/{i}", echoed
            assert "proxy-authorization" not in echoed["headers"], echoed

        await defer.gatherResults(
            [
                semaphore.run(lambda i=i: defer.ensureDeferred(one(i)))
                for i in range(REQUESTS)
            ],
            consumeErrors=True,
        )
        stats = agent.pool.stats()  # type: ignore[attr-defined]
        self.assertEqual(stats.opened + stats.reused, REQUESTS)
        self.assertLessEqual(stats.opened, 4)
        await agent.pool.close()  # type: ignore[attr-defined]
        # squid writes a CONNECT to its log when the tunnel closes.
        await self.waitFor(
            lambda: len(self.logLines("CONNECT")) >= stats.opened,
            "squid logged the CONNECTs",
            timeout=START_TIMEOUT,
        )
        connects = self.logLines("CONNECT")
        self.assertEqual(len(connects), stats.opened, connects)
        self.assertTrue(all(USER in line for line in connects), connects)
        self.assertNotIn(PASSWORD, readText(self.accessLog))

    async def test_forwarding(self) -> None:
        """
        http:// requests go to squid in absolute form on connections that
        every target shares; the credentials stay with squid.
        """
        await self.startSquid()
        first, second = self.target(tls=False), self.target(tls=False)
        agent = self.agent(self.proxyURL(f"{USER}:{PASSWORD}"))
        for i in range(10):
            for target in (first, second):
                echoed = json.loads(await self.fetchOk(agent, target + b"/f/%d" % (i,)))
                self.assertEqual(echoed["uri"], f"/f/{i}")
                self.assertNotIn("proxy-authorization", echoed["headers"])
        self.assertEqual(agent.pool.stats().opened, 1)  # type: ignore[attr-defined]
        # squid logs a request after answering it: the last line may lag.
        await self.waitFor(
            lambda: len(self.logLines("GET")) >= 20,
            "squid logged the GETs",
            timeout=START_TIMEOUT,
        )
        gets = self.logLines("GET")
        self.assertEqual(len(gets), 20)
        self.assertIn(first.decode() + "/f/0", gets[0])

    async def test_authenticationRequired(self) -> None:
        """
        Without credentials, or with a wrong password, squid's 407 is a
        L{ProxyAuthenticationRequired} that does not show the password.
        """
        await self.startSquid()
        target = self.target(tls=True)
        for credentials in (None, f"{USER}:wrong-secret"):
            if credentials is None:
                proxy = f"http://127.0.0.1:{self.authPort}"
            else:
                proxy = self.proxyURL(credentials)
            agent = self.agent(proxy)
            error = await self.failureOf(agent.request(b"GET", target + b"/"))
            self.assertIsInstance(error, ProxyAuthenticationRequired)
            assert isinstance(error, ProxyAuthenticationRequired)
            self.assertEqual(error.status, 407)
            self.assertNotIn("wrong-secret", str(error) + repr(agent.pool))

    async def test_environment(self) -> None:
        """
        With C{trustEnv}, C{HTTPS_PROXY} sends https:// requests through
        squid and C{no_proxy} keeps a target direct.
        """
        await self.startSquid()
        proxied, direct = self.target(tls=True), self.target(tls=True)
        directPort = direct.rsplit(b":", 1)[1].decode()
        self.patch(
            os,
            "environ",
            {
                "HTTPS_PROXY": self.proxyURL(f"{USER}:{PASSWORD}"),
                "no_proxy": f"example.invalid,127.0.0.1:{directPort}",
            },
        )
        agent = PooledAgent(
            reactor,
            pool=self.makePool(),
            contextFactory=self.tls.clientPolicy(),
            trustEnv=True,
        )
        for _ in range(3):
            await self.fetchOk(agent, proxied + b"/")
            await self.fetchOk(agent, direct + b"/")
        await agent.pool.close()  # type: ignore[attr-defined]
        await self.waitFor(
            lambda: len(self.logLines("CONNECT")) >= 1, "squid logged", START_TIMEOUT
        )
        connects = self.logLines("CONNECT")
        self.assertEqual(len(connects), 1, connects)
        self.assertIn(proxied.split(b"://")[1].decode(), connects[0])

    async def test_stockAgent(self) -> None:
        """
        A stock Agent over L{ProxyEndpointFactory} reaches http:// and
        https:// targets through squid's CONNECT.
        """
        await self.startSquid()
        factory = ProxyEndpointFactory(
            reactor, self.proxyURL(), self.tls.clientPolicy()
        )
        agent = Agent.usingEndpointFactory(reactor, factory, pool=self.makePool())
        for tls in (True, False):
            target = self.target(tls=tls)
            for _ in range(3):
                await self.fetchOk(agent, target + b"/")


class MicrosocksTests(RealProxyTestCase):
    """
    Through microsocks, a SOCKS5 server.
    """

    if MICROSOCKS is None:
        skip = "microsocks is not installed"

    async def startMicrosocks(self) -> None:
        self.port = unusedPort()
        self.log = os.path.join(self.directory, "microsocks.log")
        output = open(self.log, "wb")
        self.addCleanup(output.close)
        assert MICROSOCKS is not None
        process = subprocess.Popen(
            [
                MICROSOCKS,
                "-i",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-u",
                USER,
                "-P",
                PASSWORD,
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.addCleanup(stopProcess, process)
        await proxies.waitListening(
            reactor, self.port, process, self.log, START_TIMEOUT
        )

    def connectionsLogged(self) -> int:
        return readText(self.log).count("connected to")

    async def test_socks5(self) -> None:
        """
        C{socks5://} (names resolved here) and C{socks5h://} (by the proxy)
        to plain and TLS targets; each pooled connection is one SOCKS
        connection in microsocks' log.
        """
        await self.startMicrosocks()
        opened = 0
        for scheme in ("socks5", "socks5h"):
            agent = self.agent(f"{scheme}://{USER}:{PASSWORD}@127.0.0.1:{self.port}")
            for tls in (True, False):
                target = self.target(tls=tls).replace(b"127.0.0.1", b"localhost")
                for i in range(20):
                    echoed = json.loads(
                        await self.fetchOk(agent, target + b"/s/%d" % (i,))
                    )
                    self.assertEqual(echoed["uri"], f"/s/{i}")
            opened += agent.pool.stats().opened  # type: ignore[attr-defined]
        self.assertEqual(opened, 4)
        await self.waitFor(
            lambda: self.connectionsLogged() >= opened, "microsocks logged", 5.0
        )
        self.assertEqual(self.connectionsLogged(), opened)

    async def test_traceHooks(self) -> None:
        """
        Trace observers hear the SOCKS5 tunnel between the connect's start
        and its end, named without the proxy's credentials.
        """
        from tests.test_trace import ONE_REQUEST, Recorder

        await self.startMicrosocks()
        agent = self.agent(f"socks5h://{USER}:{PASSWORD}@127.0.0.1:{self.port}")
        recorder = Recorder()
        agent.pool.addObserver(recorder)  # type: ignore[attr-defined]
        await self.fetchOk(agent, self.target(tls=True) + b"/")
        names = [n for n in recorder.names() if not n.startswith("tls")]
        self.assertEqual(
            names,
            [
                "connectStarted",
                "tunnelStarted",
                "tunnelDone",
                "connectDone",
                *ONE_REQUEST,
            ],
        )
        (started,) = recorder.args("tunnelStarted")
        self.assertEqual(started[1:], ("SOCKS5", f"socks5h://127.0.0.1:{self.port}"))
        self.assertNotIn(PASSWORD, repr(recorder.calls))

    async def test_stockAgent(self) -> None:
        """
        A stock Agent over L{ProxyEndpointFactory} through SOCKS5.
        """
        await self.startMicrosocks()
        factory = ProxyEndpointFactory(
            reactor,
            f"socks5h://{USER}:{PASSWORD}@127.0.0.1:{self.port}",
            self.tls.clientPolicy(),
        )
        agent = Agent.usingEndpointFactory(reactor, factory, pool=self.makePool())
        target = self.target(tls=True)
        for _ in range(3):
            await self.fetchOk(agent, target + b"/")
        await self.waitFor(lambda: self.connectionsLogged() >= 1, "logged", 5.0)
        self.assertEqual(self.connectionsLogged(), 1)

    async def test_wrongPassword(self) -> None:
        """
        A refused user name and password is a L{ProxyAuthenticationRequired}.
        """
        await self.startMicrosocks()
        agent = self.agent(f"socks5://{USER}:nope-secret@127.0.0.1:{self.port}")
        error = await self.failureOf(agent.request(b"GET", b"http://127.0.0.1:9/"))
        self.assertIsInstance(error, ProxyAuthenticationRequired)
        self.assertNotIn("nope-secret", str(error))
