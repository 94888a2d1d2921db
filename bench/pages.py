"""Page render times with 100,000 generations in the workspace, under the production
server and settings and PostgreSQL: the gallery and a generation's page, each as a ratio
to a page without data (the pricing page) served by the same server in the same run; and
the gallery again with the files in S3 (moto's server), its cards' links presigned.

    python -m bench.pages [--generations 100000] [--requests 60]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time

from bench.common import (
    ROOT,
    free_port,
    median,
    production_server,
    report,
    seed_generations,
    setup_django,
    stop_server,
    wait_for,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--generations", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()

    production = {
        "DJANGO_DEBUG": "False",
        "DJANGO_SECRET_KEY": "bench-" + "x" * 50,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "False",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(production)
    setup_django()
    from django.conf import settings
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command

    from accounts.models import User, Workspace
    from generations.models import Generation

    owner, _ = User.objects.get_or_create(email="bench-pages@example.com")
    workspace = Workspace.objects.filter(created_by=owner, kind="team").first()
    if workspace is None:
        workspace = Workspace.objects.create_team(name="Pages bench", owner=owner)
    seed_generations(workspace, owner, args.generations)
    one = Generation.objects.filter(workspace=workspace).order_by("-created_at").first()
    assert one is not None
    call_command("collectstatic", "--noinput", verbosity=0)

    session = SessionStore()
    session["_auth_user_id"] = str(owner.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = owner.get_session_auth_hash()
    session.create()

    pages = {
        "pricing page (no data)": "/pricing/",
        f"gallery, {args.generations:,} generations": f"/w/{workspace.slug}/generations/",
        "a generation's page": f"/w/{workspace.slug}/generations/{one.pk}/",
    }
    cookie = f"{settings.SESSION_COOKIE_NAME}={session.session_key}"
    timings = _measure(production, pages, cookie, args.requests)

    # The same gallery with the videos in S3 (moto's server): every card's poster is a
    # presigned link, signed by the web process.
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        endpoint = "http://{}:{}".format(*moto.get_host_and_port())
        import boto3

        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        ).create_bucket(Bucket="bench-pages")  # /healthz checks it
        s3 = {
            **production,
            "AWS_STORAGE_BUCKET_NAME": "bench-pages",
            "AWS_S3_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
        }
        s3_pages = {
            "pricing page (no data), S3": "/pricing/",
            "gallery, S3": f"/w/{workspace.slug}/generations/",
        }
        timings.update(_measure(s3, s3_pages, cookie, args.requests))
    finally:
        moto.stop()

    static = timings["pricing page (no data)"]
    gallery = timings[f"gallery, {args.generations:,} generations"]
    detail = timings["a generation's page"]
    s3_static = timings["pricing page (no data), S3"]
    s3_gallery = timings["gallery, S3"]
    report(
        "pages",
        [
            {"what": "pricing page (no data), median", "value": static * 1000, "unit": "ms"},
            {
                "what": f"gallery with {args.generations:,} generations, median",
                "value": gallery * 1000,
                "unit": "ms",
                "ratio": gallery / static,
                "goal": 3.0,
                "higher_is_better": False,
            },
            {
                "what": "a generation's page, median",
                "value": detail * 1000,
                "unit": "ms",
                "ratio": detail / static,
                "goal": 2.0,
                "higher_is_better": False,
            },
            {"what": "pricing page, S3 storage, median", "value": s3_static * 1000, "unit": "ms"},
            {
                "what": "gallery with presigned S3 links, median",
                "value": s3_gallery * 1000,
                "unit": "ms",
                "ratio": s3_gallery / s3_static,
                "goal": 3.0,
                "higher_is_better": False,
            },
        ],
    )


def _measure(
    env: dict[str, str], pages: dict[str, str], cookie: str, requests_each: int
) -> dict[str, float]:
    """The median time of each page from a production server (2 workers) run with `env`."""
    import requests

    port = free_port()
    server = subprocess.Popen(
        production_server(port, workers=2),
        cwd=ROOT,
        env={**os.environ, **env},
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    client = requests.Session()
    client.headers["Cookie"] = cookie
    timings: dict[str, float] = {}
    try:
        wait_for(base + "/healthz")
        for label, path in pages.items():
            for _ in range(5):  # warm up both workers
                response = client.get(base + path, timeout=30)
                assert response.status_code == 200, (path, response.status_code)
            samples = []
            for _ in range(requests_each):
                started = time.perf_counter()
                response = client.get(base + path, timeout=30)
                samples.append(time.perf_counter() - started)
                assert response.status_code == 200
            timings[label] = median(samples)
    finally:
        stop_server(server)
    return timings


if __name__ == "__main__":
    main()
