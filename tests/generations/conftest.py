from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from accounts.models import Membership, Workspace
from billing import wallets
from generations import upstream
from generations.fake_segmind import FakeSegmind
from tests.conftest import make_user
from tests.support.webhook_receiver import Receiver, SocketGuard, guarded_sockets


@pytest.fixture
def fake(settings: Any) -> Iterator[FakeSegmind]:
    """The fake Segmind on a free port, with jobs that take 0.1 s; the app points at it."""
    with FakeSegmind(latency=0.1, timeout_seconds=3) as server:
        server.state.rate_limit_reset_seconds = 0.3
        settings.SEGMIND_BASE_URL = server.url
        settings.SEGMIND_API_KEY = "test-key"
        settings.SEGMIND_POLL_SECONDS = 0.1
        settings.SEGMIND_TYPICAL_SECONDS = 0.2
        settings.SEGMIND_RPM = 100_000  # tests about the rate set their own
        settings.SEGMIND_V1_TIMEOUT_SECONDS = 2
        settings.SEGMIND_READ_TIMEOUT_SECONDS = 1
        settings.RETRY_BACKOFF_SECONDS = 0.05
        upstream.reset_sessions()
        yield server
    upstream.reset_sessions()


@pytest.fixture(params=["v2", "v1"])
def mode(request: pytest.FixtureRequest, settings: Any) -> str:
    settings.SEGMIND_API_MODE = request.param
    return str(request.param)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's S3 server over real HTTP, for the whole session."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_server: str, settings: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Private S3 storage in a fresh bucket on the moto server; yields a boto3 client."""
    import boto3
    from botocore.config import Config

    bucket = f"mochi-test-{abs(hash(request.node.nodeid)) % 10**10}"
    client = boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(s3={"addressing_style": "path"}),
    )
    client.create_bucket(Bucket=bucket)
    settings.AWS_STORAGE_BUCKET_NAME = bucket
    settings.AWS_S3_ENDPOINT_URL = moto_server
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "generations.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": moto_server,
                "region_name": "us-east-1",
                "access_key": "testing",
                "secret_key": "testing",
                "default_acl": None,
                "querystring_auth": True,
                "querystring_expire": 900,
                "file_overwrite": True,
                "addressing_style": "path",
                "client_config": Config(
                    signature_version="s3v4",
                    s3={"addressing_style": "path"},
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                ),
            },
        },
    }
    yield client
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    for item in listed:
        client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)


@pytest.fixture
def studio(db: None) -> Workspace:
    """A team workspace with 1,000 credits whose owner is alice."""
    alice = make_user("alice@example.com")
    workspace = Workspace.objects.create_team(name="Studio", owner=alice)
    wallets.grant(workspace, 1000, key="test-funding")
    return workspace


def owner_of(workspace: Workspace) -> Membership:
    return workspace.memberships.get(role="owner")


@pytest.fixture
def hooks(settings: Any) -> Iterator[Receiver]:
    """A customer's webhook endpoint on loopback (so private addresses are allowed)."""
    settings.WEBHOOK_ALLOW_PRIVATE_IPS = True
    with Receiver() as receiver:
        yield receiver


@pytest.fixture
def sockets() -> Iterator[SocketGuard]:
    """Every outgoing connection is recorded and refused (unless the test routes it)."""
    with guarded_sockets() as guard:
        yield guard
