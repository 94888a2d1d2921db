"""The periodic work the workers run: `migrate` on a fresh database schedules it."""

from __future__ import annotations

import json
import tempfile

from django_q.models import Schedule

from tests.support.processes import manage, python

EXPECTED = {
    # func: (schedule type, minutes between runs, or None)
    "billing.tasks.audit_ledger": (Schedule.DAILY, None),
    "billing.tasks.expire_overdue_holds": (Schedule.MINUTES, 10),
    "billing.tasks.retry_stripe_events": (Schedule.MINUTES, 1),
    "generations.tasks.reap": (Schedule.MINUTES, 1),
}


def test_migrating_a_fresh_database_schedules_the_periodic_work_for_ever() -> None:
    with tempfile.TemporaryDirectory(prefix="mochi-schedules-") as folder:
        env = {"DATABASE_URL": f"sqlite:///{folder}/db.sqlite3", "LOG_LEVEL": "ERROR"}
        migrated = manage("migrate", "--noinput", env=env, timeout=120)
        assert migrated.returncode == 0, migrated.stderr
        listed = python(
            "import json\n"
            "from django_q.models import Schedule\n"
            "print(json.dumps({s.func: [s.schedule_type, s.minutes, s.repeats]"
            " for s in Schedule.objects.all()}))\n",
            env=env,
        )
    assert listed.returncode == 0, listed.stderr
    schedules = json.loads(listed.stdout)
    for func, (kind, minutes) in EXPECTED.items():
        assert func in schedules, sorted(schedules)
        found_kind, found_minutes, repeats = schedules[func]
        assert (found_kind, repeats) == (kind, -1), func
        if minutes is not None:
            assert found_minutes == minutes, func
