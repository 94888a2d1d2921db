"""Idempotency-Key on POST /api/v1/generations (Stripe's semantics, DESIGN §5)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from billing import wallets
from billing.models import Phase as TransferPhase
from billing.models import Transfer
from generations.models import Generation, IdempotencyRecord
from generations.tasks import forget_idempotency_keys
from tests.api.conftest import GENERATION, Api, key_for, personal
from tests.conftest import Team
from tests.support.concurrency import run_together

pytestmark = pytest.mark.django_db


def _create(api: Api, key: str, body: dict | None = None) -> Any:
    return api.post("/generations", body or GENERATION, headers={"Idempotency-Key": key})


def _holds() -> int:
    return Transfer.objects.filter(phase=TransferPhase.PENDING).count()


def test_a_replay_answers_the_same_generation_and_holds_once(owner_api: Api, funded: Team) -> None:
    first = _create(owner_api, "order-1")
    assert first.status_code == 202
    assert "Idempotent-Replayed" not in first.headers
    available = wallets.balance(funded.workspace).available
    again = _create(owner_api, "order-1")
    assert again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Generation.objects.count() == 1
    assert _holds() == 1
    assert wallets.balance(funded.workspace).available == available


def test_the_same_body_in_another_key_order_is_the_same_request(owner_api: Api) -> None:
    body = {"prompt": "a fox", "frames": 13, "steps": 10}
    first = _create(owner_api, "k", body).json()
    reordered = {"steps": 10, "frames": 13, "prompt": "a fox"}
    assert _create(owner_api, "k", reordered).json() == first


def test_the_same_key_with_another_body_is_422(owner_api: Api) -> None:
    _create(owner_api, "order-2")
    response = _create(owner_api, "order-2", {**GENERATION, "prompt": "a different fox"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert Generation.objects.count() == 1


def test_the_same_key_while_the_first_is_in_flight_is_409(owner_api: Api, funded: Team) -> None:
    from generations.api import _fingerprint

    IdempotencyRecord.objects.create(
        workspace=funded.workspace,
        key="busy",
        fingerprint=_fingerprint(GENERATION),
        locked_until=timezone.now() + timedelta(seconds=30),
    )
    response = _create(owner_api, "busy")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_in_progress"
    assert response.headers["Retry-After"]
    assert not Generation.objects.exists()


def test_a_key_whose_request_died_is_taken_over_by_a_retry(owner_api: Api, funded: Team) -> None:
    from generations.api import _fingerprint

    IdempotencyRecord.objects.create(
        workspace=funded.workspace,
        key="crashed",
        fingerprint=_fingerprint(GENERATION),
        locked_until=timezone.now() - timedelta(seconds=1),
    )
    response = _create(owner_api, "crashed")
    assert response.status_code == 202
    assert Generation.objects.count() == 1
    record = IdempotencyRecord.objects.get(key="crashed")
    assert record.state == IdempotencyRecord.State.DONE
    assert str(record.generation_id) == response.json()["id"]


def test_keys_are_scoped_to_the_workspace(funded: Team) -> None:
    team = Api(key_for(funded.membership(funded.alice)))
    mine = Api(key_for(personal(funded.alice).memberships.get()))
    a = _create(team, "shared-key").json()
    b = _create(mine, "shared-key").json()
    assert a["id"] != b["id"]
    assert Generation.objects.count() == 2


def test_keys_expire_after_a_day(owner_api: Api) -> None:
    first = _create(owner_api, "old").json()
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=24, seconds=1))
    second = _create(owner_api, "old").json()
    assert second["id"] != first["id"]
    assert Generation.objects.count() == 2


def test_the_hourly_task_forgets_keys_older_than_a_day(owner_api: Api) -> None:
    _create(owner_api, "old")
    _create(owner_api, "new")
    IdempotencyRecord.objects.filter(key="old").update(
        created_at=timezone.now() - timedelta(hours=25)
    )
    assert forget_idempotency_keys() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


def test_a_refused_request_stores_nothing_so_a_retry_can_succeed(funded: Team) -> None:
    api = Api(key_for(funded.membership(funded.alice)))
    expensive = {**GENERATION, "frames": 160, "steps": 75}
    available = wallets.balance(funded.workspace).available
    wallets.hold(funded.workspace, available, key="everything")  # nothing left to spend
    refused = _create(api, "retry-me", expensive)
    assert refused.status_code == 402
    assert not IdempotencyRecord.objects.exists()
    wallets.grant(funded.workspace, 300, key="top-up")
    assert _create(api, "retry-me", expensive).status_code == 202


def test_an_invalid_request_stores_nothing(owner_api: Api) -> None:
    response = _create(owner_api, "bad", {**GENERATION, "frames": 0})
    assert response.status_code == 400
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve", "tab\there"])
def test_a_malformed_key_is_a_validation_error(owner_api: Api, key: str) -> None:
    response = _create(owner_api, key)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]["fields"]
    assert not Generation.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_make_one_generation_and_one_hold(funded: Team) -> None:
    text = key_for(funded.membership(funded.alice))
    results = run_together([(lambda: _create(Api(text), "race")) for _ in range(12)])
    statuses = Counter(r.status_code for r in results)
    assert set(statuses) <= {202, 409}, statuses
    assert statuses[202] >= 1
    created = {r.json()["id"] for r in results if r.status_code == 202}
    assert len(created) == 1
    assert Generation.objects.count() == 1
    assert _holds() == 1
    conflicts = [r for r in results if r.status_code == 409]
    assert all(r.json()["error"]["code"] == "idempotency_in_progress" for r in conflicts)
