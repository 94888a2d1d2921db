"""Run the project's own commands in a child process, as an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


_NOT_INHERITED = {"DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE"}


def _environment(overrides: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    env.update(overrides or {})
    env["DJANGO_SETTINGS_MODULE"] = "mochi_site.settings"
    return env


def manage(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python manage.py ARGS` with production settings and the given environment overrides."""
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=_environment(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def python(
    code: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a snippet of Python with Django set up on production settings."""
    prelude = "import django; django.setup()\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code],
        cwd=ROOT,
        env=_environment(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
