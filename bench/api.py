"""The REST API under load: 32 concurrent clients against the production server with
production settings, PostgreSQL and Redis, each endpoint as a ratio to a bare
authenticated REST framework endpoint that answers a constant on the same server in the
same run (the ceiling: authentication, throttling and rendering, no work).

    GET  /api/v1/generations/<id>   one generation
    GET  /api/v1/generations        the first page, in a workspace of 100,000 generations
    POST /api/v1/generations        with an Idempotency-Key each; every client is an app of
                                    its own workspace (as real integrations are)

    python -m bench.api [--generations 100000] [--clients 32] [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

from bench.common import (
    ROOT,
    free_port,
    median,
    percentile,
    production_server,
    report,
    seed_generations,
    setup_django,
    stop_server,
    wait_for,
)

PRODUCTION = {
    "DJANGO_DEBUG": "False",
    "DJANGO_SECRET_KEY": "bench-" + "x" * 50,
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    "DJANGO_SECURE_SSL_REDIRECT": "False",
    "DJANGO_SETTINGS_MODULE": "bench.settings",
    "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"),
    "API_RATE_PER_KEY": "1000000/min",
    "API_RATE_PER_WORKSPACE": "1000000/min",
    "LOG_LEVEL": "WARNING",
}


def _seed(count: int) -> tuple[str, str, list[str]]:
    """A workspace with `count` generations and its key; 32 small workspaces for creates."""
    from accounts.models import Scope, User, Workspace
    from accounts.services import create_api_key
    from billing import wallets
    from generations.models import Generation

    owner, _ = User.objects.get_or_create(email="bench-api@example.com")
    owner.emailaddress_set.update_or_create(
        email=owner.email, defaults={"verified": True, "primary": True}
    )
    workspace = Workspace.objects.filter(created_by=owner, kind="team", name="API bench").first()
    if workspace is None:
        workspace = Workspace.objects.create_team(name="API bench", owner=owner)
    seed_generations(workspace, owner, count)
    one = Generation.objects.filter(workspace=workspace).order_by("-created_at").first()
    assert one is not None
    membership = workspace.memberships.get(user=owner)
    _, key = create_api_key(actor=membership, name="bench", scopes=list(Scope.values))

    create_keys = []
    for n in range(32):
        team = Workspace.objects.filter(created_by=owner, name=f"API bench {n}").first()
        if team is None:
            team = Workspace.objects.create_team(name=f"API bench {n}", owner=owner)
        wallets.grant(team, 10_000_000, key=f"bench-api-{team.pk}-{uuid.uuid4()}")
        member = team.memberships.get(user=owner)
        create_keys.append(create_api_key(actor=member, name="bench", scopes=list(Scope.values))[1])
    return key, str(one.pk), create_keys


class Load:
    """`clients` threads with one keep-alive connection each, for `seconds`."""

    def __init__(self, port: int, clients: int, seconds: float) -> None:
        self.port, self.clients, self.seconds = port, clients, seconds

    def run(
        self, method: str, path: str, keys: list[str], body: dict[str, Any] | None = None
    ) -> tuple[float, list[float], int]:
        latencies: list[list[float]] = [[] for _ in range(self.clients)]
        errors = [0] * self.clients
        barrier = threading.Barrier(self.clients + 1)
        stop = [0.0]

        def client(index: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            headers = {
                "Authorization": f"Bearer {keys[index % len(keys)]}",
                "Content-Type": "application/json",
            }
            payload = json.dumps(body).encode() if body is not None else None
            barrier.wait()
            while time.perf_counter() < stop[0]:
                if body is not None:
                    headers["Idempotency-Key"] = uuid.uuid4().hex
                started = time.perf_counter()
                conn.request(method, path, body=payload, headers=headers)
                response = conn.getresponse()
                response.read()
                latencies[index].append(time.perf_counter() - started)
                if response.status >= 400:
                    errors[index] += 1
            conn.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(self.clients)]
        for thread in threads:
            thread.start()
        stop[0] = time.perf_counter() + self.seconds
        started = time.perf_counter()
        barrier.wait()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        flat = [x for row in latencies for x in row]
        return len(flat) / elapsed, flat, sum(errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--generations", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5, help="Per case and round.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="Server worker processes.")
    args = parser.parse_args()

    os.environ.update(PRODUCTION)
    setup_django()
    key, generation_id, create_keys = _seed(args.generations)

    port = free_port()
    server = subprocess.Popen(
        production_server(port, workers=args.workers),
        cwd=ROOT,
        env={**os.environ, **PRODUCTION},
        start_new_session=True,
    )
    load = Load(port, args.clients, args.seconds)
    cases = {
        "constant (the ceiling)": ("GET", "/bench/constant", [key], None),
        "GET a generation": ("GET", f"/api/v1/generations/{generation_id}", [key], None),
        f"GET the list, {args.generations:,} generations": (
            "GET",
            "/api/v1/generations",
            [key],
            None,
        ),
        "POST a generation (Idempotency-Key)": (
            "POST",
            "/api/v1/generations",
            create_keys,
            {"prompt": "a red fox running through snow", "frames": 31, "steps": 20},
        ),
    }
    rates: dict[str, list[float]] = {label: [] for label in cases}
    latencies: dict[str, list[float]] = {label: [] for label in cases}
    errors: dict[str, int] = dict.fromkeys(cases, 0)
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz")
        for method, path, keys, body in cases.values():
            Load(port, args.clients, 2).run(method, path, keys, body)  # warm up
        # Rounds that take turns, so that a change in the machine's load hits all alike.
        for round_ in range(args.rounds):
            for label, (method, path, keys, body) in cases.items():
                rate, times, failed = load.run(method, path, keys, body)
                rates[label].append(rate)
                latencies[label] += times
                errors[label] += failed
                print(f"  round {round_ + 1}, {label}: {rate:,.0f}/s", file=sys.stderr)
    finally:
        stop_server(server)
    results = {
        label: (median(rates[label]), percentile(latencies[label], 99) * 1000, errors[label])
        for label in cases
    }

    ceiling = results["constant (the ceiling)"][0]
    goals = {"GET a generation": 0.6, "POST a generation (Idempotency-Key)": 0.3}
    rows: list[dict[str, Any]] = []
    for label, (rate, p99, errors) in results.items():
        goal = goals.get(label, 0.4 if label.startswith("GET the list") else None)
        row: dict[str, Any] = {"what": f"{label}, requests/s", "value": rate, "unit": "req/s"}
        if label != "constant (the ceiling)":
            row.update(ratio=rate / ceiling, goal=goal)
        rows.append(row)
        rows.append({"what": f"{label}, p99", "value": p99, "unit": "ms"})
        if errors:
            rows.append({"what": f"{label}, error answers", "value": errors, "unit": ""})
    report("api", rows)


if __name__ == "__main__":
    main()
