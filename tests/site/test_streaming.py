"""Files leave the web server a chunk at a time, under ASGI as under WSGI."""

from __future__ import annotations

import io
from typing import Any

from django.conf import settings
from django.test import AsyncClient, AsyncRequestFactory, RequestFactory
from django.utils.module_loading import import_string

from mochi_site import streaming
from tests.support.async_calls import call_async


class Recorded(io.BytesIO):
    """A file that remembers the largest read asked of it."""

    largest = 0

    def read(self, size: int | None = -1, /) -> bytes:
        self.largest = max(self.largest, size if size is not None and size >= 0 else 1 << 62)
        return super().read(size)


def test_every_middleware_can_run_async_so_a_waiting_view_holds_no_thread() -> None:
    # One synchronous middleware would make Django call every async view, the waiting
    # POST /v1/mochi-1 included, from a thread that blocks until it answers.
    for path in settings.MIDDLEWARE:
        assert getattr(import_string(path), "async_capable", False), path


def test_under_asgi_a_file_is_sent_from_an_async_iterator_one_chunk_at_a_time() -> None:
    data = bytes(range(256)) * 8192  # 2 MiB, four chunks
    handle = Recorded(data)
    response = streaming.file_response(
        AsyncRequestFactory().get("/"), lambda: handle, length=len(data) - 10
    )
    assert response.is_async

    async def read_all() -> list[bytes]:
        return [chunk async for chunk in response.streaming_content]  # type: ignore[union-attr]

    parts = call_async(read_all)
    assert b"".join(parts) == data[:-10]
    assert max(len(part) for part in parts) <= streaming.CHUNK_BYTES
    assert handle.largest <= streaming.CHUNK_BYTES
    assert handle.closed


def test_under_wsgi_the_same_file_is_a_plain_iterator() -> None:
    handle = Recorded(b"x" * 1000)
    response = streaming.file_response(RequestFactory().get("/"), lambda: handle)
    assert not response.is_async
    assert b"".join(response.streaming_content) == b"x" * 1000  # type: ignore[arg-type]
    assert handle.closed


def test_static_files_are_served_asynchronously_under_asgi() -> None:
    response: Any = call_async(AsyncClient().get, "/static/css/app.css")
    assert response.status_code == 200
    assert response["content-type"].startswith("text/css")
    assert response.is_async

    async def read_all() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    with open(settings.BASE_DIR / "static/css/app.css", "rb") as source:
        assert call_async(read_all) == source.read()
    ranged: Any = call_async(
        AsyncClient().get, "/static/css/app.css", headers={"Range": "bytes=0-9"}
    )
    assert ranged.status_code == 206
