from django.db import migrations, models


def to_counts(apps, schema_editor):
    # The window was a list of call times; it is now calls per second. Start it afresh.
    apps.get_model("generations", "UpstreamGate").objects.update(recent_calls={})


class Migration(migrations.Migration):
    dependencies = [("generations", "0002_schedules")]

    operations = [
        migrations.AlterField(
            model_name="upstreamgate",
            name="recent_calls",
            field=models.JSONField(
                blank=True, default=dict, help_text="Calls per second (Unix time) in the last minute."
            ),
        ),
        migrations.RunPython(to_counts, migrations.RunPython.noop),
    ]
