"""The client's reading of Segmind's answers, over real HTTP to the fake."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.utils import timezone

from generations import upstream
from generations.fake_segmind import FakeSegmind
from generations.upstream import UpstreamError

BODY = {"prompt": "a fox", "frames": 13, "fps": 12, "steps": 10, "seed": 1}


def _submit_error(fake: FakeSegmind, fault: str) -> UpstreamError:
    fake.add_fault(fault, "submit")
    with pytest.raises(UpstreamError) as error:
        upstream.submit(BODY)
    return error.value


@pytest.mark.parametrize(
    ("fault", "code", "retryable", "ambiguous", "breaker"),
    [
        ("400", "invalid_request", False, False, False),
        ("401", "upstream_unavailable", False, False, True),
        ("403", "upstream_unavailable", False, False, True),
        ("406-credits", "upstream_unavailable", False, False, True),
        ("406-content-type", "invalid_request", False, False, False),
        ("410", "upstream_unavailable", False, False, True),
        ("429", "upstream_rate_limited", True, False, False),
        ("500", "upstream_error", True, False, False),
        ("502", "upstream_error", False, True, False),
        ("504", "upstream_error", False, True, False),
        ("timeout", "upstream_timeout", False, True, False),
        ("reset", "upstream_error", False, True, False),
    ],
)
def test_a_submit_error_says_what_to_do_about_it(
    fake: FakeSegmind, fault: str, code: str, retryable: bool, ambiguous: bool, breaker: bool
) -> None:
    error = _submit_error(fake, fault)
    assert (error.code, error.retryable, error.ambiguous, error.opens_breaker) == (
        code,
        retryable,
        ambiguous,
        breaker,
    )
    assert error.message.endswith("You were not charged.")


def test_406_is_read_by_its_message(fake: FakeSegmind) -> None:
    assert _submit_error(fake, "406-credits").detail == "Not enough credits"
    assert "content type" in _submit_error(fake, "406-content-type").detail


def test_429_waits_for_the_reset_time(fake: FakeSegmind) -> None:
    fake.state.rate_limit_reset_seconds = 20
    error = _submit_error(fake, "429")
    assert error.retry_at is not None
    assert timedelta(seconds=15) < error.retry_at - timezone.now() <= timedelta(seconds=21)


def test_a_refused_connection_is_safe_to_retry(settings: object) -> None:
    settings.SEGMIND_BASE_URL = "http://127.0.0.1:9"  # type: ignore[attr-defined]
    upstream.reset_sessions()
    with pytest.raises(UpstreamError) as error:
        upstream.submit(BODY)
    assert error.value.retryable
    assert not error.value.ambiguous


def test_a_bad_key_is_a_401(fake: FakeSegmind, settings: object) -> None:
    settings.SEGMIND_API_KEY = "bad-key"  # type: ignore[attr-defined]
    upstream.reset_sessions()
    with pytest.raises(UpstreamError) as error:
        upstream.submit(BODY)
    assert error.value.status == 401
    assert error.value.opens_breaker


def test_v2_submit_poll_result_and_download(fake: FakeSegmind) -> None:
    submitted = upstream.submit(BODY)
    assert upstream.status(submitted.request_id).status in ("QUEUED", "PROCESSING")
    import time

    time.sleep(0.15)
    progress = upstream.status(submitted.request_id)
    assert progress.status == "COMPLETED"
    assert progress.cost_usd is not None
    found = upstream.result(submitted.request_id)
    assert found.output_url.startswith(fake.url)
    buffer = io.BytesIO()
    size = upstream.download(found.output_url, buffer, max_bytes=10**8)
    assert size == len(buffer.getvalue()) > 1000
    assert buffer.getvalue()[4:8] == b"ftyp"


def test_a_failed_v2_job_is_a_422(fake: FakeSegmind) -> None:
    submitted = upstream.submit({**BODY, "prompt": "a fox [fault:failed]"})
    import time

    time.sleep(0.15)
    with pytest.raises(UpstreamError) as error:
        upstream.status(submitted.request_id)
    assert error.value.code == "generation_failed"
    assert not error.value.retryable


def test_an_expired_record_is_a_404(fake: FakeSegmind) -> None:
    with pytest.raises(UpstreamError) as error:
        upstream.status("no-such-request")
    assert error.value.code == "upstream_expired"


def test_a_video_over_the_limit_is_refused_while_streaming(fake: FakeSegmind) -> None:
    buffer = io.BytesIO()
    with pytest.raises(UpstreamError) as error:
        upstream.render(BODY, buffer, max_bytes=1000)
    assert error.value.code == "video_too_large"
    assert len(buffer.getvalue()) <= 1000


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://images.segmind.com/outputs/x.mp4", True),
        ("https://cdn.segmind.com/x.mp4", True),
        ("http://images.segmind.com/x.mp4", False),
        ("https://evil.example.com/x.mp4", False),
        ("https://images.segmind.com.evil.example/x.mp4", False),
        ("file:///etc/passwd", False),
    ],
)
def test_results_are_downloaded_only_from_segminds_hosts(
    url: str, allowed: bool, settings: object
) -> None:
    settings.SEGMIND_BASE_URL = "https://api.segmind.com"  # type: ignore[attr-defined]
    assert upstream.output_url_allowed(url) is allowed


def test_v1_answers_the_video_with_its_cost(fake: FakeSegmind) -> None:
    buffer = io.BytesIO()
    rendered = upstream.render(BODY, buffer, max_bytes=10**8)
    assert rendered.size == len(buffer.getvalue())
    assert rendered.cost_usd is not None
    assert rendered.seed == 1
    assert rendered.request_id
