"""
Benchmarks: pooled_http against Twisted's stock pool, aiohttp and httpx,
side by side in one run.

    python benchmarks/run.py                      # everything, default sizes
    python benchmarks/run.py --scenarios burst,burst-tls --repeats 5
    python benchmarks/run.py --clients pooled_http,twisted-default --scale 0.2
    python benchmarks/run.py --smoke --output /tmp/out   # tiny, seconds

Starts nginx (or a twisted.web fallback) on loopback ports, runs every
client in its own subprocess on every scenario, alternating clients within
each repeat, and writes C{results/<date>.json}, C{.md} and C{.png}.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from _common import SRC, addSourceOption, fetchStatus, loadResult, raiseFileLimit  # noqa: E402
from _report import evaluateTargets, writeMarkdown, writePlot  # noqa: E402
from _servers import Server, startServer  # noqa: E402

from pooled_http.stats import percentiles  # noqa: E402

CLIENTS = (
    "pooled_http",
    "pooled_http+PooledAgent",
    "pooled_http+cache",
    "pooled_http+tuned",
    "twisted-default",
    "twisted-tuned",
    "aiohttp",
    "httpx",
    "wrk",
    # Only in the HTTP/2 scenario (burst-h2):
    "pooled_http+h2",
    "httpx+h2",
    "h2load",
)
#: Clients that run only where a scenario names them (Scenario.clients, or
#: ONLY_IN for those that join the default clients there).
H2_CLIENTS = frozenset({"pooled_http+h2", "httpx+h2", "h2load"})
#: PooledAgent with as many connections as aiohttp opens: where the default
#: cap of 8 per host is the difference (bursts), to compare like with like.
ONLY_IN = {"pooled_http+tuned": frozenset({"burst", "burst-tls"})}
TWISTED_CLIENTS = CLIENTS[:6] + ("pooled_http+h2",)
TUNED_NOTE = "PooledAgent, maxConnectionsPerHost = concurrency"
BASELINE = "twisted-default"
REFERENCE = "aiohttp"
#: The physical reference: wrk (C, one thread) on the same server.
PHYSICAL = "wrk"

#: How long wrk runs per repeat (seconds), at full size and in --smoke.
WRK_SECONDS = (3, 1)

#: Number of plain HTTP ports (keys) of the many-hosts and memory scenarios.
MANY_PORTS = 20


@dataclass
class Scenario:
    """
    One benchmark scenario.

    @ivar name: Short name used on the command line and in results.
    @ivar title: One line for the table.
    @ivar mode: C{"workers"}, C{"bursts"}, C{"memory"} or C{"poolops"}.
    @ivar total: Requests per run (workers and bursts).
    @ivar concurrency: Workers, or requests per burst.
    @ivar ports: How many server ports (keys) the requests spread over.
    @ivar tls: Whether requests go over HTTPS.
    @ivar globalCap: The cap over all keys each client is given, if any.
    @ivar connections: Idle connections to open (memory).
    @ivar keys: Key counts to measure (poolops).
    @ivar cycles: Cycles per measurement (poolops).
    @ivar notes: Per-client remarks shown with the results.
    @ivar skip: Clients that cannot run this scenario, with the reason.
    @ivar maxRepeats: Run at most this many repeats (unless --all-repeats).
    @ivar clients: The only clients this scenario runs (of those selected);
        empty for every client but the HTTP/2 ones.
    """

    name: str
    title: str
    mode: str
    total: int = 0
    concurrency: int = 1
    ports: int = 1
    tls: bool = False
    globalCap: int | None = None
    connections: int = 0
    keys: list[int] = field(default_factory=list)
    cycles: int = 0
    notes: dict[str, str] = field(default_factory=dict)
    skip: dict[str, str] = field(default_factory=dict)
    maxRepeats: int | None = None
    clients: tuple[str, ...] = ()


def makeScenarios(scale: float, smoke: bool) -> list[Scenario]:
    """
    The seven scenarios at the requested size.

    @param scale: Multiplies request, cycle and connection counts.
    @param smoke: Tiny sizes, for the test suite.
    @return: The scenarios in order.
    """

    def n(value: int, tiny: int) -> int:
        return tiny if smoke else max(1, int(value * scale))

    noCap = "Twisted's pool has no global cap: up to 200 connections at once"
    memorySkip = {
        "twisted-default": "n/a (keeps at most 2 idle connections per host)",
        "wrk": "n/a (not a pool)",
    }
    if not smoke:
        memorySkip["httpx"] = (
            "not run: httpx needs minutes to open 2,000 concurrent connections "
            "(500 took 34 s on the development machine)"
        )
    return [
        Scenario(
            "steady",
            "steady: 10 workers looping keep-alive GETs of 1 KiB",
            "workers",
            total=n(5000, 20),
            concurrency=n(10, 3) if smoke else 10,
        ),
        Scenario(
            "burst",
            "burst: GETs in bursts of 100 concurrent, default settings",
            "bursts",
            total=n(5000, 20),
            concurrency=10 if smoke else 100,
            notes={"pooled_http+tuned": TUNED_NOTE},
        ),
        Scenario(
            "burst-tls",
            "burst over TLS: GETs in bursts of 50",
            "bursts",
            total=n(2000, 10),
            concurrency=5 if smoke else 50,
            tls=True,
            notes={"pooled_http+tuned": TUNED_NOTE},
        ),
        Scenario(
            "burst-h2",
            "burst over TLS, HTTP/2: GETs in bursts of 100 concurrent",
            "bursts",
            total=n(3000, 20),
            concurrency=10 if smoke else 100,
            tls=True,
            clients=(
                "pooled_http+h2",
                "pooled_http+PooledAgent",
                "httpx+h2",
                "aiohttp",
                "h2load",
            ),
            notes={
                "pooled_http+h2": "PooledAgent(http2=True): one HTTP/2 connection",
                "pooled_http+PooledAgent": "HTTP/1.1, up to 8 connections",
                "aiohttp": "HTTP/1.1 (aiohttp has no HTTP/2)",
                "h2load": "nghttp2's load generator, C, one connection, "
                "100 streams kept in flight (not bursts): the physical reference",
            },
        ),
        Scenario(
            "many-hosts",
            f"many hosts: {MANY_PORTS} keys (ports), 200 concurrent, global cap 64",
            "workers",
            total=n(4000, 40),
            concurrency=20 if smoke else 200,
            ports=MANY_PORTS,
            globalCap=8 if smoke else 64,
            notes={"twisted-default": noCap, "twisted-tuned": noCap},
            skip={"wrk": "n/a (one URL per run)"},
        ),
        Scenario(
            "pool-ops",
            "pool operations alone: getConnection/put-back cycles, in memory",
            "poolops",
            keys=[1, 10, 100] if smoke else [1, 100, 10_000],
            cycles=n(50_000, 200),
            skip={
                "pooled_http+PooledAgent": "n/a (measures the pool, not the agent)",
                "pooled_http+cache": "n/a (measures the pool, not the agent)",
                "twisted-tuned": "n/a (same code as twisted-default)",
                "aiohttp": "n/a (no pool API to drive alone)",
                "httpx": "n/a (no pool API to drive alone)",
                "wrk": "n/a (not a pool)",
            },
        ),
        Scenario(
            "memory",
            f"memory: idle keep-alive connections over {MANY_PORTS} ports",
            "memory",
            connections=n(2000, 40),
            ports=MANY_PORTS,
            skip=memorySkip,
            # Memory hardly varies between runs and 2,000 connections take
            # a while to open: once is enough unless asked for more.
            maxRepeats=1,
        ),
    ]


#: Where the pooled_http package benchmarked is imported from (--src,
#: --rev), and what to call it in the results.
SOURCE = [SRC]
SOURCE_NAME: list[str | None] = [None]


def runSubprocess(script: str, job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """
    Run one client job in its own Python process.

    @param script: The client module in this directory.
    @param job: The job description.
    @param timeout: Seconds before the job is killed.
    @return: The client's result, or C{{"failed": ...}}.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (SOURCE[0], env.get("PYTHONPATH", "")) if p
    )
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    try:
        completed = subprocess.run(
            [sys.executable, os.path.join(HERE, script), json.dumps(job)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"failed": f"timed out after {timeout} s"}
    try:
        return loadResult(completed.stdout)
    except ValueError:
        return {"failed": f"exit {completed.returncode}: {completed.stderr[-1500:]}"}


def httpJob(scenario: Scenario, client: str, server: Server) -> dict[str, Any]:
    """
    @return: The job description for an HTTP scenario.
    """
    if scenario.tls:
        urls = [f"https://127.0.0.1:{server.tlsPort}/"]
    else:
        urls = [f"http://127.0.0.1:{p}/" for p in server.ports[: scenario.ports]]
    job: dict[str, Any] = {
        "client": client,
        "mode": scenario.mode,
        "urls": urls,
        "total": scenario.total,
        "concurrency": scenario.concurrency,
        "globalCap": scenario.globalCap,
        "statusPort": server.statusPort,
        "caPem": server.caPem if scenario.tls else None,
    }
    if scenario.mode == "memory":
        job["connections"] = scenario.connections
        job["keepIdle"] = max(1, scenario.connections // scenario.ports)
    return job


def summariseLatencies(result: dict[str, Any]) -> dict[str, Any]:
    """
    Replace a client's raw C{latencies} (seconds) by their C{p50} and C{p99}
    in milliseconds (0.0 for no samples).

    @param result: A client's result; left as it is without C{latencies}.
    @return: C{result}.
    """
    latencies = result.pop("latencies", None)
    if latencies is not None:
        p50, p99 = percentiles(latencies, (50, 99))
        result["p50"] = 0.0 if p50 is None else p50 * 1000.0
        result["p99"] = 0.0 if p99 is None else p99 * 1000.0
    return result


def _wrkSeconds(text: str) -> float:
    """
    @return: A wrk duration such as C{"512.00us"}, C{"1.20ms"} or C{"2.00s"}
        in seconds.
    """
    for unit, factor in (("us", 1e-6), ("ms", 1e-3), ("m", 60.0), ("s", 1.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def parseWrk(output: str) -> dict[str, Any]:
    """
    Read wrk's C{--latency} report.

    @param output: What wrk printed.
    @return: C{rps}, C{p50} and C{p99} (milliseconds), C{requests} and
        C{errors} (wrk's socket errors and non-2xx responses).
    @raise ValueError: If there is no C{Requests/sec} line.
    """
    result: dict[str, Any] = {"errors": 0, "firstErrors": []}
    for line in output.splitlines():
        words = line.split()
        if line.startswith("Requests/sec:"):
            result["rps"] = float(words[1])
        elif len(words) == 2 and words[0] in ("50%", "99%"):
            result["p" + words[0][:-1]] = _wrkSeconds(words[1]) * 1000.0
        elif "requests in" in line:
            result["requests"] = int(words[0])
        elif line.strip().startswith(("Socket errors:", "Non-2xx")):
            numbers = [int(w.strip(",")) for w in words if w.strip(",").isdigit()]
            result["errors"] += sum(numbers)
            result["firstErrors"].append(line.strip())
    if "rps" not in result:
        raise ValueError("no Requests/sec line in wrk's output")
    return result


def runWrk(scenario: Scenario, server: Server, smoke: bool) -> dict[str, Any]:
    """
    Run wrk, the physical reference, on one HTTP scenario: one thread
    keeping C{concurrency} keep-alive connections busy (no bursts: a new
    request follows each response at once), for a fixed time.

    @return: Its result, or C{unavailable} when wrk is not installed.
    """
    binary = shutil.which("wrk")
    if binary is None:
        return {"unavailable": "wrk is not installed (Debian package wrk)"}
    scheme, port = (
        ("https", server.tlsPort) if scenario.tls else ("http", server.ports[0])
    )
    seconds = WRK_SECONDS[1] if smoke else WRK_SECONDS[0]
    command = [
        binary,
        "-t1",
        f"-c{scenario.concurrency}",
        f"-d{seconds}s",
        "--latency",
        f"{scheme}://127.0.0.1:{port}/",
    ]
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 30, check=False
        )
        return parseWrk(completed.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError) as e:
        return {"failed": f"wrk: {e}"}


def runHttp(
    scenario: Scenario,
    client: str,
    server: Server,
    timeout: float,
    smoke: bool = False,
) -> dict[str, Any]:
    """
    Run one client once on an HTTP scenario and count, on the server, the
    connections it opened.

    @return: The client's result plus C{opened}.
    """
    if client == "h2load":
        return runH2load(scenario, server, timeout)
    script = "_twclients.py" if client in TWISTED_CLIENTS else "_aioclients.py"
    before = fetchStatus(server.statusPort)
    if client == PHYSICAL:
        result = runWrk(scenario, server, smoke)
    else:
        result = summariseLatencies(
            runSubprocess(script, httpJob(scenario, client, server), timeout)
        )
    after = fetchStatus(server.statusPort)
    # The second status request's own connection is counted in "after".
    result["opened"] = after.accepts - before.accepts - 1
    # Let the server finish closing the client's connections.
    deadline = time.monotonic() + 5
    while fetchStatus(server.statusPort).active > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    return result


def runH2load(scenario: Scenario, server: Server, timeout: float) -> dict[str, Any]:
    """
    Run nghttp2's C{h2load} on the scenario's TLS URL: one connection, the
    scenario's concurrency as streams in flight, the same request count.

    @return: C{rps} and C{opened}, or why it could not run.
    """
    h2load = shutil.which("h2load")
    if h2load is None:
        return {"unavailable": "h2load is not installed (apt-get install nghttp2-client)"}
    url = f"https://127.0.0.1:{server.tlsPort}/"
    before = fetchStatus(server.statusPort)
    try:
        completed = subprocess.run(
            [
                h2load,
                "-n",
                str(scenario.total),
                "-c",
                "1",
                "-m",
                str(scenario.concurrency),
                url,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"failed": f"h2load timed out after {timeout} s"}
    after = fetchStatus(server.statusPort)
    found = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", completed.stdout)
    if found is None:
        return {"failed": f"h2load: {completed.stdout[-500:]}{completed.stderr[-500:]}"}
    result: dict[str, Any] = {
        "rps": float(found.group(1)),
        "opened": after.accepts - before.accepts - 1,
    }
    failed = re.search(r"(\d+) failed", completed.stdout)
    if failed is not None and int(failed.group(1)):
        result["errors"] = int(failed.group(1))
        result["firstErrors"] = ["h2load reported failed requests"]
    return result


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """
    Median, min and max over the repeats of one client.

    @return: The summary, or the reason there is none.
    """
    good = [r for r in runs if "rps" in r]
    if not good:
        reasons = {r.get("unavailable") or r.get("failed", "?") for r in runs}
        key = "unavailable" if any("unavailable" in r for r in runs) else "failed"
        return {key: "; ".join(sorted(str(x) for x in reasons))}
    summary: dict[str, Any] = {
        "rps": statistics.median(r["rps"] for r in good),
        "rpsMin": min(r["rps"] for r in good),
        "rpsMax": max(r["rps"] for r in good),
        "runs": len(good),
    }
    for key in (
        "p50",
        "p99",
        "opened",
        "usPerCycle",
        "rssPerConnection",
        "heapPerConnection",
        "idleConnections",
        "addedConnections",
    ):
        values = [r[key] for r in good if key in r]
        if values:
            summary[key] = statistics.median(values)
    if any("opened" in r for r in good):
        summary["openedMax"] = max(r.get("opened", 0) for r in good)
    errors = sum(r.get("errors", 0) for r in good)
    if errors:
        summary["errors"] = errors
        summary["firstErrors"] = next(r["firstErrors"] for r in good if r.get("errors"))
    return summary


def addRatios(clients: dict[str, dict[str, Any]]) -> None:
    """
    Add C{vsStock}, C{vsAiohttp} and C{vsWrk} (ratios of median req/s; the
    last is each client's share of what wrk got) to each summary in place.
    """
    for name, reference in (
        ("vsStock", BASELINE),
        ("vsAiohttp", REFERENCE),
        ("vsWrk", PHYSICAL),
    ):
        base = clients.get(reference, {}).get("summary", {}).get("rps")
        for entry in clients.values():
            summary = entry.get("summary", {})
            if base and "rps" in summary:
                summary[name] = summary["rps"] / base


def exportRevision(revision: str) -> tuple[str, str]:
    """
    Export C{src/} as committed at C{revision} into a temporary directory,
    so that edits to the working tree during a run change nothing.

    @param revision: Any git revision, e.g. C{HEAD}.
    @return: C{(directory, commit)}: the directory holding C{src/} and the
        short commit id.
    @raise SystemExit: If git cannot export it.
    """
    import io
    import tarfile
    import tempfile

    root = os.path.dirname(HERE)
    try:
        commit = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short", revision],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        archive = subprocess.run(
            ["git", "-C", root, "archive", "--format=tar", commit, "src"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit(f"cannot export {revision!r} with git: {e}") from e
    directory = tempfile.mkdtemp(prefix="pooled-http-bench-src-")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(directory, filter="data")
        else:
            tar.extractall(directory)
    return directory, commit


def gitDescription() -> str | None:
    """
    @return: The checkout's commit, marked C{dirty} if C{src/} has
        uncommitted changes, or L{None} outside a git checkout.
    """
    root = os.path.dirname(HERE)
    try:
        commit = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + (" (src/ has uncommitted changes)" if dirty else "")


def machineInfo(server: Server) -> dict[str, Any]:
    """
    @return: What the numbers were measured on.
    """
    import twisted

    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "twisted": twisted.__version__,
        "server": server.kind,
        "serverVersion": server.version,
        "serverNote": server.note,
        "loadAverageBefore": os.getloadavg(),
    }
    info["pooled_http source"] = SOURCE[0]
    info["commit"] = SOURCE_NAME[0] or (
        gitDescription() if SOURCE[0] == SRC else f"the tree in {SOURCE[0]}"
    )
    for module in ("aiohttp", "httpx"):
        try:
            info[module] = __import__(module).__version__
        except Exception:
            info[module] = None
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in f
                    if line.startswith("model name")
                ),
                None,
            )
    except OSError:
        pass
    return info


def parseArguments(argv: list[str] | None) -> argparse.Namespace:
    """
    @return: The parsed command line.
    """
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument(
        "--scenarios",
        default="steady,burst,burst-tls,burst-h2,many-hosts,pool-ops,memory",
        help="comma-separated scenarios (default: all)",
    )
    parser.add_argument(
        "--clients",
        default=",".join(CLIENTS),
        help="comma-separated clients (default: all)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per client and scenario"
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply request, cycle and connection counts (e.g. 0.2 or 3)",
    )
    parser.add_argument(
        "--server",
        choices=("auto", "nginx", "twisted"),
        default="auto",
        help="auto: nginx if installed, else the twisted.web fallback",
    )
    parser.add_argument(
        "--output", default=os.path.join(HERE, "results"), help="results directory"
    )
    parser.add_argument(
        "--name", default=None, help="results file stem (default: today's date)"
    )
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    parser.add_argument(
        "--all-repeats",
        action="store_true",
        help="repeat the memory scenario too (default: once)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds per client run"
    )
    addSourceOption(parser)
    parser.add_argument(
        "--rev",
        default=None,
        help="measure pooled_http as committed at this git revision "
        "(e.g. HEAD), exported to a temporary directory",
    )
    parser.add_argument(
        "--observer",
        choices=("none", "noop", "otel", "otel-noevents"),
        default="none",
        help="what watches pooled_http's pools: nothing, a no-op trace "
        "observer, or OpenTelemetry with the SDK (spans dropped on export), "
        "with or without the per-step span events",
    )
    args = parser.parse_args(argv)
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    args.clients = [c for c in args.clients.split(",") if c]
    for c in args.clients:
        if c not in CLIENTS:
            parser.error(f"unknown client {c!r}; choose from {', '.join(CLIENTS)}")
    if args.smoke:
        args.repeats = 1
        args.timeout = min(args.timeout, 60.0)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.scale <= 0:
        parser.error("--scale must be positive")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """
    Run the benchmarks and write the results.

    @param argv: Command-line arguments (default: C{sys.argv[1:]}).
    @return: The results written to the JSON file.
    """
    args = parseArguments(argv)
    # Read by _observe.py in the client processes.
    os.environ["POOLED_HTTP_BENCH_OBSERVER"] = args.observer
    SOURCE[0] = os.path.abspath(args.src)
    exported = None
    if args.rev:
        exported, commit = exportRevision(args.rev)
        SOURCE[0] = os.path.join(exported, "src")
        SOURCE_NAME[0] = f"{commit} ({args.rev})"
    raiseFileLimit()
    scenarios = {s.name: s for s in makeScenarios(args.scale, args.smoke)}
    for name in args.scenarios:
        if name not in scenarios:
            raise SystemExit(
                f"unknown scenario {name!r}; choose from {', '.join(scenarios)}"
            )
    selected = [scenarios[name] for name in args.scenarios]
    connections = max((s.connections for s in selected), default=0)
    server = startServer(args.server, MANY_PORTS, connections)
    print(f"server: {server.note}", flush=True)
    started = time.time()
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "command": "python benchmarks/run.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "repeats": args.repeats,
        "smoke": args.smoke,
        "scenarios": {},
    }
    try:
        results["machine"] = machineInfo(server)
        for scenario in selected:
            results["scenarios"][scenario.name] = runScenario(scenario, args, server)
    finally:
        server.stop()
        if exported is not None:
            shutil.rmtree(exported, ignore_errors=True)
    results["elapsed"] = time.time() - started
    results["machine"]["loadAverageAfter"] = os.getloadavg()
    results["targets"] = evaluateTargets(results)
    os.makedirs(args.output, exist_ok=True)
    stem = args.name or datetime.date.today().isoformat()
    base = os.path.join(args.output, stem)
    with open(base + ".json", "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    plotName = None
    if not args.no_plot:
        try:
            plotName = writePlot(results, base + ".png")
        except ImportError:
            print("matplotlib is not installed: no plot", flush=True)
    writeMarkdown(results, base + ".md", plotName)
    print(f"wrote {base}.json, {base}.md" + (f", {plotName}" if plotName else ""))
    for line in results["targets"]:
        print(f"target: {line['text']}")
    return results


def runScenario(
    scenario: Scenario, args: argparse.Namespace, server: Server
) -> dict[str, Any]:
    """
    Run every selected client on one scenario, alternating clients within
    each repeat (the order rotates between repeats).

    @return: The scenario's results.
    """
    selected = [
        c
        for c in args.clients
        if (
            (c in scenario.clients)
            if scenario.clients
            else (c not in H2_CLIENTS and scenario.name in ONLY_IN.get(c, (scenario.name,)))
        )
    ]
    clients = {c: {"runs": []} for c in selected}  # type: dict[str, dict[str, Any]]
    runnable = []
    for c in selected:
        if c in scenario.skip:
            clients[c]["summary"] = {"unavailable": scenario.skip[c]}
        else:
            runnable.append(c)
        if c in scenario.notes:
            clients[c]["note"] = scenario.notes[c]
    unavailable: set[str] = set()
    repeats = args.repeats
    if scenario.maxRepeats is not None and not args.all_repeats:
        repeats = min(repeats, scenario.maxRepeats)
    for repeat in range(repeats):
        order = (
            runnable[repeat % max(1, len(runnable)) :]
            + runnable[: repeat % max(1, len(runnable))]
        )
        for client in order:
            if client in unavailable:
                continue
            if scenario.mode == "poolops":
                result = runSubprocess(
                    "_poolops.py",
                    {
                        "client": client,
                        "keys": scenario.keys,
                        "cycles": scenario.cycles,
                    },
                    args.timeout,
                )
                if "unavailable" in result:
                    unavailable.add(client)
            else:
                result = runHttp(scenario, client, server, args.timeout, args.smoke)
                if "unavailable" in result:
                    unavailable.add(client)
            clients[client]["runs"].append(result)
            print(
                f"{scenario.name} #{repeat + 1} {client}: {brief(result)}", flush=True
            )
    for client in runnable:
        runs = clients[client]["runs"]
        if scenario.mode == "poolops":
            measured = [r for r in runs if "unavailable" not in r and "failed" not in r]
            if not measured:
                clients[client]["summary"] = summarise(runs)
                continue
            names = [str(k) for k in scenario.keys] + ["queued"]
            byKeys = {
                name: summarise([r[name] for r in measured if name in r])
                for name in names
                if any(name in r for r in measured)
            }
            clients[client]["byKeys"] = byKeys
            one = byKeys.get(str(scenario.keys[0]), {}).get("usPerCycle")
            for name, entry in byKeys.items():
                if one and "usPerCycle" in entry and name != "queued":
                    entry["vsOneKey"] = entry["usPerCycle"] / one
        else:
            clients[client]["summary"] = summarise(runs)
    if scenario.mode != "poolops":
        addRatios(clients)
    return {
        "title": scenario.title,
        "mode": scenario.mode,
        "total": scenario.total,
        "concurrency": scenario.concurrency,
        "ports": scenario.ports,
        "tls": scenario.tls,
        "globalCap": scenario.globalCap,
        "connections": scenario.connections,
        "keys": scenario.keys,
        "cycles": scenario.cycles,
        "clients": clients,
    }


def brief(result: dict[str, Any]) -> str:
    """
    @return: One line about one run, for the progress output.
    """
    if "unavailable" in result:
        return f"not available ({result['unavailable']})"
    if "failed" in result:
        return "FAILED " + result["failed"].strip().splitlines()[-1]
    if "rps" not in result:
        if result and all(isinstance(v, dict) for v in result.values()):
            return ", ".join(f"{k}: {brief(v)}" for k, v in result.items())
        return "FAILED (no result) " + json.dumps(result)[:200]
    parts = [f"{result['rps']:.0f}/s"]
    if "rssPerConnection" in result:
        parts = []
    if "usPerCycle" in result:
        parts = [f"{result['usPerCycle']:.2f} us/cycle ({result['mode']})"]
    if "opened" in result and "usPerCycle" not in result:
        parts.append(f"{result['opened']} conns")
    if "p50" in result:
        parts.append(f"p50 {result['p50']:.1f} ms p99 {result['p99']:.1f} ms")
    if "rssPerConnection" in result:
        parts.append(
            f"{result['idleConnections']} idle, "
            f"{result['rssPerConnection'] / 1024:.1f} KiB RSS/conn, "
            f"{result['heapPerConnection'] / 1024:.1f} KiB heap/conn"
        )
    if result.get("errors"):
        parts.append(f"{result['errors']} errors: {result['firstErrors'][:1]}")
    return ", ".join(parts)


if __name__ == "__main__":
    main()
