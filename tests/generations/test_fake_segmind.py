"""`python manage.py fake_segmind`: the demo and test upstream, as an operator starts it,
spoken to over HTTP as Segmind's API is (DESIGN §2 and §5)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from generations import media
from tests.support.processes import ROOT, environment

KEY = {"x-api-key": "demo-key"}
BODY = {"prompt": "a red fox in the snow", "frames": 26, "fps": 13, "steps": 10, "seed": 7}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def fake_url() -> Iterator[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "fake_segmind",
            "--port",
            str(_free_port()),
            "--latency",
            "0.5",
        ],
        cwd=ROOT,
        env=environment({"LOG_LEVEL": "ERROR"}),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        started = json.loads(process.stdout.readline())  # {"url": ..., "latency": ...}
        assert started["latency"] == 0.5
        yield str(started["url"])
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C stops it cleanly
        assert process.wait(timeout=30) == 0


def _duration(video: bytes) -> float:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "v.mp4"
        path.write_bytes(video)
        return media.duration_seconds(path)


def test_it_checks_the_key_and_segminds_parameter_ranges(fake_url: str) -> None:
    missing = requests.post(f"{fake_url}/v2/mochi-1", json=BODY, timeout=10)
    assert missing.status_code == 401
    bad = requests.post(
        f"{fake_url}/v2/mochi-1", json=BODY, headers={"x-api-key": "bad-key"}, timeout=10
    )
    assert bad.status_code == 401
    for field, value in (("frames", 161), ("steps", 9), ("fps", 31), ("guidance_scale", 1)):
        answer = requests.post(
            f"{fake_url}/v2/mochi-1", json={**BODY, field: value}, headers=KEY, timeout=10
        )
        assert answer.status_code == 400
        assert field in answer.json()["error"]
    blank = requests.post(
        f"{fake_url}/v2/mochi-1", json={**BODY, "prompt": " "}, headers=KEY, timeout=10
    )
    assert blank.status_code == 400


def test_v2_queues_a_job_whose_result_is_a_playable_mp4_of_the_requested_length(
    fake_url: str,
) -> None:
    submitted = requests.post(f"{fake_url}/v2/mochi-1", json=BODY, headers=KEY, timeout=10)
    assert submitted.status_code == 200
    job = submitted.json()
    assert job["status"] == "QUEUED"
    assert job["status_url"].endswith(f"/v2/requests/{job['request_id']}/status")
    deadline = time.monotonic() + 20
    while True:
        state = requests.get(job["status_url"], headers=KEY, timeout=10).json()
        if state["status"] == "COMPLETED" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert state["status"] == "COMPLETED"
    result = requests.get(job["response_url"], headers=KEY, timeout=10).json()
    assert result["metrics"]["cost"] > 0
    video = requests.get(result["output"], timeout=30)
    assert video.headers["content-type"] == "video/mp4"
    assert _duration(video.content) == pytest.approx(26 / 13, abs=0.05)


def test_v1_answers_the_video_with_the_cost_headers(fake_url: str) -> None:
    answer = requests.post(f"{fake_url}/v1/mochi-1", json=BODY, headers=KEY, timeout=30)
    assert answer.status_code == 200
    assert float(answer.headers["x-cost"]) > 0
    assert answer.headers["x-seed-value"] == "7"
    assert answer.headers["x-request-id"]
    assert "x-remaining-credits" in answer.headers
    assert _duration(answer.content) == pytest.approx(26 / 13, abs=0.05)


def test_faults_are_scripted_over_http_and_by_prompt_markers(fake_url: str) -> None:
    scripted = requests.post(
        f"{fake_url}/_admin/faults", json={"fault": "502", "endpoint": "submit"}, timeout=10
    )
    assert scripted.json() == {"ok": True}
    assert (
        requests.post(f"{fake_url}/v2/mochi-1", json=BODY, headers=KEY, timeout=10).status_code
        == 502
    )
    assert (
        requests.post(f"{fake_url}/v2/mochi-1", json=BODY, headers=KEY, timeout=10).status_code
        == 200
    )

    limited = requests.post(
        f"{fake_url}/v2/mochi-1",
        json={**BODY, "prompt": "a fox [fault:429]"},
        headers=KEY,
        timeout=10,
    )
    assert limited.status_code == 429
    assert limited.headers["x-rate-limit-reset-at-utc"]
    credits = requests.post(
        f"{fake_url}/v1/mochi-1",
        json={**BODY, "prompt": "a fox [fault:406-credits]"},
        headers=KEY,
        timeout=10,
    )
    assert (credits.status_code, credits.json()["error"]) == (406, "Not enough credits")


def test_random_faults_hit_about_their_share_of_calls_and_are_counted() -> None:
    from generations.fake_segmind import RANDOM_FAULTS, FakeSegmind

    def submit(url: str) -> int | None:
        try:
            return requests.post(url, json=BODY, headers=KEY, timeout=10).status_code
        except requests.ConnectionError:  # a drawn timeout: closed after its wait, no answer
            return None

    with FakeSegmind(latency=0, fault_rate=0.3, seed=11, timeout_seconds=0.2) as fake:
        answers = [submit(f"{fake.url}/v2/mochi-1") for _ in range(60)]
        drawn = requests.get(f"{fake.url}/_admin/drawn", timeout=10).json()

    at_submit = {key: n for key, n in drawn.items() if key.startswith("submit:")}
    assert sum(1 for answer in answers if answer != 200) == sum(at_submit.values())
    assert answers.count(None) == at_submit.get("submit:timeout", 0)
    assert 6 <= sum(at_submit.values()) <= 30  # about 30 % of 60 calls
    assert {key.split(":", 1)[1] for key in at_submit} <= set(RANDOM_FAULTS["submit"])
    # Each job that was accepted drew its fate too: about 30 % of them will fail.
    accepted = answers.count(200)
    assert 0 < drawn.get("job:failed", 0) < accepted


def test_without_a_fault_rate_nothing_is_drawn_and_latency_spread_stays_in_bounds() -> None:
    from generations.fake_segmind import FakeSegmind

    fake = FakeSegmind(latency=10, latency_spread=0.5, seed=3)
    try:
        latencies = [fake.job_latency(10) for _ in range(200)]
        assert all(5 <= value <= 15 for value in latencies)
        assert max(latencies) - min(latencies) > 5  # it does vary
        assert [fake.take_fault("submit", "a fox") for _ in range(50)] == [""] * 50
        assert fake.drawn() == {}
    finally:
        fake.stop()  # never started: closes its socket without waiting for a loop
    with pytest.raises(ValueError, match="fault_rate"):
        FakeSegmind(fault_rate=1.5)
