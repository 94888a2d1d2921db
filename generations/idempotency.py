"""`Idempotency-Key` for `POST /api/v1/generations`, with Stripe's semantics.

    same key, same body, done       → the stored response again (no second hold)
    same key, other body            → KeyReused (422)
    same key while the first runs   → InProgress (409)

The key is recorded and committed first, so a concurrent duplicate sees it in flight.
The generation, its hold and the stored response then commit in one transaction, so a
crash leaves either nothing (the key is taken over once its lock lapses) or all three.
A request that is refused (not enough credits, the upstream down) changed nothing and
stores nothing: the same key may be tried again. Keys are kept 24 hours per workspace.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Workspace
from generations.models import Generation, IdempotencyRecord

logger = logging.getLogger(__name__)

KEEP_FOR = timedelta(hours=24)
# A request still "in progress" after this long died; a retry with its key takes over.
LOCK_FOR = timedelta(seconds=30)


class KeyReused(Exception):
    pass


class InProgress(Exception):
    pass


@dataclass(frozen=True)
class Outcome:
    status: int
    body: dict[str, Any]
    replayed: bool


# Visible ASCII, inner spaces allowed (HTTP trims the ends of a header value anyway).
KEY_PATTERN = r"^[!-~]([ -~]*[!-~])?$"


def valid_key(key: str) -> bool:
    return len(key) <= 255 and re.fullmatch(KEY_PATTERN, key) is not None


def run(
    *,
    workspace: Workspace,
    key: str,
    fingerprint: str,
    create: Callable[[], Generation],
    respond: Callable[[Generation], dict[str, Any]],
) -> Outcome:
    """Create once per key: `create()` makes the generation (raising leaves no trace),
    `respond(generation)` is the body stored and answered."""
    record = _claim(workspace, key, fingerprint)
    if isinstance(record, Outcome):
        return record
    try:
        with transaction.atomic():
            # Locked: a retry that took over a lapsed lock cannot run beside this one.
            locked = IdempotencyRecord.objects.select_for_update().get(pk=record.pk)
            if locked.state == IdempotencyRecord.State.DONE or locked.locked_until != (
                record.locked_until
            ):
                raise InProgress
            generation = create()
            body = respond(generation)
            locked.state = IdempotencyRecord.State.DONE
            locked.response_status = 202
            locked.response_body = body
            locked.generation = generation
            locked.save(update_fields=["state", "response_status", "response_body", "generation"])
    except InProgress:
        raise
    except BaseException:
        # Nothing was created: free the key for a retry.
        IdempotencyRecord.objects.filter(
            pk=record.pk,
            state=IdempotencyRecord.State.IN_PROGRESS,
            locked_until=record.locked_until,
        ).delete()
        raise
    return Outcome(202, body, replayed=False)


def _claim(workspace: Workspace, key: str, fingerprint: str) -> IdempotencyRecord | Outcome:
    """The key's record, newly ours; or the stored outcome to replay."""
    for _ in range(3):
        now = timezone.now()
        # An expired key is as good as never used.
        IdempotencyRecord.objects.filter(
            workspace=workspace, key=key, created_at__lt=now - KEEP_FOR
        ).delete()
        try:
            with transaction.atomic():
                return IdempotencyRecord.objects.create(
                    workspace=workspace,
                    key=key,
                    fingerprint=fingerprint,
                    locked_until=now + LOCK_FOR,
                )
        except IntegrityError:
            existing = IdempotencyRecord.objects.filter(workspace=workspace, key=key).first()
        if existing is None:
            continue  # freed meanwhile (a failed first try): claim it again
        if existing.fingerprint != fingerprint:
            raise KeyReused
        if existing.state == IdempotencyRecord.State.DONE:
            assert existing.response_status is not None
            assert existing.response_body is not None
            return Outcome(existing.response_status, existing.response_body, replayed=True)
        if existing.locked_until > now:
            raise InProgress
        # Its request died with the lock held: take the key over (one taker wins).
        taken = IdempotencyRecord.objects.filter(
            pk=existing.pk,
            state=IdempotencyRecord.State.IN_PROGRESS,
            locked_until=existing.locked_until,
        ).update(locked_until=now + LOCK_FOR)
        if not taken:
            raise InProgress
        existing.refresh_from_db()
        logger.warning("Idempotency key %r of workspace %s taken over", key, workspace.pk)
        return existing
    raise InProgress


def forget_expired() -> int:
    """Hourly: delete keys older than a day."""
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - KEEP_FOR).delete()
    return deleted
