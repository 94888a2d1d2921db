"""The web server's entry point: ASGI, with pooled PostgreSQL connections."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.processes import ROOT, environment, manage

SHOW = (
    "from django.conf import settings; import json; db = settings.DATABASES['default']; "
    "print(json.dumps({'age': db['CONN_MAX_AGE'], 'pool': db.get('OPTIONS', {}).get('pool')}))"
)
POSTGRES = {"DATABASE_URL": "postgres://mochi@127.0.0.1:5432/mochi"}  # not connected to


def test_the_web_server_borrows_connections_from_a_pool_instead_of_keeping_them() -> None:
    result = subprocess.run(
        [sys.executable, "-c", f"import mochi_site.asgi; {SHOW}"],
        cwd=ROOT,
        env=environment({**POSTGRES, "DATABASE_POOL_SIZE": "7"}),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"age": 0, "pool": {"min_size": 1, "max_size": 7}}


def test_workers_and_commands_keep_persistent_connections() -> None:
    result = manage("shell", "-c", SHOW, env=POSTGRES)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"age": 60, "pool": None}
