"""
Helpers shared by the benchmark runner and its client subprocesses.

Everything here is plain standard library so that every client subprocess
(Twisted or asyncio) can import it without pulling in the other world.
"""

from __future__ import annotations

import gc
import http.client
import importlib.util
import json
import os
import resource
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: The body size every server in this suite answers with.
BODY_SIZE = 1024


def percentile(values: Sequence[float], fraction: float) -> float:
    """
    Nearest-rank percentile.

    @param values: The samples (need not be sorted).
    @param fraction: Between 0 and 1, e.g. C{0.99}.
    @return: The sample at that rank, or C{0.0} for no samples.
    """
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(fraction * len(ordered))) - 1))
    return ordered[index]


def finishResult(result: dict[str, Any], elapsed: float) -> dict[str, Any]:
    """
    Turn a client run's raw C{latencies} and C{errors} into the figures the
    runner reports: counts, the first errors, req/s and latency percentiles.
    """
    latencies = result.pop("latencies")
    errors = result.pop("errors")
    result.update(
        {
            "requests": len(latencies),
            "errors": len(errors),
            "firstErrors": errors[:3],
            "elapsed": elapsed,
            "rps": len(latencies) / elapsed if elapsed else 0.0,
            **latencySummary(latencies),
        }
    )
    return result


def latencySummary(latencies: Sequence[float]) -> dict[str, float]:
    """
    Summarise per-request latencies.

    @param latencies: Seconds per request.
    @return: C{p50} and C{p99} in milliseconds.
    """
    return {
        "p50": percentile(latencies, 0.50) * 1000.0,
        "p99": percentile(latencies, 0.99) * 1000.0,
    }


def raiseFileLimit() -> int:
    """
    Raise the soft C{RLIMIT_NOFILE} as far as the hard limit allows.

    @return: The soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        target = max(soft, 65536)
    else:
        target = hard
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def residentBytes() -> int:
    """
    The resident set size of this process, after a full garbage collection.

    @return: Bytes resident in memory.
    """
    gc.collect()
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ServerStatus:
    """
    The counters of an nginx C{stub_status} page (or the fallback server's
    imitation of it).

    @ivar active: Connections open right now (including the one asking).
    @ivar accepts: Connections accepted since the server started (including
        the one asking).
    @ivar requests: Requests served since the server started (including this
        one).
    """

    active: int
    accepts: int
    requests: int


def parseStubStatus(text: str) -> ServerStatus:
    """
    Parse nginx's C{stub_status} output.

    @param text: The page, e.g. C{"Active connections: 1 \\nserver accepts
        handled requests\\n 3 3 9 \\n..."}.
    @return: The counters.
    """
    lines = text.splitlines()
    active = int(lines[0].split(":")[1])
    accepts, _handled, requests = (int(n) for n in lines[2].split())
    return ServerStatus(active=active, accepts=accepts, requests=requests)


def fetchStatus(port: int) -> ServerStatus:
    """
    Read the server's status page with a blocking one-off connection.

    The connection used to ask is counted by the server: callers subtract
    one from C{active} and from the difference of two C{accepts}.

    @param port: The loopback port the status page listens on.
    @return: The counters.
    """
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/status", headers={"Connection": "close"})
        return parseStubStatus(connection.getresponse().read().decode("ascii"))
    finally:
        connection.close()


def readSpec() -> dict[str, Any]:
    """
    Read the JSON job description a client subprocess was started with.

    @return: The decoded job (from C{sys.argv[1]}).
    """
    job: dict[str, Any] = json.loads(sys.argv[1])
    return job


def emitResult(result: dict[str, Any]) -> None:
    """
    Hand the job's result back to the runner: one JSON line on stdout.

    @param result: Anything JSON-serialisable.
    """
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()


def loadResult(output: str) -> dict[str, Any]:
    """
    Find the result line a client subprocess printed.

    @param output: The subprocess's whole stdout.
    @return: The decoded result.
    @raise ValueError: If there is no result line.
    """
    for line in reversed(output.splitlines()):
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[len("RESULT ") :])
            return result
    raise ValueError("no result line in client output")


def loadTestModule(name: str, relative: str) -> Any:
    """
    Load a module of the test suite by path: the scripted servers live
    there, once.

    @param name: The name to import it under.
    @param relative: Its path below C{tests/}.
    @return: The module (the same one on later calls).
    """
    if name in sys.modules:
        return sys.modules[name]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "tests", relative)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
