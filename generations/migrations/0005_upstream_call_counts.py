from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('generations', '0004_api_idempotency_and_webhooks'),
    ]

    operations = [
        migrations.CreateModel(
            name='UpstreamCallCount',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('minute', models.DateTimeField(help_text='The start of the minute (UTC) the calls ended in.')),
                ('operation', models.CharField(choices=[('submit', 'Submit (v2)'), ('render', 'Render (v1)'), ('status', 'Status (v2)'), ('result', 'Result (v2)'), ('download', 'Download the video'), ('account', 'Account probe')], max_length=10)),
                ('outcome', models.CharField(choices=[('ok', 'Succeeded'), ('job_failed', 'Job failed at the model'), ('4xx', 'Refused (4xx)'), ('429', 'Rate limited (429)'), ('5xx', 'Server error (5xx)'), ('timeout', 'Timed out'), ('network', 'No connection'), ('bad_answer', 'Unusable answer')], max_length=12)),
                ('calls', models.PositiveIntegerField(default=0)),
            ],
        ),
        migrations.AddIndex(
            model_name='generation',
            index=models.Index(condition=models.Q(('finished_at__isnull', False)), fields=['finished_at', 'phase', 'upstream_cost_usd'], name='gen_finished_totals'),
        ),
        migrations.AddConstraint(
            model_name='upstreamcallcount',
            constraint=models.UniqueConstraint(fields=('minute', 'operation', 'outcome'), name='generations_callcount_per_minute'),
        ),
    ]
