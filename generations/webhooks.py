"""Outgoing webhooks (Standard Webhooks) to the URL a generation was submitted with.

A finished generation writes one `WebhookDelivery` (the message: a stable `webhook-id`
and the exact body) in the transaction that finishes it, and its first attempt is queued
when that commits. Each attempt is a django-q2 task that claims it with a guarded
UPDATE, signs the body with the workspace's secrets (two during a rotation's overlap),
POSTs it and records the outcome; failures are retried on a Svix-like schedule for
about a day. The reaper's sweep queues again attempts whose task was lost.

A webhook URL must lead to the public internet: its host is resolved and every address
checked when the generation is submitted and again at every delivery, which connects to
an address that passed the check (so a name that changes in between cannot redirect it).
`WEBHOOK_ALLOW_PRIVATE_IPS` lifts the check for development and tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import certifi
import urllib3
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from generations.models import Generation, Status, WebhookDelivery

logger = logging.getLogger(__name__)

# The certificate authorities a receiver's certificate must chain to.
CA_CERTS = certifi.where()


class UnsafeWebhookUrl(ValueError):
    """The URL may not receive webhooks; the message says why, for the customer."""


@dataclass(frozen=True)
class Target:
    """Where a delivery connects: the URL's parts and the checked addresses."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_public(address: IPAddress) -> bool:
    """Publicly routable: not loopback, private, link-local (cloud metadata), shared
    (100.64/10), unspecified, reserved or multicast, also when wrapped in IPv6."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if address.teredo:
            inner = address.teredo[1]
        if inner is not None:
            return is_public(inner)
    return address.is_global and not address.is_multicast


def resolve(host: str, port: int) -> list[str]:
    """Every address the host name resolves to (A and AAAA)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def check_url(url: str) -> Target:
    """Where `url` leads, if webhooks may go there; raises UnsafeWebhookUrl otherwise."""
    allow_private = settings.WEBHOOK_ALLOW_PRIVATE_IPS
    if not url.isprintable() or " " in url:
        raise UnsafeWebhookUrl("This is not a valid URL: it contains spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeWebhookUrl("This is not a valid URL.") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise UnsafeWebhookUrl("Webhook URLs must start with https://.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeWebhookUrl("Webhook URLs may not contain a user name or password.")
    host = parts.hostname
    if not host:
        raise UnsafeWebhookUrl("The URL has no host name.")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError):
        raise UnsafeWebhookUrl(f"The host name {host} does not resolve.") from None
    if not addresses:
        raise UnsafeWebhookUrl(f"The host name {host} does not resolve.")
    if not allow_private:
        for text in addresses:
            if not is_public(ipaddress.ip_address(text.split("%", 1)[0])):
                raise UnsafeWebhookUrl(
                    "Webhook URLs must lead to a public address; this one leads to a "
                    "private, loopback or otherwise internal network."
                )
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(parts.scheme, host, port, path, tuple(addresses))


# --- The outbox: one message per finished generation -----------------------------------

EVENT_TYPES = {
    Status.SUCCEEDED: "generation.succeeded",
    Status.FAILED: "generation.failed",
    Status.CANCELED: "generation.canceled",
}

# Waits after each failed attempt (Svix's schedule): attempts at about 0 s, 5 s, 5 min,
# 30 min, 2 h, 5 h, 10 h and 10 h later, a little more than a day in all.
RETRY_DELAYS = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
JITTER = 0.1  # up to 10 % later, so that a receiver's outage does not end in a stampede
# A receiver's Retry-After (429, 503) may push the next attempt later, up to this.
MAX_RETRY_AFTER = 10 * 3600
# A claimed attempt that recorded no outcome by then died with its worker.
ATTEMPT_LEASE = timedelta(seconds=60)
MAX_LOG_ENTRIES = 100


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def record(generation: Generation) -> WebhookDelivery | None:
    """Inside the transaction that finished `generation`: write its webhook message (the
    outbox) and queue the first attempt for when that transaction commits."""
    if not generation.webhook_url:
        return None
    from generations.api import generation_json
    from generations.tasks import enqueue_webhook

    finished = Generation.objects.get(pk=generation.pk)
    event_type = EVENT_TYPES[Status(finished.status)]
    body = {
        "type": event_type,
        "timestamp": _stamp(finished.finished_at or timezone.now()),
        "data": generation_json(finished),
    }
    delivery = WebhookDelivery.objects.create(
        event_id=f"msg_{uuid.uuid4().hex}",
        generation=finished,
        event_type=event_type,
        url=finished.webhook_url,
        payload=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        next_attempt_at=timezone.now(),
    )
    # Lost if the process dies right after the commit: the sweeper queues it again.
    transaction.on_commit(lambda: enqueue_webhook(delivery.pk))
    return delivery


def redeliver(delivery: WebhookDelivery) -> WebhookDelivery:
    """Send the same message again now (same `webhook-id` and body, a new timestamp and
    signature), delivered, failed or still retrying; if that fails it is retried on the
    schedule. An attempt already under way or due within a minute is left to do it."""
    from generations.tasks import enqueue_webhook

    now = timezone.now()
    with transaction.atomic():
        # Locked so that a redelivery and a worker's claim of an attempt do not cross.
        row = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
        imminent = row.next_attempt_at is not None and row.next_attempt_at <= now + ATTEMPT_LEASE
        if row.state == "pending" and imminent:
            return row
        row.attempts = 0
        row.next_attempt_at = now
        row.delivered_at = None
        row.failed_at = None
        row.save(update_fields=["attempts", "next_attempt_at", "delivered_at", "failed_at"])
        enqueue_webhook(row.pk)  # commits with the row (the queue is a table here)
    logger.info("Webhook %s (%s) redelivery requested", row.event_id, row.url)
    return row


def sweep(limit: int = 500) -> int:
    """From the reaper: queue again the attempts whose task was lost (a worker died, or
    the process stopped between a commit and its enqueue). Returns how many."""
    from generations.tasks import enqueue_webhook

    now = timezone.now()
    late = now - timedelta(seconds=settings.GENERATION_TASK_GRACE_SECONDS)
    lost = (
        WebhookDelivery.objects.filter(
            delivered_at__isnull=True, failed_at__isnull=True, next_attempt_at__lt=late
        )
        .order_by("next_attempt_at")
        .values_list("pk", "next_attempt_at")[:limit]
    )
    requeued = 0
    for pk, seen in lost:
        # Due now, so the new task may claim it; a late old task competes for the same
        # claim and only one of them sends.
        if WebhookDelivery.objects.filter(
            pk=pk, next_attempt_at=seen, delivered_at__isnull=True, failed_at__isnull=True
        ).update(next_attempt_at=now):
            logger.warning("Requeueing webhook delivery %s (its task was lost)", pk)
            enqueue_webhook(pk)
            requeued += 1
    return requeued


# --- One attempt ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: an HTTP status, or an error without one."""

    status: int | None = None
    error: str = ""
    retry_after: float | None = None
    duration_ms: int = 0

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def attempt(delivery_id: uuid.UUID | str) -> None:
    """The queue task: make the delivery's due attempt, once, and record what happened.
    Safe to run twice: the attempt is claimed with a guarded UPDATE first."""
    now = timezone.now()
    pending = WebhookDelivery.objects.filter(
        pk=delivery_id, delivered_at__isnull=True, failed_at__isnull=True
    )
    seen = pending.values_list("attempts", "next_attempt_at").first()
    if seen is None or seen[1] is None or seen[1] > now:
        return  # delivered, given up, not due yet, or another worker's attempt is under way
    lease = now + ATTEMPT_LEASE
    claimed = pending.filter(attempts=seen[0], next_attempt_at=seen[1]).update(
        attempts=F("attempts") + 1, next_attempt_at=lease
    )
    if not claimed:
        return  # another run claimed it first
    delivery = WebhookDelivery.objects.select_related("generation__workspace").get(pk=delivery_id)
    number = seen[0] + 1
    started = timezone.now()
    outcome = _send(delivery)  # no transaction is open during the call
    _record(delivery, number=number, lease=lease, started=started, outcome=outcome)


def signature(secrets: list[str], msg_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` header: `v1,<base64 HMAC-SHA256>` per secret."""
    content = f"{msg_id}.{timestamp}.{body}".encode()
    signatures = []
    for secret in secrets:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        digest = hmac.new(key, content, hashlib.sha256).digest()
        signatures.append(f"v1,{base64.b64encode(digest).decode()}")
    return " ".join(signatures)


def _send(delivery: WebhookDelivery) -> Outcome:
    try:
        target = check_url(delivery.url)  # again: the name may lead elsewhere by now
    except UnsafeWebhookUrl as unsafe:
        return Outcome(error=f"Refused: {unsafe}")
    timestamp = int(timezone.now().timestamp())
    workspace = delivery.generation.workspace
    headers = {
        "webhook-id": delivery.event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(
            workspace.webhook_signing_secrets(), delivery.event_id, timestamp, delivery.payload
        ),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
    return post(target, delivery.payload.encode(), headers)


def _record(
    delivery: WebhookDelivery, *, number: int, lease: datetime, started: datetime, outcome: Outcome
) -> None:
    from generations.tasks import enqueue_webhook

    now = timezone.now()
    entry = {
        "at": _stamp(started),
        "attempt": number,
        "status": outcome.status,
        "error": outcome.error[:300],
        "duration_ms": outcome.duration_ms,
    }
    with transaction.atomic():
        # Locked: the log is read, appended to and written back.
        row = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
        row.log = [*row.log, entry][-MAX_LOG_ENTRIES:]
        row.last_status = outcome.status
        row.last_error = outcome.error[:300]
        fields = ["log", "last_status", "last_error"]
        # Still this attempt's delivery (not redelivered or taken over meanwhile)?
        mine = row.attempts == number and row.next_attempt_at == lease and row.state == "pending"
        if mine and outcome.delivered:
            row.delivered_at, row.next_attempt_at = now, None
            fields += ["delivered_at", "next_attempt_at"]
        elif mine and (number >= MAX_ATTEMPTS or outcome.status == 410):
            # 410 Gone: the receiver says this URL will never take it.
            row.failed_at, row.next_attempt_at = now, None
            fields += ["failed_at", "next_attempt_at"]
            logger.warning(
                "Webhook %s of generation %s to %s failed after %d attempt(s): %s",
                row.event_id,
                row.generation_id,
                row.url,
                number,
                outcome.error or f"HTTP {outcome.status}",
            )
        elif mine:
            delay = retry_delay(number, outcome.retry_after)
            row.next_attempt_at = now + timedelta(seconds=delay)
            fields.append("next_attempt_at")
            # The queue is a table in this database: the task commits with the row.
            enqueue_webhook(row.pk, delay=delay)
        row.save(update_fields=fields)


def retry_delay(attempts: int, retry_after: float | None = None) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: the schedule with jitter,
    or the receiver's Retry-After when it asks for longer (within reason)."""
    base = RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]
    delay = base * (1 + JITTER * random.random())  # noqa: S311 - spreads retries, not a secret
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


# --- HTTP -------------------------------------------------------------------------------------

TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 4096
USER_AGENT = "MochiStudio-Webhooks/1.0"


def post(target: Target, body: bytes, headers: dict[str, str]) -> Outcome:
    """POST to one of the addresses the target was checked with (never the name again, so
    a DNS answer that changed since cannot lead elsewhere), sending the host name in
    `Host` and as TLS SNI, and checking the certificate against it. Redirects are not
    followed; the answer's body is read up to a few KB; no proxy or cookie is used."""
    start = time.monotonic()
    default_port = 443 if target.scheme == "https" else 80
    host = f"[{target.host}]" if ":" in target.host else target.host
    headers = {**headers, "host": host if target.port == default_port else f"{host}:{target.port}"}
    error = "No address to connect to."
    for address in target.addresses:
        left = TIMEOUT_SECONDS - (time.monotonic() - start)
        if left <= 0:
            break
        pool = _pool(target, address.split("%", 1)[0], urllib3.Timeout(total=left))
        try:
            response = pool.urlopen(
                "POST",
                target.path,
                body=body,
                headers=headers,
                retries=False,
                redirect=False,
                assert_same_host=False,
                preload_content=False,
            )
            try:
                response.read(MAX_RESPONSE_BYTES, decode_content=False)
            except (urllib3.exceptions.HTTPError, OSError):
                pass  # the status is what counts
            finally:
                response.close()
            return Outcome(
                status=response.status,
                error="" if 200 <= response.status < 300 else _status_error(response),
                retry_after=_retry_after(response) if response.status in (429, 503) else None,
                duration_ms=_since(start),
            )
        except (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError):
            error = f"Could not connect to {target.host} ({address})."
            continue  # nothing was sent: another address may answer
        except urllib3.exceptions.SSLError as failed:
            return Outcome(error=f"TLS failed: {failed}"[:300], duration_ms=_since(start))
        except (urllib3.exceptions.TimeoutError, TimeoutError):
            return Outcome(
                error=f"No answer within {TIMEOUT_SECONDS:g} s.", duration_ms=_since(start)
            )
        except (urllib3.exceptions.HTTPError, OSError) as failed:
            return Outcome(error=f"Connection failed: {failed}"[:300], duration_ms=_since(start))
        finally:
            pool.close()
    return Outcome(error=error, duration_ms=_since(start))


def _pool(target: Target, address: str, timeout: urllib3.Timeout) -> urllib3.HTTPConnectionPool:
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            address,
            target.port,
            timeout=timeout,
            maxsize=1,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            ca_certs=CA_CERTS,
            server_hostname=target.host,
            assert_hostname=target.host,
        )
    return urllib3.HTTPConnectionPool(
        address, target.port, timeout=timeout, maxsize=1, retries=False
    )


def _since(start: float) -> int:
    return int((time.monotonic() - start) * 1000)


def _status_error(response: urllib3.BaseHTTPResponse) -> str:
    if 300 <= response.status < 400:
        return f"HTTP {response.status}: redirects are not followed."
    return f"HTTP {response.status}."


def _retry_after(response: urllib3.BaseHTTPResponse) -> float | None:
    value = (response.headers.get("Retry-After") or "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - timezone.now()).total_seconds(), 0.0)
