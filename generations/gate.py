"""The gate in front of the upstream, shared by every worker through one database row.

- Rate: every call to Segmind first takes a slot in a sliding one-minute window of
  `SEGMIND_RPM` calls; a 429 closes the gate until the reset time it names.
- Circuit breaker: answers that mean our account or the model is broken (401, 403,
  406 for credits, 410) open it. While it is open new submits fail fast with no hold
  and queued work waits; after a cool-down a probe checks the account, then one
  generation goes through, and its success closes the breaker again.
- Outcomes: every call's outcome is counted per minute (`UpstreamCallCount`), for the
  error rates on the operator's page and in /metrics.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from generations.models import UpstreamCallCount, UpstreamGate
from generations.upstream import UpstreamError

logger = logging.getLogger(__name__)
alerts = logging.getLogger("mochi.alerts")

WINDOW_SECONDS = 60.0


def _locked() -> UpstreamGate:
    UpstreamGate.objects.get_or_create(id=1)
    return UpstreamGate.objects.select_for_update().get(id=1)


def state() -> UpstreamGate:
    gate, _ = UpstreamGate.objects.get_or_create(id=1)
    return gate


# --- Rate ------------------------------------------------------------------------


def take_slot() -> float:
    """Take one request slot. Returns 0.0 when taken, otherwise the seconds to wait
    before trying again (nothing was taken).

    The window counts calls per second over the last 60 seconds (at most 60 numbers
    in the row, whatever the rate), so no 60-second span ever holds more than
    SEGMIND_RPM calls."""
    with transaction.atomic():
        gate = _locked()
        now = timezone.now()
        if gate.blocked_until and gate.blocked_until > now:
            return (gate.blocked_until - now).total_seconds()
        clock = time.time()
        second = int(clock)
        recent = gate.recent_calls if isinstance(gate.recent_calls, dict) else {}
        counts = {int(at): n for at, n in recent.items() if int(at) > second - WINDOW_SECONDS}
        if sum(counts.values()) >= settings.SEGMIND_RPM:
            oldest = min(counts)
            return max(oldest + WINDOW_SECONDS - clock, 0.05)
        counts[second] = counts.get(second, 0) + 1
        gate.recent_calls = {str(at): n for at, n in counts.items()}
        gate.save(update_fields=["recent_calls"])
        return 0.0


def wait_for_slot(max_wait: float) -> float:
    """Take a slot, sleeping up to `max_wait` seconds for one. Returns 0.0 when taken,
    else how much longer the caller should wait (it should come back later)."""
    deadline = time.monotonic() + max_wait
    while True:
        wait = take_slot()
        if wait <= 0:
            return 0.0
        left = deadline - time.monotonic()
        if wait > left:
            return wait
        time.sleep(wait)


def rate_limited_until(when: datetime) -> None:
    """The upstream answered 429: nobody calls it before `when`."""
    with transaction.atomic():
        gate = _locked()
        if gate.blocked_until is None or gate.blocked_until < when:
            gate.blocked_until = when
            gate.save(update_fields=["blocked_until"])


# --- Circuit breaker ---------------------------------------------------------------


def accepting_submits() -> bool:
    """False while the breaker is open and not yet due for a probe (no hold is taken)."""
    gate = state()
    return not (
        gate.breaker == UpstreamGate.Breaker.OPEN
        and gate.breaker_probe_at is not None
        and gate.breaker_probe_at > timezone.now()
    )


def may_start(generation_id: uuid.UUID) -> bool:
    """Whether queued work may go to the upstream now. While probing, only the probe may."""
    gate = state()
    if gate.breaker == UpstreamGate.Breaker.CLOSED:
        return True
    with transaction.atomic():
        gate = _locked()
        if gate.breaker == UpstreamGate.Breaker.CLOSED:
            return True
        if gate.breaker == UpstreamGate.Breaker.HALF_OPEN:
            return gate.probe_generation in (None, generation_id)
        if gate.breaker_probe_at and gate.breaker_probe_at <= timezone.now():
            gate.breaker = UpstreamGate.Breaker.HALF_OPEN
            gate.probe_generation = generation_id
            gate.save(update_fields=["breaker", "probe_generation"])
            logger.warning(
                "Upstream breaker half-open: generation %s probes",
                generation_id,
                extra={"generation_id": str(generation_id)},
            )
            return True
        return False


def record_success() -> None:
    if state().breaker == UpstreamGate.Breaker.CLOSED:
        return
    with transaction.atomic():
        gate = _locked()
        if gate.breaker != UpstreamGate.Breaker.CLOSED:
            opened = gate.breaker_opened_at
            gate.breaker = UpstreamGate.Breaker.CLOSED
            gate.breaker_reason = ""
            gate.breaker_probe_at = None
            gate.probe_generation = None
            gate.save()
            alerts.warning("Upstream breaker closed again (it opened at %s).", opened)


def record_failure(error: UpstreamError) -> None:
    """Open the breaker if `error` means our account or the model is broken."""
    if not error.opens_breaker:
        return
    now = timezone.now()
    with transaction.atomic():
        gate = _locked()
        newly_open = gate.breaker == UpstreamGate.Breaker.CLOSED
        gate.breaker = UpstreamGate.Breaker.OPEN
        gate.breaker_reason = f"HTTP {error.status}: {error.detail}"[:300]
        if newly_open:
            gate.breaker_opened_at = now
        gate.breaker_probe_at = now + timedelta(seconds=settings.UPSTREAM_BREAKER_COOLDOWN_SECONDS)
        gate.probe_generation = None
        gate.save()
    if newly_open:
        alerts.error(
            "Upstream breaker OPEN: new generations are refused and queued ones wait. "
            "Segmind answered HTTP %s: %s. Check the Segmind account (key, credits, "
            "spend limit) and the model's status.",
            error.status,
            error.detail,
        )


def probe_account() -> None:
    """While the breaker is open and due: ask the upstream (a free call) whether our
    account works again; if so, let one generation through as the probe."""
    from generations import upstream

    gate = state()
    if gate.breaker != UpstreamGate.Breaker.OPEN or (
        gate.breaker_probe_at and gate.breaker_probe_at > timezone.now()
    ):
        return
    if take_slot() > 0:
        return
    try:
        with counted(UpstreamCallCount.Operation.ACCOUNT):
            credits = upstream.account_credits()
    except UpstreamError as error:
        if error.opens_breaker:
            record_failure(error)
        return
    if credits is not None and credits <= 0:
        logger.warning("Upstream probe: the account has no credits left")
        with transaction.atomic():
            gate = _locked()
            gate.breaker_probe_at = timezone.now() + timedelta(
                seconds=settings.UPSTREAM_BREAKER_COOLDOWN_SECONDS
            )
            gate.save(update_fields=["breaker_probe_at"])


# --- Outcomes ------------------------------------------------------------------------

Outcome = UpstreamCallCount.Outcome
CALL_COUNTS_KEPT = timedelta(days=2)


def outcome_of(error: UpstreamError) -> Outcome:
    """The class of a failed call: what the model did, the HTTP status class, or why no
    (usable) answer came."""
    if error.code == "generation_failed":
        return Outcome.JOB_FAILED
    if error.status is None:
        if error.code == "upstream_timeout":
            return Outcome.TIMEOUT
        if error.code == "upstream_error":
            return Outcome.NETWORK
        return Outcome.BAD_ANSWER  # the body broke off, or the video was too large
    if error.status == 429:
        return Outcome.RATE_LIMITED
    if error.status >= 500:
        return Outcome.SERVER_ERROR
    if error.status >= 400:
        return Outcome.CLIENT_ERROR
    return Outcome.BAD_ANSWER  # 200 with a body we could not use


_UPSERT = (
    "INSERT INTO {table} (minute, operation, outcome, calls) VALUES (%s, %s, %s, 1) "
    "ON CONFLICT (minute, operation, outcome) DO UPDATE SET calls = {table}.calls + 1"
)


def count_call(operation: str, outcome: str) -> None:
    """Add one call to this minute's count. One statement, so concurrent workers never
    lose an increment (PostgreSQL locks the row for the upsert; SQLite has one writer at a
    time). Counting must never break the step that made the call: a failure is logged."""
    now = timezone.now()
    minute = now.replace(second=0, microsecond=0)
    table = connection.ops.quote_name(UpstreamCallCount._meta.db_table)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                _UPSERT.format(table=table),
                [connection.ops.adapt_datetimefield_value(minute), operation, outcome],
            )
    except Exception:
        logger.warning(
            "Could not count an upstream call (%s, %s)", operation, outcome, exc_info=True
        )


@contextmanager
def counted(operation: str) -> Iterator[None]:
    """Count the outcome of the upstream call made inside the block."""
    try:
        yield
    except UpstreamError as error:
        count_call(operation, outcome_of(error))
        raise
    count_call(operation, Outcome.OK)


def prune_call_counts() -> int:
    """Forget counts older than two days (the longest window shown is a day)."""
    cutoff = timezone.now() - CALL_COUNTS_KEPT
    deleted, _ = UpstreamCallCount.objects.filter(minute__lt=cutoff).delete()
    return deleted
