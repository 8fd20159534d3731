"""
Tests of the C{pooled-http} command, run as C{python -m pooled_http} in a
subprocess against the demo site served by another subprocess (plain http on
two ports, https on a third with a certificate from a throwaway CA), so the
test process never runs a reactor.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

_SERVER = r"""
import json, sys, threading
import trustme
from twisted.internet import reactor, ssl
from pooled_http.cli._demosite import listenDemoSite

counter, ports = listenDemoSite(reactor, 2)
ca = trustme.CA()
issued = ca.issue_cert("127.0.0.1", "localhost")
ca.cert_pem.write_to_path(sys.argv[1])
certificate = ssl.PrivateCertificate.loadPEM(
    issued.private_key_and_cert_chain_pem.bytes()
)
# ALPN offers http/1.1 only: the --http2 test falls back to it.
options = ssl.CertificateOptions(
    privateKey=certificate.privateKey.original,
    certificate=certificate.original,
    acceptableProtocols=[b"http/1.1"],
)
tls = reactor.listenSSL(0, counter, options, interface="127.0.0.1")

def waitForEOF():
    sys.stdin.read()
    reactor.callFromThread(reactor.stop)

threading.Thread(target=waitForEOF, daemon=True).start()
print(json.dumps({
    "http": [p.getHost().port for p in ports],
    "https": tls.getHost().port,
}), flush=True)
reactor.run()
"""

_TIMEOUT = 60

_KEYS = {
    "index",
    "url",
    "status",
    "bytes",
    "elapsed_ms",
    "wait_ms",
    "reused",
    "error",
    "message",
}


def _pageSize(n: int) -> int:
    """
    The body size of the demo site's C{/page/n}.
    """
    return len(b"pooled-http demo\n") + 1024 + (n * 997) % 7168


def _freePort() -> int:
    """
    A port of 127.0.0.1 nothing listens on (bound, read back, closed).
    """
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pooled_http", *args]


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(*args),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
    )


def _lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


class _ServerMixin:
    """
    Serves the demo site from a subprocess for the whole test class.
    """

    server: subprocess.Popen[str]
    http: list[int]
    https: int
    tmp: tempfile.TemporaryDirectory[str]
    cafile: str

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()
        cls.cafile = os.path.join(cls.tmp.name, "ca.pem")
        cls.server = subprocess.Popen(
            [sys.executable, "-c", _SERVER, cls.cafile],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert cls.server.stdout is not None
        ports = json.loads(cls.server.stdout.readline())
        cls.http = ports["http"]
        cls.https = ports["https"]

    @classmethod
    def tearDownClass(cls) -> None:
        assert cls.server.stdin is not None
        cls.server.stdin.close()
        try:
            cls.server.wait(10)
        except subprocess.TimeoutExpired:
            cls.server.kill()
            cls.server.wait()
        assert cls.server.stdout is not None
        cls.server.stdout.close()
        cls.tmp.cleanup()

    def url(self, path: str, which: int = 0) -> str:
        return f"http://127.0.0.1:{self.http[which]}/{path}"

    def tempPath(self) -> str:
        """
        A path in a fresh temporary directory removed after the test.
        """
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)  # type: ignore[attr-defined]
        return os.path.join(directory.name, "temp")


class FetchTests(_ServerMixin, SynchronousTestCase):
    """
    C{pooled-http fetch}.
    """

    def test_jsonLines(self) -> None:
        """
        Every URL gets one well-formed JSON line; a response of any status is
        a fetch, so the exit status is 0; the summary goes to stderr.
        """
        urls = [
            self.url("page/1"),
            self.url("page/2", 1),
            self.url("status/404"),
            self.url("close/3"),
            self.url("slow/50", 1),
        ]
        result = _run("fetch", *urls)
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = _lines(result.stdout)
        self.assertEqual(sorted(line["url"] for line in lines), sorted(urls))
        self.assertEqual(sorted(line["index"] for line in lines), list(range(len(urls))))
        for line in lines:
            self.assertEqual(set(line), _KEYS)
            self.assertIsNone(line["error"])
            self.assertIsInstance(line["elapsed_ms"], float)
            self.assertIn(line["reused"], (True, False))
        byURL = {line["url"]: line for line in lines}
        self.assertEqual(byURL[urls[0]]["status"], 200)
        self.assertEqual(byURL[urls[0]]["bytes"], _pageSize(1))
        self.assertEqual(byURL[urls[2]]["status"], 404)
        self.assertEqual(byURL[urls[3]]["bytes"], _pageSize(3))
        self.assertIn("pooled-http summary", result.stderr)
        self.assertIn(f"127.0.0.1:{self.http[0]}", result.stderr)
        self.assertIn("total", result.stderr)

    def test_userInfo(self) -> None:
        """
        A URL with user info is fetched (its credentials go in an
        I{Authorization} header); the result line names it without the
        password, and the summary names its host without the user info.
        """
        url = self.url("page/1").replace("http://", "http://carol:hunter2@")
        result = _run("fetch", url)
        self.assertEqual(result.returncode, 0, result.stderr)
        [line] = _lines(result.stdout)
        self.assertEqual(line["status"], 200)
        self.assertEqual(line["url"], url.replace("hunter2", "***"))
        self.assertNotIn("hunter2", result.stdout + result.stderr)
        self.assertNotIn("carol", result.stderr)
        self.assertIn(f"http://127.0.0.1:{self.http[0]}", result.stderr)

    def test_trace(self) -> None:
        """
        C{--trace FILE} writes one JSON line per event: the steps of each
        request in order, connections by id; the summary has the wait
        columns and each result line its wait.
        """
        path = self.tempPath()
        urls = [self.url("page/1"), self.url("page/2"), self.url("page/3")]
        result = _run("fetch", "--per-host", "1", "--trace", path, *urls)
        self.assertEqual(result.returncode, 0, result.stderr)
        with open(path, encoding="utf-8") as f:
            events = [json.loads(line) for line in f]
        first = [e["event"] for e in events if e.get("request") == 1]
        self.assertEqual(
            first,
            [
                "connectStarted",
                "connectDone",
                "connectionAcquired",
                "requestStarting",
                "requestHeadersSent",
                "requestBodySent",
                "responseHeadersReceived",
                "responseBodyDone",
            ],
        )
        queued = [e for e in events if e["event"] == "requestDequeued"]
        self.assertEqual(len(queued), 2)
        self.assertTrue(all(e["wait"] >= 0 for e in queued))
        self.assertEqual(
            [e["event"] for e in events if "request" not in e][-1], "connectionClosed"
        )
        key = f"http://127.0.0.1:{self.http[0]}"
        self.assertEqual({e["key"] for e in events}, {key})
        starting = [e for e in events if e["event"] == "requestStarting"]
        self.assertEqual(sorted(e["url"] for e in starting), sorted(urls))
        self.assertTrue(all(e["t"] >= 0 for e in events))
        self.assertIn("wait", result.stderr)
        for line in _lines(result.stdout):
            self.assertIsInstance(line["wait_ms"], float)

    def test_reuse(self) -> None:
        """
        With one connection per host, later requests to the host reuse it.
        """
        urls = [self.url(f"page/{i}") for i in range(5)]
        result = _run("fetch", "--per-host", "1", *urls)
        self.assertEqual(result.returncode, 0, result.stderr)
        reused = [line["reused"] for line in _lines(result.stdout)]
        self.assertEqual(reused.count(False), 1)
        self.assertEqual(reused.count(True), 4)

    def test_failuresDoNotStopTheRun(self) -> None:
        """
        Invalid URLs and a refused connection are reported on their lines
        and the other URLs are still fetched; the exit status is 1.
        """
        refused = f"http://127.0.0.1:{_freePort()}/"
        urls = [self.url("page/1"), "not a url", "ftp://127.0.0.1/x", refused, self.url("page/2")]
        result = _run("fetch", *urls)
        self.assertEqual(result.returncode, 1, result.stderr)
        byURL = {line["url"]: line for line in _lines(result.stdout)}
        self.assertEqual(set(byURL), set(urls))
        self.assertEqual(byURL["not a url"]["error"], "InvalidURL")
        self.assertEqual(byURL["ftp://127.0.0.1/x"]["error"], "InvalidURL")
        self.assertEqual(byURL[refused]["error"], "ConnectionRefusedError")
        self.assertTrue(byURL[refused]["message"])
        self.assertIsNone(byURL[refused]["status"])
        self.assertEqual(byURL[urls[0]]["status"], 200)
        self.assertEqual(byURL[urls[-1]]["status"], 200)
        self.assertIn("errors by type", result.stderr)
        self.assertIn("ConnectionRefusedError", result.stderr)

    def test_responseTimeout(self) -> None:
        """
        C{--timeout} bounds the wait for the response headers.
        """
        result = _run("fetch", "--timeout", "response=0.5", self.url("hang"))
        self.assertEqual(result.returncode, 1, result.stderr)
        [line] = _lines(result.stdout)
        self.assertEqual(line["error"], "ResponseTimeoutError")

    def test_inputFile(self) -> None:
        """
        C{-i FILE} reads one URL a line, skipping blank lines and comments.
        """
        urls = [self.url(f"page/{i}", i % 2) for i in range(50)]
        path = self.tempPath()
        with open(path, "w") as f:
            f.write("# URLs\n\n" + "\n".join(urls) + "\n\n")
        result = _run("fetch", "-q", "-i", path)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stderr, "")
        self.assertEqual(sorted(line["url"] for line in _lines(result.stdout)), sorted(urls))

    def test_stdin(self) -> None:
        """
        C{-i -} reads the URLs from standard input.
        """
        urls = [self.url(f"page/{i}") for i in range(30)]
        result = _run("fetch", "-c", "4", "-i", "-", stdin="\n".join(urls))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(sorted(line["url"] for line in _lines(result.stdout)), sorted(urls))

    def test_outputAndBodies(self) -> None:
        """
        C{--output} receives the lines instead of stdout; C{--bodies} keeps
        each body, named after the URL's index.
        """
        base = self.tempPath()
        os.makedirs(base)
        output = os.path.join(base, "out.jsonl")
        bodies = os.path.join(base, "bodies")
        result = _run("fetch", "-o", output, "--bodies", bodies, self.url("page/7"), self.url("page/8"))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout, "")
        with open(output) as f:
            lines = _lines(f.read())
        self.assertEqual(len(lines), 2)
        for line in lines:
            with open(line["body"], "rb") as f:
                body = f.read()
            self.assertEqual(len(body), line["bytes"])
            self.assertTrue(body.startswith(b"pooled-http demo"))

    def test_methodHeadersData(self) -> None:
        """
        C{--data} sends a body with POST; C{-H} adds headers; C{--method}
        overrides the method.
        """
        bodies = self.tempPath()
        result = _run(
            "fetch",
            "--bodies",
            bodies,
            "-H",
            "X-Test: one",
            "-H",
            "X-Other:two",
            "--data",
            "hello",
            self.url("echo"),
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        [line] = _lines(result.stdout)
        with open(line["body"]) as f:
            echoed = json.load(f)
        self.assertEqual(echoed["method"], "POST")
        self.assertEqual(echoed["bodyLength"], 5)
        self.assertEqual(echoed["headers"]["x-test"], ["one"])
        self.assertEqual(echoed["headers"]["x-other"], ["two"])
        self.assertTrue(echoed["headers"]["user-agent"][0].startswith("pooled-http/"))

        result = _run("fetch", "--bodies", bodies, "-X", "PUT", "--data", "x", self.url("echo"))
        [line] = _lines(result.stdout)
        with open(line["body"]) as f:
            self.assertEqual(json.load(f)["method"], "PUT")

    def test_httpsWithCAFile(self) -> None:
        """
        C{--cafile} makes a certificate from that CA trusted; without it the
        https fetch fails on its line.
        """
        url = f"https://127.0.0.1:{self.https}/page/4"
        result = _run("fetch", "--cafile", self.cafile, url)
        self.assertEqual(result.returncode, 0, result.stderr)
        [line] = _lines(result.stdout)
        self.assertEqual((line["status"], line["bytes"]), (200, _pageSize(4)))

        result = _run("fetch", url)
        self.assertEqual(result.returncode, 1, result.stderr)
        [line] = _lines(result.stdout)
        self.assertIsNone(line["status"])
        self.assertEqual(line["error"], "SSLError")
        self.assertIn("certificate verify failed", line["message"])

    def test_http2Flag(self) -> None:
        """
        C{--http2} offers HTTP/2 by ALPN; a server that does not take it is
        fetched over HTTP/1.1 all the same.
        """
        url = f"https://127.0.0.1:{self.https}/page/4"
        result = _run("fetch", "--http2", "--cafile", self.cafile, url)
        self.assertEqual(result.returncode, 0, result.stdout)
        [line] = _lines(result.stdout)
        self.assertEqual((line["status"], line["bytes"]), (200, _pageSize(4)))

    def assertUsageError(self, code: int, stdout: str, stderr: str, args: Any) -> None:
        self.assertEqual(code, 2, (args, stderr))
        self.assertEqual(stdout, "", args)
        self.assertEqual(len(stderr.strip().splitlines()), 1, (args, stderr))
        self.assertIn("error", stderr, args)

    def test_badOptions(self) -> None:
        """
        A bad command line exits with status 2 and one line on stderr.
        """
        url = self.url("page/1")
        for args in [
            ("fetch", "--concurrency", "0", url),
            ("fetch", "-i", os.path.join(self.tempPath(), "missing")),
            ("fetch", "-H", "no colon", url),
            ("nonsense",),
        ]:
            result = _run(*args)
            self.assertUsageError(result.returncode, result.stdout, result.stderr, args)

    def test_badOptionsInProcess(self) -> None:
        """
        L{main} returns 2 with a one-line message for every option it rejects
        before starting anything.
        """
        import contextlib
        import io

        from pooled_http.cli import main

        url = self.url("page/1")
        cases = [
            ("fetch",),
            ("fetch", url, "-i", "-"),
            ("fetch", "--concurrency", "0", url),
            ("fetch", "--concurrency", "many", url),
            ("fetch", "--per-host", "-1", url),
            ("fetch", "--max-connections", "0", url),
            ("fetch", "--timeout", "soon", url),
            ("fetch", "--timeout", "connect=1,whenever=2", url),
            ("fetch", "--retries", "-1", url),
            ("fetch", "-H", "no colon", url),
            ("fetch", "-H", "Bad Name: x", url),
            ("fetch", "--method", "GE T", url),
            ("fetch", "--data", "x", "--data-file", "y", url),
            ("fetch", "--data-file", os.path.join(self.tempPath(), "missing"), url),
            ("fetch", "--cafile", os.path.join(self.tempPath(), "missing"), url),
            ("fetch", "--cafile", os.devnull, url),
            ("fetch", "--bodies", os.devnull, url),
            ("fetch", "--no-such-option", url),
            ("demo", "--requests", "0"),
            ("demo", "--ports", "x"),
            ("nonsense",),
        ]
        for args in cases:
            stdout, stderr = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                code = main(list(args))
            self.assertUsageError(code, stdout.getvalue(), stderr.getvalue(), args)

    def test_help(self) -> None:
        """
        C{--help} describes both subcommands and exits 0.
        """
        result = _run("--help")
        self.assertEqual(result.returncode, 0)
        self.assertIn("fetch", result.stdout)
        self.assertIn("demo", result.stdout)

    def _children(self, pid: int) -> list[int]:
        children = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                children.append(int(entry))
        return children

    def test_interrupt(self) -> None:
        """
        SIGINT stops feeding URLs, cancels the requests in flight (reported
        as C{Interrupted}), still prints the summary and exits 130; the
        command leaves no process behind.
        """
        path = self.tempPath()
        with open(path, "w") as f:
            for i in range(2000):
                f.write(self.url("slow/200", i % 2) + "\n")
        process = subprocess.Popen(
            _command("fetch", "-i", path),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            self.assertTrue(first)
            self.assertEqual(self._children(process.pid), [])
            process.send_signal(signal.SIGINT)
            rest, stderr = process.communicate(timeout=_TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        self.assertEqual(process.returncode, 130, stderr)
        lines = _lines(first + rest)
        self.assertLess(len(lines), 2000)
        self.assertIn("Interrupted", {line["error"] for line in lines})
        self.assertIn("pooled-http summary", stderr)
        with self.assertRaises(ProcessLookupError):
            os.kill(process.pid, 0)

    def test_progressOnATerminal(self) -> None:
        """
        When stderr is a terminal, a progress bar is drawn there (and not
        with C{--quiet}).
        """
        urls = [self.url(f"slow/{20 + i % 5}", i % 2) for i in range(80)]
        path = self.tempPath()
        with open(path, "w") as f:
            f.write("\n".join(urls))
        for quiet, expected in ((False, True), (True, False)):
            args = ["fetch", "-c", "8", "--per-host", "2", "-i", path] + (["-q"] if quiet else [])
            main, secondary = pty.openpty()
            process = subprocess.Popen(
                _command(*args),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=secondary,
                env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
            )
            os.close(secondary)
            output = b""
            deadline = time.monotonic() + _TIMEOUT
            try:
                while time.monotonic() < deadline:
                    ready, _, _ = select.select([main], [], [], 0.5)
                    if ready:
                        try:
                            chunk = os.read(main, 65536)
                        except OSError:
                            break
                        if not chunk:
                            break
                        output += chunk
                    elif process.poll() is not None:
                        break
            finally:
                os.close(main)
                if process.poll() is None:
                    process.kill()
                process.wait()
            self.assertEqual(process.returncode, 0)
            self.assertEqual(b"req/s" in output and b"/80" in output, expected, output[-500:])


class DemoTests(SynchronousTestCase):
    """
    C{pooled-http demo}.
    """

    def test_demo(self) -> None:
        """
        The demo serves its site, runs both pools and prints them side by
        side.
        """
        result = _run("demo", "--requests", "300", "--ports", "2")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout, "")
        self.assertIn("pooled_http", result.stderr)
        self.assertIn("Twisted stock pool", result.stderr)
        self.assertIn("connections opened", result.stderr)
        self.assertIn("req/s", result.stderr)
        for line in result.stderr.splitlines():
            if line.strip().startswith("errors"):
                self.assertEqual(line.split()[1:], ["0", "0"], line)
            if line.strip().startswith("ok"):
                self.assertEqual(line.split()[1:], ["300", "300"], line)


class _FakeTransport:
    """
    The transport a fake response body is delivered over.
    """

    stopped = False

    def stopProducing(self) -> None:
        self.stopped = True


class _FakeResponse:
    """
    A response whose body is delivered at once.
    """

    def __init__(self, code: int, body: bytes) -> None:
        self.code = code
        self._body = body

    def deliverBody(self, protocol: Any) -> None:
        from twisted.python.failure import Failure
        from twisted.web._newclient import ResponseDone

        protocol.makeConnection(_FakeTransport())
        protocol.dataReceived(self._body)
        protocol.connectionLost(Failure(ResponseDone()))


class _FakeAgent:
    """
    An agent whose requests stay pending until the test answers them.
    """

    def __init__(self) -> None:
        self.pending: list[tuple[bytes, Any]] = []
        self.maxPending = 0
        self.requests = 0

    def request(self, method: bytes, uri: bytes, headers: Any = None, bodyProducer: Any = None) -> Any:
        from twisted.internet.defer import Deferred

        d: Deferred[Any] = Deferred()
        self.pending.append((uri, d))
        self.requests += 1
        self.maxPending = max(self.maxPending, len(self.pending))
        return d

    def answer(self, index: int = 0, code: int = 200, body: bytes = b"abc") -> None:
        _, d = self.pending.pop(index)
        d.callback(_FakeResponse(code, body))


class FetcherTests(SynchronousTestCase):
    """
    The fetch engine, driven by a fake agent and a L{Clock}.
    """

    def setUp(self) -> None:
        from twisted.internet.task import Clock

        self.clock = Clock()
        self.agent = _FakeAgent()
        self.results: list[Any] = []
        self.taken = 0

    def urls(self, count: int) -> Any:
        for i in range(count):
            self.taken += 1
            yield f"http://127.0.0.1:{8000 + i % 3}/{i}"

    def fetcher(self, urls: Any, concurrency: int, **kwargs: Any) -> Any:
        from pooled_http.cli._fetcher import Fetcher
        from pooled_http.cli._sources import IterSource

        return Fetcher(
            self.clock,
            self.agent,
            None,
            IterSource(urls),
            self.results.append,
            concurrency=concurrency,
            **kwargs,
        )

    def test_boundedAndLazy(self) -> None:
        """
        No more than C{concurrency} requests are in flight, and URLs are
        taken from the source only as slots free up.
        """
        fetcher = self.fetcher(self.urls(5000), 7)
        done = fetcher.run()
        self.assertEqual((len(self.agent.pending), self.taken), (7, 7))
        self.agent.answer(3)
        self.assertEqual((len(self.agent.pending), self.taken), (7, 8))
        while self.agent.pending:
            self.agent.answer()
        self.assertEqual(self.agent.maxPending, 7)
        self.assertEqual(len(self.results), 5000)
        self.assertEqual(sorted(r.index for r in self.results), list(range(5000)))
        self.assertTrue(all(r.ok and r.status == 200 and r.bytes == 3 for r in self.results))
        self.assertIsNone(self.successResultOf(done))

    def test_bursts(self) -> None:
        """
        In bursts, the next requests start only when the whole burst is done.
        """
        fetcher = self.fetcher(self.urls(7), 3, bursts=True)
        done = fetcher.run()
        self.assertEqual(len(self.agent.pending), 3)
        self.agent.answer()
        self.agent.answer()
        self.assertEqual((len(self.agent.pending), self.taken), (1, 3))
        self.agent.answer()
        self.assertEqual(len(self.agent.pending), 3)
        while self.agent.pending:
            self.agent.answer()
        self.assertEqual(len(self.results), 7)
        self.successResultOf(done)

    def test_invalidURLs(self) -> None:
        """
        Invalid URLs get their result at once, without a request; a long run
        of them lets the reactor run in between.
        """
        from pooled_http.cli._fetcher import STARTS_PER_TURN

        urls = ["nope"] * (STARTS_PER_TURN + 10) + ["http://127.0.0.1:1/"]
        done = self.fetcher(iter(urls), 4).run()
        self.assertEqual(len(self.results), STARTS_PER_TURN)
        self.clock.advance(0)
        self.assertEqual(len(self.results), STARTS_PER_TURN + 10)
        self.assertEqual({r.error for r in self.results}, {"InvalidURL"})
        self.assertEqual(len(self.agent.pending), 1)
        self.agent.answer()
        self.successResultOf(done)

    def test_failure(self) -> None:
        """
        A failed request is reported with the type of the underlying error.
        """
        from twisted.internet.error import ConnectionRefusedError
        from twisted.python.failure import Failure
        from twisted.web._newclient import ResponseNeverReceived

        done = self.fetcher(self.urls(1), 4).run()
        _, d = self.agent.pending.pop()
        d.errback(ResponseNeverReceived([Failure(ConnectionRefusedError())]))
        [result] = self.results
        self.assertEqual(result.error, "ConnectionRefusedError")
        self.assertIn("ResponseNeverReceived", result.message)
        self.assertFalse(result.ok)
        self.successResultOf(done)

    def test_interrupt(self) -> None:
        """
        L{Fetcher.interrupt} cancels the requests in flight (reported as
        C{Interrupted}) and takes no more URLs.
        """
        fetcher = self.fetcher(self.urls(100), 5)
        done = fetcher.run()
        self.agent.answer()
        fetcher.interrupt()
        self.assertEqual(len(self.results), 6)
        self.assertEqual([r.error for r in self.results[1:]], ["Interrupted"] * 5)
        self.assertEqual(self.taken, 6)
        self.successResultOf(done)

    def test_recorder(self) -> None:
        """
        L{ConnectionRecorder} notes whether the connection handed out for the
        request being issued was reused, and passes everything else through.
        """
        from twisted.internet.defer import succeed

        from pooled_http.cli._pools import ConnectionRecorder
        from pooled_http.cli._tally import FetchResult

        class Connection:
            reused = True

        class Pool:
            persistent = True

            def getConnection(self, key: Any, endpoint: Any) -> Any:
                return succeed(Connection())

        recorder = ConnectionRecorder(Pool())
        result = FetchResult(0, "u", "h")
        recorder.current = result
        self.successResultOf(recorder.getConnection(("http", b"h", 80), None))
        self.assertIs(result.reused, True)
        self.assertIsNone(recorder.current)
        self.assertIs(recorder.persistent, True)


class HelperTests(SynchronousTestCase):
    """
    URL checks, error names, option parsing and the threaded line source.
    """

    def test_parseURL(self) -> None:
        from pooled_http.cli._urls import InvalidURL, parseURL

        self.assertEqual(parseURL("http://127.0.0.1/x"), (b"http://127.0.0.1/x", "http://127.0.0.1:80"))
        self.assertEqual(parseURL("https://[::1]:8443/")[1], "https://[::1]:8443")
        self.assertEqual(parseURL("http://localhost/é")[0], b"http://localhost/%C3%A9")
        for bad in ("", "127.0.0.1/x", "ftp://h/", "http:///x", "http://h:99999/", "http://h:x/", "http://h/a b"):
            self.assertRaises(InvalidURL, parseURL, bad)
        # User info is never part of the label, and a message hides its
        # password.
        self.assertEqual(parseURL("http://u:pw@127.0.0.1:81/")[1], "http://127.0.0.1:81")
        self.assertEqual(parseURL("http://u@127.0.0.1/")[1], "http://127.0.0.1:80")
        for bad in ("http://u:secret@h:99999/", "http://u:secret@h/a b", "ftp://u:secret@h/"):
            error = self.assertRaises(InvalidURL, parseURL, bad)
            self.assertNotIn("secret", str(error))
            self.assertIn("u:***@", str(error))

    def test_describeFailure(self) -> None:
        from twisted.internet.error import ConnectionLost
        from twisted.python.failure import Failure
        from twisted.web._newclient import ResponseFailed
        from twisted.web.http import PotentialDataLoss

        from pooled_http.cli._urls import describeFailure
        from pooled_http.errors import ReadTimeoutError

        wrapped = ResponseFailed([Failure(ConnectionLost("gone")), Failure(PotentialDataLoss())])
        name, message = describeFailure(Failure(wrapped))
        self.assertEqual(name, "ConnectionLost")
        self.assertIn("gone", message)
        name, _ = describeFailure(ReadTimeoutError(("http", b"h", 80), 1.0))
        self.assertEqual(name, "ReadTimeoutError")

    def test_parseTimeout(self) -> None:
        import argparse

        from pooled_http.cli._options import parseTimeout

        self.assertEqual(parseTimeout("2.5"), {"connect": 2.5, "response": 2.5, "read": 2.5})
        self.assertEqual(parseTimeout("read=none, connect=1"), {"read": None, "connect": 1.0})
        for bad in ("0", "-1", "x", "nan", "inf", "write=1", "connect"):
            self.assertRaises(argparse.ArgumentTypeError, parseTimeout, bad)

    def test_threadedLineSource(self) -> None:
        """
        L{ThreadedLineSource} hands out the URLs of a pipe, skipping blank
        lines and comments, and wakes its reader when more arrive.
        """
        import queue

        from pooled_http.cli._sources import PENDING, ThreadedLineSource

        calls: queue.Queue[Any] = queue.Queue()

        class Reactor:
            def callFromThread(self, f: Any, *args: Any) -> None:
                calls.put((f, args))

        readEnd, writeEnd = os.pipe()
        woken: list[int] = []
        source = ThreadedLineSource(Reactor(), readEnd, bound=2)
        source.setWaker(lambda: woken.append(1))
        self.assertIs(source.take(), PENDING)
        os.write(writeEnd, b"http://a/\n\n# note\nhttp://b/\nhttp://c/\nhttp://d")
        os.close(writeEnd)
        got: list[Any] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            url = source.take()
            if url is None:
                break
            if url is PENDING:
                f, args = calls.get(timeout=10)
                f(*args)
            else:
                got.append(url)
        os.close(readEnd)
        self.assertEqual(got, ["http://a/", "http://b/", "http://c/", "http://d"])
        self.assertTrue(woken)
