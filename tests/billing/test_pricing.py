from __future__ import annotations

from fractions import Fraction

import pytest
from django.test import Client

from billing.pricing import duration_seconds, generation_cost, rate_description


@pytest.mark.parametrize(
    ("frames", "steps", "cost"),
    [(52, 30, 39), (160, 75, 300), (1, 10, 1), (31, 64, 50), (41, 1, 2), (40, 1, 1)],
)
def test_cost_is_the_ceiling_of_frames_times_steps_over_40(
    frames: int, steps: int, cost: int
) -> None:
    assert generation_cost(frames, steps) == cost


def test_the_rate_is_exact_whatever_its_form(settings: object) -> None:
    settings.CREDITS_PER_FRAME_STEP = Fraction("0.025")  # type: ignore[attr-defined]
    assert generation_cost(52, 30) == 39
    settings.CREDITS_PER_FRAME_STEP = Fraction(1, 3)  # type: ignore[attr-defined]
    assert generation_cost(1, 10) == 4  # 3.33… rounds up, never down
    assert rate_description() == "1 credit per 3 frame-steps"


@pytest.mark.parametrize(
    ("frames", "fps", "seconds"), [(52, 16, 3.25), (160, 7, 22.86), (1, 30, 0.03), (61, 24, 2.54)]
)
def test_duration_is_frames_over_fps(frames: int, fps: float, seconds: float) -> None:
    assert duration_seconds(frames, fps) == seconds


@pytest.mark.django_db
def test_the_pricing_page_shows_worked_examples(client: Client) -> None:
    page = client.get("/pricing/").content.decode()
    assert "1 credit per 40 frame-steps" in page
    assert "39 credits" in page
    assert "300 credits" in page
