"""Generation parameters: Segmind's ranges (DESIGN §2), checked the same way for every
entry point. The API passes JSON values (types are strict); the HTML form passes strings."""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

MAX_PROMPT_CHARS = 2000
SEED_MAX = 2**63 - 1
# A prompt needs a character that is not whitespace (Python's `str.isspace`, as
# `str.strip` removes), and no NUL: PostgreSQL cannot store it. The API's schema
# states the same rules as patterns (a negative prompt may also be empty).
PROMPT_PATTERN = r"^[^\x00]*[^\s\x00][^\x00]*$"
TEXT_PATTERN = r"^[^\x00]+$"
NUL_MESSAGE = "Remove the NUL character (\\x00): it cannot be part of a prompt."
UNPAIRED_MESSAGE = "The text holds an unpaired surrogate (\\ud800–\\udfff): send valid Unicode."


@dataclass(frozen=True)
class Limit:
    minimum: float
    maximum: float
    default: float
    integer: bool
    label: str


LIMITS: dict[str, Limit] = {
    "guidance_scale": Limit(2, 10, 4.5, False, "Guidance scale"),
    "fps": Limit(7, 30, 16, False, "Frames per second"),
    "frames": Limit(1, 160, 52, True, "Frames"),
    "steps": Limit(10, 75, 30, True, "Steps"),
}

FIELDS = ("prompt", "negative_prompt", *LIMITS, "seed")


@dataclass(frozen=True)
class GenerationParams:
    prompt: str
    negative_prompt: str
    guidance_scale: float
    fps: float
    frames: int
    steps: int
    seed: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class InvalidParams(Exception):
    def __init__(self, fields: dict[str, list[str]]) -> None:
        self.fields = fields
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in fields.items()))


def random_seed() -> int:
    return secrets.randbelow(2**32)


def _number(value: Any, *, strict: bool) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if not strict and isinstance(value, str) and value.strip():
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _whole(value: Any, *, strict: bool) -> int | None:
    """An exact integer (seeds go up to 2**63 - 1, beyond a float's precision)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if not strict and isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
    return None


def _unstorable(text: str) -> str | None:
    """Why `text` cannot be stored as it is, or None: a NUL, or a lone surrogate (JSON's
    `"\\ud800"` decodes to one; it has no UTF-8 form)."""
    if "\x00" in text:
        return NUL_MESSAGE
    try:
        text.encode()
    except UnicodeEncodeError:
        return UNPAIRED_MESSAGE
    return None


def parse_params(data: Mapping[str, Any], *, strict_types: bool = True) -> GenerationParams:
    """Check and normalise parameters; raises `InvalidParams` naming every bad field.
    Missing optional values take Segmind's defaults; a missing seed (or -1) is drawn."""
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {}

    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        errors["prompt"] = ["Describe the video you want: the prompt is required."]
    elif len(prompt) > MAX_PROMPT_CHARS:
        errors["prompt"] = [f"Keep the prompt under {MAX_PROMPT_CHARS} characters."]
    elif problem := _unstorable(prompt):
        errors["prompt"] = [problem]
    else:
        values["prompt"] = prompt.strip()

    negative = data.get("negative_prompt", "")
    if negative is None:
        negative = ""
    if not isinstance(negative, str):
        errors["negative_prompt"] = ["The negative prompt must be text."]
    elif len(negative) > MAX_PROMPT_CHARS:
        errors["negative_prompt"] = [f"Keep it under {MAX_PROMPT_CHARS} characters."]
    elif problem := _unstorable(negative):
        errors["negative_prompt"] = [problem]
    else:
        values["negative_prompt"] = negative.strip()

    for name, limit in LIMITS.items():
        raw = data.get(name)
        if raw is None or (not strict_types and raw == ""):
            values[name] = int(limit.default) if limit.integer else limit.default
            continue
        number = _number(raw, strict=strict_types)
        kind = "a whole number" if limit.integer else "a number"
        bounds = f"between {limit.minimum:g} and {limit.maximum:g}"
        if number is None or (limit.integer and not number.is_integer()):
            errors[name] = [f"{limit.label} must be {kind} {bounds}."]
        elif not limit.minimum <= number <= limit.maximum:
            errors[name] = [f"{limit.label} must be {bounds}."]
        else:
            values[name] = int(number) if limit.integer else number

    seed = data.get("seed")
    if seed is None or (not strict_types and seed == ""):
        values["seed"] = random_seed()
    else:
        whole = _whole(seed, strict=strict_types)
        if whole is None or not -1 <= whole <= SEED_MAX:
            errors["seed"] = [f"The seed must be a whole number from 0 to {SEED_MAX} (or -1)."]
        else:
            values["seed"] = random_seed() if whole == -1 else whole

    if errors:
        raise InvalidParams(errors)
    return GenerationParams(**values)
