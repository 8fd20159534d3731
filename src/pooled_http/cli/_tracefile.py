"""
C{pooled-http fetch --trace FILE}: one JSON line per trace event of the
pool (L{pooled_http.trace}).

Every line has C{t} (seconds since the run started), C{event} (the hook's
name) and C{key} (the pool key as a label: C{scheme://host:port}, never a
credential); request events have C{request} (a number per attempt,
from 1) and C{attempt} (0, then 1 for a retry, ...); the others say what
they are about: C{connection}, C{reused}, C{wait}, C{status}, C{version},
C{url}, C{method}, C{error} and C{message}, C{reason}, C{tunnel} and
C{proxy}, C{retry}.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from typing import IO, Any

from twisted.python.failure import Failure

from .._redact import fullURL, keyLabel, text
from ..trace import RequestTrace, TraceObserver

__all__ = ["TraceFile"]


class TraceFile(TraceObserver):
    """
    Writes the pool's trace events to a file, one JSON object a line.
    """

    def __init__(self, file: IO[str], clock: Any) -> None:
        """
        @param file: Where the lines go (closed by the caller).
        @param clock: The reactor, for the times.
        """
        self._file = file
        self._clock = clock
        self._start = clock.seconds()
        self._ids = 0
        self.broken = False

    def _write(self, event: str, key: Hashable, **fields: Any) -> None:
        if self.broken:
            return
        record = {
            "t": round(self._clock.seconds() - self._start, 6),
            "event": event,
            "key": keyLabel(key),
            **fields,
        }
        try:
            self._file.write(json.dumps(record) + "\n")
        except (OSError, ValueError):
            self.broken = True

    def _request(self, trace: RequestTrace) -> dict[str, Any]:
        number = trace.context.get(self)
        if number is None:
            self._ids += 1
            number = trace.context[self] = self._ids
        return {"request": number, "attempt": trace.attempt}

    def _traced(self, event: str, trace: RequestTrace, **fields: Any) -> None:
        self._write(event, trace.key, **self._request(trace), **fields)

    @staticmethod
    def _error(reason: Failure) -> dict[str, str]:
        return {
            "error": type(reason.value).__name__,
            "message": reason.getErrorMessage(),
        }

    def requestQueued(self, trace: RequestTrace) -> None:
        self._traced("requestQueued", trace)

    def requestDequeued(self, trace: RequestTrace, wait: float) -> None:
        self._traced("requestDequeued", trace, wait=round(wait, 6))

    def connectStarted(self, trace: RequestTrace) -> None:
        self._traced("connectStarted", trace)

    def tunnelStarted(self, trace: RequestTrace, kind: str, proxy: str) -> None:
        self._traced("tunnelStarted", trace, tunnel=kind, proxy=proxy)

    def tunnelDone(self, trace: RequestTrace, kind: str, proxy: str) -> None:
        self._traced("tunnelDone", trace, tunnel=kind, proxy=proxy)

    def connectDone(self, trace: RequestTrace, connectionId: int) -> None:
        self._traced("connectDone", trace, connection=connectionId)

    def connectFailed(self, trace: RequestTrace, reason: Failure) -> None:
        self._traced("connectFailed", trace, **self._error(reason))

    def tlsHandshakeStarted(self, key: Hashable, connectionId: int) -> None:
        self._write("tlsHandshakeStarted", key, connection=connectionId)

    def tlsHandshakeDone(self, key: Hashable, connectionId: int) -> None:
        self._write("tlsHandshakeDone", key, connection=connectionId)

    def connectionAcquired(
        self, trace: RequestTrace, connectionId: int, reused: bool
    ) -> None:
        self._traced(
            "connectionAcquired",
            trace,
            connection=connectionId,
            reused=reused,
            wait=round(trace.wait, 6),
        )

    def requestStarting(self, trace: RequestTrace, request: Any) -> None:
        fields: dict[str, Any] = {"method": text(request.method)}
        parsedURI = getattr(request, "_parsedURI", None)
        if parsedURI is not None:
            fields["url"] = fullURL(parsedURI)
        self._traced("requestStarting", trace, **fields)

    def streamOpened(self, trace: RequestTrace, streamId: int) -> None:
        self._traced("streamOpened", trace, stream=streamId)

    def requestHeadersSent(self, trace: RequestTrace) -> None:
        self._traced("requestHeadersSent", trace)

    def requestBodySent(self, trace: RequestTrace) -> None:
        self._traced("requestBodySent", trace)

    def responseHeadersReceived(
        self, trace: RequestTrace, status: int, version: tuple[Any, ...]
    ) -> None:
        self._traced(
            "responseHeadersReceived",
            trace,
            status=status,
            version=f"{version[1]}.{version[2]}",
        )

    def responseBodyDone(self, trace: RequestTrace) -> None:
        self._traced("responseBodyDone", trace)

    def requestFailed(self, trace: RequestTrace, reason: Failure) -> None:
        self._traced("requestFailed", trace, **self._error(reason))

    def requestRetried(
        self, trace: RequestTrace, reason: Failure, retry: RequestTrace
    ) -> None:
        self._traced(
            "requestRetried",
            trace,
            retry=self._request(retry)["request"],
            **self._error(reason),
        )

    def connectionReleased(self, key: Hashable, connectionId: int, kept: bool) -> None:
        self._write("connectionReleased", key, connection=connectionId, kept=kept)

    def connectionClosed(self, key: Hashable, connectionId: int, reason: str) -> None:
        self._write("connectionClosed", key, connection=connectionId, reason=reason)
