"""
Running the C{pooled-http} command once its command line is parsed: the
C{fetch} and C{demo} runs, with their output, their signal handling and the
reactor they run in.

This is the part of the command that needs the C{cli} extra (rich).  The
reactor is imported, installed and run only by L{run}.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any

from twisted.internet.error import ReactorNotRunning
from twisted.internet.task import LoopingCall
from twisted.web.client import BrowserLikePolicyForHTTPS
from twisted.web.http_headers import Headers

from .. import HTTPConnectionPool, PooledAgent
from ..errors import ProxyURLError
from ._demo import DemoRunner
from ._fetcher import Fetcher
from ._options import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    buildParser,
    checkFetchOptions,
)
from ._pools import ConnectionRecorder, closePool
from ._report import (
    LiveProgress,
    errorTable,
    makeConsole,
    openConnections,
    poolFooter,
    summaryTable,
)
from ._sources import openSource
from ._tally import FetchResult, RunTally
from ._tracefile import TraceFile

__all__ = ["run"]


class _Interrupts:
    """
    Turns SIGINT and SIGTERM into a clean stop: the first asks the run to
    stop, the second stops the reactor at once.
    """

    def __init__(self, reactor: Any, onInterrupt: Callable[[], None]) -> None:
        self._reactor = reactor
        self._onInterrupt = onInterrupt
        self.count = 0

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.count == 1:
            self._reactor.callFromThread(self._onInterrupt)
        else:
            self._reactor.callFromThread(_stopReactor, self._reactor)


def _stopReactor(reactor: Any) -> None:
    try:
        reactor.stop()
    except ReactorNotRunning:
        pass


class _LineWriter:
    """
    Writes JSON lines to a file or to standard output (looked up at each
    write, since the progress display may redirect it).
    """

    def __init__(self, path: str | None) -> None:
        self._file: IO[str] | None = None
        if path is not None:
            self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115
        self.broken = False

    def write(self, record: dict[str, Any]) -> None:
        if self.broken:
            return
        out = self._file if self._file is not None else sys.stdout
        try:
            out.write(json.dumps(record) + "\n")
        except BrokenPipeError:
            self.broken = True

    def flush(self) -> None:
        out = self._file if self._file is not None else sys.stdout
        try:
            out.flush()
        except BrokenPipeError:
            self.broken = True

    def close(self) -> None:
        try:
            if self._file is not None:
                self._file.close()
            else:
                sys.stdout.flush()
        except BrokenPipeError:
            self.broken = True
        if self.broken:
            # Nothing reads standard output any more; keep the interpreter
            # from complaining when it flushes it at exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)


def _runFetch(args: argparse.Namespace) -> int:
    options = checkFetchOptions(args)

    from twisted.internet import reactor

    console = makeConsole()
    showProgress = not args.quiet and sys.stderr.isatty()
    try:
        pool = HTTPConnectionPool(reactor, **options.poolArguments)
    except (TypeError, ValueError) as e:
        raise UsageError(str(e)) from None
    try:
        source = openSource(reactor, args.urls, args.input, wantTotal=showProgress)
    except OSError as e:
        raise UsageError(f"--input: cannot read {args.input}: {e.strerror}") from None
    try:
        writer = _LineWriter(args.output)
    except OSError as e:
        raise UsageError(
            f"--output: cannot write {args.output}: {e.strerror}"
        ) from None

    traceFile: IO[str] | None = None
    if args.trace is not None:
        try:
            traceFile = open(args.trace, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as e:
            raise UsageError(
                f"--trace: cannot write {args.trace}: {e.strerror}"
            ) from None
        pool.addObserver(TraceFile(traceFile, reactor))

    headers = Headers()
    for name, value in options.headers:
        headers.addRawHeader(name, value)
    recorder = ConnectionRecorder(pool, reactor)
    try:
        agent = PooledAgent(
            reactor,
            pool=recorder,
            contextFactory=BrowserLikePolicyForHTTPS(trustRoot=options.trustRoot),
            http2=args.http2,
            **options.proxyArguments,
        )
    except ImportError as e:
        raise UsageError(f"--http2: {e}") from None
    except ProxyURLError as e:
        # A proxy variable of the environment (--proxy was checked before).
        raise UsageError(str(e)) from None
    tally = RunTally(reactor, total=source.total)
    progress: LiveProgress | None = None
    if showProgress:
        progress = LiveProgress(
            reactor,
            console,
            tally,
            lambda: openConnections(pool),
            redirectStdout=args.output is None and sys.stdout.isatty(),
        )

    fetcher: Fetcher

    def onResult(result: FetchResult) -> None:
        tally.add(result)
        writer.write(result.toJSON())
        if writer.broken:
            fetcher.interrupt()

    fetcher = Fetcher(
        reactor,
        agent,
        recorder,
        source,
        onResult,
        concurrency=args.concurrency,
        method=options.method,
        headers=headers,
        body=options.body,
        bodiesDir=options.bodiesDir,
    )
    footer: list[str | None] = []

    def finished(_: object) -> Any:
        tally.finish()
        d = closePool(reactor, pool)
        d.addCallback(lambda _: footer.append(poolFooter(pool)))
        return d

    flusher = LoopingCall(writer.flush)
    flusher.clock = reactor

    def start() -> None:
        flusher.start(0.5, now=False)
        tally.start()
        if progress is not None:
            progress.start()
        d = fetcher.run()
        d.addBoth(finished)
        d.addBoth(lambda _: _stopReactor(reactor))

    def onInterrupt() -> None:
        if not args.quiet:
            console.print("[yellow]interrupted: cancelling requests in flight...[/]")
        fetcher.interrupt()

    interrupts = _Interrupts(reactor, onInterrupt)
    reactor.callWhenRunning(interrupts.install)
    reactor.callWhenRunning(start)
    reactor.run()  # type: ignore[misc]

    tally.finish()
    if flusher.running:
        flusher.stop()
    if progress is not None:
        progress.stop()
    writer.close()
    if traceFile is not None:
        traceFile.close()
    source.close()
    if not args.quiet:
        console.print(summaryTable(tally, showWait=traceFile is not None))
        errors = errorTable(tally)
        if errors is not None:
            console.print(errors)
        if footer and footer[0]:
            console.print(footer[0], highlight=False)
    if fetcher.interrupted and not writer.broken:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if tally.failed or writer.broken else EXIT_OK


def _runDemo(args: argparse.Namespace) -> int:
    from twisted.internet import reactor

    console = makeConsole()
    runner = DemoRunner(
        reactor,
        console,
        requests=args.requests,
        concurrency=args.concurrency,
        ports=args.ports,
        showProgress=not args.quiet and sys.stderr.isatty(),
    )
    failure: list[Any] = []

    def start() -> None:
        d = runner.run()
        d.addErrback(failure.append)
        d.addBoth(lambda _: _stopReactor(reactor))

    interrupts = _Interrupts(reactor, runner.interrupt)
    reactor.callWhenRunning(interrupts.install)
    reactor.callWhenRunning(start)
    reactor.run()  # type: ignore[misc]
    runner.stopProgress()
    if failure:
        console.print(f"[red]demo failed:[/] {failure[0].getErrorMessage()}")
        return EXIT_FAILED
    runner.report()
    return EXIT_INTERRUPTED if runner.interrupted else EXIT_OK


#: What each command runs with its parsed arguments.
_RUNS: dict[str, Callable[[argparse.Namespace], int]] = {
    "fetch": _runFetch,
    "demo": _runDemo,
}


def run(argv: Sequence[str] | None = None) -> int:
    """
    Run the C{pooled-http} command (L{pooled_http.cli.main} calls this once
    it knows the C{cli} extra is installed).

    @param argv: The arguments (default: C{sys.argv[1:]}); none at all runs
        C{demo}.
    @return: The exit status: 0 when every URL was fetched, 1 when some
        failed, 2 for a bad command line, 130 when interrupted.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments:
        arguments = ["demo"]
    parser = buildParser()
    try:
        args = parser.parse_args(arguments)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_usage(sys.stderr)
        return EXIT_USAGE
    try:
        return _RUNS[args.command](args)
    except UsageError as e:
        sys.stderr.write(f"pooled-http {args.command}: error: {e}\n")
        return EXIT_USAGE
