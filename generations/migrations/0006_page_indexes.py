from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations, models

# The prompt search (`prompt__icontains`, which PostgreSQL runs as
# UPPER(prompt) LIKE UPPER('%words%')) reads a trigram index of UPPER(prompt) instead of
# every row of the workspace. PostgreSQL only, so it is made here and kept out of the
# models' state (SQLite, for development, has no such index and rebuilds tables from that
# state). Not partial: ANALYZE keeps statistics of an index's expression only for a full
# index, and without them the planner takes the trigram index even for a word in every
# prompt, where reading the newest rows in order is far cheaper.
PROMPT_SEARCH_INDEX = "gen_prompt_trigram"


def create_prompt_search_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "{PROMPT_SEARCH_INDEX}" ON "generations_generation" '
            'USING gin (UPPER("prompt") gin_trgm_ops)'
        )


def drop_prompt_search_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f'DROP INDEX IF EXISTS "{PROMPT_SEARCH_INDEX}"')


class Migration(migrations.Migration):
    dependencies = [("generations", "0005_upstream_call_counts")]

    operations = [
        migrations.RemoveIndex(model_name="generation", name="gen_workspace_recent"),
        migrations.AddIndex(
            model_name="generation",
            index=models.Index(
                condition=models.Q(deleted_at__isnull=True),
                fields=["workspace", "-created_at", "-id"],
                name="gen_workspace_newest",
            ),
        ),
        migrations.AddIndex(
            model_name="generation",
            index=models.Index(
                condition=models.Q(deleted_at__isnull=True),
                fields=["workspace", "status", "-created_at", "-id"],
                name="gen_workspace_status_newest",
            ),
        ),
        migrations.AddIndex(
            model_name="generation",
            index=models.Index(
                condition=models.Q(deleted_at__isnull=True, is_favorite=True),
                fields=["workspace", "-created_at", "-id"],
                name="gen_workspace_favorites",
            ),
        ),
        migrations.RemoveIndex(model_name="generation", name="gen_recent_successes"),
        migrations.AddIndex(
            model_name="generation",
            index=models.Index(
                condition=models.Q(
                    phase="succeeded",
                    submit_started_at__isnull=False,
                    upstream_done_at__isnull=False,
                ),
                fields=["upstream_mode", "-finished_at"],
                name="gen_timed_successes",
            ),
        ),
        TrigramExtension(),
        migrations.RunPython(create_prompt_search_index, drop_prompt_search_index),
    ]
