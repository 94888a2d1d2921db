"""What must hold after the soak test has drained: each check returns its violations
(an empty list when it holds). They read the database, the object store and the fake
Stripe's record of what was paid; they run in the orchestrating process."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from django.db.models import Count, Sum
from django.utils import timezone

LIMIT = 20  # violations listed per check; the count is always complete


@dataclass
class Check:
    name: str
    violations: list[str]
    checked: int  # how many things it looked at

    @property
    def ok(self) -> bool:
        return not self.violations


def _listed(found: Iterable[str]) -> list[str]:
    found = list(found)
    if len(found) > LIMIT:
        return [*found[:LIMIT], f"… and {len(found) - LIMIT} more"]
    return found


def ledger_audit() -> Check:
    """`python manage.py ledger_audit`'s audit, recorded as the operator's page shows it."""
    from billing.audit import run_audit

    report = run_audit()
    return Check("ledger_audit is clean", _listed(report.violations), report.transfers)


def nothing_unfinished(now: datetime | None = None) -> Check:
    """Drained: no generation is still queued or running, above all none past its deadline."""
    from generations.models import TERMINAL_PHASES, Generation

    now = now or timezone.now()
    unfinished = Generation.objects.exclude(phase__in=TERMINAL_PHASES)
    late = {g.pk for g in unfinished.past_deadline(now)}
    found = [
        f"{g.pk} is {g.phase}" + (" past its deadline" if g.pk in late else " after the drain")
        for g in unfinished.order_by("created_at")
    ]
    return Check("no generation left unfinished", _listed(found), Generation.objects.count())


def videos_stored(valid: Callable[[Path], bool] | None = None) -> Check:
    """Every succeeded generation that was not deleted has its video in the bucket, and
    it is an MP4 with a duration."""
    from generations import media, storage
    from generations.models import Generation, Phase

    def playable(path: Path) -> bool:
        return media.looks_like_mp4(path) and media.duration_seconds(path) > 0

    valid = valid or playable
    found = []
    kept = Generation.objects.filter(phase=Phase.SUCCEEDED, deleted_at__isnull=True)
    with tempfile.TemporaryDirectory(prefix="soak-videos-") as folder:
        for generation in kept.iterator():
            path = Path(folder) / "video.mp4"
            if not generation.video_key:
                found.append(f"{generation.pk} succeeded without a video")
                continue
            try:
                storage.download(generation.video_key, path)
            except Exception as error:
                found.append(f"{generation.pk}: {generation.video_key} cannot be read: {error}")
                continue
            if not valid(path):
                found.append(f"{generation.pk}: {generation.video_key} is not a playable MP4")
            if generation.video_bytes != path.stat().st_size:
                found.append(
                    f"{generation.pk}: stored {path.stat().st_size} bytes, recorded "
                    f"{generation.video_bytes}"
                )
    return Check("every succeeded video is stored and plays", _listed(found), kept.count())


def charges_match_work() -> Check:
    """Each workspace was charged exactly the cost of its succeeded generations: one
    capture of the full cost per success, none for anything else, every hold resolved."""
    from billing.models import Code, Phase, Transfer
    from generations.models import TERMINAL_PHASES, Generation
    from generations.models import Phase as GenerationPhase

    by_reference: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    rows = Transfer.objects.filter(reference__startswith="generation:").values_list(
        "reference", "code", "amount"
    )
    for reference, code, amount in rows:
        by_reference[reference][code] += amount
        counts[reference][code] += 1

    found: list[str] = []
    earned: dict[int, int] = defaultdict(int)
    generations = Generation.objects.values_list("pk", "workspace_id", "phase", "cost")
    for pk, workspace_id, phase, cost in generations:
        ref = f"generation:{pk}"
        captured, n = by_reference[ref][Code.CAPTURE], counts[ref]
        resolutions = n[Code.CAPTURE] + n[Code.RELEASE] + n[Code.EXPIRE]
        if n[Code.HOLD] != 1 or (phase in TERMINAL_PHASES and resolutions != 1):
            found.append(f"{pk} ({phase}): {n[Code.HOLD]} holds, {resolutions} resolutions")
        if phase == GenerationPhase.SUCCEEDED:
            earned[workspace_id] += cost
            if captured != cost:
                found.append(f"{pk} succeeded at {cost} credits but {captured} were captured")
        elif captured:
            found.append(f"{pk} {phase} but {captured} credits were captured")

    per_wallet = dict(
        Transfer.objects.filter(code=Code.CAPTURE, phase=Phase.POST)
        .values_list("debit_account__workspace_id")
        .annotate(total=Sum("amount"))
        .values_list("debit_account__workspace_id", "total")
    )
    for workspace_id in per_wallet.keys() | earned.keys():
        wallet_total, cost = per_wallet.get(workspace_id, 0), earned.get(workspace_id, 0)
        if wallet_total != cost:
            found.append(
                f"workspace {workspace_id} was charged {wallet_total} credits; its succeeded "
                f"generations cost {cost}"
            )
    return Check("every charge is the cost of succeeded work", _listed(found), len(generations))


def payments_granted_once(stripe_state: Any) -> Check:
    """Every payment Stripe took became its pack's credits exactly once; nothing unpaid
    granted anything; refunds and disputes ended as Stripe last told them."""
    from billing.models import Code, Purchase, StripeEvent, Transfer

    granted = {
        row["reference"]: (row["n"], row["total"])
        for row in Transfer.objects.filter(code=Code.PURCHASE)
        .values("reference")
        .annotate(n=Count("id"), total=Sum("amount"))
    }
    charges = {c["payment_intent"]: c for c in stripe_state.charges.values()}
    sessions = list(stripe_state.sessions.values())
    purchases = Purchase.objects.in_bulk(
        [s["id"] for s in sessions], field_name="checkout_session_id"
    )
    found: list[str] = []
    for session in sessions:
        purchase = purchases.get(session["id"])
        if purchase is None:
            found.append(f"Stripe session {session['id']} has no purchase")
            continue
        times, credits = granted.get(f"purchase:{purchase.pk}", (0, 0))
        charge = charges.get(session.get("payment_intent"))
        if charge is None:
            if times:
                found.append(f"{purchase.pk} was never paid but granted {credits}")
            continue
        if times != 1 or credits != purchase.credits:
            found.append(
                f"{purchase.pk} paid once, granted {times} times "
                f"({credits} credits of {purchase.credits})"
            )
        if purchase.refunded_cents != charge["amount_refunded"]:
            found.append(
                f"{purchase.pk}: Stripe refunded {charge['amount_refunded']} cents, the "
                f"purchase records {purchase.refunded_cents}"
            )
    stuck = StripeEvent.objects.filter(processed_at__isnull=True)
    found += [f"Stripe event {e.event_id} ({e.type}) was never processed" for e in stuck]
    return Check("every Stripe payment granted exactly once", _listed(found), len(sessions))


def locust_budgets(
    stats: dict[str, Any],
    *,
    error_ratio: float,
    p95_ms: float,
    p95_ratio: float,
    p95_floor_ms: float,
    replay_name: str,
) -> Check:
    """The load's own results: no idempotent replay answered another generation; errors
    within their budget; the 95th percentile of all requests at most `p95_ratio` times that
    of the baseline page (which reads nothing, served by the same processes in the same
    run, so the ratio is the pages' own cost on a shared, noisy machine) and at most
    `p95_ms` in any case. A p95 under `p95_floor_ms` is within budget whatever the ratio:
    on an idle machine the baseline takes a few milliseconds, and the deliberately slow
    password hash of a sign-in would dominate a short run."""
    found = []
    if stats["replay_mismatches"]:
        found.append(
            f"{stats['replay_mismatches']} replays answered another generation ({replay_name})"
        )
    if stats["error_ratio"] > error_ratio:
        found.append(f"error ratio {stats['error_ratio']:.2%} is over its budget {error_ratio:.2%}")
    if stats["p95_ms"] > p95_ms:
        found.append(f"p95 latency {stats['p95_ms']:.0f} ms is over its budget {p95_ms:.0f} ms")
    baseline = stats["baseline_p95_ms"]
    if not baseline:
        found.append("the baseline page was never requested")
    elif stats["p95_ms"] > max(p95_ratio * baseline, p95_floor_ms):
        found.append(
            f"p95 latency {stats['p95_ms']:.0f} ms is {stats['p95_ms'] / baseline:.1f}× the "
            f"baseline page's {baseline:.0f} ms, over its budget {p95_ratio:g}×"
        )
    return Check("errors and latency within budget", found, stats["requests"])


def stripe_deliveries(counts: dict[str, int]) -> Check:
    found = [
        f"{what}: {n}"
        for what, n in counts.items()
        if n
        and (
            what in ("events never accepted", "driver errors")
            or what.startswith("forged deliveries answered")
        )
    ]
    return Check("webhooks accepted once signed, refused forged", found, sum(counts.values()))
