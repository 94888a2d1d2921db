"""A fake Segmind Mochi 1 API: a real HTTP server on loopback for development, tests and demos.

It speaks both endpoints as DESIGN §2 describes them (v1 answers the video; v2 queues
a job to poll, whose result links to the MP4), checks `x-api-key` (any non-empty key
but `bad-key`), validates the parameters with Segmind's ranges, and answers real,
playable H.264 MP4s with the requested frames and fps (rendered by ffmpeg), with the
cost headers and metrics. Latency and faults are scriptable:

- per server: `latency` (seconds a job takes), `record_ttl` (v2 records expire);
- per prompt: markers such as `[fault:429]`, `[fault:500x2]` (the first two tries),
  `[fault:truncated@download]`, `[fault:failed]` (a v2 job that FAILS), `[latency:8]`;
  an HTTP error without `@endpoint` answers the POST (v2 submit or v1);
- per call: `POST /_admin/faults {"fault": "502", "endpoint": "submit", "times": 1}`;
- at random: `fault_rate` (0 to 1) draws a fault from `RANDOM_FAULTS` for that share of
  calls, and `latency_spread` varies each job's latency by up to that fraction either
  way, both from a generator seeded with `seed` (`drawn` counts what was drawn).

Faults: an HTTP status (400 401 403 404 406-credits 406-content-type 410 422 429 500
502 503 504), `timeout` (no answer until the client gives up), `reset` (the connection
drops), `truncated` and `notmp4` (a broken body), `failed` (v2: the job fails), and
`big:<MB>` (a valid MP4 padded to that size).

Not imported by any production code path: `python manage.py fake_segmind` runs it,
and the tests start it in-process.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from generations.media import ffmpeg

ENDPOINTS = ("submit", "status", "result", "download", "v1", "credits")
LIMITS = {"guidance_scale": (2, 10), "fps": (7, 30), "frames": (1, 160), "steps": (10, 75)}
INTEGERS = ("frames", "steps")
MARKER = re.compile(r"\[(fault|latency):([\w.:-]+?)(?:x(\d+))?(?:@(\w+))?\]")
COST_PER_FRAME_STEP = 0.266 / (52 * 30)  # Segmind's average call cost, for the defaults
PALETTES = [
    ("4338ca", "f59e0b", "ec4899"),
    ("0ea5e9", "22c55e", "fde047"),
    ("7c3aed", "06b6d4", "f472b6"),
    ("dc2626", "f97316", "facc15"),
    ("0f766e", "a3e635", "38bdf8"),
    ("1e3a8a", "9333ea", "f43f5e"),
    ("065f46", "10b981", "fef3c7"),
    ("be185d", "fb7185", "fde68a"),
]
GRADIENT_TYPES = ("spiral", "radial", "circular", "linear")
# What a random fault can be, per endpoint: the upstream's everyday failures.
RANDOM_FAULTS = {
    "submit": ("429", "500", "503", "timeout"),
    "v1": ("429", "500", "503", "timeout"),
    "status": ("429", "500", "502"),
    "result": ("500", "502"),
    "job": ("failed",),
    "download": ("500", "truncated"),
}


@dataclass
class Job:
    id: str
    params: dict[str, Any]
    created: float
    latency: float
    fails: bool = False


@dataclass
class Fault:
    fault: str
    endpoint: str
    times: int


@dataclass
class State:
    latency: float = 3.0
    record_ttl: float = 3600.0
    credits: float = 100.0
    timeout_seconds: float = 120.0
    rate_limit_reset_seconds: float = 2.0
    rpm: int = 0
    fault_rate: float = 0.0
    latency_spread: float = 0.0
    drawn: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    jobs: dict[str, Job] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    marker_uses: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    calls: list[dict[str, Any]] = field(default_factory=list)
    call_times: list[float] = field(default_factory=list)


class FakeSegmind:
    """`with FakeSegmind(latency=0.5) as fake: ... fake.url ...`"""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency: float = 3.0,
        record_ttl: float = 3600.0,
        rpm: int = 0,
        timeout_seconds: float = 120.0,
        quiet: bool = True,
        pretty: bool = False,
        fault_rate: float = 0.0,
        latency_spread: float = 0.0,
        seed: int | None = None,
    ) -> None:
        if not 0 <= fault_rate <= 1 or not 0 <= latency_spread < 1:
            raise ValueError("fault_rate must be within [0, 1] and latency_spread within [0, 1)")
        self.state = State(
            latency=latency,
            record_ttl=record_ttl,
            rpm=rpm,
            timeout_seconds=timeout_seconds,
            fault_rate=fault_rate,
            latency_spread=latency_spread,
        )
        self.random = random.Random(seed)  # noqa: S311 (faults and latency, not secrets)
        self.lock = threading.Lock()
        self.quiet = quiet
        # Demo videos are animated gradients coloured by the prompt; tests use ffmpeg's
        # much faster test pattern.
        self.pretty = pretty
        self.folder = Path(tempfile.mkdtemp(prefix="fake-segmind-"))
        self.videos: dict[tuple[int, float, int], Path] = {}
        handler = type("Handler", (_Handler,), {"fake": self})
        self.server = _Server((host, port), handler)
        self.server.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeSegmind:
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        if self.thread is not None:  # shutdown() waits for a loop that never started
            self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> FakeSegmind:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- Scripting (also over HTTP at /_admin/…) ---------------------------------------

    def add_fault(self, fault: str, endpoint: str = "submit", times: int = 1) -> None:
        with self.lock:
            self.state.faults.append(Fault(fault, endpoint, times))

    def reset(self) -> None:
        with self.lock:
            self.state.jobs.clear()
            self.state.faults.clear()
            self.state.marker_uses.clear()
            self.state.calls.clear()
            self.state.call_times.clear()
            self.state.drawn.clear()

    def calls(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [c for c in self.state.calls if endpoint in (None, c["endpoint"])]

    def take_fault(self, endpoint: str, prompt: str = "") -> str:
        """The fault to apply to this call, if any: scripted first, then prompt markers."""
        with self.lock:
            for fault in self.state.faults:
                if fault.endpoint in (endpoint, "any") and fault.times > 0:
                    fault.times -= 1
                    return fault.fault
            for kind, value, times, where in MARKER.findall(prompt):
                if kind != "fault":
                    continue
                target = where or _default_endpoint(value)
                # Without an @endpoint, an HTTP error answers the POST that creates the
                # work, whichever API version the app speaks (v2 submit or v1).
                posts = not where and target == "submit" and endpoint == "v1"
                if target != endpoint and not posts:
                    continue
                key = f"{prompt}|{value}|{target}"
                self.state.marker_uses[key] += 1
                if self.state.marker_uses[key] <= int(times or 1_000_000):
                    return value
            menu = RANDOM_FAULTS.get(endpoint)
            if menu and self.state.fault_rate and self.random.random() < self.state.fault_rate:
                chosen = self.random.choice(menu)
                self.state.drawn[f"{endpoint}:{chosen}"] += 1
                return chosen
        return ""

    def job_latency(self, latency: float) -> float:
        """One job's latency: `latency`, varied at random by up to `latency_spread`."""
        with self.lock:
            spread = self.state.latency_spread
            return latency * (1 + self.random.uniform(-spread, spread)) if spread else latency

    def drawn(self) -> dict[str, int]:
        """The random faults drawn so far, by `endpoint:fault`."""
        with self.lock:
            return dict(self.state.drawn)

    # --- Videos ----------------------------------------------------------------------

    def video(self, frames: int, fps: float, prompt: str = "") -> Path:
        """A real MP4 of `frames` frames at `fps` (cached)."""
        look = zlib.crc32(prompt.encode()) % len(PALETTES) if self.pretty else -1
        key = (frames, fps, look)
        with self.lock:
            if key in self.videos:
                return self.videos[key]
            path = self.folder / f"{frames}-{fps:g}-{look}.mp4"
            if look >= 0:
                colors = PALETTES[look]
                source = (
                    f"gradients=s=848x480:r={fps:g}:c0=0x{colors[0]}:c1=0x{colors[1]}"
                    f":c2=0x{colors[2]}:n=3:speed=0.02:type={GRADIENT_TYPES[look % 4]}"
                )
            else:
                source = f"testsrc2=size=848x480:rate={fps:g}"
            subprocess.run(  # noqa: S603 - a fixed binary and our own arguments
                [
                    ffmpeg(),
                    "-hide_banner",
                    "-nostdin",
                    "-v",
                    "error",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                    source,
                    "-frames:v",
                    str(frames),
                    "-pix_fmt",
                    "yuv420p",
                    "-c:v",
                    "libx264",
                    "-preset",
                    "ultrafast",
                    "-movflags",
                    "+faststart",
                    str(path),
                ],
                check=True,
                capture_output=True,
                stdin=subprocess.DEVNULL,
                timeout=120,
            )
            self.videos[key] = path
            return path

    def padded_video(self, frames: int, fps: float, megabytes: int) -> Path:
        """The video followed by a `free` box: still a valid MP4, `megabytes` in size."""
        path = self.folder / f"{frames}-{fps:g}-{megabytes}MB.mp4"
        with self.lock:
            if path.exists():
                return path
        source = self.video(frames, fps)
        target = megabytes * 1024 * 1024
        padding = max(target - source.stat().st_size, 8)
        with open(path, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out)
            out.write(padding.to_bytes(4, "big") + b"free")
            zeros = b"\0" * (1024 * 1024)
            left = padding - 8
            while left > 0:
                out.write(zeros[: min(left, len(zeros))])
                left -= len(zeros)
        return path

    # --- Jobs ------------------------------------------------------------------------

    def job_status(self, job: Job, now: float) -> str:
        elapsed = now - job.created
        if elapsed < job.latency * 0.2:
            return "QUEUED"
        if elapsed < job.latency:
            return "PROCESSING"
        return "FAILED" if job.fails else "COMPLETED"


def _default_endpoint(fault: str) -> str:
    if fault in ("truncated", "notmp4") or fault.startswith("big"):
        return "download"
    if fault == "failed":
        return "job"
    return "submit"


def cost_of(params: dict[str, Any]) -> float:
    return round(COST_PER_FRAME_STEP * params["frames"] * params["steps"], 6)


def validate(body: Any) -> tuple[dict[str, Any] | None, str]:
    if not isinstance(body, dict):
        return None, "Request body must be a JSON object"
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return None, "prompt is required"
    params: dict[str, Any] = {
        "prompt": prompt,
        "negative_prompt": body.get("negative_prompt") or "",
        "guidance_scale": body.get("guidance_scale", 4.5),
        "fps": body.get("fps", 16),
        "frames": body.get("frames", 52),
        "steps": body.get("steps", 30),
        "seed": body.get("seed", -1),
    }
    for name, (low, high) in LIMITS.items():
        value = params[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, f"{name} must be a number"
        if name in INTEGERS and not float(value).is_integer():
            return None, f"{name} must be an integer"
        if not low <= value <= high:
            return None, f"{name} must be between {low} and {high}"
    if not isinstance(params["seed"], int) or isinstance(params["seed"], bool):
        return None, "seed must be an integer"
    params["frames"], params["steps"] = int(params["frames"]), int(params["steps"])
    return params, ""


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # many clients connect at once in the benchmarks


class _Handler(BaseHTTPRequestHandler):
    fake: FakeSegmind
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        if not self.fake.quiet:
            super().log_message(format, *args)

    # --- Plumbing --------------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _record(self, endpoint: str, status: int | str, **extra: Any) -> None:
        with self.fake.lock:
            self.fake.state.calls.append(
                {
                    "endpoint": endpoint,
                    "method": self.command,
                    "path": self.path,
                    "status": status,
                    "at": time.time(),
                    **extra,
                }
            )

    def _authorized(self, endpoint: str) -> bool:
        key = self.headers.get("x-api-key", "")
        if not key:
            self._record(endpoint, 401)
            self._json(401, {"error": "Missing Authorization or x-api-key in header"})
            return False
        if key == "bad-key":
            self._record(endpoint, 401)
            self._json(401, {"error": "Unauthorized. API key is invalid or may have expired"})
            return False
        return True

    def _over_rate(self, endpoint: str) -> bool:
        state = self.fake.state
        if not state.rpm:
            return False
        now = time.time()
        with self.fake.lock:
            state.call_times = [t for t in state.call_times if t > now - 60]
            over = len(state.call_times) >= state.rpm
            if not over:
                state.call_times.append(now)
        if over:
            self._fault_response("429", endpoint)
        return over

    def _fault_response(self, fault: str, endpoint: str) -> None:
        """Answer with `fault` (an HTTP error, a timeout, a dropped connection)."""
        self._record(endpoint, fault)
        if fault == "timeout":
            time.sleep(self.fake.state.timeout_seconds)
            self.close_connection = True
            return
        if fault == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            self.close_connection = True
            self.connection.close()
            return
        status, _, variant = fault.partition("-")
        code = int(status)
        messages = {
            400: "Bad request: a parameter is invalid",
            401: "Unauthorized. API key is invalid or may have expired",
            403: "Forbidden: this account may not use this model",
            404: "Not found",
            406: "Not enough credits"
            if variant != "content-type"
            else "Invalid content type, expected application/json",
            410: "This model has been retired",
            422: "Generation failed",
            429: "rate_limit_exceeded",
            500: "Internal server error",
            502: "Bad gateway",
            503: "Service unavailable",
            504: "Gateway timeout",
        }
        headers = {}
        if code == 429:
            reset = datetime.now(UTC) + timedelta(seconds=self.fake.state.rate_limit_reset_seconds)
            headers["x-rate-limit-reset-at-utc"] = reset.isoformat().replace("+00:00", "Z")
        if code == 422:
            self._json(422, {"status": "FAILED", "error": messages[422], "metrics": {}})
            return
        if code in (502, 503, 504):
            self._send(
                code, f"<html><body>{messages[code]}</body></html>".encode(), "text/html", headers
            )
            return
        self._json(code, {"error": messages.get(code, HTTPStatus(code).phrase)}, headers)

    def _send_video(self, path: Path, endpoint: str, fault: str, headers: dict[str, str]) -> None:
        size = path.stat().st_size
        if fault == "notmp4":
            self._record(endpoint, "notmp4")
            self._send(
                200, b"<html><body>Temporarily unavailable</body></html>", "video/mp4", headers
            )
            return
        self._record(endpoint, 200, bytes=size, fault=fault)
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(size))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        limit = size // 2 if fault == "truncated" else size
        with open(path, "rb") as video:
            sent = 0
            while sent < limit:
                chunk = video.read(min(1024 * 1024, limit - sent))
                if not chunk:
                    break
                self.wfile.write(chunk)
                sent += len(chunk)
        if fault == "truncated":
            self.close_connection = True

    def _video_for(self, params: dict[str, Any], fault: str) -> Path:
        if fault.startswith("big"):
            megabytes = int(fault.split(":", 1)[1]) if ":" in fault else 300
            return self.fake.padded_video(params["frames"], float(params["fps"]), megabytes)
        return self.fake.video(params["frames"], float(params["fps"]), params["prompt"])

    # --- Routes ----------------------------------------------------------------------

    def do_POST(self) -> None:
        if self.path.startswith("/_admin/"):
            self._admin_post()
            return
        endpoint = {"/v1/mochi-1": "v1", "/v2/mochi-1": "submit"}.get(self.path)
        raw = self._read_body()
        if endpoint is None:
            self._record("unknown", 404)
            self._json(404, {"error": "Model not found"})
            return
        if not self._authorized(endpoint) or self._over_rate(endpoint):
            return
        if "application/json" not in (self.headers.get("content-type") or ""):
            self._fault_response("406-content-type", endpoint)
            return
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            self._record(endpoint, 400)
            self._json(400, {"error": "Request body is not valid JSON"})
            return
        params, problem = validate(body)
        if params is None:
            self._record(endpoint, 400)
            self._json(400, {"error": problem})
            return
        prompt = params["prompt"]
        fault = self.fake.take_fault(endpoint, prompt)
        if fault and fault not in ("truncated", "notmp4") and not fault.startswith("big"):
            self._fault_response(fault, endpoint)
            return
        latency = self.fake.job_latency(self.fake.state.latency)
        for kind, value, _, _ in MARKER.findall(prompt):
            if kind == "latency":
                latency = float(value)
        seed = params["seed"] if params["seed"] >= 0 else int(time.time() * 1000) % 2**32
        request_id = str(uuid.uuid4())
        if endpoint == "v1":
            time.sleep(latency)
            download_fault = fault or self.fake.take_fault("download", prompt)
            headers = {
                "x-cost": f"{cost_of(params):.6f}",
                "x-remaining-credits": f"{self.fake.state.credits:.4f}",
                "x-request-id": request_id,
                "x-seed-value": str(seed),
                "x-generation-time": f"{latency:.2f}",
            }
            self._send_video(self._video_for(params, download_fault), "v1", download_fault, headers)
            return
        job = Job(
            id=request_id,
            params={**params, "seed": seed},
            created=time.time(),
            latency=latency,
            fails=self.fake.take_fault("job", prompt) == "failed",
        )
        with self.fake.lock:
            self.fake.state.jobs[request_id] = job
        self._record(endpoint, 200, request_id=request_id)
        base = f"http://{self.headers.get('host')}"
        self._json(
            200,
            {
                "request_id": request_id,
                "status": "QUEUED",
                "poll_url": f"{base}/v1/requests/{request_id}",
                "status_url": f"{base}/v2/requests/{request_id}/status",
                "response_url": f"{base}/v2/requests/{request_id}",
            },
        )

    def do_GET(self) -> None:
        if self.path == "/_admin/calls":
            self._json(200, self.fake.calls())
            return
        if self.path == "/_admin/drawn":
            self._json(200, self.fake.drawn())
            return
        if self.path == "/v1/get-user-credits":
            if self._authorized("credits"):
                fault = self.fake.take_fault("credits")
                if fault:
                    self._fault_response(fault, "credits")
                    return
                self._record("credits", 200)
                self._json(200, {"credits": self.fake.state.credits, "free-credits": 0.0})
            return
        match = re.fullmatch(r"/files/([\w-]+)\.mp4", self.path)
        if match:
            self._download(match.group(1))
            return
        match = re.fullmatch(r"/v2/requests/([\w-]+)(/status)?", self.path)
        if match is None:
            self._record("unknown", 404)
            self._json(404, {"error": "Not found"})
            return
        endpoint = "status" if match.group(2) else "result"
        if not self._authorized(endpoint) or self._over_rate(endpoint):
            return
        request_id = match.group(1)
        with self.fake.lock:
            job = self.fake.state.jobs.get(request_id)
        now = time.time()
        if job is None or now - job.created > self.fake.state.record_ttl:
            self._record(endpoint, 404)
            self._json(404, {"error": f"Request {request_id} not found"})
            return
        fault = self.fake.take_fault(endpoint, job.params["prompt"])
        if fault:
            self._fault_response(fault, endpoint)
            return
        state = self.fake.job_status(job, now)
        metrics = {"queue_time": round(job.latency * 0.2, 2), "inference_time": 0}
        if state == "FAILED":
            self._record(endpoint, 422)
            self._json(
                422, {"status": "FAILED", "error": "The generation failed", "metrics": metrics}
            )
            return
        payload: dict[str, Any] = {"status": state, "request_id": request_id, "metrics": metrics}
        if state == "COMPLETED":
            metrics.update(
                inference_time=round(job.latency * 0.8, 2),
                total_time=round(job.latency, 2),
                cost=cost_of(job.params),
                remaining_credits=self.fake.state.credits,
            )
            if endpoint == "result":
                payload["output"] = f"http://{self.headers.get('host')}/files/{request_id}.mp4"
        self._record(endpoint, 200, state=state)
        self._json(200, payload)

    def _download(self, request_id: str) -> None:
        with self.fake.lock:
            job = self.fake.state.jobs.get(request_id)
        if job is None or self.fake.job_status(job, time.time()) != "COMPLETED":
            self._record("download", 404)
            self._json(404, {"error": "Not found"})
            return
        fault = self.fake.take_fault("download", job.params["prompt"])
        if fault and fault not in ("truncated", "notmp4") and not fault.startswith("big"):
            self._fault_response(fault, "download")
            return
        self._send_video(self._video_for(job.params, fault), "download", fault, {})

    def _admin_post(self) -> None:
        raw = self._read_body()
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._json(400, {"error": "invalid JSON"})
            return
        if self.path == "/_admin/faults":
            self.fake.add_fault(
                str(body["fault"]), str(body.get("endpoint", "submit")), int(body.get("times", 1))
            )
        elif self.path == "/_admin/reset":
            self.fake.reset()
        elif self.path == "/_admin/config":
            with self.fake.lock:
                for name in (
                    "latency",
                    "record_ttl",
                    "credits",
                    "timeout_seconds",
                    "rate_limit_reset_seconds",
                    "rpm",
                    "fault_rate",
                    "latency_spread",
                ):
                    if name in body:
                        setattr(
                            self.fake.state, name, type(getattr(self.fake.state, name))(body[name])
                        )
        else:
            self._json(404, {"error": "unknown admin endpoint"})
            return
        self._json(200, {"ok": True})
