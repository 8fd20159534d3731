"""
The engine of the C{pooled-http} command: takes URLs from a source as
slots free up, keeps at most a given number of requests in flight through an
agent and its pool, reads every response body to the end, and reports one
L{FetchResult} per URL.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from io import BytesIO
from typing import IO, Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web._newclient import ResponseDone
from twisted.web.client import FileBodyProducer
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers

from .._redact import withoutPassword
from ..errors import isCancellation
from ._pools import ConnectionRecorder
from ._sources import PENDING, IterSource, ThreadedLineSource
from ._tally import INVALID_HOST, FetchResult
from ._urls import InvalidURL, describeFailure, parseURL

__all__ = ["INTERRUPTED", "Fetcher"]

#: The error name of the requests cancelled because the run was interrupted.
INTERRUPTED = "Interrupted"

#: How many requests L{Fetcher} starts before letting the reactor run.
STARTS_PER_TURN = 1000


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


class Fetcher:
    """
    Fetches the URLs of a source with at most C{concurrency} requests in
    flight, and calls C{onResult} with a L{FetchResult} for each.

    Results are reported in the order requests finish.  An invalid URL is
    reported at once without a request.  L{interrupt} stops taking URLs and
    cancels the requests in flight; their results carry the error
    L{INTERRUPTED}.

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
                    elif url is PENDING:
                        break
                    else:
                        assert isinstance(url, str)
                        self._burstStarted += 1
                        self._start(url)
                        started += 1
                        if started >= STARTS_PER_TURN:
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
        # Results name the URL without the password of its user info (the
        # agent sends it as an Authorization header).
        shown = withoutPassword(url)
        try:
            raw, host = parseURL(url)
        except InvalidURL as e:
            result = FetchResult(
                index, shown, INVALID_HOST, error="InvalidURL", message=str(e)
            )
            self._onResult(result)
            return
        attempt = _Attempt(FetchResult(index, shown, host), started)
        self._inFlight[attempt] = None
        producer = None if self._body is None else FileBodyProducer(BytesIO(self._body))
        if self._recorder is not None:
            self._recorder.current = attempt.result
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
        exc = reason.value
        if self.interrupted and exc is not None and isCancellation(exc):
            attempt.result.error = INTERRUPTED
            attempt.result.message = (
                "the run was interrupted before the response was complete"
            )
        else:
            attempt.result.error, attempt.result.message = describeFailure(reason)
        self._finish(attempt)
