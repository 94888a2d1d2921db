"""The pipeline's part of the ledger audit: no finished generation still holds credits."""

from __future__ import annotations

from billing.models import Transfer
from generations.models import TERMINAL_PHASES, Generation


def ledger_violations() -> list[str]:
    resolved = Transfer.objects.filter(pending__isnull=False).values("pending_id")
    stuck = (
        Generation.objects.filter(phase__in=TERMINAL_PHASES)
        .exclude(hold_id__in=resolved)
        .values_list("pk", "phase")[:100]
    )
    return [f"generation {pk} is {phase} but its hold is still pending" for pk, phase in stuck]
