"""What a generation costs. The only place the price is computed: the create page,
the estimate endpoint, the API and the hold at submit all call `generation_cost`."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from django.conf import settings


def generation_cost(frames: int, steps: int) -> int:
    """cost = ceil(frames × steps × CREDITS_PER_FRAME_STEP), in whole credits, computed exactly."""
    rate: Fraction = settings.CREDITS_PER_FRAME_STEP
    return math.ceil(Fraction(frames * steps) * rate)


def duration_seconds(frames: int, fps: float) -> float:
    """A clip of `frames` frames played at `fps` lasts frames / fps seconds (two decimals)."""
    exact = Decimal(frames) / Decimal(str(fps))
    return float(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def rate_description() -> str:
    """The rate as people read it: "1 credit per 40 frame-steps"."""
    rate: Fraction = settings.CREDITS_PER_FRAME_STEP
    if rate.numerator == 1:
        return f"1 credit per {rate.denominator} frame-steps"
    return f"{rate.numerator} credits per {rate.denominator} frame-steps"
