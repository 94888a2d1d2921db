"""The soak test's report: Locust's CSV files read back, a Markdown summary and a PNG
chart of throughput, latency and queue depth over time (matplotlib, no display)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soak import BASELINE
from soak.checks import Check


@dataclass
class Sample:
    """The queue as the orchestrator saw it at one moment."""

    at: float
    ready_tasks: int
    queued: int
    running: int


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:  # Locust writes "N/A" for an endpoint with no requests
        return 0.0


def load_stats(prefix: Path, replay_name: str) -> dict[str, Any]:
    """The whole run's figures from `<prefix>_stats.csv`: totals, percentiles, and the
    rows per endpoint."""
    with open(f"{prefix}_stats.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    total = next(r for r in rows if r["Name"] == "Aggregated")
    baseline = next((r for r in rows if r["Name"] == BASELINE), None)
    checks = [r for r in rows if r["Type"] == "CHECK"]
    mismatches = sum(int(r["Failure Count"]) for r in checks if r["Name"] == replay_name)
    requests = int(total["Request Count"]) - sum(int(r["Request Count"]) for r in checks)
    failures = int(total["Failure Count"]) - sum(int(r["Failure Count"]) for r in checks)
    return {
        "requests": requests,
        "failures": failures,
        "error_ratio": failures / requests if requests else 0.0,
        "rps": _number(total["Requests/s"]),
        "p50_ms": _number(total["50%"]),
        "p95_ms": _number(total["95%"]),
        "p99_ms": _number(total["99%"]),
        "max_ms": _number(total["Max Response Time"]),
        "replay_mismatches": mismatches,
        "baseline_p95_ms": _number(baseline["95%"]) if baseline else 0.0,
        "endpoints": [r for r in rows if r["Name"] != "Aggregated" and r["Type"] != "CHECK"],
    }


def load_history(prefix: Path) -> list[dict[str, float]]:
    """Per second: requests/s, failures/s and the current window's p50 and p95."""
    with open(f"{prefix}_stats_history.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["Name"] == "Aggregated"]
    return [
        {
            "at": _number(r["Timestamp"]),
            "rps": _number(r["Requests/s"]),
            "fps": _number(r["Failures/s"]),
            "p50": _number(r["50%"]),
            "p95": _number(r["95%"]),
            "users": _number(r["User Count"]),
        }
        for r in rows
    ]


def load_failures(prefix: Path) -> list[dict[str, str]]:
    path = Path(f"{prefix}_failures.csv")
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def chart(
    path: Path, history: list[dict[str, float]], queue: list[Sample], kills: list[float]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = min([h["at"] for h in history] + [s.at for s in queue] or [0])

    def minutes(at: float) -> float:
        return (at - start) / 60

    figure, (throughput, latency, depth) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    times = [minutes(h["at"]) for h in history]
    throughput.plot(times, [h["rps"] for h in history], label="requests/s", color="#4338ca")
    throughput.plot(times, [h["fps"] for h in history], label="errors/s", color="#dc2626")
    throughput.set_ylabel("per second")
    throughput.set_title("Throughput")
    latency.plot(times, [h["p50"] for h in history], label="p50", color="#0ea5e9")
    latency.plot(times, [h["p95"] for h in history], label="p95", color="#f59e0b")
    latency.set_ylabel("ms")
    latency.set_title("Response time (last 10 s)")
    sampled = [minutes(s.at) for s in queue]
    depth.plot(sampled, [s.ready_tasks for s in queue], label="tasks ready", color="#7c3aed")
    depth.plot(sampled, [s.queued for s in queue], label="generations queued", color="#22c55e")
    depth.plot(sampled, [s.running for s in queue], label="generations running", color="#f97316")
    depth.set_ylabel("count")
    depth.set_xlabel("minutes")
    depth.set_title("Queue depth (dashed: a worker killed with SIGKILL)")
    for axis in (throughput, latency, depth):
        for kill in kills:
            axis.axvline(minutes(kill), color="#6b7280", linestyle="--", linewidth=0.8)
        axis.legend(loc="upper right", fontsize="small")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def markdown(
    *,
    command: str,
    settings: dict[str, Any],
    checks: list[Check],
    stats: dict[str, Any],
    budgets: dict[str, float],
    outcomes: dict[str, int],
    errors: dict[str, int],
    faults: dict[str, int],
    kills: list[tuple[float, str]],
    stripe: dict[str, int],
    failures: list[dict[str, str]],
    queue: list[Sample],
    drain_seconds: float,
) -> str:
    ok = all(check.ok for check in checks)
    lines = [
        "# Soak test report",
        "",
        f"**{'PASSED' if ok else 'FAILED'}** · `{command}`",
        "",
        "| Setting | Value |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in settings.items()),
        "",
        "## Checks",
        "",
        "| Check | Result | Looked at |",
        "|---|---|---|",
        *(
            f"| {c.name} | {'pass' if c.ok else f'FAIL ({len(c.violations)})'} | {c.checked:,} |"
            for c in checks
        ),
        "",
    ]
    for check in checks:
        if check.violations:
            lines += [f"### {check.name}", "", *(f"- {v}" for v in check.violations), ""]
    lines += [
        "## Load",
        "",
        f"- {stats['requests']:,} requests, {stats['rps']:.1f} per second on average; "
        f"{stats['failures']:,} errors ({stats['error_ratio']:.2%}, budget "
        f"{budgets['error_ratio']:.0%})",
        f"- response time p50 {stats['p50_ms']:.0f} ms, p95 {stats['p95_ms']:.0f} ms, p99 "
        f"{stats['p99_ms']:.0f} ms, max {stats['max_ms']:.0f} ms; the baseline page's p95 "
        f"{stats['baseline_p95_ms']:.0f} ms (budget: p95 at most {budgets['p95_ratio']:g}× the "
        f"baseline's or {budgets['p95_floor_ms']:.0f} ms, and {budgets['p95_ms']:.0f} ms)",
        f"- idempotent replays that answered another generation: {stats['replay_mismatches']}",
        "",
        "| Endpoint | Requests | Errors | p50 ms | p95 ms |",
        "|---|---|---|---|---|",
        *(
            f"| {r['Type']} {r['Name']} | {int(r['Request Count']):,} | {r['Failure Count']} "
            f"| {r['50%']} | {r['95%']} |"
            for r in sorted(stats["endpoints"], key=lambda r: -int(r["Request Count"]))
        ),
        "",
    ]
    if failures:
        lines += ["Errors seen:", ""]
        lines += [
            f"- {f['Method']} {f['Name']}: {f['Error'][:160]} × {f['Occurrences']}"
            for f in sorted(failures, key=lambda f: -int(f["Occurrences"]))[:15]
        ]
        lines.append("")
    peak = max(queue, key=lambda s: s.queued + s.running, default=None)
    lines += [
        "## Generations",
        "",
        "By outcome: " + ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items())),
        "",
        "Failures by reason: "
        + (
            ", ".join(f"{k} {v:,}" for k, v in sorted(errors.items(), key=lambda i: -i[1]))
            or "none"
        ),
        "",
        f"Drained {drain_seconds:.0f} s after the load stopped"
        + (
            f"; at the busiest moment {peak.queued} were queued and {peak.running} running, "
            f"with {peak.ready_tasks} tasks ready."
            if peak
            else "."
        ),
        "",
        "## Faults",
        "",
        "Drawn by the fake Segmind: "
        + (", ".join(f"{k} {v}" for k, v in sorted(faults.items())) or "none")
        + f" ({sum(faults.values()):,} in all).",
        "",
        f"Workers killed with SIGKILL and restarted: {len(kills)} "
        + (f"({', '.join(f'{name} at {at:.0f} s' for at, name in kills)})." if kills else "."),
        "",
        "Stripe: " + ", ".join(f"{k} {v}" for k, v in sorted(stripe.items())) + ".",
        "",
        "## Chart",
        "",
        "![Throughput, response time and queue depth over the run](soak.png)",
        "",
        "Top: requests and errors per second. Middle: p50 and p95 response time over the",
        "last 10 seconds. Bottom: django-q2 tasks ready for a worker, generations waiting",
        "their turn and generations at the upstream. Dashed lines: a worker cluster killed.",
        "",
    ]
    return "\n".join(lines)
