"""
Turn benchmark results into the target check, a markdown table and a plot.
"""

from __future__ import annotations

import os
from typing import Any

POOLED = "pooled_http"
POOLED_AGENT = "pooled_http+PooledAgent"
POOLED_TUNED = "pooled_http+tuned"
STOCK = "twisted-default"
TUNED = "twisted-tuned"
AIOHTTP = "aiohttp"

#: pooled_http's default maxConnectionsPerHost, the burst target's cap.
DEFAULT_PER_HOST = 8


def _summary(results: dict[str, Any], scenario: str, client: str) -> dict[str, Any]:
    return (
        results["scenarios"]
        .get(scenario, {})
        .get("clients", {})
        .get(client, {})
        .get("summary", {})
    )


#: (scenario, client, reference, factor): the client's req/s must be at
#: least C{factor} times the reference's.
RATIO_TARGETS = (
    ("steady", POOLED_AGENT, AIOHTTP, 1.5),
    ("burst", POOLED_AGENT, AIOHTTP, 1.5),
    ("burst-tls", POOLED_AGENT, AIOHTTP, 1.2),
    ("steady", POOLED, STOCK, 1.1),
)


def _ratioTarget(
    results: dict[str, Any], scenario: str, client: str, reference: str, factor: float
) -> dict[str, Any]:
    """
    One req/s ratio target.
    """
    ours, theirs = (
        _summary(results, scenario, client),
        _summary(results, scenario, reference),
    )
    name = f"{scenario}: {client} >= {factor:g}x {reference} req/s"
    if "rps" not in ours or "rps" not in theirs:
        why = (
            ours.get("unavailable")
            or ours.get("failed")
            or theirs.get("unavailable")
            or theirs.get("failed")
            or "not run"
        )
        return _target(name, None, str(why))
    ratio = ours["rps"] / theirs["rps"]
    return _target(
        name,
        ratio >= factor,
        f"{ratio:.2f}x ({ours['rps']:.0f} vs {theirs['rps']:.0f} req/s)",
    )


def _heapTarget(results: dict[str, Any]) -> dict[str, Any]:
    """
    Python heap per idle connection no more than Twisted's pool's (with
    C{maxPersistentPerHost} raised so that it keeps them).
    """
    name = f"memory: {POOLED} heap per idle connection <= {TUNED}'s"
    ours, theirs = (
        _summary(results, "memory", POOLED),
        _summary(results, "memory", TUNED),
    )
    if "heapPerConnection" not in ours or "heapPerConnection" not in theirs:
        return _target(name, None, "memory results missing")
    mine, stock = ours["heapPerConnection"], theirs["heapPerConnection"]
    return _target(name, mine <= stock, f"{mine / 1024:.1f} vs {stock / 1024:.1f} KiB")


def equalConnections(results: dict[str, Any]) -> list[str]:
    """
    PooledAgent with as many connections as aiohttp, against aiohttp, in
    the scenarios that ran both.

    @return: One line per scenario.
    """
    lines = []
    for scenario in ("burst", "burst-tls"):
        ours = _summary(results, scenario, POOLED_TUNED)
        theirs = _summary(results, scenario, AIOHTTP)
        if "rps" in ours and "rps" in theirs:
            lines.append(
                f"{scenario}: {ours['rps'] / theirs['rps']:.2f}x "
                f"({ours['rps']:.0f} vs {theirs['rps']:.0f} req/s; "
                f"{ours.get('opened', 0):.0f} vs {theirs.get('opened', 0):.0f} "
                "connections opened)"
            )
    return lines


def _target(name: str, met: bool | None, text: str) -> dict[str, Any]:
    mark = {True: "met", False: "MISSED", None: "not measured"}[met]
    return {"name": name, "met": met, "text": f"{name}: {mark} - {text}"}


def evaluateTargets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """
    Compare the results with the issue's targets (reported, never asserted).

    @param results: The whole results document.
    @return: One entry per target: C{name}, C{met} (L{None} if it could not
        be measured) and a C{text} line.
    """
    targets = []
    for scenario, factor in (("burst", 3.0), ("burst-tls", 5.0)):
        ours, stock = (
            _summary(results, scenario, POOLED),
            _summary(results, scenario, STOCK),
        )
        name = f"{scenario} >= {factor:g}x stock default req/s"
        if "rps" in ours and "rps" in stock:
            ratio = ours["rps"] / stock["rps"]
            opened = ours.get("openedMax", 0)
            met = ratio >= factor
            text = (
                f"pooled_http with Agent {ratio:.2f}x "
                f"({ours['rps']:.0f} vs {stock['rps']:.0f} req/s)"
            )
            agent = _summary(results, scenario, POOLED_AGENT)
            if "rps" in agent:
                text += f", with PooledAgent {agent['rps'] / stock['rps']:.2f}x"
            if scenario == "burst":
                capOk = opened <= DEFAULT_PER_HOST
                met = met and capOk
                text += (
                    f"; at most {opened} connections opened per run "
                    f"(cap {DEFAULT_PER_HOST}: {'ok' if capOk else 'EXCEEDED'}; "
                    f"the stock pool opened {stock.get('opened', 0):.0f})"
                )
            targets.append(_target(name, met, text))
        else:
            targets.append(_target(name, None, "pooled_http or stock results missing"))
    targets.extend(_http2Targets(results))
    for scenario, client, reference, factor in RATIO_TARGETS:
        targets.append(_ratioTarget(results, scenario, client, reference, factor))
    targets.append(_heapTarget(results))
    byKeys = (
        results["scenarios"]
        .get("pool-ops", {})
        .get("clients", {})
        .get(POOLED, {})
        .get("byKeys", {})
    )
    name = "pool operations: cost at the most keys within 1.2x of 1 key"
    costs = {
        int(k): v["usPerCycle"]
        for k, v in byKeys.items()
        if k.isdigit() and "usPerCycle" in v
    }
    if 1 in costs and len(costs) > 1:
        most = max(costs)
        ratio = costs[most] / costs[1]
        text = (
            f"{most} keys: {ratio:.2f}x ({costs[most]:.2f} vs {costs[1]:.2f} us/cycle)"
        )
        stockKeys = (
            results["scenarios"]["pool-ops"]["clients"].get(STOCK, {}).get("byKeys", {})
        )
        stockCosts = {
            int(k): v["usPerCycle"]
            for k, v in stockKeys.items()
            if k.isdigit() and "usPerCycle" in v
        }
        if 1 in stockCosts and most in stockCosts:
            text += f"; stock pool: {stockCosts[most] / stockCosts[1]:.2f}x"
        targets.append(_target(name, ratio <= 1.2, text))
    else:
        targets.append(_target(name, None, "pooled_http pool-ops results missing"))
    return targets


def _http2Targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """
    The HTTP/2 targets of burst-h2: at least our HTTP/1.1 figure, at least
    5x httpx's HTTP/2 figure, one connection opened.
    """
    if "burst-h2" not in results["scenarios"]:
        return []
    h2 = _summary(results, "burst-h2", "pooled_http+h2")
    name = "burst-h2: HTTP/2 >= our HTTP/1.1, >= 5x httpx HTTP/2, 1 connection"
    if "rps" not in h2:
        why = h2.get("unavailable") or h2.get("failed") or "not run"
        return [_target(name, None, f"pooled_http+h2: {why}")]
    parts = []
    met: bool | None = True
    h11 = _summary(results, "burst-h2", POOLED_AGENT)
    if "rps" in h11:
        ratio = h2["rps"] / h11["rps"]
        met = met and ratio >= 1.0
        parts.append(f"{ratio:.2f}x our HTTP/1.1 ({h2['rps']:.0f} vs {h11['rps']:.0f} req/s)")
    httpx = _summary(results, "burst-h2", "httpx+h2")
    if "rps" in httpx:
        ratio = h2["rps"] / httpx["rps"]
        met = met and ratio >= 5.0
        parts.append(f"{ratio:.2f}x httpx HTTP/2 ({httpx['rps']:.0f} req/s)")
    else:
        parts.append("httpx HTTP/2 not measured")
    opened = h2.get("openedMax")
    met = met and opened == 1
    parts.append(f"at most {opened} connections opened per run")
    h2load = _summary(results, "burst-h2", "h2load")
    if "rps" in h2load:
        parts.append(f"h2load {h2load['rps']:.0f} req/s")
    return [_target(name, met, "; ".join(parts))]


def _load(values: Any) -> str:
    if not values:
        return "?"
    return "/".join(f"{v:.2f}" for v in values)


def _fmt(value: Any, spec: str = ".0f") -> str:
    if value is None:
        return "-"
    return format(value, spec)


def writeMarkdown(results: dict[str, Any], path: str, plotName: str | None) -> None:
    """
    Write the results as markdown tables.

    @param results: The results document.
    @param path: Where to write.
    @param plotName: The plot's file name, if one was written.
    """
    machine = results.get("machine", {})
    lines = [
        f"# pooled_http benchmarks, {results['date']}",
        "",
        f"- machine: {machine.get('nproc')} CPUs ({machine.get('cpu')}), {machine.get('platform')}",
        f"- Python {machine.get('python')}, Twisted {machine.get('twisted')}, "
        f"aiohttp {machine.get('aiohttp')}, httpx {machine.get('httpx')}, "
        f"pooled_http at {machine.get('commit')}",
        f"- server: {machine.get('serverNote')}",
        "- load average (1, 5, 15 min) before the run "
        f"{_load(machine.get('loadAverageBefore'))}, after "
        f"{_load(machine.get('loadAverageAfter'))}: other work on the machine "
        "shows up as noise in every column alike (clients alternate)",
        f"- {results['repeats']} repeats per client, clients alternating; "
        "req/s is the median (min-max); latencies are medians over repeats; "
        "connections are counted by the server",
        f"- command: `{results['command']}`",
        "",
        "## Targets (reported, not asserted)",
        "",
    ]
    lines += [f"- {t['text']}" for t in results.get("targets", [])]
    equal = equalConnections(results)
    if equal:
        lines += [
            "",
            "At equal connection counts (informative, not a target): "
            f"{POOLED_TUNED} opens as many connections as {AIOHTTP}",
            "",
        ]
        lines += [f"- {line}" for line in equal]
    for name, scenario in results["scenarios"].items():
        lines += ["", f"## {scenario['title']}", ""]
        if scenario["mode"] == "poolops":
            lines += _poolopsTable(scenario)
        elif scenario["mode"] == "memory":
            lines += _memoryTable(scenario)
        else:
            extra = (
                f"{scenario['total']} requests, concurrency {scenario['concurrency']}"
            )
            if scenario["tls"]:
                extra += ", HTTPS"
            lines += [f"{extra}.", ""] + _httpTable(scenario)
        del name
    if plotName:
        lines += ["", f"![plot]({os.path.basename(plotName)})"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _unavailable(summary: dict[str, Any]) -> str | None:
    if "unavailable" in summary:
        reason = str(summary["unavailable"])
        if reason.startswith(("n/a", "not run")):
            return reason
        return "not available: " + reason
    if "failed" in summary:
        return "FAILED: " + str(summary["failed"]).strip().splitlines()[-1]
    return None


def _httpTable(scenario: dict[str, Any]) -> list[str]:
    lines = [
        "| client | req/s median (min-max) | conns opened | p50 ms | p99 ms | x stock | x aiohttp | share of wrk | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for client, entry in scenario["clients"].items():
        s = entry.get("summary", {})
        missing = _unavailable(s)
        note = entry.get("note", "")
        if s.get("errors"):
            note = (note + "; " if note else "") + f"{s['errors']} errors"
        if missing:
            lines.append(f"| {client} | {missing} | | | | | | | {note} |")
            continue
        lines.append(
            f"| {client} | {s['rps']:.0f} ({s['rpsMin']:.0f}-{s['rpsMax']:.0f}) "
            f"| {_fmt(s.get('opened'))} | {_fmt(s.get('p50'), '.1f')} "
            f"| {_fmt(s.get('p99'), '.1f')} | {_fmt(s.get('vsStock'), '.2f')} "
            f"| {_fmt(s.get('vsAiohttp'), '.2f')} | {_fmt(s.get('vsWrk'), '.0%')} "
            f"| {note} |"
        )
    return lines


def _poolopsTable(scenario: dict[str, Any]) -> list[str]:
    keys = scenario["keys"]
    lines = [
        f"{scenario['cycles']} cycles per measurement, in interleaved batches "
        "(fastest batch counts); microseconds per cycle, median over repeats "
        "(x the cost at 1 key). *queued*: the only connection (cap 1) is "
        "handed from the request that finished straight to a queued one.",
        "",
        "| client | "
        + " | ".join(f"{k} keys" for k in keys)
        + " | queued hand-off | cycles/s at 1 key |",
        "|---|" + "---|" * (len(keys) + 2),
    ]
    for client, entry in scenario["clients"].items():
        if "byKeys" not in entry:
            missing = _unavailable(entry.get("summary", {})) or "-"
            lines.append(f"| {client} | {missing} |" + " |" * (len(keys) + 1))
            continue
        cells = []
        for k in keys:
            s = entry["byKeys"].get(str(k), {})
            if "usPerCycle" in s:
                cells.append(f"{s['usPerCycle']:.2f} ({s.get('vsOneKey', 1):.2f}x)")
            else:
                cells.append(_unavailable(s) or "-")
        queued = entry["byKeys"].get("queued", {})
        cells.append(_fmt(queued.get("usPerCycle"), ".2f") if queued else "n/a")
        first = entry["byKeys"].get(str(keys[0]), {})
        lines.append(
            f"| {client} | " + " | ".join(cells) + f" | {_fmt(first.get('rps'))} |"
        )
    return lines


def _memoryTable(scenario: dict[str, Any]) -> list[str]:
    lines = [
        f"{scenario['connections']} connections opened concurrently, then left "
        "idle in the client's pool; growth after a warm-up request per port.",
        "",
        "| client | idle conns held | RSS KiB per conn | Python heap KiB per conn | note |",
        "|---|---|---|---|---|",
    ]
    for client, entry in scenario["clients"].items():
        s = entry.get("summary", {})
        missing = _unavailable(s)
        if missing:
            lines.append(f"| {client} | {missing} | | | |")
            continue
        note = f"{s['errors']} errors" if s.get("errors") else ""
        lines.append(
            f"| {client} | {_fmt(s.get('idleConnections'))} "
            f"| {s['rssPerConnection'] / 1024:.1f} | {s['heapPerConnection'] / 1024:.1f} | {note} |"
        )
    return lines


def writePlot(results: dict[str, Any], path: str) -> str:
    """
    Plot req/s per scenario, pool-operation cost per key count and memory
    per connection.

    @param results: The results document.
    @param path: The PNG to write.
    @return: C{path}.
    @raise ImportError: If matplotlib is not installed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = results["scenarios"]
    names = list(scenarios)
    # Three panels a row, as many rows as the scenarios need: none is left
    # out of the picture.
    rows = max(1, -(-len(names) // 3))
    fig, axes = plt.subplots(rows, 3, figsize=(15, 4.25 * rows), squeeze=False)
    flat = list(axes.flat)
    for ax, name in zip(flat, names, strict=False):
        scenario = scenarios[name]
        clients = scenario["clients"]
        title = scenario["title"]
        if scenario["mode"] == "poolops":
            keys = scenario["keys"]
            width = 0.8 / max(1, len(clients))
            shown = [c for c, e in clients.items() if "byKeys" in e]
            for i, client in enumerate(shown):
                values = [
                    clients[client]["byKeys"].get(str(k), {}).get("usPerCycle", 0)
                    for k in keys
                ]
                ax.bar(
                    [j + i * width for j in range(len(keys))],
                    values,
                    width,
                    label=client,
                )
            ax.set_xticks([j + width * (len(shown) - 1) / 2 for j in range(len(keys))])
            ax.set_xticklabels([f"{k} keys" for k in keys])
            ax.set_ylabel("us per cycle (lower is better)")
            ax.legend(fontsize=7)
        elif scenario["mode"] == "memory":
            shown = [
                c
                for c, e in clients.items()
                if "rssPerConnection" in e.get("summary", {})
            ]
            rss = [clients[c]["summary"]["rssPerConnection"] / 1024 for c in shown]
            heap = [clients[c]["summary"]["heapPerConnection"] / 1024 for c in shown]
            xs = range(len(shown))
            ax.bar([x - 0.2 for x in xs], rss, 0.4, label="RSS")
            ax.bar([x + 0.2 for x in xs], heap, 0.4, label="Python heap")
            ax.set_xticks(list(xs))
            ax.set_xticklabels(shown, rotation=30, ha="right", fontsize=7)
            ax.set_ylabel("KiB per idle connection")
            ax.legend(fontsize=7)
        else:
            shown = [
                c
                for c, e in clients.items()
                if "rps" in e.get("summary", {}) and c != "wrk"
            ]
            med = [clients[c]["summary"]["rps"] for c in shown]
            low = [
                m - clients[c]["summary"]["rpsMin"]
                for c, m in zip(shown, med, strict=True)
            ]
            high = [
                clients[c]["summary"]["rpsMax"] - m
                for c, m in zip(shown, med, strict=True)
            ]
            colors = [
                "tab:blue" if c.startswith("pooled_http") else "tab:gray" for c in shown
            ]
            physical = clients.get("wrk", {}).get("summary", {}).get("rps")
            if physical:
                # Drawn as a bar it would flatten every other one.
                title += f"\nwrk (C, one thread): {physical:,.0f} req/s"
            ax.bar(range(len(shown)), med, yerr=[low, high], color=colors, capsize=3)
            ax.set_xticks(list(range(len(shown))))
            ax.set_xticklabels(shown, rotation=30, ha="right", fontsize=7)
            ax.set_ylabel("requests/s (higher is better)")
        ax.set_title(title, fontsize=8)
    for ax in flat[len(names) :]:
        ax.axis("off")
    machine = results.get("machine", {})
    fig.suptitle(
        f"pooled_http benchmarks {results['date'][:10]}: {machine.get('nproc')} CPUs, "
        f"Python {machine.get('python')}, Twisted {machine.get('twisted')}, "
        f"server {machine.get('server')}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
