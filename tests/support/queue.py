"""Act as a django-q2 worker inside the test: run queued tasks when they are due.

The tasks go through the real ORM broker (the rows, their signed payloads, the delays
written as future `lock` times); only the worker process is replaced, so a test can
run the pipeline step by step, inject faults between steps, and stay on SQLite.
"""

from __future__ import annotations

import pydoc
import time
from collections.abc import Callable
from datetime import timedelta

from django.test import TestCase
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signing import SignedPackage


def run_tasks(
    *, until: Callable[[], bool] | None = None, timeout: float = 30.0, max_tasks: int = 5000
) -> int:
    """Run due tasks, oldest first, until `until()` holds or nothing is left to run.
    Each task's on-commit callbacks run as it finishes, as a real commit would."""
    deadline = time.monotonic() + timeout
    ran = 0
    while ran < max_tasks:
        if until is not None and until():
            return ran
        now = timezone.now()
        row = OrmQ.objects.filter(lock__lte=now).order_by("lock", "pk").first()
        if row is None:
            upcoming = OrmQ.objects.order_by("lock").first()
            if upcoming is None or time.monotonic() > deadline:
                return ran
            wait = (upcoming.lock - now).total_seconds()
            time.sleep(min(max(wait, 0.01), 0.2))
            continue
        claimed = OrmQ.objects.filter(pk=row.pk, lock=row.lock).update(
            lock=now + timedelta(seconds=Conf.RETRY)
        )
        if not claimed:
            continue
        task = SignedPackage.loads(row.payload)
        function = pydoc.locate(task["func"]) if isinstance(task["func"], str) else task["func"]
        assert callable(function), task["func"]
        with TestCase.captureOnCommitCallbacks(execute=True):
            function(*task["args"], **task["kwargs"])
        OrmQ.objects.filter(pk=row.pk).delete()
        ran += 1
    raise AssertionError(f"more than {max_tasks} tasks ran: a loop?")


def pending_tasks() -> list[str]:
    return [SignedPackage.loads(row.payload)["func"] for row in OrmQ.objects.order_by("lock")]
