from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from generations.params import PROMPT_PATTERN, InvalidParams, parse_params


def test_missing_values_take_segminds_defaults_and_a_seed_is_drawn() -> None:
    params = parse_params({"prompt": "  a fox  "})
    assert (params.prompt, params.guidance_scale, params.fps, params.frames, params.steps) == (
        "a fox",
        4.5,
        16,
        52,
        30,
    )
    assert 0 <= params.seed < 2**32
    assert parse_params({"prompt": "x", "seed": -1}).seed >= 0


def test_a_given_seed_is_kept_exactly() -> None:
    assert parse_params({"prompt": "x", "seed": 2**63 - 1}).seed == 2**63 - 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("prompt", ""),
        ("prompt", "   "),
        ("prompt", None),
        ("prompt", "x" * 2001),
        ("guidance_scale", 1.9),
        ("guidance_scale", 10.5),
        ("fps", 6),
        ("fps", 31),
        ("frames", 0),
        ("frames", 161),
        ("frames", 52.5),
        ("steps", 9),
        ("steps", 76),
        ("steps", True),
        ("steps", "30"),
        ("seed", -2),
        ("seed", 2**63),
        ("seed", 1.5),
        ("seed", "7"),
        ("negative_prompt", 5),
        ("fps", float("nan")),
    ],
)
def test_values_outside_segminds_ranges_are_refused_by_name(field: str, value: Any) -> None:
    data = {"prompt": "a fox", field: value}
    with pytest.raises(InvalidParams) as error:
        parse_params(data)
    assert list(error.value.fields) == [field]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("guidance_scale", 2, 2.0),
        ("guidance_scale", 10, 10.0),
        ("fps", 7, 7.0),
        ("fps", 30, 30.0),
        ("frames", 1, 1),
        ("frames", 160, 160),
        ("steps", 10, 10),
        ("steps", 75, 75),
        ("frames", 61.0, 61),
    ],
)
def test_the_edges_of_each_range_are_accepted(field: str, value: Any, expected: Any) -> None:
    assert getattr(parse_params({"prompt": "a fox", field: value}), field) == expected


def test_form_strings_are_accepted_when_types_are_not_strict() -> None:
    params = parse_params(
        {"prompt": "a fox", "frames": "61", "fps": "24", "steps": "", "seed": "42"},
        strict_types=False,
    )
    assert (params.frames, params.fps, params.steps, params.seed) == (61, 24.0, 30, 42)


def test_every_bad_field_is_named_at_once() -> None:
    with pytest.raises(InvalidParams) as error:
        parse_params({"prompt": "", "frames": 999, "steps": 1})
    assert set(error.value.fields) == {"prompt", "frames", "steps"}


@pytest.mark.parametrize("field", ["prompt", "negative_prompt"])
def test_a_nul_character_is_refused_by_name(field: str) -> None:
    with pytest.raises(InvalidParams) as refused:
        parse_params({"prompt": "a fox", field: "a fox \x00 in the snow"})
    assert set(refused.value.fields) == {field}


@pytest.mark.parametrize("field", ["prompt", "negative_prompt"])
def test_an_unpaired_surrogate_is_refused_by_name(field: str) -> None:
    # json.loads('"\\ud800"') gives such a string; it has no UTF-8 form to store.
    with pytest.raises(InvalidParams) as refused:
        parse_params({"prompt": "a fox", field: "a fox \ud800 in the snow"})
    assert set(refused.value.fields) == {field}
    assert "surrogate" in refused.value.fields[field][0]


@given(st.text(max_size=12))
@example("\x1e")
@example(" \ufeff ")
@example("a\x00")
@example("\u3000\n")
def test_the_schema_pattern_and_the_check_agree_on_every_prompt(prompt: str) -> None:
    # The API's schema states the prompt rule as PROMPT_PATTERN; Schemathesis holds
    # the API to it, so both must accept the same strings (\x1e is whitespace to both).
    matches = re.search(PROMPT_PATTERN, prompt) is not None
    try:
        parse_params({"prompt": prompt})
    except InvalidParams:
        accepted = False
    else:
        accepted = True
    assert matches == accepted, repr(prompt)


def test_null_optional_parameters_take_the_defaults() -> None:
    params = parse_params(
        {"prompt": "a fox", "negative_prompt": None, "frames": None, "seed": None}
    )
    assert (params.negative_prompt, params.frames) == ("", 52)
    assert params.seed >= 0
