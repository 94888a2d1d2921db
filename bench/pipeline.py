"""The pipeline end to end with real workers, PostgreSQL, moto's S3 server and the fake
upstream at a fixed latency.

(a) 200 generations submitted at once across 20 workspaces: the makespan through the
    whole system, against 200 direct parallel calls to the fake (submit, poll, download:
    the way a script would call Segmind with no service in between); worker memory.
(b) submit -> upstream POST latency, p50 and p95 within (a)'s burst; p50 one submit at a
    time on idle workers.
(c) upstream done -> video available to the customer, p50, in the burst and one at a time.
(d) ingest of a 300 MB video against a plain boto3 upload of the same file to the same
    S3 server; peak memory of the ingest.

    python -m bench.pipeline [--count 200] [--workspaces 20] [--latency 5] [--workers 8]
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import DEFAULT_DATABASE, ROOT, median, percentile, report

POLL_SECONDS = 1


def _environment(
    fake_url: str, moto_url: str, bucket: str, database: str, latency: float
) -> dict[str, str]:
    return {
        "SEGMIND_TYPICAL_SECONDS": str(max(1, round(latency))),
        "DATABASE_URL": database,
        "SEGMIND_BASE_URL": fake_url,
        "SEGMIND_API_KEY": "bench-key",
        "SEGMIND_RPM": "100000",
        "SEGMIND_POLL_SECONDS": str(POLL_SECONDS),
        "MAX_RUNNING_PER_WORKSPACE": "10",
        "AWS_STORAGE_BUCKET_NAME": bucket,
        "AWS_S3_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "MAX_VIDEO_BYTES": str(400 * 1024 * 1024),
        "LOG_LEVEL": "WARNING",
    }


def _memory_mb(pids: list[int]) -> float:
    """The processes' memory: the sum of their proportional set sizes (PSS), which counts
    the pages forked workers share with their parent once, where RSS counts them in each."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 1024


def _in_sessions(sessions: set[int]) -> list[int]:
    """The processes of these sessions: each cluster was started in its own, so this is
    its main process, sentinel, pusher, monitor and workers (recycled ones included)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[3]) in sessions and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _cpu_seconds(sessions: set[int]) -> float:
    """CPU time (user + system) the sessions' processes have used so far, with that of
    their children that have ended (ffmpeg runs, recycled workers)."""
    ticks = 0
    for pid in _in_sessions(sessions):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        ticks += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


class _Peak:
    """Samples the summed memory (PSS) of the clusters' processes until stopped."""

    def __init__(self, sessions: set[int]) -> None:
        self.sessions, self.done = sessions, threading.Event()
        self.peak, self.processes = 0.0, 0
        self._sample_once()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample_once(self) -> None:
        pids = _in_sessions(self.sessions)
        self.processes = max(self.processes, len(pids))
        self.peak = max(self.peak, _memory_mb(pids))

    def _sample(self) -> None:
        while not self.done.is_set():
            self._sample_once()
            time.sleep(0.2)

    def stop(self) -> float:
        self.done.set()
        return self.peak


def _wait_until_ready(sessions: set[int], processes: int, timeout: float = 120) -> None:
    """Until every cluster has forked its workers (a qcluster with N workers runs N + 4
    processes): timing starts with the workers ready, however slowly they start."""
    deadline = time.monotonic() + timeout
    while len(_in_sessions(sessions)) < processes:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the clusters did not start {processes} processes in {timeout} s")
        time.sleep(0.2)
    time.sleep(1)  # the workers connect and the pushers make their first pass


def direct_calls(fake_url: str, count: int, frames: int, steps: int) -> float:
    """200 parallel scripts calling the upstream directly: submit, poll, download."""
    import requests

    def one(n: int) -> None:
        session = requests.Session()
        session.headers["x-api-key"] = "bench-key"
        body = {"prompt": f"direct {n}", "frames": frames, "steps": steps, "fps": 16, "seed": n}
        request_id = session.post(f"{fake_url}/v2/mochi-1", json=body, timeout=30).json()[
            "request_id"
        ]
        while True:
            time.sleep(POLL_SECONDS)
            state = session.get(f"{fake_url}/v2/requests/{request_id}/status", timeout=30).json()
            if state["status"] == "COMPLETED":
                break
        output = session.get(f"{fake_url}/v2/requests/{request_id}", timeout=30).json()["output"]
        with session.get(output, stream=True, timeout=60) as video:
            for _ in video.iter_content(1024 * 1024):
                pass

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=count) as pool:
        list(pool.map(one, range(count)))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--workspaces", type=int, default=20)
    parser.add_argument("--latency", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=8, help="worker processes in all")
    parser.add_argument("--skip-big", action="store_true", help="skip (d), the 300 MB ingest")
    args = parser.parse_args()

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    from moto.server import ThreadedMotoServer

    # moto's server logs every request through werkzeug: keep the report readable.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    moto_url = "http://{}:{}".format(*moto.get_host_and_port())
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    database = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE)

    sys.path.insert(0, str(ROOT))
    from generations.fake_segmind import FakeSegmind

    fake = FakeSegmind(latency=args.latency).start()
    env = _environment(fake.url, moto_url, bucket, database, args.latency)
    os.environ.update(env)

    from bench.common import setup_django

    setup_django()
    import boto3
    from django.core.cache import cache

    from accounts.models import User, Workspace
    from billing import wallets
    from generations import services
    from generations.models import TERMINAL_PHASES, Generation, Phase
    from generations.params import parse_params

    s3 = boto3.client(
        "s3",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    s3.create_bucket(Bucket=bucket)

    owner, _ = User.objects.get_or_create(email="bench-pipeline@example.com")
    # Start from a fresh history, as a new deployment does (SEGMIND_TYPICAL_SECONDS): the
    # poll rhythm follows the upstream durations measured lately, and those of an earlier
    # run (on a busier machine, at another latency) would set this one's.
    Generation.objects.filter(workspace__created_by=owner).delete()
    cache.delete_many([f"generations:typical-seconds:{mode}" for mode in ("v1", "v2")])
    run = uuid.uuid4().hex[:6]
    # Fresh workspaces each run: nothing left over from an interrupted run takes a slot.
    teams = [
        Workspace.objects.create_team(name=f"Pipeline {run} {n}", owner=owner)
        for n in range(args.workspaces)
    ]
    for team in teams:
        wallets.grant(team, 100_000, key=f"bench:{team.pk}")

    per_cluster = 4
    clusters = []
    for _ in range(max(1, args.workers // per_cluster)):
        clusters.append(
            subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"],
                cwd=ROOT,
                env={**os.environ, **env, "QCLUSTER_WORKERS": str(per_cluster)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
    sessions = {cluster.pid for cluster in clusters}
    _wait_until_ready(sessions, len(clusters) * (per_cluster + 4))
    memory = _Peak(sessions)
    cpu_before = _cpu_seconds(sessions)
    frames, steps = 31, 20
    try:
        # (a) and (b), (c): everything submitted at once.
        fake.reset()
        started = time.perf_counter()
        submitted: list[uuid.UUID] = []
        lock = threading.Lock()

        def submit(n: int) -> None:
            team = teams[n % len(teams)]
            membership = team.memberships.get(role="owner")
            generation = services.submit_generation(
                workspace=team,
                params=parse_params(
                    {"prompt": f"bench {run} {n}", "frames": frames, "steps": steps, "seed": n}
                ),
                user=owner,
                membership=membership,
            )
            with lock:
                submitted.append(generation.pk)
            from django.db import connection

            connection.close()

        with ThreadPoolExecutor(max_workers=args.workspaces) as pool:
            list(pool.map(submit, range(args.count)))
        last_report = 0.0
        while True:
            unfinished = (
                Generation.objects.filter(pk__in=submitted)
                .exclude(phase__in=[Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELED])
                .values_list("phase", flat=True)
            )
            phases = list(unfinished)
            if not phases:
                break
            if time.perf_counter() - last_report > 5:
                last_report = time.perf_counter()
                counts = {p: phases.count(p) for p in set(phases)}
                print(f"  {time.perf_counter() - started:5.1f} s: {counts}", file=sys.stderr)
            time.sleep(0.2)
        system = time.perf_counter() - started
        done = list(Generation.objects.filter(pk__in=submitted))
        succeeded = [g for g in done if g.phase == Phase.SUCCEEDED]

        posts = {c["request_id"]: c for c in fake.calls("submit") if "request_id" in c}
        jobs = {j.params["prompt"]: j for j in fake.state.jobs.values()}
        post_latency = []
        available_after = []
        for generation in succeeded:
            job = jobs.get(generation.prompt)
            if job is None:
                continue
            post = posts.get(job.id)
            if post:
                post_latency.append(post["at"] - generation.created_at.timestamp())
            assert generation.finished_at is not None
            available_after.append(generation.finished_at.timestamp() - (job.created + job.latency))
        worker_peak = memory.stop()
        worker_cpu = _cpu_seconds(sessions) - cpu_before

        # (b) again with nothing else to do: one submit at a time on idle workers.
        idle_latency = []
        alone = []
        for n in range(10):
            prompt = f"bench {run} alone {n}"
            generation = services.submit_generation(
                workspace=teams[n % len(teams)],
                params=parse_params({"prompt": prompt, "frames": frames, "steps": steps}),
                user=owner,
                membership=teams[n % len(teams)].memberships.get(role="owner"),
            )
            alone.append(generation.pk)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                posted = [
                    c
                    for c in fake.calls("submit")
                    if c.get("request_id") in fake.state.jobs
                    and fake.state.jobs[c["request_id"]].params["prompt"] == prompt
                ]
                if posted:
                    idle_latency.append(posted[0]["at"] - generation.created_at.timestamp())
                    break
                time.sleep(0.01)
        while Generation.objects.filter(pk__in=alone).exclude(phase__in=TERMINAL_PHASES).exists():
            time.sleep(0.2)
        jobs = {j.params["prompt"]: j for j in list(fake.state.jobs.values())}
        idle_available = [
            g.finished_at.timestamp() - (jobs[g.prompt].created + jobs[g.prompt].latency)
            for g in Generation.objects.filter(pk__in=alone, phase=Phase.SUCCEEDED)
            if g.finished_at and g.prompt in jobs
        ]

        direct = direct_calls(fake.url, args.count, frames, steps)
        results: list[dict[str, Any]] = [
            {
                "what": f"(a) direct: {args.count} parallel scripts to the fake",
                "value": direct,
                "unit": "s",
            },
            {
                "what": f"(a) through Mochi Studio ({len(succeeded)}/{args.count} succeeded)",
                "value": system,
                "unit": "s",
                "ratio": system / direct,
                "goal": 1.3,
                "higher_is_better": False,
            },
            {
                "what": f"(a) worker memory, peak PSS of {memory.processes} processes",
                "value": worker_peak,
                "unit": "MB",
            },
            {
                "what": "(a) worker CPU (with ffmpeg) per generation",
                "value": worker_cpu / max(len(succeeded), 1) * 1000,
                "unit": "ms",
            },
            {
                "what": "(b) submit -> upstream POST, p50",
                "value": median(post_latency) * 1000,
                "unit": "ms",
                "ratio": median(post_latency) / 0.3,
                "goal": 1.0,
                "higher_is_better": False,
            },
            {
                "what": "(b) submit -> upstream POST, p95",
                "value": percentile(post_latency, 95) * 1000,
                "unit": "ms",
            },
            {
                "what": "(b) the same, one submit at a time on idle workers, p50",
                "value": median(idle_latency) * 1000,
                "unit": "ms",
                "ratio": median(idle_latency) / 0.3,
                "goal": 1.0,
                "higher_is_better": False,
            },
            {
                "what": "(c) upstream done -> video available, p50",
                "value": median(available_after),
                "unit": "s",
                "ratio": median(available_after) / (2 + POLL_SECONDS),
                "goal": 1.0,
                "higher_is_better": False,
            },
            {
                "what": "(c) the same, for the one-at-a-time submits, p50",
                "value": median(idle_available),
                "unit": "s",
                "ratio": median(idle_available) / (2 + POLL_SECONDS),
                "goal": 1.0,
                "higher_is_better": False,
            },
        ]

        if not args.skip_big:
            memory = _Peak(sessions)
            results += _big_ingest(teams[0], owner, s3, bucket)
            results.append(
                {
                    "what": "(d) worker memory during it, peak PSS",
                    "value": memory.stop(),
                    "unit": "MB",
                }
            )
        report("pipeline", results)
    finally:
        for cluster in clusters:
            os.killpg(cluster.pid, signal.SIGKILL)
        fake.stop()
        moto.stop()


def _big_ingest(team: Any, owner: Any, s3: Any, bucket: str) -> list[dict[str, Any]]:
    """(d): the ingest step of a 300 MB video, timed from its start to the video being
    available, against boto3 uploading the same bytes to the same S3 server."""
    from generations import services
    from generations.models import Generation, Phase
    from generations.params import parse_params

    membership = team.memberships.get(role="owner")
    generation = services.submit_generation(
        workspace=team,
        params=parse_params(
            {"prompt": "bench big [fault:big:300@download]", "frames": 13, "steps": 10}
        ),
        user=owner,
        membership=membership,
    )
    while True:
        generation.refresh_from_db()
        if generation.is_terminal:
            break
        time.sleep(0.2)
    assert generation.phase == Phase.SUCCEEDED, generation.error_message
    assert generation.ingest_started_at
    assert generation.finished_at
    ingest = (generation.finished_at - generation.ingest_started_at).total_seconds()
    size = generation.video_bytes or 0

    with tempfile.NamedTemporaryFile(suffix=".mp4") as copy:
        s3.download_fileobj(bucket, generation.video_key, copy)
        copy.flush()
        started = time.perf_counter()
        s3.upload_file(copy.name, bucket, f"bench/plain-{uuid.uuid4()}.mp4")
        plain = time.perf_counter() - started
    Generation.objects.filter(pk=generation.pk).update(deleted_at=None)
    return [
        {
            "what": "(d) plain boto3 upload of the same 300 MB",
            "value": size / plain / 1e6,
            "unit": "MB/s",
        },
        {
            "what": "(d) ingest: download, check, poster, store, succeed",
            "value": size / ingest / 1e6,
            "unit": "MB/s",
            "ratio": plain / ingest,
            "goal": 0.7,
        },
    ]


if __name__ == "__main__":
    main()
