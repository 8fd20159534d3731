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

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "benchmarks", "run.py")
SCENARIOS = ("steady", "burst", "burst-tls", "many-hosts", "pool-ops", "memory")
TWISTED_CLIENTS = (
    "pooled_http",
    "pooled_http+PooledAgent",
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
            self.assertEqual(sorted(scenario["clients"]), sorted(clients), name)
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
        self.assertEqual(len(results["targets"]), 8)
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
