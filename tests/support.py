"""Helpers shared by the integration tests."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import av
import httpx
import pytest
from PIL import Image

from commands.prefect_runtime import stop_process_group
from scenario_upscale.polling import PollPolicy
from scenario_upscale.retry import RetryPolicy

FAST_POLL = PollPolicy(first_interval_s=0.2, min_interval_s=0.1, max_interval_s=1.0)
FAST_RETRY = RetryPolicy(attempts=5, base_delay_s=0.05, max_delay_s=0.5, max_server_wait_s=2)


def apt_install(package: str) -> str | None:
    """Install Debian's ``package`` (CI runs on a clean machine, as root); ``None`` when done,
    else why it could not be, for the skip message."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"{package} is missing and apt-get as root is not available to install it"
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", package]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            return f"`{' '.join(command)}` failed: {done.stderr.strip()[-300:]}"
    return None


def write_images(folder: Path, count: int, size: tuple[int, int] = (40, 30)) -> list[Path]:
    """Small distinct PNGs (distinct content, so distinct uploads and charges)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"tile{i:02d}.png"
        Image.new("RGB", (size[0] + i, size[1]), (20 * i % 255, 90, 160)).save(path)
        paths.append(path)
    return paths


def mp4_bytes(
    width: int = 64,
    height: int = 48,
    frames: int = 12,
    fps: int = 12,
    container: str = "mp4",
    codec: str = "libx264",
) -> bytes:
    """A tiny real video (H.264 MP4 by default), a different colour on each frame."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as sink:
        stream = sink.add_stream(codec, rate=fps)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            image = Image.new("RGB", (width, height), (index * 20 % 255, 90, 160))
            sink.mux(stream.encode(av.VideoFrame.from_image(image)))
        sink.mux(stream.encode(None))
    return buffer.getvalue()


def write_mp4(
    path: Path, width: int = 64, height: int = 48, frames: int = 12, fps: int = 12
) -> Path:
    """:func:`mp4_bytes` written to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(mp4_bytes(width, height, frames, fps))
    return path


@dataclass(frozen=True)
class ServeProcess:
    """A ``scenario-upscale serve`` subprocess and the file its output goes to."""

    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def fail_if_exited(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"serve exited ({self.process.returncode}):\n{self.log_tail()}")


def _missing(http: httpx.Client, deployments: Iterable[str], automations: set[str]) -> list[str]:
    missing = [d for d in deployments if http.get(f"/deployments/name/{d}").status_code != 200]
    created = {a["name"] for a in http.post("/automations/filter", json={}).json()}
    return missing + sorted(automations - created)


@contextlib.contextmanager
def serving(
    options: list[str],
    *,
    api_url: str,
    env: dict[str, str],
    cwd: Path,
    log: Path,
    deployments: Iterable[str],
    automations: set[str],
    timeout_s: float,
) -> Iterator[ServeProcess]:
    """``scenario-upscale serve OPTIONS`` until its deployments and automations exist on the
    server at ``api_url``; stopped with SIGTERM on the way out.

    The ``SCENARIO_UPSCALE_*`` variables of ``env`` are dropped: only ``options`` configure it.
    """
    clean = {k: v for k, v in env.items() if not k.startswith("SCENARIO_UPSCALE_")}
    command = [sys.executable, "-m", "commands.cli", "serve", *options]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=clean,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    serve = ServeProcess(process=process, log=log)
    try:
        deadline = time.monotonic() + timeout_s
        with httpx.Client(base_url=api_url, timeout=10) as http:
            while missing := _missing(http, deployments, automations):
                serve.fail_if_exited()
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"serve did not create {missing} in {timeout_s:g} s:\n{serve.log_tail()}"
                    )
                time.sleep(0.3)
        yield serve
    finally:
        # SIGTERM lets serve pause its schedules; the group kill takes any flow run it left.
        stop_process_group(process, timeout=30)


def bench_module(name: str) -> ModuleType:
    """``bench/<name>.py``, imported once under ``name`` (bench/ is scripts, not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
