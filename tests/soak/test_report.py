"""The soak test's report: Locust's CSV files read back, the chart and the Markdown."""

from __future__ import annotations

import csv
from pathlib import Path

from soak import BASELINE, REPLAY_FAILED, report
from soak.checks import Check

PERCENTILES = ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]
STATS = ["Type", "Name", "Request Count", "Failure Count", "Median Response Time",
         "Average Response Time", "Min Response Time", "Max Response Time",
         "Average Content Size", "Requests/s", "Failures/s", *PERCENTILES]  # fmt: skip
HISTORY = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", *PERCENTILES,
           "Total Request Count", "Total Failure Count"]  # fmt: skip


def _write(path: Path, columns: list[str], rows: list[dict[str, object]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, restval="0")
        writer.writeheader()
        writer.writerows(rows)


def _locust_files(prefix: Path) -> None:
    _write(
        Path(f"{prefix}_stats.csv"),
        STATS,
        [
            {"Type": "GET", "Name": "/w/[slug]/", "Request Count": 90, "Failure Count": 1,
             "50%": 20, "95%": 90, "Requests/s": 1.5},
            {"Type": "GET", "Name": BASELINE, "Request Count": 10, "95%": 40},
            {"Type": "CHECK", "Name": REPLAY_FAILED, "Request Count": 2, "Failure Count": 2},
            {"Type": "", "Name": "Aggregated", "Request Count": 112, "Failure Count": 3,
             "Requests/s": 1.7, "50%": 20, "95%": 110, "99%": 300, "Max Response Time": 900},
            {"Type": "GET", "Name": "/never", "Request Count": 0, "50%": "N/A", "95%": "N/A"},
        ],
    )  # fmt: skip
    _write(
        Path(f"{prefix}_stats_history.csv"),
        HISTORY,
        [
            {"Timestamp": 1000 + n, "User Count": 10, "Name": name, "Requests/s": n,
             "Failures/s": 0, "50%": 10 + n, "95%": 50 + n}
            for n in range(30)
            for name in ("/w/[slug]/", "Aggregated")
        ],
    )  # fmt: skip


def test_it_reads_the_totals_without_the_checks_rows(tmp_path: Path) -> None:
    _locust_files(tmp_path / "locust")

    stats = report.load_stats(tmp_path / "locust", REPLAY_FAILED)

    assert stats["requests"] == 110  # the two replay checks are not requests
    assert stats["failures"] == 1
    assert stats["error_ratio"] == 1 / 110
    assert stats["baseline_p95_ms"] == 40
    assert (stats["p50_ms"], stats["p95_ms"], stats["p99_ms"]) == (20, 110, 300)
    assert stats["replay_mismatches"] == 2
    assert [r["Name"] for r in stats["endpoints"]] == ["/w/[slug]/", BASELINE, "/never"]
    history = report.load_history(tmp_path / "locust")
    assert len(history) == 30  # the aggregated rows only
    assert history[-1]["p95"] == 79


def test_it_draws_the_chart_and_writes_the_verdict(tmp_path: Path) -> None:
    _locust_files(tmp_path / "locust")
    stats = report.load_stats(tmp_path / "locust", REPLAY_FAILED)
    queue = [report.Sample(at=1000 + 5 * n, ready_tasks=n, queued=2, running=3) for n in range(6)]

    report.chart(tmp_path / "soak.png", report.load_history(tmp_path / "locust"), queue, [1010])

    assert (tmp_path / "soak.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = report.markdown(
        command="make soak",
        settings={"Minutes of load": "10"},
        checks=[Check("ledger_audit is clean", [], 10), Check("videos", ["a is missing"], 3)],
        stats=stats,
        budgets={"error_ratio": 0.01, "p95_ms": 10_000, "p95_ratio": 2, "p95_floor_ms": 1000},
        outcomes={"succeeded": 5, "failed": 1},
        errors={"generation_failed": 1},
        faults={"submit:429": 2},
        kills=[(10.0, "worker-1")],
        stripe={"events delivered": 4},
        failures=[],
        queue=queue,
        drain_seconds=12,
    )
    assert text.startswith("# Soak test report\n\n**FAILED**")
    assert "| ledger_audit is clean | pass | 10 |" in text
    assert "| videos | FAIL (1) | 3 |" in text
    assert "- a is missing" in text
    assert "worker-1 at 10 s" in text
    assert "![Throughput, response time and queue depth over the run](soak.png)" in text
