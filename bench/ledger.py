"""Ledger throughput on PostgreSQL: holds and captures per second, as a ratio to the
plain single-row `UPDATE … SET n = n + 1` loop with the same threads (the ceiling).

    python bench/ledger.py [--threads 8] [--seconds 5] [--wallets 100]
"""

from __future__ import annotations

import argparse
import random
import uuid

from bench.common import report, run_threads, setup_django


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--wallets", type=int, default=100)
    args = parser.parse_args()

    setup_django()
    from django.db import connection

    from accounts.models import User, Workspace
    from billing import wallets

    owner, _ = User.objects.get_or_create(email="bench-ledger@example.com")
    teams = list(Workspace.objects.filter(created_by=owner, kind="team").order_by("pk"))
    while len(teams) < args.wallets:
        teams.append(Workspace.objects.create_team(name=f"Bench {len(teams)}", owner=owner))
    teams = teams[: args.wallets]
    for team in teams:
        if wallets.balance(team).available < 10_000_000:
            wallets.grant(team, 100_000_000, key=f"bench:{uuid.uuid4()}")

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_counter")
        cursor.execute("CREATE TABLE bench_counter (id integer PRIMARY KEY, n bigint NOT NULL)")
        cursor.execute(
            "INSERT INTO bench_counter SELECT g, 0 FROM generate_series(1, %s) AS g",
            [args.wallets],
        )

    def update(row: int) -> int:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE bench_counter SET n = n + 1 WHERE id = %s", [row])
        return 1

    def spend(team: Workspace) -> int:
        key = f"bench:{uuid.uuid4()}"
        held = wallets.hold(team, 39, key=key)
        wallets.capture(held.pk, 30, key=key)
        return 2  # a hold and a capture

    rng = random.Random(7)
    results = []
    for label, pick_row, pick_team in (
        ("one hot wallet", lambda: 1, lambda: teams[0]),
        (
            f"spread over {args.wallets} wallets",
            lambda: rng.randint(1, args.wallets),
            lambda: rng.choice(teams),
        ),
    ):
        ceiling = run_threads(args.threads, args.seconds, lambda _i, p=pick_row: update(p()))
        ledger = run_threads(args.threads, args.seconds, lambda _i, p=pick_team: spend(p()))
        goal = 0.3 if label == "one hot wallet" else 0.5
        results += [
            {
                "what": f"baseline UPDATE n = n + 1, {label}",
                "value": ceiling,
                "unit": "ops/s",
            },
            {
                "what": f"ledger holds + captures, {label}",
                "value": ledger,
                "unit": "ops/s",
                "ratio": ledger / ceiling,
                "goal": goal,
            },
        ]
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_counter")
    report("ledger", results)


if __name__ == "__main__":
    main()
