"""`python manage.py ledger_audit`: prove the ledger's invariants.

Prints {"ok": true, ...}; on any violation prints {"ok": false, "violations": [...]}
and exits with status 1.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand

from billing.audit import run_audit


class Command(BaseCommand):
    help = "Check the credit ledger: double entry, cached counters, balances, holds."

    def handle(self, *args: Any, **options: Any) -> None:
        report = run_audit()
        self.stdout.write(json.dumps(report.as_json()))
        if not report.ok:
            sys.exit(1)
