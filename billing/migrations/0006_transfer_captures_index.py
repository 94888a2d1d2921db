from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0005_stripe_event_retry_schedule'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='transfer',
            index=models.Index(condition=models.Q(('phase', 'post')), fields=['created_at', 'amount'], name='billing_tr_captures_recent'),
        ),
    ]
