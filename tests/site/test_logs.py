"""Log lines: JSON objects with context fields in production, readable lines in development."""

from __future__ import annotations

import json
import logging
import sys
import uuid

import pytest
from django.test import RequestFactory

from mochi_site.logs import ContextFilter, JsonFormatter, PlainFormatter, log_context
from tests.site.test_settings import PRODUCTION
from tests.support.processes import python

LOG_A_LINE = (
    "import logging\n"
    "logging.getLogger('mochi.test').warning('hello %s', 'there', "
    "extra={'generation_id': 'g-1'})\n"
)


def record(
    message: str = "hello", name: str = "generations.pipeline", **extra: object
) -> logging.LogRecord:
    made = logging.LogRecord(name, logging.WARNING, __file__, 1, message, (), None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_a_json_line_has_time_level_logger_message_and_the_context() -> None:
    line = record()
    with log_context(generation_id="g-1", step="poll"):
        ContextFilter().filter(line)
    body = json.loads(JsonFormatter().format(line))
    assert list(body)[:4] == ["time", "level", "logger", "message"]
    assert body["level"] == "WARNING"
    assert body["logger"] == "generations.pipeline"
    assert body["message"] == "hello"
    assert body["generation_id"] == "g-1"
    assert body["step"] == "poll"
    assert body["time"].endswith("Z")


def test_a_field_given_with_extra_wins_over_the_context() -> None:
    line = record(generation_id="explicit")
    with log_context(generation_id="ambient"):
        ContextFilter().filter(line)
    assert line.generation_id == "explicit"  # type: ignore[attr-defined]


def test_the_context_ends_with_its_block() -> None:
    with log_context(generation_id="g-1"), log_context(workspace_id=7):
        inner = record()
        ContextFilter().filter(inner)
    outer = record()
    ContextFilter().filter(outer)
    assert (inner.generation_id, inner.workspace_id) == ("g-1", "7")  # type: ignore[attr-defined]
    assert not hasattr(outer, "generation_id")


def test_an_exception_is_one_field_of_the_same_line() -> None:
    try:
        raise ValueError("broken")
    except ValueError:
        line = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    output = JsonFormatter().format(line)
    assert "\n" not in output
    assert "ValueError: broken" in json.loads(output)["exception"]


def test_a_request_is_written_as_method_and_path() -> None:
    request = RequestFactory().get("/w/acme/?page=2")
    body = json.loads(JsonFormatter().format(record(request=request, status_code=500)))
    assert body["request"] == "GET /w/acme/?page=2"
    assert body["status_code"] == 500


def test_django_q_lines_about_a_step_carry_its_generation() -> None:
    generation_id = str(uuid.uuid4())
    line = record(f"Processed 'generations.tasks.poll' (poll-{generation_id})", name="django-q")
    ContextFilter().filter(line)
    assert line.generation_id == generation_id  # type: ignore[attr-defined]
    other = record("Processed 'billing.tasks.audit_ledger' (audit)", name="django-q")
    ContextFilter().filter(other)
    assert not hasattr(other, "generation_id")


def test_a_plain_line_ends_with_the_context_fields() -> None:
    line = record(generation_id="g-1", workspace_id="7")
    assert (
        PlainFormatter()
        .format(line)
        .endswith("WARNING generations.pipeline hello generation_id=g-1 workspace_id=7")
    )


def test_production_logs_json_by_default() -> None:
    result = python(LOG_A_LINE, env=PRODUCTION)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stderr.strip().splitlines()[-1])
    assert body["message"] == "hello there"
    assert body["generation_id"] == "g-1"


def test_development_logs_plain_lines_by_default() -> None:
    result = python(LOG_A_LINE, env={"DJANGO_DEBUG": "True"})
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().endswith("WARNING mochi.test hello there generation_id=g-1")


@pytest.mark.parametrize(("debug", "chosen"), [("True", "json"), ("False", "plain")])
def test_log_format_overrides_the_default(debug: str, chosen: str) -> None:
    env = {**PRODUCTION, "DJANGO_DEBUG": debug, "LOG_FORMAT": chosen}
    last = python(LOG_A_LINE, env=env).stderr.strip().splitlines()[-1]
    assert last.startswith("{") == (chosen == "json")
