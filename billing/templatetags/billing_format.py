"""Template filters for amounts of credits."""

from __future__ import annotations

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma

register = template.Library()


@register.filter
def signed(value: int) -> str:
    """A change in credits: "+500", "−39" (a true minus sign), "" when nothing changed."""
    if not value:
        return ""
    number = intcomma(abs(int(value)))
    return f"+{number}" if value > 0 else f"−{number}"
