"""Streaming files out of the web server in bounded memory, under ASGI and WSGI alike.

Under ASGI, Django consumes a response's *synchronous* iterator whole before sending it
(`StreamingHttpResponse.__aiter__` falls back to `list()`), so a `FileResponse` of a
video would sit in memory entire. Responses of files therefore get an asynchronous
iterator that reads one chunk at a time in a thread when served by ASGI, and a plain
iterator when served by WSGI (the test client, `runserver`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Generator
from typing import Any, Protocol

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from whitenoise.middleware import WhiteNoiseMiddleware as SyncWhiteNoiseMiddleware

CHUNK_BYTES = 512 * 1024


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...

    def close(self) -> None: ...


def is_asgi(request: HttpRequest) -> bool:
    return isinstance(request, ASGIRequest)


def chunks(
    open_file: Callable[[], Readable], length: int | None = None
) -> Generator[bytes, None, None]:
    """The file's bytes (at most `length` of them), a chunk at a time; closes it."""
    handle = open_file()
    try:
        left = length
        while left is None or left > 0:
            chunk = handle.read(CHUNK_BYTES if left is None else min(left, CHUNK_BYTES))
            if not chunk:
                return
            if left is not None:
                left -= len(chunk)
            yield chunk
    finally:
        handle.close()


async def achunks(
    open_file: Callable[[], Readable], length: int | None = None
) -> AsyncIterator[bytes]:
    """`chunks` for ASGI: every read runs in a thread, so the event loop never waits on
    the disk or the network, and only one chunk is in memory at a time."""
    reader = chunks(open_file, length)
    try:
        while True:
            chunk = await sync_to_async(_next, thread_sensitive=False)(reader)
            if chunk is None:
                return
            yield chunk
    finally:
        await sync_to_async(reader.close, thread_sensitive=False)()


def _next(reader: Generator[bytes, None, None]) -> bytes | None:
    return next(reader, None)


def file_response(
    request: HttpRequest,
    open_file: Callable[[], Readable],
    *,
    length: int | None = None,
    status: int = 200,
    content_type: str | None = None,
) -> StreamingHttpResponse:
    """A response streaming the file opened by `open_file` (opened when sending starts)."""
    body = achunks(open_file, length) if is_asgi(request) else chunks(open_file, length)
    return StreamingHttpResponse(body, status=status, content_type=content_type)


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


class WhiteNoiseMiddleware(SyncWhiteNoiseMiddleware):
    """WhiteNoise, able to run in Django's async mode too.

    WhiteNoise's middleware is synchronous only, and one synchronous middleware makes
    Django run every request's inner layers, async views included, from a thread that
    waits for them: a waiting `POST /v1/mochi-1` would hold that thread for minutes.
    Under ASGI this one serves static files with an asynchronous body instead.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[..., Any], settings: Any = settings) -> None:
        super().__init__(get_response, settings=settings)
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        if self.autorefresh:  # development: looks at the disk
            static_file = await sync_to_async(self.find_file, thread_sensitive=False)(
                request.path_info
            )
        else:
            static_file = self.files.get(request.path_info)
        if static_file is None:
            response: HttpResponseBase = await self.get_response(request)
            return response
        return await sync_to_async(self._serve_async, thread_sensitive=False)(static_file, request)

    @staticmethod
    def _serve_async(static_file: Any, request: HttpRequest) -> StreamingHttpResponse:
        answer = static_file.get_response(request.method, request.META)
        handle = answer.file
        body = achunks(lambda: handle) if handle is not None else _nothing()
        response = StreamingHttpResponse(body, status=int(answer.status))
        del response["content-type"]
        for name, value in answer.headers:
            response[name] = value
        return response
