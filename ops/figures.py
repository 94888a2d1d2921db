"""The operator's figures, read from the database on every call: the task queue, the
generations, the upstream's health, our upstream spend against the credits captured, the
ledger audit and Stripe events that fail.

The page (`/ops/`) and `/metrics` both show `collect()`. Everything is a fixed number of
aggregate queries over indexed columns, whatever the amount of data, and nothing is kept
in a process, so every web process answers the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from django.conf import settings
from django.db.models import Count, Min, Q, Sum
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ, Task

from billing.models import AuditRun, StripeEvent, Transfer
from billing.models import Phase as LedgerPhase
from generations.models import (
    RUNNING_PHASES,
    TERMINAL_PHASES,
    Generation,
    Phase,
    UpstreamCallCount,
    UpstreamGate,
    past_deadline,
)

Outcome = UpstreamCallCount.Outcome
Operation = UpstreamCallCount.Operation
UNFINISHED_PHASES = (Phase.QUEUED, *RUNNING_PHASES)
# What a credit is worth when no pack says otherwise (DESIGN: about one US cent).
NOMINAL_CREDIT_USD = Decimal("0.01")
MICRODOLLAR = Decimal("0.000001")  # the precision of Generation.upstream_cost_usd


@dataclass(frozen=True)
class Window:
    key: str
    label: str
    since: datetime


def money_windows(now: datetime) -> list[Window]:
    midnight = now.astimezone(timezone.get_default_timezone()).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return [
        Window("today", "Today", midnight),
        Window("24h", "Last 24 hours", now - timedelta(hours=24)),
        Window("30d", "Last 30 days", now - timedelta(days=30)),
    ]


def call_windows(now: datetime) -> list[Window]:
    return [
        Window("1h", "Last hour", now - timedelta(hours=1)),
        Window("24h", "Last 24 hours", now - timedelta(hours=24)),
    ]


# --- The figures ------------------------------------------------------------------------


@dataclass
class QueueFigures:
    ready: int
    delayed: int
    oldest_ready_since: datetime | None
    oldest_ready_seconds: float
    failed_tasks: dict[str, int]  # by window key
    windows: list[Window]

    @property
    def failed_rows(self) -> list[tuple[Window, int]]:
        return [(w, self.failed_tasks[w.key]) for w in self.windows]


@dataclass
class GenerationFigures:
    unfinished: dict[str, int]  # by phase
    past_deadline: int
    finished: dict[str, dict[str, int]]  # by window key, then phase
    windows: list[Window]

    @property
    def unfinished_total(self) -> int:
        return sum(self.unfinished.values())

    @property
    def unfinished_rows(self) -> list[tuple[str, str, int]]:
        return [(p.value, p.label, self.unfinished[p.value]) for p in UNFINISHED_PHASES]

    @property
    def finished_rows(self) -> list[tuple[Window, dict[str, int]]]:
        return [(w, self.finished[w.key]) for w in self.windows]


@dataclass
class CallFigures:
    """Calls to the upstream in one window, by operation and outcome."""

    window: Window
    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def errors(self) -> int:
        return sum(n for (_, outcome), n in self.counts.items() if outcome != Outcome.OK)

    @property
    def error_ratio(self) -> float | None:
        return self.errors / self.total if self.total else None

    def by_outcome(self) -> list[tuple[str, str, int]]:
        """(outcome, label, calls) for every outcome that happened, successes first."""
        totals: dict[str, int] = {}
        for (_, outcome), n in self.counts.items():
            totals[outcome] = totals.get(outcome, 0) + n
        return [(o.value, o.label, totals[o.value]) for o in Outcome if o.value in totals]

    def by_operation(self) -> list[tuple[str, str, int, int]]:
        """(operation, label, calls, errors) for every operation that was called."""
        rows = []
        for op in Operation:
            calls = sum(n for (o, _), n in self.counts.items() if o == op.value)
            errors = sum(
                n for (o, out), n in self.counts.items() if o == op.value and out != Outcome.OK
            )
            if calls:
                rows.append((op.value, op.label, calls, errors))
        return rows


@dataclass
class BreakerFigures:
    state: str
    label: str
    reason: str
    opened_at: datetime | None
    probe_at: datetime | None
    rate_blocked_until: datetime | None


@dataclass
class MoneyFigures:
    """Upstream spend against credits captured in one window."""

    window: Window
    spend_usd: Decimal
    unpriced: int  # delivered videos whose upstream cost is unknown (spend is understated)
    captured_credits: int
    captures: int
    credit_usd: Decimal

    @property
    def captured_usd(self) -> Decimal:
        return (self.captured_credits * self.credit_usd).quantize(Decimal("0.0001"))

    @property
    def margin_usd(self) -> Decimal:
        return self.captured_usd - self.spend_usd

    @property
    def margin_ratio(self) -> float | None:
        return float(self.margin_usd / self.captured_usd) if self.captured_usd else None


@dataclass
class AuditFigures:
    ran_at: datetime
    ok: bool
    violations: list[str]


@dataclass
class StripeFigures:
    retrying: int  # failed, due to be tried again
    given_up: int  # failed every try: the operator decides


@dataclass
class Figures:
    at: datetime
    queue: QueueFigures
    generations: GenerationFigures
    calls: list[CallFigures]
    breaker: BreakerFigures
    money: list[MoneyFigures]
    audit: AuditFigures | None
    stripe: StripeFigures

    @property
    def last_hour(self) -> CallFigures:
        return self.calls[0]


def collect(now: datetime | None = None) -> Figures:
    now = now or timezone.now()
    return Figures(
        at=now,
        queue=queue_figures(now),
        generations=generation_figures(now),
        calls=call_figures(now),
        breaker=breaker_figures(now),
        money=money_figures(now),
        audit=audit_figures(),
        stripe=stripe_figures(),
    )


# --- Queries ----------------------------------------------------------------------------


def queue_figures(now: datetime) -> QueueFigures:
    """The ORM broker's table: a row is ready once its `lock` time has passed (a delayed
    step, or a task a worker holds, has it in the future)."""
    ready = Q(lock__lte=now)
    rows = OrmQ.objects.filter(key=Conf.CLUSTER_NAME).aggregate(
        ready=Count("pk", filter=ready),
        delayed=Count("pk", filter=~ready),
        oldest=Min("lock", filter=ready),
    )
    windows = money_windows(now)
    failed = Task.objects.filter(success=False, stopped__gte=windows[-1].since).aggregate(
        **{w.key: Count("pk", filter=Q(stopped__gte=w.since)) for w in windows}
    )
    oldest: datetime | None = rows["oldest"]
    return QueueFigures(
        ready=rows["ready"],
        delayed=rows["delayed"],
        oldest_ready_since=oldest,
        oldest_ready_seconds=max((now - oldest).total_seconds(), 0.0) if oldest else 0.0,
        failed_tasks={w.key: failed[w.key] for w in windows},
        windows=windows,
    )


def generation_figures(now: datetime) -> GenerationFigures:
    unfinished = Generation.objects.filter(phase__in=UNFINISHED_PHASES).aggregate(
        **{p.value: Count("pk", filter=Q(phase=p)) for p in UNFINISHED_PHASES},
        past_deadline=Count("pk", filter=past_deadline(now)),
    )
    overdue = unfinished.pop("past_deadline")
    windows = money_windows(now)
    finished = Generation.objects.filter(finished_at__gte=windows[-1].since).aggregate(
        **{
            f"{w.key}:{p.value}": Count("pk", filter=Q(finished_at__gte=w.since, phase=p))
            for w in windows
            for p in TERMINAL_PHASES
        }
    )
    return GenerationFigures(
        unfinished=unfinished,
        past_deadline=overdue,
        finished={
            w.key: {p.value: finished[f"{w.key}:{p.value}"] for p in TERMINAL_PHASES}
            for w in windows
        },
        windows=windows,
    )


def call_figures(now: datetime) -> list[CallFigures]:
    windows = call_windows(now)
    rows = (
        UpstreamCallCount.objects.filter(minute__gte=windows[-1].since)
        .values_list("operation", "outcome")
        .annotate(**{w.key: Sum("calls", filter=Q(minute__gte=w.since)) for w in windows})
    )
    figures = [CallFigures(w) for w in windows]
    for operation, outcome, *sums in rows:
        for figure, calls in zip(figures, sums, strict=True):
            if calls:
                figure.counts[(operation, outcome)] = calls
    return figures


def breaker_figures(now: datetime) -> BreakerFigures:
    gate = UpstreamGate.objects.filter(pk=1).first() or UpstreamGate()
    return BreakerFigures(
        state=gate.breaker,
        label=gate.get_breaker_display(),
        reason=gate.breaker_reason,
        opened_at=gate.breaker_opened_at if gate.breaker != UpstreamGate.Breaker.CLOSED else None,
        probe_at=gate.breaker_probe_at,
        rate_blocked_until=gate.blocked_until
        if gate.blocked_until and gate.blocked_until > now
        else None,
    )


def credit_usd() -> Decimal:
    """What one credit brings at the cheapest US dollar pack: a captured credit is worth at
    least that (trial and granted credits bring nothing, and the ledger cannot tell them
    apart once spent), so the margin shown is the optimistic bound for paid use."""
    prices = [
        Fraction(int(p["price_cents"]), int(p["credits"]) * 100)
        for p in settings.CREDIT_PACKS
        if str(p["currency"]).lower() == "usd"
    ]
    if not prices:
        return NOMINAL_CREDIT_USD
    cheapest = min(prices)
    return (Decimal(cheapest.numerator) / Decimal(cheapest.denominator)).quantize(MICRODOLLAR)


def money_figures(now: datetime) -> list[MoneyFigures]:
    """Spend: the upstream's own cost (headers or metrics) of the work finished in the
    window. Captured: the ledger's captures (charges of delivered videos) in the window."""
    windows = money_windows(now)
    since = windows[-1].since
    spend = Generation.objects.filter(finished_at__gte=since).aggregate(
        **{
            f"{w.key}:usd": Sum("upstream_cost_usd", filter=Q(finished_at__gte=w.since))
            for w in windows
        },
        **{
            f"{w.key}:unpriced": Count(
                "pk",
                filter=Q(
                    finished_at__gte=w.since, phase=Phase.SUCCEEDED, upstream_cost_usd__isnull=True
                ),
            )
            for w in windows
        },
    )
    captured = Transfer.objects.filter(phase=LedgerPhase.POST, created_at__gte=since).aggregate(
        **{f"{w.key}:credits": Sum("amount", filter=Q(created_at__gte=w.since)) for w in windows},
        **{f"{w.key}:n": Count("pk", filter=Q(created_at__gte=w.since)) for w in windows},
    )
    value = credit_usd()
    return [
        MoneyFigures(
            window=w,
            # Exact on PostgreSQL; SQLite sums decimals as floats.
            spend_usd=(spend[f"{w.key}:usd"] or Decimal(0)).quantize(MICRODOLLAR),
            unpriced=spend[f"{w.key}:unpriced"],
            captured_credits=captured[f"{w.key}:credits"] or 0,
            captures=captured[f"{w.key}:n"],
            credit_usd=value,
        )
        for w in windows
    ]


def audit_figures() -> AuditFigures | None:
    run = AuditRun.objects.order_by("-ran_at").first()
    if run is None:
        return None
    return AuditFigures(ran_at=run.ran_at, ok=run.ok, violations=list(run.violations or []))


def stripe_figures() -> StripeFigures:
    failing = StripeEvent.objects.filter(processed_at__isnull=True).exclude(error="")
    counts = failing.aggregate(
        retrying=Count("pk", filter=Q(next_attempt_at__isnull=False)),
        given_up=Count("pk", filter=Q(next_attempt_at__isnull=True)),
    )
    return StripeFigures(retrying=counts["retrying"], given_up=counts["given_up"])
