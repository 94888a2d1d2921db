"""The Segmind-compatible drop-in under the production web server (gunicorn's ASGI
worker, one process) on PostgreSQL, with the real pipeline behind it: the fake Segmind
upstream and a worker running the queue's tasks."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from django.core.management import call_command
from django.db import connection

from billing import wallets
from billing.models import Phase as TransferPhase
from billing.models import Transfer
from generations import media
from generations.fake_segmind import FakeSegmind
from generations.models import Generation, Phase, Source
from tests.conftest import Team
from tests.generations.test_segmind_compat import key_for
from tests.support.processes import database_url
from tests.support.queue import run_tasks
from tests.support.web_server import Server, web_server

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

# Segmind's published Python example for Mochi 1, as its model page's v1 template has it
# (the payload, `x-api-key`, `requests.post(url, json=data, headers=headers)`,
# `response.content`), writing the video to a file. Only the base URL and key change.
SEGMIND_EXAMPLE = """\
import requests

api_key = "YOUR_API_KEY"
url = "https://api.segmind.com/v1/mochi-1"

# Request payload
data = {
  "prompt": "A golden retriever running through a field of sunflowers, cinematic",
  "negative_prompt": "blurry, low quality",
  "guidance_scale": 4.5,
  "fps": 16,
  "frames": 52,
  "steps": 30,
  "seed": 42
}

headers = {'x-api-key': api_key}

response = requests.post(url, json=data, headers=headers)
with open("mochi-1.mp4", "wb") as f:
    f.write(response.content)  # The response is the generated video
"""


def eventually(condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """Wait for `condition()` to be true (a bound so a broken build fails, not a measure)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.fixture
def funded(team: Team) -> Team:
    wallets.grant(team.workspace, 1000, key="test-funding")
    return team


@pytest.fixture
def server(fake: FakeSegmind, settings: Any) -> Iterator[Server]:
    call_command("createcachetable", "mochi_cache", verbosity=0)  # the server's rate counters
    env = {
        "DATABASE_URL": database_url(),
        "MEDIA_ROOT": str(settings.STORAGES["default"]["OPTIONS"]["location"]),
        "SEGMIND_COMPAT_V1_TIMEOUT_SECONDS": "120",
        "LOG_LEVEL": "INFO",
    }
    with web_server(env, workers=1, name="segmind-compat") as running:
        settings.SITE_URL = running.url
        yield running


@pytest.fixture
def start_worker(fake: FakeSegmind) -> Iterator[Callable[[], None]]:
    """`start_worker()` starts a thread that runs queued tasks as a django-q2 worker does
    (the tests start it once the server is waiting, to know the order of events)."""
    stop = threading.Event()
    errors: list[BaseException] = []
    threads: list[threading.Thread] = []

    def work() -> None:
        try:
            while not stop.is_set():
                if not run_tasks(timeout=0.2):
                    time.sleep(0.05)
        except BaseException as error:  # reported after the test
            errors.append(error)
        finally:
            connection.close()

    def start() -> None:
        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        threads.append(thread)

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    if errors:
        raise errors[0]


def test_segminds_own_example_gets_the_video_from_us(
    server: Server, start_worker: Callable[[], None], funded: Team, tmp_path: Path
) -> None:
    key = key_for(funded.workspace, funded.bob)
    script = SEGMIND_EXAMPLE.replace("https://api.segmind.com", server.url).replace(
        "YOUR_API_KEY", key
    )
    start_worker()
    subprocess.run(  # the example, run as a customer's app would
        [sys.executable, "-c", script], cwd=tmp_path, check=True, timeout=120
    )

    video = tmp_path / "mochi-1.mp4"
    assert media.looks_like_mp4(video), video.read_bytes()[:300]
    assert media.duration_seconds(video) == pytest.approx(52 / 16, abs=0.05)
    generation = Generation.objects.get()
    assert generation.source == Source.API
    assert generation.api_key is not None
    assert key.startswith(generation.api_key.prefix)
    assert (generation.frames, generation.fps, generation.steps, generation.seed) == (
        52,
        16,
        30,
        42,
    )
    assert video.stat().st_size == generation.video_bytes
    captures = Transfer.objects.filter(pending_id=generation.hold_id)
    assert [(t.phase, t.amount) for t in captures] == [(TransferPhase.POST, 39)]
    assert wallets.balance(funded.workspace) == wallets.Balance(available=961, held=0, owed=0)


def test_while_v1_calls_wait_the_single_worker_server_answers_other_requests(
    server: Server, start_worker: Callable[[], None], funded: Team
) -> None:
    key = key_for(funded.workspace, funded.alice)
    answers: dict[int, requests.Response] = {}

    def call(seed: int) -> None:
        answers[seed] = requests.post(
            f"{server.url}/v1/mochi-1",
            json={"prompt": "a red fox", "frames": 13, "fps": 12, "steps": 10, "seed": seed},
            headers={"x-api-key": key},
            timeout=120,
        )

    waiting = [threading.Thread(target=call, args=(seed,)) for seed in (7, 8)]
    for thread in waiting:
        thread.start()
    # No worker runs yet, so both calls are in the view, waiting for their videos.
    eventually(lambda: Generation.objects.count() == 2, "both generations to be submitted")
    some_id = Generation.objects.values_list("pk", flat=True).first()

    others = [
        requests.get(f"{server.url}/healthz", timeout=30),
        requests.get(f"{server.url}/", timeout=30),  # a synchronous page
        requests.get(f"{server.url}/static/css/app.css", timeout=30),
        requests.get(
            f"{server.url}/v2/requests/{some_id}/status", headers={"x-api-key": key}, timeout=30
        ),
    ]
    assert [answer.status_code for answer in others] == [200, 200, 200, 200]
    assert others[2].headers["content-type"].startswith("text/css")
    assert others[2].content == Path("static/css/app.css").read_bytes()
    assert others[3].json()["status"] == "QUEUED"
    # Answered while both v1 calls were still waiting on the same worker process.
    assert all(thread.is_alive() for thread in waiting)
    assert answers == {}

    start_worker()
    for thread in waiting:
        thread.join(timeout=120)
    assert sorted(answers) == [7, 8]
    for seed, answer in answers.items():
        assert answer.status_code == 200, answer.text
        generation = Generation.objects.get(pk=answer.headers["x-request-id"])
        assert generation.phase == Phase.SUCCEEDED
        assert answer.headers["content-type"] == "video/mp4"
        assert answer.headers["x-cost"] == str(generation.cost) == "4"
        assert answer.headers["x-seed-value"] == str(seed)
        assert int(answer.headers["x-remaining-credits"]) in (1000 - 4, 1000 - 8)
        assert len(answer.content) == generation.video_bytes
        assert answer.content[4:8] == b"ftyp"
    assert wallets.balance(funded.workspace) == wallets.Balance(available=992, held=0, owed=0)

    # The v2 result's short-lived link streams the same file from this server.
    request_id = answers[7].headers["x-request-id"]
    result = requests.get(
        f"{server.url}/v2/requests/{request_id}", headers={"x-api-key": key}, timeout=30
    ).json()
    assert result["output"].startswith(server.url)
    assert requests.get(result["output"], timeout=30).content == answers[7].content
    part = requests.get(result["output"], headers={"Range": "bytes=4-11"}, timeout=30)
    assert (part.status_code, part.content) == (206, answers[7].content[4:12])


def test_a_client_that_leaves_while_waiting_still_gets_its_video_made_and_charged(
    server: Server, start_worker: Callable[[], None], funded: Team
) -> None:
    key = key_for(funded.workspace, funded.alice)
    body = b'{"prompt": "a red fox", "frames": 13, "fps": 12, "steps": 10}'
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as client:
        client.sendall(
            b"POST /v1/mochi-1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"x-api-key: {key}\r\n".encode()
            + b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        generation = eventually(Generation.objects.first, "the generation to be submitted")
    # The server noticed while the view was waiting (no worker has run yet).
    eventually(
        lambda: "Client left POST /v1/mochi-1 waiting for" in server.log_text(),
        "the server to notice the client left",
    )
    assert not Generation.objects.get(pk=generation.pk).is_terminal

    start_worker()
    eventually(lambda: Generation.objects.get(pk=generation.pk).is_terminal, "the generation")
    generation.refresh_from_db()
    assert generation.phase == Phase.SUCCEEDED
    assert wallets.balance(funded.workspace) == wallets.Balance(available=996, held=0, owed=0)


def test_a_failed_generation_answers_500_with_the_customers_message(
    server: Server, start_worker: Callable[[], None], funded: Team
) -> None:
    start_worker()
    answer = requests.post(
        f"{server.url}/v1/mochi-1",
        json={"prompt": "a red fox [fault:failed]", "frames": 13, "steps": 10},
        headers={"x-api-key": key_for(funded.workspace, funded.alice)},
        timeout=120,
    )
    assert answer.status_code == 500
    generation = Generation.objects.get(pk=answer.headers["x-request-id"])
    assert answer.json() == {"error": generation.error_message}
    assert "not charged" in generation.error_message
    assert wallets.balance(funded.workspace) == wallets.Balance(available=1000, held=0, owed=0)
