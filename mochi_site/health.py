"""Health checks for the web process: database, task queue and storage.

Used by `/healthz` (load balancers, the container HEALTHCHECK). Error details
go to the log, not to the anonymous caller.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection

logger = logging.getLogger(__name__)


@dataclass
class Check:
    ok: bool
    details: dict[str, Any] = field(default_factory=dict)


def check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        logger.exception("Health check: the database is unreachable")
        return Check(False, {"error": "unreachable"})
    return Check(True)


def check_queue() -> Check:
    """The ORM broker answers and reports its backlog."""
    from django_q.brokers import get_broker

    try:
        broker = get_broker()
        queued = broker.queue_size()
    except Exception:
        logger.exception("Health check: the task queue is unreachable")
        return Check(False, {"error": "unreachable"})
    return Check(True, {"queued": queued})


def check_storage() -> Check:
    try:
        if settings.AWS_STORAGE_BUCKET_NAME:
            # HEAD on the bucket: fails on missing bucket, bad credentials or no network.
            client = default_storage.connection.meta.client  # type: ignore[attr-defined]
            client.head_bucket(Bucket=settings.AWS_STORAGE_BUCKET_NAME)
        else:
            root = settings.MEDIA_ROOT
            os.makedirs(root, exist_ok=True)
            if not os.access(root, os.W_OK):
                raise PermissionError(f"{root} is not writable")
    except Exception:
        logger.exception("Health check: storage is unavailable")
        return Check(False, {"error": "unavailable"})
    return Check(True)


def run_checks() -> dict[str, Check]:
    return {
        "database": check_database(),
        "queue": check_queue(),
        "storage": check_storage(),
    }
