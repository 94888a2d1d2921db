"""Where videos and posters live, and the short-lived links that read them.

Objects are private. With S3 (`AWS_STORAGE_BUCKET_NAME`) a link is a presigned
URL; with the local media folder it is a signed link to `serve_file`, which
checks the signature and its age. Either way a link lives at most
`SIGNED_URL_SECONDS` (15 minutes) and is only made after the access check.
Rows store keys, never URLs.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core import signing
from django.core.files import File
from django.core.files.storage import default_storage
from django.urls import reverse

if TYPE_CHECKING:
    from generations.models import Generation

_SALT = "generations.storage.file"


def video_key(generation: Generation) -> str:
    return f"workspaces/{generation.workspace_id}/generations/{generation.pk}.mp4"


def poster_key(generation: Generation) -> str:
    return f"workspaces/{generation.workspace_id}/generations/{generation.pk}.jpg"


def save(key: str, path: Path) -> None:
    """Store the file at `path` under `key`, replacing an earlier attempt's object."""
    if not settings.AWS_STORAGE_BUCKET_NAME and default_storage.exists(key):
        default_storage.delete(key)  # the local folder would otherwise pick another name
    with open(path, "rb") as handle:
        stored = default_storage.save(key, File(handle, name=key))
    if stored != key:
        raise OSError(f"storage saved {key} as {stored}")


def download(key: str, path: Path) -> None:
    """Copy the object `key` into the file at `path`, a chunk at a time."""
    with default_storage.open(key, "rb") as source, open(path, "wb") as target:
        shutil.copyfileobj(source, target, 1024 * 1024)


def exists(key: str) -> bool:
    return bool(key) and default_storage.exists(key)


def open_stream(key: str) -> Any:
    """A file-like reading `key` as it arrives: `.read(n)` holds at most `n` bytes.
    (Opening through the storage would download an S3 object whole first.)"""
    if settings.AWS_STORAGE_BUCKET_NAME:
        bucket = default_storage.bucket  # type: ignore[attr-defined]
        return bucket.Object(key).get()["Body"]
    return default_storage.open(key, "rb")


def delete(*keys: str) -> None:
    for key in keys:
        if key:
            default_storage.delete(key)


def download_name(prompt: str) -> str:
    """A file name from the prompt: `a-red-fox-in-the-snow.mp4`."""
    words = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:60].rstrip("-")
    return f"{words or 'mochi-video'}.mp4"


def signed_url(key: str, *, filename: str | None = None) -> str:
    """A link that reads `key` for the next SIGNED_URL_SECONDS (absolute for S3, a path
    on this site otherwise); with `filename`, browsers download it under that name."""
    if settings.AWS_STORAGE_BUCKET_NAME:
        parameters = (
            {"ResponseContentDisposition": f'attachment; filename="{filename}"'}
            if filename
            else None
        )
        url: str = default_storage.url(  # type: ignore[call-arg]
            key, parameters=parameters, expire=settings.SIGNED_URL_SECONDS
        )
        return url
    token = signing.dumps({"k": key, "f": filename or ""}, salt=_SALT)
    return reverse("serve_file", args=[token])


def signed_urls(keys: Sequence[str]) -> list[str]:
    """`signed_url(key)` of each key, for a page of posters: locally with one signer and
    one `reverse()` for all of them (the link differs only by its token, which is made of
    characters a path keeps as they are)."""
    if settings.AWS_STORAGE_BUCKET_NAME:
        return [signed_url(key) for key in keys]
    signer = signing.TimestampSigner(salt=_SALT)
    head, _, tail = reverse("serve_file", args=["token"]).rpartition("token")
    return [f"{head}{signer.sign_object({'k': key, 'f': ''})}{tail}" for key in keys]


def unsign(token: str) -> tuple[str, str]:
    """The key and download name in a local link, if its signature is valid and fresh."""
    data = signing.loads(token, salt=_SALT, max_age=settings.SIGNED_URL_SECONDS)
    return str(data["k"]), str(data["f"])
