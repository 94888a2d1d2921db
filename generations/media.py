"""What we check and extract from a video file, with the ffmpeg that imageio-ffmpeg ships."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import imageio_ffmpeg

_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")


class BrokenVideo(Exception):
    pass


def ffmpeg() -> str:
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def looks_like_mp4(path: Path) -> bool:
    """An ISO media file starts with a box whose type (bytes 4–8) is `ftyp`."""
    with open(path, "rb") as handle:
        head = handle.read(12)
    return len(head) == 12 and head[4:8] == b"ftyp"


def duration_seconds(path: Path) -> float:
    """The container's duration, read from its header (no decoding)."""
    result = subprocess.run(  # noqa: S603 - a fixed binary and our own temp file
        [ffmpeg(), "-hide_banner", "-nostdin", "-i", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return _duration(result.stderr)


def make_poster(video: Path, poster: Path) -> float:
    """Write the first frame as a JPEG and return the video's duration, in one ffmpeg run;
    fails when the video cannot be decoded or has no duration."""
    result = subprocess.run(  # noqa: S603
        [
            ffmpeg(),
            "-hide_banner",
            "-nostdin",
            "-y",
            "-i",
            str(video),
            "-frames:v",
            "1",
            "-q:v",
            "4",
            str(poster),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0 or not poster.exists() or poster.stat().st_size == 0:
        raise BrokenVideo(result.stderr.strip()[-300:] or "could not decode a frame")
    return _duration(result.stderr)


def _duration(ffmpeg_output: str) -> float:
    match = _DURATION.search(ffmpeg_output)
    if not match:
        raise BrokenVideo("no duration in the video's header")
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
