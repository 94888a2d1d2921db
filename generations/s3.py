"""The S3 backend behind `generations.storage` when AWS_STORAGE_BUCKET_NAME is set (its
own module, so that a site on its local media folder never imports boto3)."""

from __future__ import annotations

import threading
from typing import Any

from storages.backends import s3


class S3Storage(s3.S3Storage):
    """django-storages' S3 storage with one boto3 connection per process, not per thread.

    Under ASGI, Django runs each request's synchronous code in a thread of its own, so the
    stock per-thread connection meant a new boto3 session and resource, the S3 service
    model parsed again from its JSON, for every request that signed a link: most of a
    gallery page's CPU (django-storages issue #1472). Sharing one is safe because it is used
    only through its client, which boto3 documents as thread-safe, and through Bucket and
    Object instances made for each call (the stock storage already shares its Bucket).
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._shared_lock = threading.Lock()
        self._shared_connection: Any = None

    @property
    def connection(self) -> Any:
        if self._shared_connection is None:
            with self._shared_lock:  # two first requests at once would build two
                if self._shared_connection is None:
                    self._shared_connection = super().connection
        return self._shared_connection

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()
        del state["_shared_lock"], state["_shared_connection"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._shared_lock = threading.Lock()
        self._shared_connection = None
