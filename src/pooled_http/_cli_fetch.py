"""
The engine of the C{pooled-http} command: reads URLs lazily, keeps a bounded
number of requests in flight through an agent and its pool, and reports one
L{FetchResult} per URL.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator
from io import BytesIO
from queue import Empty, Queue
from typing import IO, Any
from urllib.parse import urlsplit

from twisted.internet.defer import CancelledError, Deferred, fail, maybeDeferred
from twisted.internet.error import ConnectingCancelledError
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web._newclient import ResponseDone, _DataLoss, _WrapperException
from twisted.web.client import URI, FileBodyProducer
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers

from ._cli_report import INVALID_HOST, FetchResult

__all__ = [
    "InvalidURL",
    "Interrupted",
    "parseURL",
    "describeFailure",
    "ConnectionRecorder",
    "Fetcher",
    "iterURLs",
    "ThreadedLineSource",
    "IterSource",
    "openSource",
    "closePool",
]


class InvalidURL(ValueError):
    """
    A URL the command cannot fetch (not http/https, no host, bad port,
    characters not allowed in a URL).
    """


class Interrupted(Exception):
    """
    The request was cancelled because the run was interrupted.
    """


_PENDING = object()

#: How many requests L{Fetcher} starts before letting the reactor run.
_STARTS_PER_TURN = 1000


def parseURL(text: str) -> tuple[bytes, str]:
    """
    Check a URL and return what the agent needs.

    @param text: The URL as given; non-ASCII characters (an IRI) are encoded.
    @return: The URL as ASCII bytes and its C{scheme://host:port} label.
    @raise InvalidURL: If the URL cannot be fetched.
    """
    if not text:
        raise InvalidURL("empty URL")
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        try:
            import hyperlink

            raw = hyperlink.URL.from_text(text).to_uri().to_text().encode("ascii")
        except Exception as e:
            raise InvalidURL(f"cannot encode {text!r} as a URI: {e}") from None
    if any(c <= 0x20 or c == 0x7F for c in raw):
        raise InvalidURL(f"{text!r} contains whitespace or control characters")
    scheme, sep, _ = raw.partition(b"://")
    if not sep:
        raise InvalidURL(f"{text!r} is not an absolute http:// or https:// URL")
    if scheme.lower() not in (b"http", b"https"):
        raise InvalidURL(f"unsupported scheme {scheme.decode('ascii')!r} in {text!r}")
    try:
        split = urlsplit(raw.decode("ascii"))
        port = split.port
        uri = URI.fromBytes(raw)
    except ValueError as e:
        raise InvalidURL(f"cannot parse {text!r}: {e}") from None
    if not split.hostname or not uri.host:
        raise InvalidURL(f"no host in {text!r}")
    if port is not None and not 0 < port < 65536:
        raise InvalidURL(f"port {port} out of range in {text!r}")
    host = uri.host.decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    return raw, f"{uri.scheme.decode('ascii')}://{host}:{uri.port}"


def _rootCause(exc: Any, depth: int = 0) -> Any:
    """
    Look through Twisted's wrapper exceptions for the reason that matters.
    """
    if depth > 10 or not isinstance(exc, _WrapperException) or not exc.reasons:
        return exc
    reasons = [r.value if isinstance(r, Failure) else r for r in exc.reasons]
    meaningful = [
        r for r in reasons if not isinstance(r, (_DataLoss, PotentialDataLoss))
    ]
    if not meaningful:
        return exc
    return _rootCause(meaningful[0], depth + 1)


def _isCancellation(exc: Any, depth: int = 0) -> bool:
    if isinstance(exc, (CancelledError, ConnectingCancelledError, Interrupted)):
        return True
    if depth < 10 and isinstance(exc, _WrapperException):
        return any(
            _isCancellation(r.value if isinstance(r, Failure) else r, depth + 1)
            for r in exc.reasons or ()
        )
    return False


def describeFailure(reason: Failure | BaseException) -> tuple[str, str]:
    """
    Name an error for a JSON line and the summary.

    @param reason: Why a request failed.
    @return: The type name of the underlying error and a one-line message.
    """
    exc: Any = reason.value if isinstance(reason, Failure) else reason
    cause = _rootCause(exc)
    message = str(cause).strip() or cause.__class__.__name__
    if cause is not exc:
        message = f"{message} ({exc.__class__.__name__})"
    return _errorName(cause), " ".join(message.split())


def _errorName(exc: BaseException) -> str:
    """
    The name of an error type for a JSON line: the class name, qualified by
    its module when the name alone says nothing (C{OpenSSL.SSL.Error} is
    called C{SSLError}).
    """
    cls = type(exc)
    name = cls.__name__
    if name in ("Error", "Exception", "Failure"):
        module = cls.__module__.rsplit(".", 1)[-1]
        return f"{module}{name}" if module.isupper() else f"{module}.{name}"
    return name


class _Attempt:
    """
    One URL being fetched.
    """

    __slots__ = ("result", "started", "deferred", "receiver")

    def __init__(self, result: FetchResult, started: float) -> None:
        self.result = result
        self.started = started
        self.deferred: Deferred[Any] | None = None
        self.receiver: _BodyReceiver | None = None


class ConnectionRecorder:
    """
    Stands in front of a pool for an agent and notes, for the request being
    issued, whether the connection handed out was reused.

    The agent calls C{getConnection} synchronously inside C{request}; the
    fetcher sets L{current} just before calling C{request}.  Every other
    attribute is the pool's.

    @ivar pool: The pool.
    @ivar current: Where to record the connection for the request being
        issued, or L{None}.
    """

    def __init__(self, pool: Any) -> None:
        """
        @param pool: The pool the agent should use.
        """
        self.pool = pool
        self.current: _Attempt | None = None

    def getConnection(self, key: Hashable, endpoint: Any) -> Deferred[Any]:
        """
        Ask the pool for a connection and note whether it was reused.

        @param key: The pool key.
        @param endpoint: The endpoint to connect with.
        @return: What the pool returns.
        """
        attempt, self.current = self.current, None
        # Twisted's own pool does not mark its connections; an idle
        # connection for the key means the next one handed out is reused.
        idle = getattr(self.pool, "_connections", None)
        guess = bool(idle.get(key)) if isinstance(idle, dict) else None
        d: Deferred[Any] = self.pool.getConnection(key, endpoint)
        if attempt is not None:

            def record(connection: Any) -> Any:
                reused = getattr(connection, "reused", None)
                attempt.result.reused = guess if reused is None else bool(reused)
                return connection

            d.addCallback(record)
        return d

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pool, name)


class _BodyReceiver(Protocol):
    """
    Counts (and optionally saves) a response body.
    """

    def __init__(self, sink: IO[bytes] | None) -> None:
        self.length = 0
        self.sink = sink
        self.finished: Deferred[int] = Deferred(self._cancel)

    def _cancel(self, d: Deferred[int]) -> None:
        if self.transport is not None:
            self.transport.stopProducing()

    def dataReceived(self, data: bytes) -> None:
        self.length += len(data)
        if self.sink is not None:
            self.sink.write(data)

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:  # noqa: B008
        if self.sink is not None:
            self.sink.close()
            self.sink = None
        if self.finished.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.finished.callback(self.length)
        else:
            self.finished.errback(reason)


class IterSource:
    """
    URLs from an iterator read in the reactor thread (arguments, regular
    files).

    @ivar total: How many URLs there are, if known.
    """

    def __init__(self, urls: Iterable[str], total: int | None = None) -> None:
        """
        @param urls: The URLs.
        @param total: How many there are, if known.
        """
        self._urls = iter(urls)
        self.total = total

    def take(self) -> object:
        """
        The next URL, L{None} at the end.
        """
        return next(self._urls, None)

    def setWaker(self, waker: Callable[[], None]) -> None:
        """
        Never needed: L{take} never has to wait.
        """

    def close(self) -> None:
        """
        Stop reading.
        """
        self._urls = iter(())


def iterURLs(lines: Iterable[bytes | str]) -> Iterator[str]:
    """
    The URLs in some lines: stripped, blank lines and C{#} comments skipped.

    @param lines: Lines of text or bytes (bytes are decoded as UTF-8).
    @return: An iterator of URLs.
    """
    for line in lines:
        if isinstance(line, bytes):
            line = line.decode("utf-8", "replace")
        url = line.strip()
        if url and not url.startswith("#"):
            yield url


class ThreadedLineSource:
    """
    URLs from a pipe or a terminal, read by a daemon thread into a bounded
    queue so that a slow writer never blocks the reactor and a huge input is
    never held in memory.

    The thread reads the raw file descriptor (not a buffered file object), so
    it never holds a lock the interpreter needs at exit.

    @ivar total: Always L{None}: the length of a stream is not known.
    """

    total: int | None = None

    def __init__(
        self, reactor: Any, fd: int, bound: int = 10000
    ) -> None:
        """
        @param reactor: Where to wake the fetcher when URLs arrive.
        @param fd: The file descriptor to read.
        @param bound: How many URLs to read ahead at most.
        """
        self._reactor = reactor
        self._fd = fd
        self._queue: Queue[str] = Queue(bound)
        self._lock = threading.Lock()
        self._waiting = False
        self._eof = False
        self._closed = False
        self._waker: Callable[[], None] | None = None
        self._thread = threading.Thread(
            target=self._read, name="pooled-http-input", daemon=True
        )
        self._thread.start()

    def setWaker(self, waker: Callable[[], None]) -> None:
        """
        @param waker: Called in the reactor thread when L{take} may have
            something new after it returned the pending marker.
        """
        self._waker = waker

    def _wake(self) -> None:
        if self._waker is not None and not self._closed:
            self._waker()

    def _notify(self) -> None:
        with self._lock:
            if not self._waiting:
                return
            self._waiting = False
        self._reactor.callFromThread(self._wake)

    def _lines(self) -> Iterator[bytes]:
        pending = b""
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            yield from lines
        if pending:
            yield pending

    def _read(self) -> None:
        try:
            for url in iterURLs(self._lines()):
                if self._closed:
                    return
                self._queue.put(url)
                self._notify()
        finally:
            with self._lock:
                self._eof = True
                self._waiting = False
            self._reactor.callFromThread(self._wake)

    def take(self) -> object:
        """
        The next URL; L{None} at the end; a pending marker when nothing has
        been read yet (the waker is called when something has).
        """
        with self._lock:
            try:
                return self._queue.get_nowait()
            except Empty:
                if self._eof:
                    return None
                self._waiting = True
                return _PENDING

    def close(self) -> None:
        """
        Stop handing out URLs.  The thread ends at its next line.
        """
        self._closed = True
        try:
            while True:
                self._queue.get_nowait()
        except Empty:
            pass


def openSource(
    reactor: Any,
    urls: list[str],
    inputPath: str | None,
    wantTotal: bool,
) -> IterSource | ThreadedLineSource:
    """
    Pick the source of URLs for the command line.

    @param reactor: The reactor.
    @param urls: URLs given as arguments.
    @param inputPath: C{-i}: a file name, C{"-"} for standard input, or
        L{None}.
    @param wantTotal: Whether to count the URLs of a regular file first (for
        the progress bar).
    @return: The source.
    @raise OSError: If the input file cannot be opened.
    """
    if inputPath is None:
        return IterSource(list(urls), total=len(urls))
    if inputPath == "-":
        fd = 0
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ThreadedLineSource(reactor, fd)
        f: IO[bytes] = os.fdopen(os.dup(fd), "rb")
    else:
        f = open(inputPath, "rb")  # noqa: SIM115 - closed when exhausted
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            fd = os.dup(f.fileno())
            f.close()
            return ThreadedLineSource(reactor, fd)
    total = None
    if wantTotal:
        start = f.tell()
        total = sum(1 for _ in iterURLs(f))
        f.seek(start)

    def lines() -> Iterator[str]:
        with f:
            yield from iterURLs(f)

    return IterSource(lines(), total=total)


class Fetcher:
    """
    Fetches the URLs of a source with at most C{concurrency} requests in
    flight, and calls C{onResult} with a L{FetchResult} for each.

    Results are reported in the order requests finish.  An invalid URL is
    reported at once without a request.  L{interrupt} stops taking URLs and
    cancels the requests in flight; their results carry the error
    C{Interrupted}.

    @ivar interrupted: Whether L{interrupt} was called.
    """

    def __init__(
        self,
        reactor: Any,
        agent: Any,
        recorder: ConnectionRecorder | None,
        source: IterSource | ThreadedLineSource,
        onResult: Callable[[FetchResult], None],
        concurrency: int = 64,
        method: bytes = b"GET",
        headers: Headers | None = None,
        body: bytes | None = None,
        bodiesDir: str | None = None,
        bursts: bool = False,
    ) -> None:
        """
        @param reactor: Where time comes from.
        @param agent: Issues the requests.
        @param recorder: The agent's L{ConnectionRecorder}, if it has one.
        @param source: The URLs.
        @param onResult: Called with each result.
        @param concurrency: Maximum requests in flight.
        @param method: The request method.
        @param headers: Request headers.
        @param body: Request body, sent with every request.
        @param bodiesDir: Where to save response bodies, or L{None}.
        @param bursts: Send the requests in bursts: C{concurrency} requests
            at once, the next burst only when all of them are done.
        """
        self._reactor = reactor
        self._agent = agent
        self._recorder = recorder
        self._source = source
        self._onResult = onResult
        self._concurrency = concurrency
        self._method = method
        self._headers = headers
        self._body = body
        self._bodiesDir = bodiesDir
        self._bursts = bursts
        self._burstStarted = 0
        self._inFlight: dict[_Attempt, None] = {}
        self._index = 0
        self._exhausted = False
        self._resumeScheduled = False
        self._feeding = False
        self._again = False
        self.interrupted = False
        self._done: Deferred[None] = Deferred()
        source.setWaker(self._feed)

    @property
    def inFlight(self) -> int:
        """
        Requests in flight.
        """
        return len(self._inFlight)

    def run(self) -> Deferred[None]:
        """
        Start fetching.

        @return: Fires when every URL has a result (or, after L{interrupt},
            when the requests in flight have been cancelled).
        """
        self._feed()
        return self._done

    def interrupt(self) -> None:
        """
        Stop taking URLs and cancel the requests in flight.
        """
        if self.interrupted:
            return
        self.interrupted = True
        self._source.close()
        for attempt in list(self._inFlight):
            if attempt.deferred is not None:
                attempt.deferred.cancel()
        self._checkDone()

    def _feed(self) -> None:
        if self._feeding:
            self._again = True
            return
        self._feeding = True
        started = 0
        try:
            while True:
                self._again = False
                if self._bursts and not self._inFlight:
                    self._burstStarted = 0
                while (
                    not self.interrupted
                    and not self._exhausted
                    and len(self._inFlight) < self._concurrency
                    and not (self._bursts and self._burstStarted >= self._concurrency)
                ):
                    url = self._source.take()
                    if url is None:
                        self._exhausted = True
                    elif url is _PENDING:
                        break
                    else:
                        assert isinstance(url, str)
                        self._burstStarted += 1
                        self._start(url)
                        started += 1
                        if started >= _STARTS_PER_TURN:
                            # Many requests finished at once (invalid URLs
                            # do): let the reactor breathe, then go on.
                            if not self._resumeScheduled:
                                self._resumeScheduled = True
                                self._reactor.callLater(0, self._resume)
                            return
                if not self._again:
                    break
        finally:
            self._feeding = False
        self._checkDone()

    def _resume(self) -> None:
        self._resumeScheduled = False
        self._feed()

    def _checkDone(self) -> None:
        if (
            (self._exhausted or self.interrupted)
            and not self._inFlight
            and not self._feeding
            and not self._done.called
        ):
            self._done.callback(None)

    def _start(self, url: str) -> None:
        index = self._index
        self._index += 1
        started = self._reactor.seconds()
        try:
            raw, host = parseURL(url)
        except InvalidURL as e:
            result = FetchResult(
                index, url, INVALID_HOST, error="InvalidURL", message=str(e)
            )
            self._onResult(result)
            return
        attempt = _Attempt(FetchResult(index, url, host), started)
        self._inFlight[attempt] = None
        producer = None if self._body is None else FileBodyProducer(BytesIO(self._body))
        if self._recorder is not None:
            self._recorder.current = attempt
        try:
            d: Deferred[Any] = self._agent.request(
                self._method, raw, self._headers, producer
            )
        except Exception:
            d = fail()
        finally:
            if self._recorder is not None:
                self._recorder.current = None
        attempt.deferred = d
        d.addCallback(self._gotResponse, attempt)
        d.addCallbacks(
            self._succeeded,
            self._failed,
            callbackArgs=(attempt,),
            errbackArgs=(attempt,),
        )

    def _gotResponse(self, response: Any, attempt: _Attempt) -> Deferred[int]:
        attempt.result.status = response.code
        sink = None
        if self._bodiesDir is not None:
            path = os.path.join(self._bodiesDir, f"{attempt.result.index:08d}.body")
            try:
                sink = open(path, "wb")  # noqa: SIM115 - closed by the receiver
            except OSError:
                # Read the body anyway, so that the connection goes back to
                # the pool, and report why it could not be saved.
                response.deliverBody(_BodyReceiver(None))
                return fail()
            attempt.result.body = path
        receiver = attempt.receiver = _BodyReceiver(sink)
        response.deliverBody(receiver)
        return receiver.finished

    def _finish(self, attempt: _Attempt) -> None:
        attempt.result.elapsedMs = (self._reactor.seconds() - attempt.started) * 1000
        self._inFlight.pop(attempt, None)
        self._onResult(attempt.result)
        self._feed()

    def _succeeded(self, length: int, attempt: _Attempt) -> None:
        attempt.result.bytes = length
        self._finish(attempt)

    def _failed(self, reason: Failure, attempt: _Attempt) -> None:
        if attempt.receiver is not None:
            attempt.result.bytes = attempt.receiver.length
        if self.interrupted and _isCancellation(reason.value):
            attempt.result.error = "Interrupted"
            attempt.result.message = (
                "the run was interrupted before the response was complete"
            )
        else:
            attempt.result.error, attempt.result.message = describeFailure(reason)
        self._finish(attempt)


def closePool(reactor: Any, pool: Any, timeout: float = 5.0) -> Any:
    """
    Close a pool (a pooled_http one entirely, a stock one's idle
    connections), giving up after C{timeout} seconds.

    @param reactor: The reactor.
    @param pool: The pool.
    @param timeout: Seconds to wait at most.
    @return: A Deferred that fires when the pool is closed or the time is up.
    """
    close = getattr(pool, "close", None)
    if close is not None:
        closing = maybeDeferred(close, timeout=timeout)
    else:
        closing = maybeDeferred(pool.closeCachedConnections)
    done: Deferred[None] = Deferred()

    def fire(_: object = None) -> None:
        if not done.called:
            done.callback(None)

    timer = reactor.callLater(timeout + 1, fire)

    def closed(result: object) -> None:
        if timer.active():
            timer.cancel()
        fire()

    closing.addBoth(closed)
    return done
