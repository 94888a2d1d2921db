"""The only module that talks to Segmind's Mochi 1 API.

Two modes behind one client (DESIGN §2): v2 submits (`POST /v2/mochi-1`), then
polls `GET /v2/requests/{id}/status` and reads the result `GET /v2/requests/{id}`,
whose `output` is a URL of the MP4; v1 makes one long `POST /v1/mochi-1` whose
response body is the MP4. Every call has a timeout. Every failure is one
`UpstreamError` that says whether trying again makes sense, whether the
request may have been executed anyway (then it must never be sent again:
Segmind has no idempotency and bills each accepted POST), and whether our
account or the model is broken (the circuit breaker opens).

This module does not pace itself: callers take a slot from `generations.gate`
before every call, so all workers together stay within the account's rate.
"""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import IO, Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.utils import timezone

CONNECT_TIMEOUT = 5
CHUNK = 1024 * 1024

_local = threading.local()


class UpstreamError(Exception):
    def __init__(
        self,
        code: str,
        message: str,
        *,
        detail: str = "",
        status: int | None = None,
        retryable: bool = False,
        ambiguous: bool = False,
        opens_breaker: bool = False,
        retry_at: datetime | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.detail = detail
        self.status = status
        self.retryable = retryable
        self.ambiguous = ambiguous
        self.opens_breaker = opens_breaker
        self.retry_at = retry_at
        super().__init__(f"{code} (HTTP {status}): {detail or message}")


NOT_CHARGED = "You were not charged."
MESSAGES = {
    "invalid_request": "The video model rejected these settings. Try other parameters.",
    "upstream_unavailable": "The video service is unavailable right now. Please try again later.",
    "generation_failed": "The model could not render this prompt. Try rephrasing it.",
    "upstream_timeout": "The video service did not answer in time.",
    "upstream_error": "The video service had an error.",
    "upstream_rate_limited": "The video service is busy.",
    "upstream_expired": "The video service lost track of this video.",
    "broken_video": "The video service sent back a damaged video.",
    "video_too_large": "The video service sent back a video larger than we accept.",
    "storage_error": "We could not save the video.",
    "queue_timeout": "The video service was too busy to start this video in time.",
    "canceled": "Canceled. The model may still finish rendering, but you are not charged.",
}


def customer_message(code: str) -> str:
    text = MESSAGES.get(code, MESSAGES["upstream_error"])
    return text if code == "canceled" else f"{text} {NOT_CHARGED}"


def _error(code: str, **kwargs: Any) -> UpstreamError:
    return UpstreamError(code, customer_message(code), **kwargs)


@dataclass(frozen=True)
class Submitted:
    request_id: str


@dataclass(frozen=True)
class Progress:
    status: str  # QUEUED, PROCESSING, COMPLETED, FAILED
    cost_usd: Decimal | None = None


@dataclass(frozen=True)
class Result:
    output_url: str
    cost_usd: Decimal | None


@dataclass(frozen=True)
class Rendered:
    """A v1 call: the video was written to the caller's file."""

    request_id: str
    cost_usd: Decimal | None
    seed: int | None
    size: int


def _session() -> requests.Session:
    session: requests.Session | None = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.trust_env = False  # no proxies or .netrc from the environment
        session.headers["x-api-key"] = settings.SEGMIND_API_KEY
        _local.session = session
    return session


def reset_sessions() -> None:
    """Forget pooled connections (settings changed, e.g. in tests)."""
    if getattr(_local, "session", None) is not None:
        _local.session.close()
        _local.session = None


def _url(path: str) -> str:
    return settings.SEGMIND_BASE_URL + path


def _money(value: object) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _reset_at(response: requests.Response) -> datetime:
    """When a 429 says we may call again (`x-rate-limit-reset-at-utc`), or in 30 s."""
    raw = response.headers.get("x-rate-limit-reset-at-utc", "")
    now = timezone.now()
    for parse in (
        lambda v: datetime.fromisoformat(v.replace("Z", "+00:00")),
        lambda v: datetime.fromtimestamp(float(v), UTC),
    ):
        try:
            when = parse(raw)
        except (ValueError, OverflowError):
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return min(max(when, now), now + timedelta(minutes=10))
    return now + timedelta(seconds=30)


def _error_text(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        return str(body.get("error") or body)[:300]
    return str(body)[:300]


def classify(response: requests.Response, *, creates_work: bool) -> UpstreamError:
    """Map an error response (DESIGN §2) to what we do about it. `creates_work` is true
    for the POSTs: a gateway error there may hide a job that was accepted."""
    status = response.status_code
    detail = _error_text(response)
    lowered = detail.lower()
    if status == 400:
        return _error("invalid_request", detail=detail, status=status)
    if status in (401, 403):
        return _error("upstream_unavailable", detail=detail, status=status, opens_breaker=True)
    if status == 404:
        if creates_work:  # the model's address is wrong: configuration
            return _error("upstream_unavailable", detail=detail, status=status, opens_breaker=True)
        return _error("upstream_expired", detail=detail, status=status)
    if status == 406:
        if "credit" in lowered or "spend" in lowered or "limit" in lowered:
            # Our Segmind account is out of money or over its team spend limit.
            return _error("upstream_unavailable", detail=detail, status=status, opens_breaker=True)
        return _error("invalid_request", detail=detail, status=status)
    if status == 410:
        return _error("upstream_unavailable", detail=detail, status=status, opens_breaker=True)
    if status == 422:
        return _error("generation_failed", detail=detail, status=status)
    if status == 429:
        return _error(
            "upstream_rate_limited",
            detail=detail,
            status=status,
            retryable=True,
            retry_at=_reset_at(response),
        )
    if status in (502, 503, 504) and creates_work:
        # A gateway answered: the upstream behind it may have accepted the job.
        return _error("upstream_error", detail=detail, status=status, ambiguous=True)
    if status >= 500:
        return _error("upstream_error", detail=detail, status=status, retryable=True)
    return _error("upstream_error", detail=detail, status=status)


def _was_sent(error: requests.RequestException) -> bool:
    """Whether the request may have reached the upstream. A refused or unreachable
    connection never carried it; a timeout or a reset while waiting may have."""
    if isinstance(error, requests.ConnectTimeout):
        return False
    if isinstance(error, requests.ConnectionError):
        text = str(error)
        unreachable = ("NewConnectionError", "Connection refused", "Failed to resolve")
        return not any(marker in text for marker in unreachable)
    return True


def _transport_error(error: requests.RequestException, *, creates_work: bool) -> UpstreamError:
    """No (complete) answer. A POST that may have been sent is ambiguous: it must not be
    sent again. Anything else can simply be tried again."""
    code = "upstream_timeout" if isinstance(error, requests.Timeout) else "upstream_error"
    if creates_work and _was_sent(error):
        return _error(code, detail=str(error)[:300], ambiguous=True)
    return _error(code, detail=str(error)[:300], retryable=True)


def _request(
    method: str,
    url: str,
    *,
    creates_work: bool,
    read_timeout: float | None = None,
    stream: bool = False,
    **kwargs: Any,
) -> requests.Response:
    try:
        response = _session().request(
            method,
            url,
            timeout=(CONNECT_TIMEOUT, read_timeout or settings.SEGMIND_READ_TIMEOUT_SECONDS),
            allow_redirects=False,
            stream=stream,
            **kwargs,
        )
    except requests.RequestException as error:
        raise _transport_error(error, creates_work=creates_work) from error
    if response.status_code != 200:
        try:
            raise classify(response, creates_work=creates_work)
        finally:
            response.close()
    return response


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise _error("upstream_error", detail="not JSON", status=200, retryable=True) from None
    if not isinstance(body, dict):
        raise _error("upstream_error", detail="unexpected JSON", status=200, retryable=True)
    return body


# --- v2: submit, then poll ---------------------------------------------------------


def submit(body: dict[str, object]) -> Submitted:
    """`POST /v2/mochi-1`. On any answer but a request id, see `UpstreamError.ambiguous`."""
    response = _request("POST", _url("/v2/mochi-1"), creates_work=True, json=body)
    try:
        request_id = str(_json(response).get("request_id") or "")
    except UpstreamError as error:
        # It answered 200 without a usable body: a job may exist upstream.
        raise _error("upstream_error", detail=error.detail, status=200, ambiguous=True) from None
    if not request_id:
        raise _error("upstream_error", detail="no request_id", status=200, ambiguous=True)
    return Submitted(request_id=request_id)


def status(request_id: str) -> Progress:
    """`GET /v2/requests/{id}/status`. A FAILED job answers 422 (`generation_failed`)."""
    response = _request("GET", _url(f"/v2/requests/{request_id}/status"), creates_work=False)
    body = _json(response)
    state = str(body.get("status") or "").upper()
    if state == "FAILED":
        raise _error("generation_failed", detail=str(body.get("error") or ""), status=200)
    metrics = body.get("metrics") if isinstance(body.get("metrics"), dict) else {}
    return Progress(status=state, cost_usd=_money(metrics.get("cost")))  # type: ignore[union-attr]


def result(request_id: str) -> Result:
    """`GET /v2/requests/{id}`: the output URL (kept 7 days upstream) and the cost."""
    response = _request("GET", _url(f"/v2/requests/{request_id}"), creates_work=False)
    body = _json(response)
    if str(body.get("status") or "").upper() == "FAILED":
        raise _error("generation_failed", detail=str(body.get("error") or ""), status=200)
    output = body.get("output")
    if isinstance(output, list):
        output = output[0] if output else ""
    if isinstance(output, dict):
        output = output.get("url") or output.get("video") or ""
    url = str(output or "")
    if not url:
        raise _error("upstream_error", detail="no output URL", status=200, retryable=True)
    if not output_url_allowed(url):
        raise _error("broken_video", detail=f"output URL host not allowed: {url[:200]}")
    metrics = body.get("metrics") if isinstance(body.get("metrics"), dict) else {}
    return Result(output_url=url, cost_usd=_money(metrics.get("cost")))  # type: ignore[union-attr]


def output_url_allowed(url: str) -> bool:
    """Results are fetched only from Segmind's hosts (or the upstream's own address)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return False
    if parts.scheme == "http" and parts.hostname not in _base_hosts():
        return False
    patterns = [*settings.SEGMIND_OUTPUT_HOSTS, *_base_hosts()]
    return any(fnmatch.fnmatch(parts.hostname, pattern) for pattern in patterns)


def _base_hosts() -> list[str]:
    host = urlsplit(settings.SEGMIND_BASE_URL).hostname
    return [host] if host else []


def download(url: str, into: IO[bytes], *, max_bytes: int) -> int:
    """Stream the MP4 at `url` into the file `into` (never the whole video in memory)."""
    response = _request("GET", url, creates_work=False, read_timeout=60, stream=True)
    return _stream(response, into, max_bytes=max_bytes, ambiguous=False)


def _stream(
    response: requests.Response, into: IO[bytes], *, max_bytes: int, ambiguous: bool
) -> int:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        response.close()
        raise _error("video_too_large", detail=f"{declared} bytes")
    size = 0
    try:
        for chunk in response.iter_content(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise _error("video_too_large", detail=f"over {max_bytes} bytes")
            into.write(chunk)
    except requests.RequestException as error:
        # The body broke off. A download can be tried again; a v1 render cannot.
        raise _error(
            "broken_video", detail=str(error)[:300], retryable=not ambiguous, ambiguous=ambiguous
        ) from error
    finally:
        response.close()
    if declared and declared.isdigit() and size != int(declared):
        raise _error(
            "broken_video",
            detail=f"got {size} of {declared} bytes",
            retryable=not ambiguous,
            ambiguous=ambiguous,
        )
    into.flush()
    return size


# --- v1: one long call -------------------------------------------------------------


def render(body: dict[str, object], into: IO[bytes], *, max_bytes: int) -> Rendered:
    """`POST /v1/mochi-1`: blocks until the video is done and answers its bytes."""
    response = _request(
        "POST",
        _url("/v1/mochi-1"),
        creates_work=True,
        json=body,
        read_timeout=settings.SEGMIND_V1_TIMEOUT_SECONDS,
        stream=True,
    )
    headers = response.headers
    seed = headers.get("x-seed-value", "")
    size = _stream(response, into, max_bytes=max_bytes, ambiguous=True)
    return Rendered(
        request_id=headers.get("x-request-id", ""),
        cost_usd=_money(headers.get("x-cost")),
        seed=int(seed) if seed.lstrip("-").isdigit() else None,
        size=size,
    )


# --- Account -------------------------------------------------------------------------


def account_credits() -> Decimal | None:
    """`GET /v1/get-user-credits`: our account's balance in USD; a free call, used to
    probe whether the account works again after the breaker opened."""
    response = _request("GET", _url("/v1/get-user-credits"), creates_work=False)
    body = _json(response)
    return _money(body.get("credits"))
