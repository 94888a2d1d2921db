from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.test import Client, override_settings

from tests.support.processes import python

pytestmark = pytest.mark.django_db


def test_it_reports_healthy(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["down"] == []
    assert set(body["checks"]) == {"database", "queue", "storage"}
    assert body["checks"]["queue"]["queued"] == 0
    assert response["Cache-Control"].startswith("max-age=0")


def test_it_names_unwritable_storage(client: Client, tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with override_settings(MEDIA_ROOT=str(not_a_folder / "media")):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["down"] == ["storage"]


def test_it_answers_503_naming_the_database_when_it_is_unreachable() -> None:
    # A real process whose database does not answer (nothing listens on port 9).
    result = python(
        "from django.test import Client\n"
        "response = Client().get('/healthz')\n"
        "print(response.status_code)\n"
        "print(response.content.decode())\n",
        env={
            "DATABASE_URL": "postgres://postgres@127.0.0.1:9/mochi",
            "DJANGO_ALLOWED_HOSTS": "testserver",
            "LOG_LEVEL": "ERROR",
        },
    )
    assert result.returncode == 0, result.stderr
    status, body = result.stdout.strip().split("\n", 1)
    assert status == "503"
    report = json.loads(body)
    assert report["status"] == "unavailable"
    assert "database" in report["down"]
    assert report["checks"]["storage"]["ok"] is True
