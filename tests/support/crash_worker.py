"""A real django-q2 worker (`qcluster`) that SIGKILLs its own worker process once, at the
point named by CRASH_AT. Test-only: the patch is applied here, before the cluster forks
its workers, so no crash hook lives in the product's code.

    CRASH_AT=after_accept CRASH_MARKER=/tmp/x python -m tests.support.crash_worker
"""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Callable
from typing import Any

import django

django.setup()

from django.core.management import call_command  # noqa: E402

from generations import gate, pipeline, upstream  # noqa: E402


def _die_once() -> None:
    marker = os.environ["CRASH_MARKER"]
    if not os.path.exists(marker):
        with open(marker, "w") as handle:
            handle.write(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)


def _before(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _die_once()
        return function(*args, **kwargs)

    return wrapper


def _after(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = function(*args, **kwargs)
        _die_once()
        return result

    return wrapper


CRASH_POINTS: dict[str, Callable[[], None]] = {
    # The slot is taken (dispatched), the POST not yet claimed.
    "before_submit": lambda: setattr(gate, "wait_for_slot", _before(gate.wait_for_slot)),
    # The upstream accepted the job; its request id was never recorded.
    "after_accept": lambda: setattr(upstream, "submit", _after(upstream.submit)),
    # The v1 call answered its video; nothing was recorded.
    "after_render": lambda: setattr(upstream, "render", _after(upstream.render)),
    # The request id is recorded; the worker dies while polling.
    "during_poll": lambda: setattr(upstream, "status", _before(upstream.status)),
    # The video and poster are stored; the transaction marking success and charging
    # has not committed.
    "before_capture": lambda: setattr(pipeline, "_charge", _before(pipeline._charge)),
}

if __name__ == "__main__":
    CRASH_POINTS[os.environ["CRASH_AT"]]()
    call_command("qcluster")
