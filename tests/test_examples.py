"""
The examples in C{examples/} run, stop by themselves and succeed.

Each example starts its own server on 127.0.0.1 and is run here as a
subprocess with the running interpreter; the test cases of
C{examples/trial_example.py} are also run in this process.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TIMEOUT = 90


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    """
    Run the interpreter with C{args} in a temporary directory.

    @param args: Arguments for the interpreter.
    @return: The finished process, its output captured as text.
    """
    with tempfile.TemporaryDirectory() as cwd:
        return subprocess.run(
            [sys.executable, "-W", "ignore::DeprecationWarning", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
        )


class ExampleTests(SynchronousTestCase):
    """
    Run each example.
    """

    def runExample(self, name: str, *args: str) -> str:
        """
        Run an example and check it exits 0.

        @param name: The example's file name.
        @param args: Extra arguments.
        @return: Its standard output.
        """
        process = _run(str(EXAMPLES / name), *args)
        self.assertEqual(
            process.returncode,
            0,
            f"{name} exited {process.returncode}\n"
            f"stdout:\n{process.stdout}\nstderr:\n{process.stderr}",
        )
        return process.stdout

    def runModule(self, module: str, *args: str, expect: str) -> None:
        """
        Run C{python -m module args}; check it exits 0 and prints C{expect}.

        @param module: The module to run.
        @param args: Its arguments.
        @param expect: Text its standard output must contain.
        """
        process = _run("-m", module, *args)
        self.assertEqual(process.returncode, 0, process.stdout + process.stderr)
        self.assertIn(expect, process.stdout)

    def test_agentBasic(self) -> None:
        """
        C{agent_basic.py} fetches pages one by one and in a burst.
        """
        out = self.runExample("agent_basic.py")
        self.assertIn("200 hello from /page/0", out)
        self.assertIn("burst: 20 responses, all 200: True", out)
        self.assertIn("HTTPConnectionPool", out)
        self.assertTrue(out.rstrip().endswith("done"), out)

    def test_http2(self) -> None:
        """
        C{http2.py} sends fifty requests at once over one HTTP/2 connection
        to twisted.web's HTTP/2 server.
        """
        try:
            import h2  # noqa: F401
            import priority  # noqa: F401
        except ImportError:
            self.skipTest("needs twisted[http2] (h2 and priority)")
        out = self.runExample("http2.py")
        self.assertIn("versions: {(b'HTTP', 2, 0)}", out)
        self.assertIn("first body: /page/0 over HTTP/2", out)
        self.assertIn("connections opened: 1", out)

    def test_treqBasic(self) -> None:
        """
        C{treq_basic.py} uses treqClient and treq's module-level functions.
        """
        out = self.runExample("treq_basic.py")
        self.assertIn("'body': {'answer': 42}", out)
        self.assertIn("treq.get(pool=): {'method': 'GET'", out)
        self.assertIn("treq.get(agent=): {'method': 'GET'", out)
        self.assertTrue(out.rstrip().endswith("done"), out)

    def test_proxy(self) -> None:
        """
        C{proxy.py} fetches two sites through one pooled proxy connection,
        then lets C{proxyFor} choose.
        """
        out = self.runExample("proxy.py")
        for line in ("200 first /a", "200 second /d", "200 second /f"):
            self.assertIn(line, out)
        self.assertIn("pool keys: [\"(b'http-proxy', 'http://127.0.0.1:", out)
        self.assertIn("keys now: 2, connections opened: 2", out)
        self.assertTrue(out.rstrip().endswith("done"), out)

    def test_crawler(self) -> None:
        """
        C{crawler.py} crawls its whole synthetic site within the caps.
        """
        out = self.runExample("crawler.py")
        self.assertIn("crawled 120 pages from 4 hosts", out)
        self.assertIn("errors: 0", out)
        self.assertIn("opened=", out)
        self.assertTrue(out.rstrip().endswith("OK"), out)

    def test_trialExampleWithTrial(self) -> None:
        """
        C{trial_example.py} passes under C{python -m twisted.trial}.
        """
        self.runModule(
            "twisted.trial",
            "--temp-directory=_trial",
            str(EXAMPLES / "trial_example.py"),
            expect="PASSED (successes=3)",
        )

    def test_trialExampleAsScript(self) -> None:
        """
        C{trial_example.py} also runs its tests when run as a script.
        """
        out = self.runExample("trial_example.py")
        self.assertIn("PASSED (successes=3)", out)

    def test_pytestExample(self) -> None:
        """
        C{test_pytest_example.py} passes under pytest, with pooled_http's
        fixtures and pytest-twisted.
        """
        self.runModule(
            "pytest",
            "-p",
            "no:cacheprovider",
            str(EXAMPLES / "test_pytest_example.py"),
            expect="3 passed",
        )


def _loadTrialExample() -> Any:
    """
    Import C{examples/trial_example.py}.

    @return: The module.
    """
    spec = importlib.util.spec_from_file_location(
        "pooled_http_trial_example", EXAMPLES / "trial_example.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The example's own test cases, run in this process as well.
_trialExample = _loadTrialExample()
TrialExampleLoopbackTests = _trialExample.LoopbackTests
TrialExampleInMemoryTests = _trialExample.InMemoryTests
