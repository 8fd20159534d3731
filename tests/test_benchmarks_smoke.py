"""
Smoke test for benchmarks/run.py: every scenario at a tiny size, with the
twisted.web fallback server and (when installed) nginx, so the benchmarks
cannot rot. Nothing here looks at how fast anything was.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "benchmarks", "run.py")
SCENARIOS = (
    "steady",
    "burst",
    "burst-tls",
    "burst-h2",
    "many-hosts",
    "pool-ops",
    "memory",
)
#: The clients of burst-h2 (the HTTP/2 ones run nowhere else).
H2_SCENARIO_CLIENTS = (
    "pooled_http+h2",
    "pooled_http+PooledAgent",
    "httpx+h2",
    "aiohttp",
    "h2load",
)
H2_ONLY = ("pooled_http+h2", "httpx+h2", "h2load")
TWISTED_CLIENTS = (
    "pooled_http",
    "pooled_http+PooledAgent",
    "pooled_http+tuned",
    "twisted-default",
    "twisted-tuned",
)


def installed(module: str) -> bool:
    """
    @return: Whether C{module} can be imported.
    """
    return importlib.util.find_spec(module) is not None


def nginxInstalled() -> bool:
    """
    @return: Whether an nginx binary is available.
    """
    return shutil.which("nginx") is not None or os.path.exists("/usr/sbin/nginx")


class BenchmarkSmokeTests(SynchronousTestCase):
    """
    Run C{benchmarks/run.py --smoke} and check the results it writes.
    """

    def runSmoke(self, server: str, plot: bool) -> dict[str, Any]:
        """
        Run the runner at smoke size against C{server}.

        @param server: C{"nginx"} or C{"twisted"}.
        @param plot: Whether to draw the PNG too.
        @return: The JSON results.
        """
        clients = list(TWISTED_CLIENTS) + [
            c for c in ("aiohttp", "httpx") if installed(c)
        ]
        if installed("h2"):
            clients.append("pooled_http+h2")
            if installed("httpx"):
                clients.append("httpx+h2")
        if shutil.which("h2load"):
            clients.append("h2load")
        if shutil.which("wrk") is not None:
            clients.append("wrk")
        output = tempfile.mkdtemp(prefix="bench-smoke-")
        self.addCleanup(shutil.rmtree, output, True)
        command = [
            sys.executable,
            RUNNER,
            "--smoke",
            "--server",
            server,
            "--clients",
            ",".join(clients),
            "--output",
            output,
            "--name",
            "smoke",
        ]
        if not plot:
            command.append("--no-plot")
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=180, check=False
        )
        self.assertEqual(
            completed.returncode, 0, completed.stdout[-2000:] + completed.stderr[-3000:]
        )
        with open(os.path.join(output, "smoke.json")) as f:
            results: dict[str, Any] = json.load(f)
        with open(os.path.join(output, "smoke.md")) as f:
            markdown = f.read()
        self.assertIn("## Targets", markdown)
        if "aiohttp" in clients:
            self.assertIn("At equal connection counts", markdown)
            self.assertRegex(markdown, r"- burst-tls: [0-9.]+x \(")
        if plot:
            self.assertTrue(os.path.exists(os.path.join(output, "smoke.png")))
        self.checkResults(results, clients, completed.stdout)
        return results

    def checkResults(
        self, results: dict[str, Any], clients: list[str], log: str
    ) -> None:
        """
        Every scenario ran every client it could, and nothing failed.
        """
        self.assertEqual(sorted(results["scenarios"]), sorted(SCENARIOS))
        for name, scenario in results["scenarios"].items():
            if name == "burst-h2":
                expected = [c for c in clients if c in H2_SCENARIO_CLIENTS]
            else:
                expected = [
                    c
                    for c in clients
                    if c not in H2_ONLY
                    and (c != "pooled_http+tuned" or name in ("burst", "burst-tls"))
                ]
            self.assertEqual(sorted(scenario["clients"]), sorted(expected), name)
            for client, entry in scenario["clients"].items():
                where = f"{name}/{client}: {entry}\n{log[-2000:]}"
                summary = entry.get("summary", {})
                self.assertNotIn("failed", summary, where)
                if "unavailable" in summary:
                    # Only clients that genuinely cannot run are excused.
                    self.assertTrue(
                        client == "pooled_http+PooledAgent"
                        or summary["unavailable"].startswith("n/a"),
                        where,
                    )
                    continue
                if scenario["mode"] == "poolops":
                    for keys, byKey in entry["byKeys"].items():
                        self.assertGreater(byKey["usPerCycle"], 0, f"{where} {keys}")
                    continue
                self.assertEqual(summary.get("errors", 0), 0, where)
                self.assertGreater(summary["rps"], 0, where)
                self.assertGreater(summary["opened"], 0, where)
                if scenario["mode"] == "memory":
                    self.assertGreater(summary["idleConnections"], 0, where)
        # The stock pool with its defaults serves this scenario, so the
        # ratios exist; the pool-ops target is always evaluated.
        self.assertEqual(len(results["targets"]), 9)
        burst = results["scenarios"]["burst"]["clients"]["twisted-default"]["summary"]
        self.assertAlmostEqual(burst["vsStock"], 1.0)

    def test_fallbackServer(self) -> None:
        """
        Every scenario runs against the twisted.web fallback server.
        """
        results = self.runSmoke("twisted", plot=installed("matplotlib"))
        self.assertEqual(results["machine"]["server"], "twisted.web")

    def test_nginx(self) -> None:
        """
        Every scenario runs against nginx, when it is installed.
        """
        if not nginxInstalled():
            raise self.skipTest("nginx is not installed")
        results = self.runSmoke("nginx", plot=False)
        self.assertEqual(results["machine"]["server"], "nginx")


class ScrapyCrawlSmokeTests(SynchronousTestCase):
    """
    Run C{benchmarks/scrapy_crawl.py} at a tiny size: every handler crawls
    every page, and the summary names them all.
    """

    def runCrawl(self, *extra: str) -> dict[str, Any]:
        if not installed("scrapy"):
            raise self.skipTest("Scrapy is not installed")
        command = [
            sys.executable,
            os.path.join(ROOT, "benchmarks", "scrapy_crawl.py"),
            "--pages",
            "20",
            "--concurrency",
            "5",
            "--repeats",
            "1",
            "--server",
            "nginx" if nginxInstalled() else "twisted",
            *extra,
        ]
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=300, check=False
        )
        self.assertIn(completed.returncode, (0, 1), completed.stderr)
        summary: dict[str, Any] = json.loads(completed.stdout)
        return summary

    def test_handlerOnly(self) -> None:
        """
        With C{--handler-only} every handler downloads every page without
        a crawl, and the exit status says nothing of the target.
        """
        summary = self.runCrawl("--handler-only", "--handlers", "pooled_http,memory")
        self.assertEqual(summary["mode"], "handler only")
        for name in ("pooled_http", "memory"):
            figures = summary["handlers"][name]
            self.assertEqual(figures.get("errors"), 0, (name, figures))
            self.assertEqual(len(figures["runs"]), 1, name)

    def test_crawl(self) -> None:
        summary = self.runCrawl()
        handlers = summary["handlers"]
        self.assertIn("http11", handlers)
        self.assertIn("pooled_http", handlers)
        self.assertIn("memory", handlers)
        for name, figures in handlers.items():
            self.assertEqual(figures.get("errors"), 0, (name, figures))
            self.assertEqual(len(figures["runs"]), 1, name)


class ProxyBenchmarkSmokeTests(SynchronousTestCase):
    """
    Run C{benchmarks/proxy.py} at a tiny size through squid, so it cannot
    rot either.
    """

    def test_proxyBenchmark(self) -> None:
        from tests.support.proxyservers import SQUID

        if SQUID is None:
            raise SkipTest("squid is not installed (apt-get install squid)")
        completed = subprocess.run(
            [
                sys.executable,
                os.path.join(ROOT, "benchmarks", "proxy.py"),
                "--requests",
                "40",
                "--concurrency",
                "10",
                "--repeats",
                "1",
            ],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        self.assertIn(completed.returncode, (0, 1), completed.stderr)
        summary = json.loads(completed.stdout)
        # aiohttp comes with the bench extra, not the test one.
        clients = ["pooled_http+PooledAgent"] + (
            ["aiohttp"] if installed("aiohttp") else []
        )
        for client in clients:
            figures = summary["clients"][client]
            self.assertIn("rps", figures, f"{client}: {figures}")
            self.assertEqual(figures["errors"], 0, client)
        ours = summary["clients"]["pooled_http+PooledAgent"]
        self.assertTrue(ours["connectsAtMostConnections"])
        self.assertGreater(ours["connects"], 0)


def _runScript(case: SynchronousTestCase, script: str, *args: str) -> Any:
    """
    Run a script of C{benchmarks/} that prints one JSON document, and
    check that it exits 0.

    @return: The document.
    """
    completed = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    case.assertEqual(completed.returncode, 0, completed.stderr[-2000:])
    return json.loads(completed.stdout)


class TLSLayersSmokeTests(SynchronousTestCase):
    """
    Run C{benchmarks/tls_layers.py} at a tiny size: each layer carries the
    request and response and gets figures.
    """

    def test_bothLayers(self) -> None:
        if not installed("trustme"):
            raise self.skipTest("trustme is not installed (the bench extra)")
        layers = _runScript(
            self, "tls_layers.py", "--rounds", "50", "--handshakes", "3", "--repeats", "1"
        )["layers"]
        self.assertEqual(sorted(layers), ["pooled_http", "pyOpenSSL", "ssl"])
        for name, figures in layers.items():
            self.assertGreater(figures["usPerRequest"], 0, name)
            self.assertGreater(figures["msPerClientHandshake"], 0, name)


class ScrapyInMemorySmokeTests(SynchronousTestCase):
    """
    Run C{benchmarks/scrapy_inmemory.py} at a tiny size: the handler's
    downloads of canned responses all succeed and get a figure.
    """

    def test_downloads(self) -> None:
        if not installed("scrapy"):
            raise self.skipTest("Scrapy is not installed")
        figures = _runScript(
            self, "scrapy_inmemory.py", "--downloads", "200", "--repeats", "1"
        )
        self.assertGreater(figures["usPerDownloadMedian"], 0)
