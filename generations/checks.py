"""System checks: the queue's and the ledger's timings must fit the longest generation."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

from generations import upstream

V2_UPSTREAM_SECONDS = 65 * 60  # Segmind keeps a v2 request for an hour


def longest_generation_seconds() -> int:
    """From submit to the last possible step: waiting for a slot, then the upstream."""
    at_upstream = max(
        V2_UPSTREAM_SECONDS,
        upstream.CONNECT_TIMEOUT + settings.SEGMIND_V1_TIMEOUT_SECONDS + 300,
    )
    return (
        settings.GENERATION_QUEUE_TIMEOUT_SECONDS
        + at_upstream
        + settings.GENERATION_INGEST_LEASE_SECONDS
    )


@register()
def check_timings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    errors = []
    queue = {
        "retry": int(settings.Q_CLUSTER["retry"]),
        "timeout": int(settings.Q_CLUSTER["timeout"]),
    }
    if not queue["retry"] > queue["timeout"]:
        errors.append(
            Error(
                f"QCLUSTER_RETRY ({queue['retry']}) must exceed QCLUSTER_TIMEOUT "
                f"({queue['timeout']}), or a running task is handed to a second worker.",
                id="generations.E001",
            )
        )
    v1_call = upstream.CONNECT_TIMEOUT + settings.SEGMIND_V1_TIMEOUT_SECONDS + 60
    if queue["timeout"] < v1_call:
        errors.append(
            Error(
                f"QCLUSTER_TIMEOUT ({queue['timeout']}) must cover a synchronous (v1) call "
                f"and storing its video ({v1_call} s).",
                id="generations.E002",
            )
        )
    if longest_generation_seconds() >= settings.HOLD_TIMEOUT_SECONDS:
        errors.append(
            Error(
                f"HOLD_TIMEOUT_SECONDS ({settings.HOLD_TIMEOUT_SECONDS}) must exceed the longest "
                f"a generation can take ({longest_generation_seconds()} s), or holds of "
                "running work expire.",
                id="generations.E003",
            )
        )
    return errors
