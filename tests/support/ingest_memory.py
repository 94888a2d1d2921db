"""Child process for the memory test: ingest one big video and report the peak growth
of this process's resident memory while it does (Linux: /proc/self/status, VmHWM reset
through /proc/self/clear_refs).

Environment: DATABASE_URL (a fresh SQLite file), SEGMIND_BASE_URL (the fake), the AWS_*
variables (moto's server). Prints one JSON object.
"""

from __future__ import annotations

import json
import sys

import django

django.setup()

from django.core.management import call_command  # noqa: E402

from accounts.models import User  # noqa: E402
from generations import services  # noqa: E402
from generations.models import Generation, Phase  # noqa: E402
from generations.params import parse_params  # noqa: E402
from tests.support.queue import run_tasks  # noqa: E402


def _kilobytes(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def main() -> None:
    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    user = User.objects.create_user("memory@example.com", "a long password 1")
    workspace = user.personal_workspace
    megabytes = int(sys.argv[1])
    generation = services.submit_generation(
        workspace=workspace,
        params=parse_params(
            {"prompt": f"big [fault:big:{megabytes}@download]", "frames": 13, "steps": 10}
        ),
        user=user,
    )
    run_tasks(until=lambda: Generation.objects.get(pk=generation.pk).phase == Phase.DOWNLOADING)

    # Load the S3 client once (botocore's service models are a one-time cost of any
    # process that touches S3, whatever the size of what it stores).
    from mochi_site.health import check_storage

    assert check_storage().ok
    before = _kilobytes("VmRSS")
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset the peak (VmHWM) to the current size
    run_tasks(until=lambda: Generation.objects.get(pk=generation.pk).phase != Phase.DOWNLOADING)
    peak = _kilobytes("VmHWM")
    generation.refresh_from_db()
    print(
        json.dumps(
            {
                "phase": generation.phase,
                "error": generation.error_code,
                "bytes": generation.video_bytes,
                "peak_growth_mb": (peak - before) / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
