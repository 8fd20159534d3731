"""
What C{import pooled_http} and the C{pooled-http} command need: the library
imports with Twisted alone (treq only when L{pooled_http.treqClient} is used,
rich never), and the command says how to install the C{cli} extra when rich
is missing.

Each check runs in a fresh interpreter in which the optional modules are
made unimportable (C{sys.modules[name] = None}), since this test suite runs
with every extra installed.  C{.ci/run} also imports the package in a
virtualenv that really has nothing but Twisted.
"""

from __future__ import annotations

import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

_TIMEOUT = 60


def _python(code: str, blocked: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """
    Run C{code} in a new interpreter in which the modules C{blocked} cannot
    be imported.
    """
    prelude = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in blocked)
    return subprocess.run(
        [sys.executable, "-c", prelude + code],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        check=False,
    )


class _PythonTestCase(SynchronousTestCase):
    """
    Checks run in a fresh interpreter.
    """

    def assertPrints(self, code: str, expected: str, blocked: tuple[str, ...] = ()) -> None:
        """
        Assert that C{code}, run as L{_python} runs it, exits with status 0
        and prints C{expected}.
        """
        result = _python(code, blocked)
        self.assertEqual((result.returncode, result.stdout), (0, expected), result.stderr)


class LibraryImportTests(_PythonTestCase):
    """
    C{import pooled_http} needs neither rich, treq nor the command.
    """

    def test_importLoadsNoOptionalModule(self) -> None:
        """
        Importing the package (with everything installed) loads neither
        rich, treq nor any module of the command.
        """
        self.assertPrints(
            "import pooled_http\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('rich', 'treq') or m.startswith('pooled_http.cli'))\n"
            "print(loaded)\n",
            "[]\n",
        )

    def test_importLoadsNoTestKit(self) -> None:
        """
        Importing the package loads neither the test kit, its pytest plugin,
        trustme nor pytest.
        """
        self.assertPrints(
            "import pooled_http\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('trustme', 'pytest', '_pytest') or m in "
            "('pooled_http.testing', 'pooled_http.pytest_plugin'))\n"
            "print(loaded)\n",
            "[]\n",
        )

    def test_testKitWithoutTreqOrTrustme(self) -> None:
        """
        The in-memory network and L{pooled_http.testing.assertPoolAtRest}
        work with Twisted alone.
        """
        self.assertPrints(
            "from twisted.web.client import readBody\n"
            "from pooled_http import HTTPConnectionPool\n"
            "from pooled_http.testing import MemoryNetwork, assertPoolAtRest\n"
            "network = MemoryNetwork()\n"
            "network.addServer('a.example')\n"
            "pool = HTTPConnectionPool(network.clock)\n"
            "d = network.agent(pool).request(b'GET', b'http://a.example/x')\n"
            "d.addCallback(readBody).addCallback(print)\n"
            "network.flush()\n"
            "pool.close(); network.flush(); assertPoolAtRest(pool)\n",
            "b'GET /x'\n",
            blocked=("treq", "trustme", "rich"),
        )

    def test_importWithoutTreqOrRich(self) -> None:
        """
        Without treq and rich the package imports and its pool works; only
        L{pooled_http.treqClient} then fails, with treq's name and the
        extra to install.
        """
        self.assertPrints(
            "import pooled_http\n"
            "from twisted.internet.task import Clock\n"
            "pooled_http.HTTPConnectionPool(Clock())\n"
            "try:\n"
            "    pooled_http.treqClient\n"
            "except ImportError as e:\n"
            "    print('ImportError', e.name, \"pooled_http[treq]\" in str(e))\n",
            "ImportError treq True\n",
            blocked=("treq", "rich"),
        )

    def test_treqNamesOnFirstUse(self) -> None:
        """
        L{pooled_http.treqClient} and L{pooled_http.PooledHTTPClient} are
        found in the package; C{from pooled_http import *} gets them too.
        """
        self.assertPrints(
            "import pooled_http, pooled_http.treq as t\n"
            "from pooled_http import *\n"
            "print(pooled_http.treqClient is t.treqClient is treqClient,\n"
            "      pooled_http.PooledHTTPClient is t.PooledHTTPClient"
            " is PooledHTTPClient,\n"
            "      'treqClient' in dir(pooled_http))\n",
            "True True True\n",
        )

    def test_unknownName(self) -> None:
        """
        Any other missing name is an L{AttributeError} naming it.
        """
        self.assertPrints(
            "import pooled_http\n"
            "try:\n"
            "    pooled_http.nothingHere\n"
            "except AttributeError as e:\n"
            "    print(e)\n",
            "module 'pooled_http' has no attribute 'nothingHere'\n",
        )

    def test_version(self) -> None:
        """
        The installed metadata's version is the package's C{__version__}.
        """
        self.assertPrints(
            "import importlib.metadata, pooled_http\n"
            "print(importlib.metadata.version('pooled_http') == pooled_http.__version__)\n",
            "True\n",
        )


class CommandWithoutExtraTests(_PythonTestCase):
    """
    The C{pooled-http} command without the C{cli} extra.
    """

    def test_installHint(self) -> None:
        """
        Without rich, C{pooled-http} (whatever its arguments) prints one line
        saying how to install the C{cli} extra, and exits with status 1.
        """
        for argv in ([], ["--help"], ["fetch", "http://127.0.0.1:1/"]):
            result = _python(
                f"sys.argv[1:] = {argv!r}\n"
                "import runpy\n"
                "runpy.run_module('pooled_http', run_name='__main__')\n",
                blocked=("rich",),
            )
            self.assertEqual(result.returncode, 1, (argv, result.stderr))
            self.assertEqual(result.stdout, "")
            self.assertEqual(
                result.stderr,
                "pooled-http needs the 'cli' extra, which is not installed; "
                "install it with: pip install 'pooled_http[cli]'\n",
            )

    def test_otherImportErrorsSurface(self) -> None:
        """
        An import error that is not a missing extra is not hidden behind the
        hint.
        """
        self.assertPrints(
            "from pooled_http.cli import main\n"
            "try:\n"
            "    main(['demo'])\n"
            "except ImportError as e:\n"
            "    print('ImportError', e.name)\n",
            "ImportError pooled_http.cli._report\n",
            blocked=("pooled_http.cli._report",),
        )
