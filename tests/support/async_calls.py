"""Call async code (Django's AsyncClient, async iterators) from a synchronous test."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import async_to_sync


def call_async(function: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
    """`async_to_sync(function)(...)`: the coroutine runs on its own loop while this thread
    serves its database calls (so it sees the test's transaction).

    The browser tests' Playwright keeps its event loop marked as running in the test
    thread for the whole session, and `async_to_sync` refuses to start where a loop runs;
    that loop is set aside for the call."""
    running = asyncio._get_running_loop()
    asyncio._set_running_loop(None)
    try:
        return async_to_sync(function)(*args, **kwargs)
    finally:
        asyncio._set_running_loop(running)
