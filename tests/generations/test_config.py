"""The queue's and the ledger's timings fit the longest possible generation."""

from __future__ import annotations

from django.conf import settings

from generations.checks import check_timings, longest_generation_seconds
from generations.upstream import CONNECT_TIMEOUT
from tests.support.processes import manage


def test_the_queue_never_hands_a_running_task_to_a_second_worker() -> None:
    assert settings.Q_CLUSTER["retry"] > settings.Q_CLUSTER["timeout"]
    assert settings.Q_CLUSTER["ack_failures"] is True
    assert settings.Q_CLUSTER["catch_up"] is False
    assert settings.Q_CLUSTER["orm"] == "default"


def test_a_task_may_run_as_long_as_one_synchronous_upstream_call() -> None:
    assert settings.Q_CLUSTER["timeout"] > CONNECT_TIMEOUT + settings.SEGMIND_V1_TIMEOUT_SECONDS


def test_a_hold_outlives_the_longest_generation() -> None:
    assert longest_generation_seconds() < settings.HOLD_TIMEOUT_SECONDS
    assert check_timings() == []


def test_timings_that_do_not_fit_stop_the_process() -> None:
    result = manage("check", env={"QCLUSTER_TIMEOUT": "1200", "QCLUSTER_RETRY": "600"})
    assert result.returncode != 0
    assert "generations.E001" in result.stderr
    result = manage("check", env={"HOLD_TIMEOUT_SECONDS": "3600"})
    assert "generations.E003" in result.stderr
