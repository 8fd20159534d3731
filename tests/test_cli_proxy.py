"""
C{pooled-http fetch --proxy URL}, C{--noproxy LIST} and the environment's
proxy variables, which the command honours by default (as curl does): run
as a subprocess against a local site and a local forwarding proxy that
writes down every request it forwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from pooled_http.cli._options import UsageError
from pooled_http.cli._proxies import proxyArguments

_SERVERS = r"""
import json, sys, threading
from twisted.internet import reactor
from twisted.internet.protocol import Factory
from twisted.web import proxy
from pooled_http.cli._demosite import listenDemoSite

log = open(sys.argv[1], "a", buffering=1)

class Recording(proxy.ProxyRequest):
    def process(self):
        log.write(self.uri.decode() + "\n")
        proxy.ProxyRequest.process(self)

class RecordingProxy(proxy.Proxy):
    requestFactory = Recording

factory = Factory.forProtocol(RecordingProxy)
_, ports = listenDemoSite(reactor, 1)
forwarder = reactor.listenTCP(0, factory, interface="127.0.0.1")

def waitForEOF():
    sys.stdin.read()
    reactor.callFromThread(reactor.stop)

threading.Thread(target=waitForEOF, daemon=True).start()
print(json.dumps({"site": ports[0].getHost().port,
                  "proxy": forwarder.getHost().port}), flush=True)
reactor.run()
"""


def runFetch(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """
    Run C{pooled-http fetch -q ARGS} with no proxy variable of this process
    but those in C{env}.
    """
    environ = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pooled_http", "fetch", "-q", *args],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
    )


class ProxyArgumentTests(SynchronousTestCase):
    """
    L{proxyArguments}: what the options turn into.
    """

    def test_environmentByDefault(self) -> None:
        self.assertEqual(proxyArguments(None, None), {"trustEnv": True})

    def test_proxyWithBypass(self) -> None:
        proxyFor = proxyArguments("http://u:pw@127.0.0.1:3128", "example.com")["proxy"]
        chosen = proxyFor(b"http://127.0.0.1:8080/")
        self.assertEqual((chosen.host, chosen.port), ("127.0.0.1", 3128))
        self.assertIsNone(proxyFor(b"http://www.example.com/"))
        self.assertNotIn("pw", repr(chosen))

    def test_noproxyOverridesEnvironment(self) -> None:
        environ = {"HTTP_PROXY": "http://127.0.0.1:3128", "no_proxy": "127.0.0.1"}
        proxyFor = proxyArguments(None, "127.0.0.2", environ)["proxy"]
        # no_proxy from the environment no longer applies; --noproxy does.
        self.assertIsNotNone(proxyFor(b"http://127.0.0.1/"))
        self.assertIsNone(proxyFor(b"http://127.0.0.2/"))
        self.assertIsNone(proxyArguments(None, "*", environ)["proxy"](b"http://x/"))

    def test_badProxyNamesTheOption(self) -> None:
        error = self.assertRaises(
            UsageError, proxyArguments, "ftp://u:secret@127.0.0.1:21", None
        )
        self.assertIn("--proxy", str(error))
        self.assertNotIn("secret", str(error))

    def test_badEnvironmentProxyIsAUsageError(self) -> None:
        """
        A proxy variable the command cannot use is a usage error naming the
        variable as it is set (exit 2, no traceback), never its password.
        """
        result = runFetch(
            "http://127.0.0.1:9/",
            env={"HTTP_PROXY": "http://u:secret@127.0.0.1:notaport"},
        )
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("HTTP_PROXY='http://u:***@127.0.0.1:notaport'", result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        self.assertNotIn("secret", result.stderr + result.stdout)


class FetchThroughProxyTests(SynchronousTestCase):
    """
    The command through a real forwarding proxy.
    """

    def setUp(self) -> None:
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        self.log = os.path.join(directory.name, "proxy.log")
        self.servers = subprocess.Popen(
            [sys.executable, "-c", _SERVERS, self.log],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.addCleanup(self.stopServers)
        assert self.servers.stdout is not None
        ports = json.loads(self.servers.stdout.readline())
        self.site = f"http://127.0.0.1:{ports['site']}"
        self.proxy = f"http://127.0.0.1:{ports['proxy']}"

    def stopServers(self) -> None:
        assert self.servers.stdin is not None and self.servers.stdout is not None
        self.servers.stdin.close()
        try:
            self.servers.wait(10)
        except subprocess.TimeoutExpired:
            self.servers.kill()
            self.servers.wait()
        self.servers.stdout.close()

    def fetch(self, *args: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
        result = runFetch(*args, env=env)
        self.assertEqual(result.returncode, 0, result.stderr)
        return [json.loads(line) for line in result.stdout.splitlines()]

    def forwarded(self) -> list[str]:
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return f.read().split()

    def test_proxyOption(self) -> None:
        urls = [f"{self.site}/page/{i}" for i in range(5)]
        lines = self.fetch("--proxy", self.proxy, *urls)
        self.assertEqual(sorted(line["status"] for line in lines), [200] * 5)
        self.assertEqual(sorted(self.forwarded()), sorted(urls))

    def test_environment(self) -> None:
        lines = self.fetch(f"{self.site}/page/1", env={"http_proxy": self.proxy})
        self.assertEqual([line["status"] for line in lines], [200])
        self.assertEqual(self.forwarded(), [f"{self.site}/page/1"])

    def test_noproxy(self) -> None:
        lines = self.fetch(
            "--noproxy", "127.0.0.1", f"{self.site}/page/1",
            env={"http_proxy": self.proxy},
        )
        self.assertEqual([line["status"] for line in lines], [200])
        self.assertEqual(self.forwarded(), [])
