"""Reading stored videos back."""

from __future__ import annotations

import io
from typing import Any

import pytest

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
