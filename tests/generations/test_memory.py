"""Ingesting a 300 MB video streams it: the worker's memory grows by less than 50 MB."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from typing import Any

import pytest

from generations.fake_segmind import FakeSegmind
from tests.support.processes import ROOT, environment


def test_a_300_mb_video_is_ingested_with_bounded_memory(
    fake: FakeSegmind, s3: Any, settings: Any, moto_server: str
) -> None:
    fake.state.latency = 0.05
    with tempfile.TemporaryDirectory() as folder:
        env = environment(
            {
                "DATABASE_URL": f"sqlite:///{folder}/memory.sqlite3",
                "MEDIA_ROOT": folder,
                "SEGMIND_BASE_URL": fake.url,
                "SEGMIND_API_KEY": "test-key",
                "SEGMIND_RPM": "100000",
                "SEGMIND_POLL_SECONDS": "1",
                "SEGMIND_TYPICAL_SECONDS": "1",
                "MAX_VIDEO_BYTES": str(400 * 1024 * 1024),
                "AWS_STORAGE_BUCKET_NAME": settings.AWS_STORAGE_BUCKET_NAME,
                "AWS_S3_ENDPOINT_URL": moto_server,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "LOG_LEVEL": "ERROR",
            }
        )
        result = subprocess.run(
            [sys.executable, "-m", "tests.support.ingest_memory", "300"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["phase"] == "succeeded", report
    assert report["bytes"] >= 300 * 1024 * 1024
    assert report["peak_growth_mb"] < 50, report
    print(f"peak memory growth while ingesting 300 MB: {report['peak_growth_mb']:.1f} MB")
    head = s3.list_objects_v2(Bucket=settings.AWS_STORAGE_BUCKET_NAME)["Contents"]
    assert max(item["Size"] for item in head) >= 300 * 1024 * 1024


pytestmark = pytest.mark.django_db
