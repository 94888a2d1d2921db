"""Reading stored videos back."""

from __future__ import annotations

import io
import pickle
import threading
from typing import Any

import pytest
import requests
from django.core.files.storage import default_storage

from generations import storage
from mochi_site import streaming


@pytest.mark.django_db
def test_a_stored_s3_object_is_read_as_it_arrives(s3: Any, tmp_path: Any) -> None:
    source = tmp_path / "v.mp4"
    source.write_bytes(b"\0" * (3 * streaming.CHUNK_BYTES + 5))
    storage.save("workspaces/1/generations/x.mp4", source)
    stream = storage.open_stream("workspaces/1/generations/x.mp4")
    assert not isinstance(stream, io.BytesIO)  # botocore's streaming body, not a download
    parts = list(streaming.chunks(lambda: stream))
    assert b"".join(parts) == source.read_bytes()
    assert len(parts) == 4


@pytest.mark.django_db
def test_requests_in_threads_of_their_own_share_one_s3_connection(s3: Any, tmp_path: Any) -> None:
    """ASGI runs each request in a new thread: signing a link there must not build a new
    boto3 connection (parsing S3's service model each time), and the link must work."""
    source = tmp_path / "v.mp4"
    source.write_bytes(b"video bytes")
    storage.save("workspaces/1/generations/y.mp4", source)
    connections: list[Any] = []
    links: list[str] = []

    def request() -> None:
        connections.append(default_storage.connection)  # type: ignore[attr-defined]
        links.append(storage.signed_url("workspaces/1/generations/y.mp4"))

    threads = [threading.Thread(target=request) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(connections) == 6
    assert all(connection is connections[0] for connection in connections)
    for link in links:
        assert requests.get(link, timeout=10).content == b"video bytes"


@pytest.mark.django_db
def test_a_pickled_s3_storage_connects_again(s3: Any) -> None:
    default_storage.connection  # type: ignore[attr-defined]  # noqa: B018 - made before pickling
    pickled = pickle.dumps(default_storage._wrapped)  # type: ignore[attr-defined]
    copy = pickle.loads(pickled)  # noqa: S301 - the bytes just made above
    assert copy.connection is not default_storage.connection  # type: ignore[attr-defined]
    assert copy.url("k.mp4", expire=60).split("?")[0].endswith("/k.mp4")
