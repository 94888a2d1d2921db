from __future__ import annotations

from django import template

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
