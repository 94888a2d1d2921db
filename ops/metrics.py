"""The operator's figures for Prometheus: one collector that reads the database on each
scrape. No counter lives in a process, so any web process gives the same answer and
several of them behind a load balancer never disagree."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from generations.models import UpstreamGate
from ops import figures


def _timestamp(when: datetime | None) -> float:
    return when.timestamp() if when else 0.0


class OperatorCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        now = figures.collect()
        yield from _queue(now)
        yield from _generations(now)
        yield from _upstream(now)
        yield from _money(now)
        yield from _audit(now)
        stripe = GaugeMetricFamily(
            "mochi_stripe_events_failing",
            "Stripe events whose processing failed: retrying (due again) or given_up "
            "(every retry failed; the operator decides).",
            labels=["state"],
        )
        stripe.add_metric(["retrying"], now.stripe.retrying)
        stripe.add_metric(["given_up"], now.stripe.given_up)
        yield stripe


def _queue(now: figures.Figures) -> Iterator[Metric]:
    tasks = GaugeMetricFamily(
        "mochi_queue_tasks",
        "Rows in the task queue: ready (waiting for a worker) or delayed (due later, or "
        "held by a worker).",
        labels=["state"],
    )
    tasks.add_metric(["ready"], now.queue.ready)
    tasks.add_metric(["delayed"], now.queue.delayed)
    yield tasks
    yield GaugeMetricFamily(
        "mochi_queue_oldest_ready_age_seconds",
        "How long the oldest ready task has waited for a worker (0 when none waits).",
        value=now.queue.oldest_ready_seconds,
    )
    failed = GaugeMetricFamily(
        "mochi_queue_failed_tasks", "Tasks that failed (raised or timed out).", labels=["window"]
    )
    for window, count in now.queue.failed_tasks.items():
        failed.add_metric([window], count)
    yield failed


def _generations(now: figures.Figures) -> Iterator[Metric]:
    unfinished = GaugeMetricFamily(
        "mochi_generations_unfinished", "Unfinished generations by phase.", labels=["phase"]
    )
    for phase, count in now.generations.unfinished.items():
        unfinished.add_metric([phase], count)
    yield unfinished
    yield GaugeMetricFamily(
        "mochi_generations_past_deadline",
        "Unfinished generations past their deadline (the reaper fails them every minute: "
        "above 0 for long means it is not running).",
        value=now.generations.past_deadline,
    )
    finished = GaugeMetricFamily(
        "mochi_generations_finished",
        "Generations finished in the window, by phase.",
        labels=["window", "phase"],
    )
    for window, phases in now.generations.finished.items():
        for phase, count in phases.items():
            finished.add_metric([window, phase], count)
    yield finished


def _upstream(now: figures.Figures) -> Iterator[Metric]:
    calls = GaugeMetricFamily(
        "mochi_upstream_calls",
        "Calls to the upstream in the window, by operation and outcome.",
        labels=["window", "operation", "outcome"],
    )
    ratio = GaugeMetricFamily(
        "mochi_upstream_error_ratio",
        "Share of upstream calls in the window that did not succeed (0 when none was made).",
        labels=["window"],
    )
    for window in now.calls:
        for (operation, outcome), count in sorted(window.counts.items()):
            calls.add_metric([window.window.key, operation, outcome], count)
        ratio.add_metric([window.window.key], window.error_ratio or 0.0)
    yield calls
    yield ratio
    breaker = GaugeMetricFamily(
        "mochi_upstream_breaker",
        "The circuit breaker in front of the upstream: 1 for its current state.",
        labels=["state"],
    )
    for state in UpstreamGate.Breaker:
        breaker.add_metric([state.value], 1.0 if now.breaker.state == state.value else 0.0)
    yield breaker
    yield GaugeMetricFamily(
        "mochi_upstream_breaker_opened_timestamp_seconds",
        "When the breaker opened (Unix time; 0 while it is closed).",
        value=_timestamp(now.breaker.opened_at),
    )


def _money(now: figures.Figures) -> Iterator[Metric]:
    spend = GaugeMetricFamily(
        "mochi_upstream_spend_usd",
        "What the upstream charged (its cost headers or metrics) for the work finished in "
        "the window.",
        labels=["window"],
    )
    unpriced = GaugeMetricFamily(
        "mochi_upstream_unpriced_generations",
        "Delivered videos of the window whose upstream cost is unknown (spend understated).",
        labels=["window"],
    )
    captured = GaugeMetricFamily(
        "mochi_credits_captured",
        "Credits charged to customers in the window (the ledger's captures).",
        labels=["window"],
    )
    captured_usd = GaugeMetricFamily(
        "mochi_credits_captured_usd",
        "The captured credits at the cheapest pack's price per credit.",
        labels=["window"],
    )
    margin = GaugeMetricFamily(
        "mochi_margin_usd",
        "Captured credits in USD minus upstream spend, in the window.",
        labels=["window"],
    )
    for row in now.money:
        key = [row.window.key]
        spend.add_metric(key, float(row.spend_usd))
        unpriced.add_metric(key, row.unpriced)
        captured.add_metric(key, row.captured_credits)
        captured_usd.add_metric(key, float(row.captured_usd))
        margin.add_metric(key, float(row.margin_usd))
    yield from (spend, unpriced, captured, captured_usd, margin)


def _audit(now: figures.Figures) -> Iterator[Metric]:
    audit = now.audit
    yield GaugeMetricFamily(
        "mochi_ledger_audit_ok",
        "1 when the last ledger audit found no violation, 0 when it found some or never ran.",
        value=1.0 if audit and audit.ok else 0.0,
    )
    yield GaugeMetricFamily(
        "mochi_ledger_audit_violations",
        "Violations the last ledger audit found.",
        value=len(audit.violations) if audit else 0,
    )
    yield GaugeMetricFamily(
        "mochi_ledger_audit_last_run_timestamp_seconds",
        "When the ledger audit last ran (Unix time; 0 if never).",
        value=_timestamp(audit.ran_at) if audit else 0.0,
    )
