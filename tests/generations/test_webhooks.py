"""Outgoing webhooks: the outbox, delivery over real HTTP checked with the reference
`standardwebhooks` package, the retry schedule, redirects, rotation, the pinned address,
redelivery, the sweeper, and a task that runs twice."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone
from django_q.models import OrmQ
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from accounts.models import Workspace
from accounts.services import rotate_webhook_secret
from generations import services, tasks, webhooks
from generations.api import generation_json
from generations.fake_segmind import FakeSegmind
from generations.models import Generation, Status, WebhookDelivery
from tests.conftest import Commit
from tests.generations.conftest import owner_of
from tests.generations.helpers import finish, submit
from tests.support.concurrency import run_together
from tests.support.queue import pending_tasks, run_tasks
from tests.support.webhook_receiver import Answer, Received, Receiver, self_signed

pytestmark = pytest.mark.django_db

# Seconds between attempts (Svix's schedule): 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
SCHEDULE = [5, 300, 1800, 7200, 18000, 36000, 36000]


def _message(workspace: Workspace, url: str) -> WebhookDelivery:
    """A finished (canceled) generation's webhook message, due now; its task not queued."""
    generation = submit(workspace, webhook_url=url)
    services.cancel_generation(generation)
    return WebhookDelivery.objects.get(generation=generation)


def _verify(received: Received, secret: str) -> Any:
    return Webhook(secret).verify(received.body, received.headers)


def _header(received: Received, name: str) -> str:
    return {k.lower(): v for k, v in received.headers.items()}[name]


def _due_now(delivery: WebhookDelivery) -> None:
    """Time passes until the next attempt is due."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def _fake_dns(names: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    real = webhooks.resolve

    def resolve(host: str, port: int) -> list[str]:
        return names[host] if host in names else real(host, port)

    return resolve


# --- Every way a generation finishes sends its message ---------------------------------------


def test_a_succeeded_generation_is_delivered_signed_with_its_json(
    fake: FakeSegmind, studio: Workspace, hooks: Receiver
) -> None:
    generation = finish(submit(studio, webhook_url=hooks.url))
    assert generation.status == Status.SUCCEEDED
    run_tasks()

    [received] = hooks.requests
    payload = _verify(received, studio.webhook_secret)
    assert payload["type"] == "generation.succeeded"
    expected = generation_json(generation)
    assert payload["timestamp"] == expected["finished_at"]
    links = ("video_url", "poster_url")  # signed afresh each time
    assert {k: v for k, v in payload["data"].items() if k not in links} == {
        k: v for k, v in expected.items() if k not in links
    }
    assert payload["data"]["video_url"]
    delivery = WebhookDelivery.objects.get(generation=generation)
    assert received.body == delivery.payload.encode()
    assert _header(received, "webhook-id") == delivery.event_id
    assert _header(received, "content-type") == "application/json"
    assert _header(received, "user-agent").startswith("MochiStudio-Webhooks/")
    assert delivery.state == "delivered"
    assert [(e["attempt"], e["status"], e["error"]) for e in delivery.log] == [(1, 200, "")]


def test_a_failed_generation_is_delivered_with_its_error(
    fake: FakeSegmind, studio: Workspace, hooks: Receiver
) -> None:
    generation = finish(submit(studio, webhook_url=hooks.url, prompt="a fox [fault:400]"))
    assert generation.status == Status.FAILED
    run_tasks()

    [received] = hooks.requests
    payload = _verify(received, studio.webhook_secret)
    assert payload["type"] == "generation.failed"
    assert payload["data"]["status"] == "failed"
    assert payload["data"]["error"] == {
        "code": generation.error_code,
        "message": generation.error_message,
    }


def test_a_canceled_generation_is_delivered_once_and_its_late_result_sends_nothing(
    fake: FakeSegmind, studio: Workspace, hooks: Receiver, commit: Commit
) -> None:
    fake.state.latency = 0.5
    generation = submit(studio, webhook_url=hooks.url)
    run_tasks(until=lambda: Generation.objects.get(pk=generation.pk).upstream_request_id != "")
    with commit():
        services.cancel_generation(generation)
    run_tasks(timeout=5)  # the upstream finishes; its result is discarded

    [received] = hooks.requests
    payload = _verify(received, studio.webhook_secret)
    assert (payload["type"], payload["data"]["status"]) == ("generation.canceled", "canceled")
    assert WebhookDelivery.objects.filter(generation=generation).count() == 1


def test_deleting_unfinished_work_sends_the_canceled_message(
    fake: FakeSegmind, studio: Workspace, hooks: Receiver, commit: Commit
) -> None:
    generation = submit(studio, webhook_url=hooks.url)
    with commit():
        services.delete_generation(generation)
    run_tasks()
    [received] = hooks.requests
    assert _verify(received, studio.webhook_secret)["type"] == "generation.canceled"


def test_work_the_reaper_gives_up_on_sends_the_failed_message(
    fake: FakeSegmind, studio: Workspace, hooks: Receiver, commit: Commit, settings: Any
) -> None:
    settings.MAX_RUNNING_PER_WORKSPACE = 1
    submit(studio)
    waiting = submit(studio, webhook_url=hooks.url)
    long_ago = timezone.now() - timedelta(seconds=settings.GENERATION_QUEUE_TIMEOUT_SECONDS + 1)
    Generation.objects.filter(pk=waiting.pk).update(created_at=long_ago)
    with commit():
        tasks.reap()
    run_tasks()
    [received] = hooks.requests
    payload = _verify(received, studio.webhook_secret)
    assert payload["type"] == "generation.failed"
    assert payload["data"]["error"]["code"] == "queue_timeout"


def test_the_message_commits_with_the_state_change_and_is_queued_after_it(
    studio: Workspace, hooks: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    generation = submit(studio, webhook_url=hooks.url)

    def fail_then_roll_back() -> None:
        with transaction.atomic():
            services.finish_failed(generation, "generation_failed")
            raise RuntimeError("the transaction rolls back")

    with pytest.raises(RuntimeError):
        fail_then_roll_back()
    assert not WebhookDelivery.objects.exists()
    assert Generation.objects.get(pk=generation.pk).status != Status.FAILED

    OrmQ.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.finish_failed(generation, "generation_failed")
    delivery = WebhookDelivery.objects.get(generation=generation)
    assert delivery.event_type == "generation.failed"
    assert "generations.tasks.deliver_webhook" not in pending_tasks()
    for callback in callbacks:
        callback()
    assert "generations.tasks.deliver_webhook" in pending_tasks()
    delivery.refresh_from_db()
    assert delivery.task_id


def test_a_generation_without_a_webhook_url_sends_nothing(
    fake: FakeSegmind, studio: Workspace, hooks: Receiver
) -> None:
    finish(submit(studio))
    run_tasks()
    assert not WebhookDelivery.objects.exists()
    assert hooks.connections == 0


# --- Retries --------------------------------------------------------------------------------


def test_failures_are_retried_on_the_schedule_with_the_same_id_until_the_last(
    studio: Workspace, hooks: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    hooks.default = Answer(status=500)
    delivery = _message(studio, hooks.url)
    last = len(SCHEDULE) + 1  # attempts in all
    for number in range(1, last + 1):
        before = timezone.now()
        webhooks.attempt(delivery.pk)
        after = timezone.now()
        delivery.refresh_from_db()
        assert (delivery.attempts, delivery.last_status) == (number, 500)
        if number == last:
            break
        base = SCHEDULE[number - 1]
        assert delivery.next_attempt_at is not None
        # Recorded between `before` and `after`, `base` to `base` + 10 % later.
        assert (delivery.next_attempt_at - before).total_seconds() >= base
        assert (delivery.next_attempt_at - after).total_seconds() <= base * 1.1
        # Its task is queued for then, not earlier.
        queued = OrmQ.objects.order_by("-pk").first()
        assert queued is not None
        assert queued.lock >= delivery.next_attempt_at
        _due_now(delivery)

    assert delivery.state == "failed"
    assert delivery.next_attempt_at is None
    assert f"failed after {last} attempt(s)" in caplog.text
    assert len(hooks.requests) == last
    assert {_header(r, "webhook-id") for r in hooks.requests} == {delivery.event_id}
    for received in hooks.requests:
        assert _verify(received, studio.webhook_secret)["type"] == "generation.canceled"
        assert received.body == delivery.payload.encode()
    assert [e["attempt"] for e in delivery.log] == list(range(1, last + 1))

    webhooks.attempt(delivery.pk)  # a stray task after the end sends nothing
    assert len(hooks.requests) == last


def test_a_redirect_is_a_failure_that_is_retried_and_never_followed(
    studio: Workspace, hooks: Receiver
) -> None:
    with Receiver() as elsewhere:
        hooks.answers = [
            Answer(status=302, headers={"Location": elsewhere.url}),
            Answer(status=503),
            Answer(status=204),
        ]
        delivery = _message(studio, hooks.url)
        webhooks.attempt(delivery.pk)
        delivery.refresh_from_db()
        assert delivery.state == "pending"
        assert delivery.log[-1]["status"] == 302
        assert "redirects are not followed" in delivery.last_error
        assert delivery.next_attempt_at is not None
        assert (delivery.next_attempt_at - timezone.now()).total_seconds() > 4
        webhooks.attempt(delivery.pk)  # not due yet: nothing is sent
        assert len(hooks.requests) == 1

        for _ in range(2):
            _due_now(delivery)
            webhooks.attempt(delivery.pk)
        assert elsewhere.connections == 0
    delivery.refresh_from_db()
    assert [e["status"] for e in delivery.log] == [302, 503, 204]
    assert delivery.state == "delivered"
    assert delivery.next_attempt_at is None
    assert len({_header(r, "webhook-id") for r in hooks.requests}) == 1


@pytest.mark.parametrize(
    ("status", "retry_after", "wait"),
    [
        (429, "120", 120),
        (503, "120", 120),
        (429, "999999", webhooks.MAX_RETRY_AFTER),  # within reason
        (500, "120", None),  # only 429 and 503 carry it
    ],
)
def test_retry_after_pushes_the_next_attempt_later(
    studio: Workspace, hooks: Receiver, status: int, retry_after: str, wait: float | None
) -> None:
    hooks.answers = [Answer(status=status, headers={"Retry-After": retry_after})]
    delivery = _message(studio, hooks.url)
    before = timezone.now()
    webhooks.attempt(delivery.pk)
    after = timezone.now()
    delivery.refresh_from_db()
    assert delivery.next_attempt_at is not None
    if wait is None:
        assert (delivery.next_attempt_at - after).total_seconds() <= 5 * 1.1
    else:
        assert (delivery.next_attempt_at - before).total_seconds() >= wait
        assert (delivery.next_attempt_at - after).total_seconds() <= wait


def test_retry_after_may_be_a_date(studio: Workspace, hooks: Receiver) -> None:
    when = timezone.now().replace(microsecond=0) + timedelta(hours=1)
    hooks.answers = [
        Answer(status=429, headers={"Retry-After": format_datetime(when, usegmt=True)})
    ]
    delivery = _message(studio, hooks.url)
    webhooks.attempt(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.next_attempt_at is not None
    assert when <= delivery.next_attempt_at <= when + timedelta(seconds=1)


def test_gone_stops_the_retries_at_once(studio: Workspace, hooks: Receiver) -> None:
    hooks.answers = [Answer(status=410)]
    delivery = _message(studio, hooks.url)
    webhooks.attempt(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == "failed"
    assert delivery.attempts == 1


def test_no_answer_within_the_timeout_is_a_failed_attempt(
    studio: Workspace, hooks: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhooks, "TIMEOUT_SECONDS", 0.3)
    hooks.answers = [Answer(delay=1.5)]
    delivery = _message(studio, hooks.url)
    webhooks.attempt(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.last_status is None
    assert delivery.last_error == "No answer within 0.3 s."
    assert delivery.state == "pending"
    assert delivery.next_attempt_at is not None


@pytest.mark.timeout(60)
def test_only_a_few_kilobytes_of_the_answer_are_read(studio: Workspace, hooks: Receiver) -> None:
    hooks.answers = [Answer(status=200, endless=True)]  # a body that never ends
    delivery = _message(studio, hooks.url)
    webhooks.attempt(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == "delivered"


def test_no_proxy_from_the_environment_and_no_cookies_are_used(
    studio: Workspace, hooks: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    hooks.answers = [Answer(headers={"Set-Cookie": "session=abc"}), Answer()]
    delivery = _message(studio, hooks.url)
    webhooks.attempt(delivery.pk)
    webhooks.redeliver(WebhookDelivery.objects.get(pk=delivery.pk))
    webhooks.attempt(delivery.pk)
    assert len(hooks.requests) == 2
    for received in hooks.requests:
        names = {k.lower() for k in received.headers}
        assert not names & {"cookie", "authorization", "proxy-authorization"}
        assert received.path == "/hooks/mochi"


# --- Signatures and the secret's rotation ------------------------------------------------------


def test_during_a_rotation_both_secrets_sign_and_after_it_only_the_new_one(
    studio: Workspace, hooks: Receiver
) -> None:
    old = studio.webhook_secret
    rotate_webhook_secret(actor=owner_of(studio))
    studio.refresh_from_db()
    new = studio.webhook_secret
    assert new != old

    delivery = _message(studio, hooks.url)
    webhooks.attempt(delivery.pk)
    during = hooks.requests[-1]
    assert len(_header(during, "webhook-signature").split(" ")) == 2
    assert _verify(during, old) == _verify(during, new)

    Workspace.objects.filter(pk=studio.pk).update(
        previous_webhook_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    webhooks.redeliver(WebhookDelivery.objects.get(pk=delivery.pk))
    webhooks.attempt(delivery.pk)
    after = hooks.requests[-1]
    assert len(_header(after, "webhook-signature").split(" ")) == 1
    assert _verify(after, new)["type"] == "generation.canceled"
    with pytest.raises(WebhookVerificationError):
        _verify(after, old)


def test_a_wrong_secret_does_not_verify(studio: Workspace, hooks: Receiver) -> None:
    delivery = _message(studio, hooks.url)
    webhooks.attempt(delivery.pk)
    other = Workspace.objects.create_team(name="Other", owner=owner_of(studio).user)
    with pytest.raises(WebhookVerificationError):
        _verify(hooks.requests[0], other.webhook_secret)


# --- Where it connects ---------------------------------------------------------------------------


def test_it_connects_to_the_checked_address_and_sends_the_name_as_host(
    studio: Workspace, hooks: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The name exists only in the checked answer: a second look-up would fail.
    monkeypatch.setattr(webhooks, "resolve", _fake_dns({"hooks.example.test": ["127.0.0.1"]}))
    delivery = _message(studio, f"http://hooks.example.test:{hooks.port}/hooks/mochi")
    webhooks.attempt(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == "delivered", delivery.last_error
    assert _header(hooks.requests[0], "host") == f"hooks.example.test:{hooks.port}"


def test_https_uses_the_name_for_sni_and_the_certificate_check(
    studio: Workspace, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_IPS = True
    cert, key = self_signed("hooks.example.test")
    monkeypatch.setattr(webhooks, "CA_CERTS", str(cert))
    monkeypatch.setattr(webhooks, "resolve", _fake_dns({"hooks.example.test": ["127.0.0.1"]}))
    with Receiver(tls=(cert, key)) as secure:
        delivery = _message(studio, f"https://hooks.example.test:{secure.port}/hooks/mochi")
        webhooks.attempt(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == "delivered", delivery.last_error
    [received] = secure.requests
    assert received.server_name == "hooks.example.test"
    assert _header(received, "host") == f"hooks.example.test:{secure.port}"
    assert _verify(received, studio.webhook_secret)["type"] == "generation.canceled"


def test_a_certificate_for_another_name_is_refused(
    studio: Workspace, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_IPS = True
    cert, key = self_signed("someone-else.example.test")
    monkeypatch.setattr(webhooks, "CA_CERTS", str(cert))
    monkeypatch.setattr(webhooks, "resolve", _fake_dns({"hooks.example.test": ["127.0.0.1"]}))
    with Receiver(tls=(cert, key)) as secure:
        delivery = _message(studio, f"https://hooks.example.test:{secure.port}/hooks/mochi")
        webhooks.attempt(delivery.pk)
        assert secure.requests == []
    delivery.refresh_from_db()
    assert delivery.last_error.startswith("TLS failed")
    assert delivery.state == "pending"  # retried on the schedule


# --- Redelivery -----------------------------------------------------------------------------------


def test_a_delivered_message_is_redelivered_with_the_same_id_and_body(
    studio: Workspace, hooks: Receiver, commit: Commit
) -> None:
    delivery = _message(studio, hooks.url)
    webhooks.attempt(delivery.pk)
    with commit():
        webhooks.redeliver(WebhookDelivery.objects.get(pk=delivery.pk))
    assert "generations.tasks.deliver_webhook" in pending_tasks()
    run_tasks()

    first, again = hooks.requests
    assert _header(again, "webhook-id") == _header(first, "webhook-id")
    assert again.body == first.body
    assert int(_header(again, "webhook-timestamp")) >= int(_header(first, "webhook-timestamp"))
    assert _verify(again, studio.webhook_secret) == _verify(first, studio.webhook_secret)
    delivery.refresh_from_db()
    assert delivery.state == "delivered"
    assert [e["status"] for e in delivery.log] == [200, 200]


def test_a_failed_message_is_redelivered_and_retried_again(
    studio: Workspace, hooks: Receiver
) -> None:
    hooks.answers = [Answer(status=500), Answer(status=500), Answer(status=200)]
    delivery = _message(studio, hooks.url)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(attempts=webhooks.MAX_ATTEMPTS - 1)
    webhooks.attempt(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == "failed"

    webhooks.redeliver(delivery)
    webhooks.attempt(delivery.pk)  # fails: the schedule starts again
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("pending", 1)
    assert delivery.next_attempt_at is not None
    assert (delivery.next_attempt_at - timezone.now()).total_seconds() > 4
    _due_now(delivery)
    webhooks.attempt(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == "delivered"
    assert [(e["attempt"], e["status"]) for e in delivery.log] == [
        (webhooks.MAX_ATTEMPTS, 500),
        (1, 500),
        (2, 200),
    ]


def test_redelivering_a_message_whose_retry_is_hours_away_sends_it_now(
    studio: Workspace, hooks: Receiver, commit: Commit
) -> None:
    hooks.answers = [Answer(status=500), Answer(status=500), Answer(status=500)]
    delivery = _message(studio, hooks.url)
    for _ in range(3):
        webhooks.attempt(delivery.pk)
        _due_now(delivery)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now() + timedelta(hours=2)
    )
    with commit():
        webhooks.redeliver(WebhookDelivery.objects.get(pk=delivery.pk))
    run_tasks(until=lambda: len(hooks.requests) == 4, timeout=5)
    assert len(hooks.requests) == 4
    delivery.refresh_from_db()
    assert delivery.state == "delivered"


def test_redelivering_while_an_attempt_is_due_leaves_that_attempt_to_it(
    studio: Workspace, hooks: Receiver, commit: Commit
) -> None:
    delivery = _message(studio, hooks.url)  # its first attempt is due now
    OrmQ.objects.all().delete()
    with commit():
        again = webhooks.redeliver(delivery)
    assert again.next_attempt_at == delivery.next_attempt_at
    assert pending_tasks() == []


# --- Lost tasks, tasks that run twice ------------------------------------------------------------


def test_the_sweeper_queues_a_lost_first_attempt_again(
    studio: Workspace, hooks: Receiver, settings: Any
) -> None:
    delivery = _message(studio, hooks.url)  # committed, but its task never queued
    OrmQ.objects.all().delete()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=settings.GENERATION_TASK_GRACE_SECONDS)
    )
    assert tasks.reap()["webhooks_requeued"] == 1
    assert tasks.reap()["webhooks_requeued"] == 0  # queued once
    run_tasks(until=lambda: bool(hooks.requests), timeout=5)
    delivery.refresh_from_db()
    assert delivery.state == "delivered"
    assert len(hooks.requests) == 1


def test_the_sweeper_retries_an_attempt_whose_worker_died(
    studio: Workspace, hooks: Receiver, settings: Any
) -> None:
    delivery = _message(studio, hooks.url)
    OrmQ.objects.all().delete()
    # Claimed by a worker that died before recording anything; its lease ran out.
    died = timezone.now() - webhooks.ATTEMPT_LEASE
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        attempts=1,
        next_attempt_at=died - timedelta(seconds=settings.GENERATION_TASK_GRACE_SECONDS),
    )
    assert tasks.reap()["webhooks_requeued"] == 1
    run_tasks(until=lambda: bool(hooks.requests), timeout=5)
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("delivered", 2)


def test_the_sweeper_leaves_scheduled_and_recent_attempts_alone(
    studio: Workspace, hooks: Receiver
) -> None:
    later = _message(studio, hooks.url)
    WebhookDelivery.objects.filter(pk=later.pk).update(
        next_attempt_at=timezone.now() + timedelta(minutes=30)
    )
    _message(studio, hooks.url)  # due now: its task has a grace period
    OrmQ.objects.all().delete()
    assert webhooks.sweep() == 0
    assert pending_tasks() == []


def test_a_task_queued_twice_sends_once(studio: Workspace, hooks: Receiver) -> None:
    delivery = _message(studio, hooks.url)
    OrmQ.objects.all().delete()
    tasks.enqueue_webhook(delivery.pk)
    tasks.enqueue_webhook(delivery.pk)
    run_tasks()
    assert len(hooks.requests) == 1
    delivery.refresh_from_db()
    assert len(delivery.log) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_task_run_twice_at_once_sends_once(studio: Workspace, hooks: Receiver) -> None:
    hooks.default = Answer(delay=0.5)  # the first run is still sending when the second looks
    delivery = _message(studio, hooks.url)
    results = run_together([lambda: webhooks.attempt(delivery.pk)] * 2)
    assert results == [None, None]
    assert len(hooks.requests) == 1
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, len(delivery.log)) == ("delivered", 1, 1)
