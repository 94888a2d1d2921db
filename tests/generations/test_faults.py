"""Every upstream fault of DESIGN §2, in both modes: the final status, the customer's message,
what happens to the held credits, the breaker, and how many POSTs reached the upstream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from botocore.config import Config

from accounts.models import Workspace
from billing import wallets
from billing.models import Phase as TransferPhase
from billing.models import Transfer
from generations import gate
from generations.fake_segmind import FakeSegmind
from generations.models import Status, UpstreamGate
from generations.upstream import customer_message
from tests.generations.helpers import finish, submit

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Case:
    fault: str
    where_v2: str
    where_v1: str
    status: Status
    code: str
    opens_breaker: bool = False
    posts: int = 1
    times: int = 1

    @property
    def id(self) -> str:
        return f"{self.fault}@{self.where_v2}" + ("" if self.times == 1 else f"x{self.times}")


CASES = [
    Case("400", "submit", "v1", Status.FAILED, "invalid_request"),
    Case("401", "submit", "v1", Status.FAILED, "upstream_unavailable", opens_breaker=True),
    Case("403", "submit", "v1", Status.FAILED, "upstream_unavailable", opens_breaker=True),
    Case("404", "submit", "v1", Status.FAILED, "upstream_unavailable", opens_breaker=True),
    Case("406-credits", "submit", "v1", Status.FAILED, "upstream_unavailable", opens_breaker=True),
    Case("406-content-type", "submit", "v1", Status.FAILED, "invalid_request"),
    Case("410", "submit", "v1", Status.FAILED, "upstream_unavailable", opens_breaker=True),
    Case("failed", "job", "v1", Status.FAILED, "generation_failed"),
    Case("422", "status", "v1", Status.FAILED, "generation_failed"),
    Case("429", "submit", "v1", Status.SUCCEEDED, "", posts=2),
    Case("500", "submit", "v1", Status.SUCCEEDED, "", posts=2),
    Case("500", "submit", "v1", Status.FAILED, "upstream_error", posts=5, times=5),
    Case("502", "submit", "v1", Status.FAILED, "upstream_error"),
    Case("504", "submit", "v1", Status.FAILED, "upstream_error"),
    Case("timeout", "submit", "v1", Status.FAILED, "upstream_timeout"),
    Case("reset", "submit", "v1", Status.FAILED, "upstream_error"),
    Case("500", "status", "none", Status.SUCCEEDED, ""),
    Case("timeout", "status", "none", Status.SUCCEEDED, ""),
    Case("404", "status", "none", Status.FAILED, "upstream_expired"),
    Case("truncated", "download", "v1", Status.FAILED, "broken_video", times=100),
    Case("truncated", "download", "none", Status.SUCCEEDED, ""),  # v2 downloads again
    Case("notmp4", "download", "v1", Status.FAILED, "broken_video"),
]


MATRIX = [
    (mode, case)
    for case in CASES
    for mode in ("v2", "v1")
    if (case.where_v2 if mode == "v2" else case.where_v1) != "none"
]


@pytest.mark.parametrize(("mode", "case"), MATRIX, ids=[f"{m}-{c.id}" for m, c in MATRIX])
def test_upstream_fault(
    mode: str, case: Case, fake: FakeSegmind, studio: Workspace, settings: Any
) -> None:
    settings.SEGMIND_API_MODE = mode
    where = case.where_v2 if mode == "v2" else case.where_v1
    if where == "job":
        generation = submit(studio, prompt="a fox [fault:failed]")
    else:
        # v1 has no job to fail: the same outcome is a 422 answer to the call.
        fault = "422" if case.fault == "failed" else case.fault
        fake.add_fault(fault, where, case.times)
        generation = submit(studio)

    generation = finish(generation)

    assert generation.status == case.status
    hold = Transfer.objects.filter(pending_id=generation.hold_id).get()
    if case.status == Status.SUCCEEDED:
        assert hold.phase == TransferPhase.POST
        assert wallets.balance(studio).available == 1000 - generation.cost
    else:
        assert generation.error_code == case.code
        assert generation.error_message == customer_message(case.code)
        assert "not charged" in generation.error_message
        assert hold.phase == TransferPhase.VOID  # released, never captured
        assert wallets.balance(studio) == wallets.Balance(available=1000, held=0, owed=0)
    breaker = gate.state().breaker
    assert (breaker == UpstreamGate.Breaker.OPEN) == case.opens_breaker
    posts = fake.calls("submit" if mode == "v2" else "v1")
    assert len(posts) == case.posts


def test_a_failed_storage_upload_fails_and_releases(
    mode: str, fake: FakeSegmind, studio: Workspace, settings: Any
) -> None:
    settings.AWS_STORAGE_BUCKET_NAME = "unreachable"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "generations.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": "unreachable",
                "endpoint_url": "http://127.0.0.1:9",
                "access_key": "x",
                "secret_key": "x",
                "client_config": Config(retries={"max_attempts": 1}, connect_timeout=1),
            },
        },
    }
    generation = finish(submit(studio))
    assert generation.status == Status.FAILED
    assert generation.error_code == "storage_error"
    assert wallets.balance(studio) == wallets.Balance(available=1000, held=0, owed=0)
    assert len(fake.calls("submit" if mode == "v2" else "v1")) == 1
