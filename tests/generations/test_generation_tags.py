"""The generation pages' template filters: the same text as Django's own filters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.template import engines
from django.utils import timezone


def _render(source: str, **context: Any) -> str:
    return engines["django"].from_string("{% load generation_tags %}" + source).render(context)


@pytest.mark.parametrize(
    "prompt",
    [
        "",
        "a fox",
        "x" * 60,
        "x" * 61,
        "a red fox running through deep snow at dawn, cinematic, slow motion, 35 mm",
        "e\u0301" * 70,  # combining accents do not count as characters
        "<b>bold</b> & “quoted” " * 5,
    ],
)
def test_preview_cuts_prompts_as_truncatechars_does(prompt: str) -> None:
    assert _render("{{ p|preview:60 }}", p=prompt) == engines["django"].from_string(
        "{{ p|truncatechars:60 }}"
    ).render({"p": prompt})


@pytest.mark.parametrize(
    "when",
    [
        datetime(2026, 1, 5, 3, 7, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 59, 59, 123, tzinfo=UTC),
        timezone.now(),
        None,
    ],
)
def test_times_read_as_the_date_filter_writes_them(when: datetime | None) -> None:
    ours = _render("{{ t|iso_time }}|{{ t|short_time }}", t=when)
    django = engines["django"].from_string("{{ t|date:'c' }}|{{ t|date:'M j, H:i' }}")
    assert ours == django.render({"t": when})
