"""Log lines for people (`plain`) and for log collectors (`json`), with context fields.

`LOG_FORMAT=json` (the production default) writes one JSON object per line: `time`
(ISO 8601, UTC), `level`, `logger`, `message`, then the context fields and any `extra=`
a line was logged with, and `exception` with the traceback. The context fields of the
work under way, such as `generation_id`, are set once by the entry point of that work
(`with log_context(generation_id=...)` in a task) and reach every line logged inside
it, whichever module writes the line. `plain` appends them as `key=value`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _LibraryJsonFormatter

# The fields `log_context` may set, in the order `plain` shows them.
CONTEXT_FIELDS = ("generation_id", "workspace_id", "step")

_context: ContextVar[dict[str, str] | None] = ContextVar("mochi_log_context", default=None)

# django-q2 logs "processing poll-<uuid>" and "Processed '…' (poll-<uuid>)" from its own
# processes: the task names of generation steps (generations.tasks.enqueue) carry the id.
_GENERATION_TASK = re.compile(
    r"\b(?:submit|poll|ingest)-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b"
)


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Add `fields` to every line logged inside the block (nested blocks add to it)."""
    current = _context.get() or {}
    token = _context.set(
        {**current, **{name: str(value) for name, value in fields.items() if value is not None}}
    )
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, str]:
    return dict(_context.get() or {})


class ContextFilter(logging.Filter):
    """Copies the context fields onto each record that does not name them itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_context.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        if not hasattr(record, "generation_id") and record.name.startswith("django-q"):
            found = _GENERATION_TASK.search(record.getMessage())
            if found:
                record.generation_id = found.group(1)
        return True


class PlainFormatter(logging.Formatter):
    """`time level logger message key=value…` for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = [
            f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS if hasattr(record, name)
        ]
        if not fields:
            return text
        first, newline, rest = text.partition("\n")
        return f"{first} {' '.join(fields)}{newline}{rest}"


class JsonFormatter(_LibraryJsonFormatter):
    """One JSON object per line (python-json-logger does the encoding)."""

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger", "exc_info": "exception"},
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["time"] = (
            datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
        ).replace("+00:00", "Z")
        super().add_fields(log_data, record, message_dict)
        request = log_data.get("request")
        if request is not None and hasattr(request, "method"):
            # django.request attaches the request object: keep what identifies it.
            log_data["request"] = f"{request.method} {request.get_full_path()}"
