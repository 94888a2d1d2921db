"""Every log line about a generation carries its id as a structured field, including
lines from modules that know nothing about it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import Workspace
from generations import tasks, upstream
from generations.models import Generation, Phase
from generations.upstream import UpstreamError
from mochi_site.logs import ContextFilter, JsonFormatter
from tests.generations.helpers import submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def json_log() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """What the production console handler (LOG_FORMAT=json) writes, parsed line by line."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


def test_a_pipeline_step_logs_the_generation_id_on_every_line(
    studio: Workspace,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
    json_log: Callable[[], list[dict[str, Any]]],
) -> None:
    settings.SEGMIND_API_MODE = "v2"
    generation = submit(studio)

    def refused(body: dict[str, object]) -> upstream.Submitted:
        # A line from deep inside, by a module that is not told which generation it is.
        logging.getLogger("generations.upstream").warning("posting to the model")
        raise UpstreamError("invalid_request", "no", status=400, detail="bad prompt")

    monkeypatch.setattr(upstream, "submit", refused)
    tasks.submit(str(generation.pk))
    lines = json_log()

    deep = next(line for line in lines if line["message"] == "posting to the model")
    assert deep["generation_id"] == str(generation.pk)
    assert deep["step"] == "submit"
    assert deep["logger"] == "generations.upstream"
    assert deep["level"] == "WARNING"
    failed = next(line for line in lines if "failed: invalid_request" in line["message"])
    assert failed["generation_id"] == str(generation.pk)
    assert failed["workspace_id"] == str(studio.pk)
    assert failed["logger"] == "generations.services"
    assert failed["time"].endswith("Z")
    # No line written during the step goes without the id.
    assert lines
    assert all(line.get("generation_id") == str(generation.pk) for line in lines)


def test_the_reaper_names_each_generation_it_fails(
    studio: Workspace, json_log: Callable[[], list[dict[str, Any]]]
) -> None:
    first, second = submit(studio), submit(studio)
    Generation.objects.filter(pk__in=[first.pk, second.pk]).update(
        phase=Phase.QUEUED, created_at=timezone.now() - timedelta(hours=3)
    )
    tasks.reap()
    failed = [line for line in json_log() if "failed: queue_timeout" in line["message"]]
    assert {line["generation_id"] for line in failed} == {str(first.pk), str(second.pk)}
    assert all(line["generation_id"] in line["message"] for line in failed)
    assert all(line["step"] == "reap" for line in failed)
