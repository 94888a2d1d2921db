"""CI (`.ci/run`) runs the suite on PostgreSQL with the browser tests required: without
Chromium they fail there, while a developer's `make test` skips them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import ROOT

CI_SCRIPT = (ROOT / ".ci" / "run").read_text()


def test_ci_runs_make_test_on_postgresql_with_the_browser_tests_required() -> None:
    assert "export DATABASE_URL=postgres://postgres@127.0.0.1:5432/mochi" in CI_SCRIPT
    assert "export MOCHI_REQUIRE_BROWSER=1" in CI_SCRIPT
    assert "apt-get install -y -qq chromium" in CI_SCRIPT
    assert CI_SCRIPT.rstrip().endswith("make test")


def _browser_test_without_chromium(require: bool) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("CHROMIUM_PATH", "MOCHI_REQUIRE_BROWSER", "DATABASE_URL")
        and not key.startswith(("PYTEST_", "DJANGO_"))
    }
    env["PATH"] = str(Path(sys.executable).parent)  # no chromium on it
    if require:
        env["MOCHI_REQUIRE_BROWSER"] = "1"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "tests/e2e/test_team_journey.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("require", [True, False], ids=["ci", "developer"])
def test_a_missing_chromium_fails_in_ci_and_skips_elsewhere(require: bool) -> None:
    result = _browser_test_without_chromium(require)
    if require:
        assert result.returncode == 1, result.stdout
        assert "Chromium is required for the browser tests but was not found" in result.stdout
    else:
        assert result.returncode == 0, result.stdout
        assert "1 skipped" in result.stdout
