"""The periodic work the workers run, installed by the migrations."""

from __future__ import annotations

import pytest
from django_q.models import Schedule

EXPECTED = {
    # func: (schedule type, minutes)
    "billing.tasks.audit_ledger": (Schedule.DAILY, None),
    "billing.tasks.expire_overdue_holds": (Schedule.MINUTES, 10),
    "billing.tasks.retry_stripe_events": (Schedule.MINUTES, 1),
    "generations.tasks.reap": (Schedule.MINUTES, 1),
}


# The schedules are rows written by data migrations: restore them if an earlier
# transactional test flushed the tables.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_periodic_work_is_scheduled_for_ever() -> None:
    schedules = {s.func: s for s in Schedule.objects.filter(func__in=EXPECTED)}
    assert set(schedules) == set(EXPECTED)
    for func, (kind, minutes) in EXPECTED.items():
        schedule = schedules[func]
        assert (schedule.schedule_type, schedule.repeats) == (kind, -1), func
        if minutes is not None:
            assert schedule.minutes == minutes, func
