"""How the operator's page writes figures: money, shares and waits."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django import template

register = template.Library()


@register.filter
def usd(amount: Decimal | float | int | None) -> str:
    """$1,234.57; amounts under a dollar keep four decimals ($0.0123)."""
    if amount is None:
        return "—"
    value = Decimal(str(amount))
    places = Decimal("0.01") if abs(value) >= 1 or value == 0 else Decimal("0.0001")
    rounded = value.quantize(places, rounding=ROUND_HALF_UP)
    sign = "−" if rounded < 0 else ""
    return f"{sign}${abs(rounded):,}"


@register.filter
def percent(ratio: float | None) -> str:
    """0.1234 → 12.3 %; no data → —."""
    if ratio is None:
        return "—"
    return f"{ratio * 100:.1f} %"


@register.filter
def wait(seconds: float | None) -> str:
    """42 s, 3 min 5 s, 2 h 10 min."""
    if not seconds:
        return "0 s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"
