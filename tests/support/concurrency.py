"""Run functions at the same moment in real threads, each with its own database connection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection


def run_together(functions: list[Callable[[], Any]], timeout: float = 120) -> list[Any]:
    """Start every function together (a barrier releases them at once); return each one's
    result, or the exception it raised, in order."""
    barrier = threading.Barrier(len(functions))
    results: list[Any] = [None] * len(functions)

    def run(index: int, function: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results[index] = function()
        except Exception as error:  # reported to the test, which asserts on it
            results[index] = error
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(i, f), daemon=True) for i, f in enumerate(functions)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError("a concurrent worker did not finish")
    return results
