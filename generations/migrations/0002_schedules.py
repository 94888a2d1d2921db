from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import migrations

NAME = "generations: reap"


def add(apps, schema_editor):
    schedule = apps.get_model("django_q", "Schedule")
    schedule.objects.update_or_create(
        name=NAME,
        defaults={
            "func": "generations.tasks.reap",
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
        ("generations", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(add, remove)]
