"""The whole path, over real HTTP to the fake Segmind, with S3 on moto's server."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import requests

from accounts.models import Workspace
from billing import wallets
from billing.models import Phase as TransferPhase
from billing.models import Transfer
from generations import media, storage
from generations.fake_segmind import FakeSegmind
from generations.models import Phase, Status
from tests.generations.helpers import finish, submit

pytestmark = pytest.mark.django_db


def test_a_prompt_becomes_a_stored_playable_video_charged_once(
    fake: FakeSegmind, mode: str, s3: Any, studio: Workspace, settings: Any
) -> None:
    generation = submit(studio, frames=31, fps=24, steps=20)
    assert generation.phase == Phase.SUBMITTING  # a slot was free: it started at once
    assert wallets.balance(studio) == wallets.Balance(available=1000 - 16, held=16, owed=0)

    generation = finish(generation)
    assert generation.status == Status.SUCCEEDED
    assert generation.upstream_mode == mode
    assert generation.upstream_cost_usd is not None
    assert generation.video_seconds == pytest.approx(31 / 24, abs=0.05)

    bucket = settings.AWS_STORAGE_BUCKET_NAME
    body = s3.get_object(Bucket=bucket, Key=generation.video_key)["Body"].read()
    assert len(body) == generation.video_bytes
    with tempfile.TemporaryDirectory() as folder:
        video = Path(folder) / "v.mp4"
        video.write_bytes(body)
        assert media.looks_like_mp4(video)
        assert media.duration_seconds(video) == pytest.approx(31 / 24, abs=0.05)
    poster = s3.get_object(Bucket=bucket, Key=generation.poster_key)["Body"].read()
    assert poster[:3] == b"\xff\xd8\xff"  # a JPEG

    captures = Transfer.objects.filter(pending_id=generation.hold_id)
    assert [(t.phase, t.amount) for t in captures] == [(TransferPhase.POST, 16)]
    assert wallets.balance(studio) == wallets.Balance(available=1000 - 16, held=0, owed=0)
    posts = fake.calls("submit" if mode == "v2" else "v1")
    assert len(posts) == 1

    url = storage.signed_url(generation.video_key, filename="fox.mp4")
    assert "X-Amz-Expires=900" in url
    fetched = requests.get(url, timeout=10)
    assert fetched.status_code == 200
    assert fetched.content == body
    assert 'filename="fox.mp4"' in fetched.headers["content-disposition"]
