"""
Where the C{pooled-http} command's URLs come from: the arguments, a regular
file read as needed, or a pipe read by a thread so that a slow writer never
blocks the reactor.  Every source is read lazily: a list of millions of URLs
is never held in memory.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from queue import Empty, Queue
from typing import IO, Any

__all__ = [
    "PENDING",
    "IterSource",
    "ThreadedLineSource",
    "iterURLs",
    "openSource",
]

#: What a source's C{take} returns when it has no URL yet but may later (it
#: then calls the waker set with C{setWaker}).
PENDING = object()


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

    def __init__(self, reactor: Any, fd: int, bound: int = 10000) -> None:
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
                return PENDING

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
