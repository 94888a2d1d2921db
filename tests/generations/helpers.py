from __future__ import annotations

from typing import Any

from accounts.models import Workspace
from generations import services
from generations.models import Generation
from generations.params import parse_params
from tests.support.queue import run_tasks

DEFAULTS: dict[str, Any] = {
    "prompt": "a red fox running through snow",
    "frames": 31,
    "fps": 24,
    "steps": 20,
}


def submit(workspace: Workspace, **overrides: Any) -> Generation:
    membership = workspace.memberships.get(role="owner")
    params = parse_params({**DEFAULTS, **overrides})
    return services.submit_generation(
        workspace=workspace, params=params, user=membership.user, membership=membership
    )


def finish(generation: Generation, timeout: float = 30.0) -> Generation:
    """Run the queue until the generation is finished; return it fresh."""
    run_tasks(until=lambda: Generation.objects.get(pk=generation.pk).is_terminal, timeout=timeout)
    generation.refresh_from_db()
    return generation
