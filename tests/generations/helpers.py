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


def submit(workspace: Workspace, *, webhook_url: str = "", **overrides: Any) -> Generation:
    membership = workspace.memberships.get(role="owner")
    params = parse_params({**DEFAULTS, **overrides})
    return services.submit_generation(
        workspace=workspace,
        params=params,
        user=membership.user,
        membership=membership,
        webhook_url=webhook_url,
    )


def finish(generation: Generation, timeout: float = 30.0) -> Generation:
    """Run the queue until the generation is finished; return it fresh."""
    run_tasks(until=lambda: Generation.objects.get(pk=generation.pk).is_terminal, timeout=timeout)
    generation.refresh_from_db()
    return generation


def finished(
    workspace: Workspace,
    user: Any,
    *,
    prompt: str = "a red fox in the snow",
    status: str = "succeeded",
    frames: int = 13,
    steps: int = 10,
) -> Generation:
    """A generation that went all the way (its hold captured or released), with a real
    tiny MP4 and poster in storage when it succeeded — without the upstream."""
    import subprocess
    import tempfile
    from pathlib import Path

    from billing import wallets
    from generations import media, storage
    from generations.models import STATUS_OF_PHASE, Phase

    membership = workspace.memberships.get(user=user)
    generation = services.submit_generation(
        workspace=workspace,
        params=parse_params({"prompt": prompt, "frames": frames, "steps": steps, "fps": 12}),
        user=user,
        membership=membership,
    )
    if status != "succeeded":
        services.finish_failed(generation, "generation_failed")
        generation.refresh_from_db()
        return generation
    with tempfile.TemporaryDirectory() as folder:
        video, poster = Path(folder) / "v.mp4", Path(folder) / "v.jpg"
        subprocess.run(
            [
                media.ffmpeg(),
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=848x480:rate=12",
                "-frames:v",
                str(frames),
                "-pix_fmt",
                "yuv420p",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-movflags",
                "+faststart",
                str(video),
            ],
            check=True,
        )
        media.make_poster(video, poster)
        storage.save(storage.video_key(generation), video)
        storage.save(storage.poster_key(generation), poster)
        size = video.stat().st_size
    Generation.objects.filter(pk=generation.pk).update(
        phase=Phase.SUCCEEDED,
        status=STATUS_OF_PHASE[Phase.SUCCEEDED],
        video_key=storage.video_key(generation),
        poster_key=storage.poster_key(generation),
        video_bytes=size,
        video_seconds=frames / 12,
    )
    wallets.capture(generation.hold_id, generation.cost, key=generation.hold_key)
    generation.refresh_from_db()
    return generation
