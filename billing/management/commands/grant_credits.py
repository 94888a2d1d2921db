"""`python manage.py grant_credits WORKSPACE_SLUG AMOUNT --reason TEXT`

Prints {"workspace": slug, "available": credits}. Pass --request-id to make a
retried command grant only once; without it every run is a new grant.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Workspace
from billing import wallets
from billing.ledger import TransferConflict
from billing.models import Code


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise CommandError(f"AMOUNT must be a whole number of credits, not {value!r}.") from None
    if number <= 0:
        raise CommandError(f"AMOUNT must be positive, not {number}.")
    return number


class Command(BaseCommand):
    help = "Grant credits to a workspace (support, promotions, corrections)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("workspace_slug")
        parser.add_argument("amount")
        parser.add_argument("--reason", required=True, help="Shown in the workspace's ledger.")
        parser.add_argument(
            "--request-id",
            help="Idempotency key: running the command again with it grants nothing more.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        amount = _positive_int(options["amount"])
        reason = " ".join(options["reason"].split())
        if not reason:
            raise CommandError("--reason must say why the credits are granted.")
        workspace = Workspace.objects.live().filter(slug=options["workspace_slug"]).first()
        if workspace is None:
            raise CommandError(f"No workspace with the slug {options['workspace_slug']!r}.")
        request_id = options["request_id"] or str(uuid.uuid4())
        try:
            wallets.grant(
                workspace,
                amount,
                key=f"operator:{request_id}",
                code=Code.GRANT,
                reference=reason[:200],
            )
        except TransferConflict:
            raise CommandError(
                f"--request-id {request_id} was already used for a different grant."
            ) from None
        available = wallets.balance(workspace).available
        self.stdout.write(json.dumps({"workspace": workspace.slug, "available": available}))
