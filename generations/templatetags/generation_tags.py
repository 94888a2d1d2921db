"""Filters for the generation pages. A gallery page prints two dozen cards, so the ones a
card uses are written to cost little: same output as Django's, without its general paths."""

from __future__ import annotations

import unicodedata
from datetime import datetime

from django import template
from django.template.defaultfilters import stringfilter
from django.utils.dates import MONTHS_3
from django.utils.text import Truncator

register = template.Library()


@register.filter
def compact(value: object) -> str:
    """A number without needless zeros: 16.0 → "16", 4.50 → "4.5". Anything that is not a
    number (a value typed into a form) is shown as it was."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return format(value, "g")


@register.filter(is_safe=True)
@stringfilter
def preview(value: str, length: int) -> str:
    """`truncatechars`: at most `length` characters, with an ellipsis when cut. A prompt
    shorter than that is returned as it is, without a walk over each of its characters."""
    text = unicodedata.normalize("NFC", value)
    if len(text) <= int(length):
        return text
    return Truncator(text).chars(length)


@register.filter(expects_localtime=True)
def iso_time(value: datetime | None) -> str:
    """`date:"c"`: the time in ISO 8601, for <time datetime>."""
    return value.isoformat() if isinstance(value, datetime) else ""


@register.filter(expects_localtime=True)
def short_time(value: datetime | None) -> str:
    """`date:"M j, H:i"`: "Dec 1, 08:05"."""
    if not isinstance(value, datetime):
        return ""
    return f"{MONTHS_3[value.month].title()} {value.day}, {value:%H:%M}"
