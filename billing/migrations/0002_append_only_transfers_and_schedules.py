from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import migrations

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION billing_transfer_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'billing_transfer is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER billing_transfer_append_only
    BEFORE UPDATE OR DELETE ON billing_transfer
    FOR EACH ROW EXECUTE FUNCTION billing_transfer_append_only();
"""

DROP_APPEND_ONLY = """
DROP TRIGGER IF EXISTS billing_transfer_append_only ON billing_transfer;
DROP FUNCTION IF EXISTS billing_transfer_append_only();
"""

SCHEDULES = [
    {
        "name": "ledger: audit",
        "func": "billing.tasks.audit_ledger",
        "schedule_type": "D",
        "first_run": lambda now: (now + timedelta(days=1)).replace(hour=3, minute=0, second=0),
    },
    {
        "name": "ledger: expire overdue holds",
        "func": "billing.tasks.expire_overdue_holds",
        "schedule_type": "I",
        "minutes": 10,
        "first_run": lambda now: now + timedelta(minutes=10),
    },
]


def add_trigger(apps, schema_editor):
    # Transfers are immutable. On PostgreSQL the database itself refuses UPDATE
    # and DELETE of a transfer row, whatever code (or person) tries it.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(APPEND_ONLY, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_APPEND_ONLY, params=None)


def add_schedules(apps, schema_editor):
    schedule = apps.get_model("django_q", "Schedule")
    now = datetime.now(UTC)
    for spec in SCHEDULES:
        schedule.objects.update_or_create(
            name=spec["name"],
            defaults={
                "func": spec["func"],
                "schedule_type": spec["schedule_type"],
                "minutes": spec.get("minutes"),
                "repeats": -1,
                "next_run": spec["first_run"](now),
            },
        )


def drop_schedules(apps, schema_editor):
    schedule = apps.get_model("django_q", "Schedule")
    schedule.objects.filter(name__in=[s["name"] for s in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.RunPython(add_trigger, drop_trigger),
        migrations.RunPython(add_schedules, drop_schedules),
    ]
