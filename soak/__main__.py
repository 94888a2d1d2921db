"""`python -m soak` (`make soak`): the production stack under load and faults, then the
invariants that must hold.

Starts, on this machine: a fresh PostgreSQL database, gunicorn as the Docker image runs
it, two `qcluster` worker processes, moto's S3 server, the fake Segmind with random
faults and varied latency, and a fake Stripe whose events are delivered signed, shuffled
and duplicated. Locust (headless) plays the customers for `--minutes`; meanwhile a
worker cluster is killed with SIGKILL at random moments and started again. After the
load it drains the work and checks the ledger, the stored videos, the charges, the
payments and the load's own budgets; writes `soak-report/report.md` and `soak.png`; and
exits 1 on any violation.

    python -m soak [--minutes 10] [--users 100] [--fault-rate 0.1] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shlex
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import free_port, wait_for
from soak import checks, report
from soak.stack import (
    DEFAULT_DATABASE,
    ROOT,
    WorkerKiller,
    cluster,
    environment,
    recreate_database,
    web_server,
)

logger = logging.getLogger("soak")
PASSWORD = "soak test password 1"


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", 10)))
    parser.add_argument("--users", type=int, default=int(os.environ.get("SOAK_USERS", 100)))
    parser.add_argument("--fault-rate", type=float, default=0.1, help="share of upstream calls")
    parser.add_argument("--latency", type=float, default=6.0, help="upstream seconds per job")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED", 1)))
    parser.add_argument("--max-error-ratio", type=float, default=0.01)
    parser.add_argument("--max-p95-ratio", type=float, default=2.0, help="to the baseline page")
    parser.add_argument("--max-p95-ms", type=float, default=10_000.0)
    parser.add_argument("--p95-floor-ms", type=float, default=1000.0, help="always in budget")
    parser.add_argument("--drain-seconds", type=float, default=420.0)
    parser.add_argument("--report-dir", type=Path, default=ROOT / "soak-report")
    parser.add_argument("--database", default=os.environ.get("SOAK_DATABASE_URL", DEFAULT_DATABASE))
    return parser.parse_args()


def main() -> int:
    args = _arguments()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s soak: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    out: Path = args.report_dir
    (out / "logs").mkdir(parents=True, exist_ok=True)
    for old in out.glob("locust_*.csv"):
        old.unlink()
    sys.path.insert(0, str(ROOT))

    from moto.server import ThreadedMotoServer

    from generations.fake_segmind import FakeSegmind
    from tests.support.fake_stripe import FakeStripe

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    fake = FakeSegmind(
        latency=args.latency,
        latency_spread=0.5,
        fault_rate=args.fault_rate,
        seed=args.seed,
        timeout_seconds=15,  # past SEGMIND_READ_TIMEOUT_SECONDS: the client gives up first
    ).start()
    stripe = FakeStripe().__enter__()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = environment(
        database=args.database,
        port=port,
        segmind=fake.url,
        s3="http://{}:{}".format(*moto.get_host_and_port()),
        bucket=f"soak-{uuid.uuid4().hex[:8]}",
        stripe=stripe.url,
    )
    os.environ.update(env)
    processes = []
    try:
        accounts = _prepare(args, env, out)
        web = web_server(port, env, out / "logs" / "web.log").start()
        processes.append(web)
        wait_for(f"{base}/healthz")
        clusters = [cluster(n, env, out / "logs" / f"worker-{n}.log").start() for n in (1, 2)]
        processes += clusters
        time.sleep(8)  # a cluster that fails its system checks exits within seconds
        for process in processes:
            process.check_alive()
        return _run(args, base, accounts, clusters, fake, stripe, out)
    finally:
        for process in processes:
            process.stop()
        stripe.__exit__()
        fake.stop()
        moto.stop()


def _prepare(args: argparse.Namespace, env: dict[str, str], out: Path) -> Path:
    """A fresh database with the customers: web customers on their personal workspaces
    (verified emails), API clients with a key each; wallets of varied size, so some run
    dry and meet the 402."""
    recreate_database(args.database)
    import boto3
    import django
    from django.core.cache import cache
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)  # as the Docker image's build does
    cache.clear()  # rate-limit windows and typical durations of an earlier run
    boto3.client(
        "s3",
        endpoint_url=env["AWS_S3_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="soak",
        aws_secret_access_key="soak",
    ).create_bucket(Bucket=env["AWS_STORAGE_BUCKET_NAME"])

    from allauth.account.models import EmailAddress

    from accounts.models import Membership, Scope, User
    from accounts.services import create_api_key
    from billing import wallets

    chooser = random.Random(args.seed)
    api_clients = max(1, args.users // 5)
    accounts: list[dict[str, Any]] = []
    for n in range(args.users):
        kind = "api" if n < api_clients else "web"
        email = f"soak-{kind}-{n}@example.com"
        user = User.objects.create_user(email, PASSWORD)
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        workspace = user.personal_workspace
        credits = chooser.choice((0, 300, 1500, 1500, 4000))
        if credits:
            wallets.grant(workspace, credits, key=f"soak:{workspace.pk}")
        account = {
            "n": n,
            "kind": kind,
            "email": email,
            "password": PASSWORD,
            "slug": workspace.slug,
        }
        if kind == "api":
            membership = Membership.objects.get(user=user, workspace=workspace)
            _, account["api_key"] = create_api_key(
                actor=membership, name="Soak client", scopes=list(Scope.values)
            )
        accounts.append(account)
    path = out / "accounts.json"
    path.write_text(json.dumps(accounts))
    from django.db import connection

    connection.close()
    return path


class QueueSampler:
    """The operator's queue figures every five seconds, for the chart."""

    def __init__(self) -> None:
        self.samples: list[report.Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> QueueSampler:
        self._thread.start()
        return self

    def sample(self) -> report.Sample:
        from django.utils import timezone

        from ops.figures import generation_figures, queue_figures

        now = timezone.now()
        unfinished = generation_figures(now).unfinished
        sample = report.Sample(
            at=time.time(),
            ready_tasks=queue_figures(now).ready,
            queued=unfinished.get("queued", 0),
            running=sum(v for k, v in unfinished.items() if k != "queued"),
        )
        self.samples.append(sample)
        return sample

    def _run(self) -> None:
        from django.db import connection

        while not self._stop.wait(5):
            try:
                self.sample()
            except Exception:
                logger.exception("could not sample the queue")
        connection.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _run(
    args: argparse.Namespace,
    base: str,
    accounts: Path,
    clusters: list[Any],
    fake: Any,
    stripe: Any,
    out: Path,
) -> int:
    from soak import REPLAY_FAILED
    from soak.stripe_driver import StripeDriver

    started = time.time()
    driver = StripeDriver(stripe, f"{base}/stripe/webhook/", seed=args.seed).start()
    killer = WorkerKiller(clusters, seed=args.seed).start()
    sampler = QueueSampler().start()
    prefix = out / "locust"
    command = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "soak" / "locustfile.py"),
        "--headless", "--users", str(args.users), "--spawn-rate", "2",
        "--run-time", f"{round(args.minutes * 60)}s", "--host", base,
        "--csv", str(prefix), "--csv-full-history", "--only-summary",
        "--loglevel", "WARNING", "--exit-code-on-error", "0", "--stop-timeout", "15",
    ]  # fmt: skip
    logger.warning("load: %d customers for %.1f minutes against %s", args.users, args.minutes, base)
    with open(out / "logs" / "locust.log", "wb") as log:
        subprocess.run(
            command,
            cwd=ROOT,
            env={**os.environ, "SOAK_ACCOUNTS": str(accounts), "PYTHONPATH": str(ROOT)},
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )
    killer.stop()
    for process in clusters:  # a kill may have been the last thing the killer did
        if process.handle is None or process.handle.poll() is not None:
            process.start()
    logger.warning("load done; delivering what Stripe still owes and draining the work")
    driver.stop()
    drain_started = time.time()
    drained = _drain(args.drain_seconds)
    drain_seconds = time.time() - drain_started
    sampler.stop()
    logger.warning("drained in %.0f s (%s); checking", drain_seconds, "done" if drained else "NOT")

    from django.db.models import Count

    from generations.models import Generation

    stats = report.load_stats(prefix, REPLAY_FAILED)
    budgets = {
        "error_ratio": args.max_error_ratio,
        "p95_ms": args.max_p95_ms,
        "p95_ratio": args.max_p95_ratio,
        "p95_floor_ms": args.p95_floor_ms,
    }
    results = [
        checks.ledger_audit(),
        checks.nothing_unfinished(),
        checks.videos_stored(),
        checks.charges_match_work(),
        checks.payments_granted_once(stripe.state),
        checks.stripe_deliveries(dict(driver.counts)),
        checks.locust_budgets(stats, replay_name=REPLAY_FAILED, **budgets),
    ]
    outcomes = dict(Generation.objects.values_list("phase").annotate(n=Count("pk")))
    errors = dict(
        Generation.objects.exclude(error_code="").values_list("error_code").annotate(n=Count("pk"))
    )
    report.chart(
        out / "soak.png",
        report.load_history(prefix),
        sampler.samples,
        [kill.at for kill in killer.kills],
    )
    text = report.markdown(
        command=shlex.join(["python", "-m", "soak", *sys.argv[1:]]),
        settings={
            "Minutes of load": f"{args.minutes:g}",
            "Customers (Locust users)": f"{args.users} ({max(1, args.users // 5)} API clients)",
            "Web": "gunicorn, 3 workers (the Docker image's command), production settings",
            "Workers": "2 qcluster processes × 4 workers, ORM broker on PostgreSQL",
            "Upstream": f"fake Segmind v2, {args.latency:g} s ± 50 % per job, "
            f"{args.fault_rate:.0%} of calls faulted",
            "Seed": str(args.seed),
            "Ran": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        },
        checks=results,
        stats=stats,
        budgets=budgets,
        outcomes=outcomes,
        errors=errors,
        faults=fake.drawn(),
        kills=[(kill.at - started, kill.worker) for kill in killer.kills],
        stripe=dict(driver.counts),
        failures=report.load_failures(prefix),
        queue=sampler.samples,
        drain_seconds=drain_seconds,
    )
    (out / "report.md").write_text(text)
    print(text)
    print(f"\nReport: {out / 'report.md'}; chart: {out / 'soak.png'}")
    return 0 if all(check.ok for check in results) else 1


def _drain(seconds: float) -> bool:
    """Until nothing is queued or running and every Stripe event is processed."""
    from billing.models import StripeEvent
    from generations.models import TERMINAL_PHASES, Generation

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        unfinished = Generation.objects.exclude(phase__in=TERMINAL_PHASES).count()
        events = StripeEvent.objects.filter(processed_at__isnull=True).count()
        if not unfinished and not events:
            return True
        logger.warning("draining: %d generations unfinished, %d Stripe events", unfinished, events)
        time.sleep(5)
    return False


if __name__ == "__main__":
    sys.exit(main())
