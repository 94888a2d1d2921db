from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import migrations

NAME = "stripe: retry events"


def add(apps, schema_editor):
    # Stripe answers 200 only once, so an event whose processing failed (Stripe
    # unreachable, a bug) is retried by us, with backoff, until it succeeds.
    schedule = apps.get_model("django_q", "Schedule")
    schedule.objects.update_or_create(
        name=NAME,
        defaults={
            "func": "billing.tasks.retry_stripe_events",
            "schedule_type": "I",
            "minutes": 1,
            "repeats": -1,
            "next_run": datetime.now(UTC) + timedelta(minutes=1),
        },
    )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0004_stripe_purchases_and_events"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(add, remove)]
