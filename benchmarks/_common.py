"""
Helpers shared by the benchmark runner and its client subprocesses.

Everything here is plain standard library so that every client subprocess
(Twisted or asyncio) can import it without pulling in the other world.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import os
import resource
import sys
from dataclasses import dataclass
from typing import Any

#: The body size every server in this suite answers with.
BODY_SIZE = 1024


def finishResult(result: dict[str, Any], elapsed: float) -> dict[str, Any]:
    """
    Turn a client run's raw C{errors} into the figures the runner reports:
    counts, the first errors and req/s.  The raw C{latencies} (seconds) stay
    in the result: the runner turns them into percentiles, with the one
    definition of L{pooled_http.stats.percentiles} whichever revision of
    pooled_http the client ran.
    """
    latencies = result["latencies"]
    errors = result.pop("errors")
    result.update(
        {
            "requests": len(latencies),
            "errors": len(errors),
            "firstErrors": errors[:3],
            "elapsed": elapsed,
            "rps": len(latencies) / elapsed if elapsed else 0.0,
        }
    )
    return result


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


#: This checkout's src/: the pooled_http every script measures unless told
#: otherwise (it comes before PYTHONPATH).
SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


def addSourceOption(parser: argparse.ArgumentParser) -> None:
    """
    Add C{--src}, the directory holding the pooled_http package to measure.
    """
    parser.add_argument(
        "--src",
        default=SRC,
        help="directory holding the pooled_http package to measure "
        "(default: this checkout's src/, which comes before PYTHONPATH)",
    )


def addPoolOptions(parser: argparse.ArgumentParser) -> None:
    """
    Give a benchmark's command line C{--pool-option NAME=VALUE}.
    """
    parser.add_argument(
        "--pool-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a pooled_http pool setting (an integer), e.g. "
        "maxConnectionsPerHost=32; may be repeated",
    )


def poolOptions(
    parser: argparse.ArgumentParser, options: argparse.Namespace
) -> dict[str, int]:
    """
    @return: The C{--pool-option} settings given, by name (the parser
        exits with an error naming a malformed one).
    """
    settings: dict[str, int] = {}
    for option in options.pool_option:
        name, equals, value = option.partition("=")
        if not equals or not value.isdigit():
            parser.error(f"--pool-option {option!r} is not NAME=INTEGER")
        settings[name] = int(value)
    return settings
