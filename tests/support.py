"""Helpers shared by the integration tests."""

from __future__ import annotations

from pathlib import Path

import av
from PIL import Image

from scenario_upscale.polling import PollPolicy
from scenario_upscale.retry import RetryPolicy

FAST_POLL = PollPolicy(first_interval_s=0.2, min_interval_s=0.1, max_interval_s=1.0)
FAST_RETRY = RetryPolicy(attempts=5, base_delay_s=0.05, max_delay_s=0.5, max_server_wait_s=2)


def write_images(folder: Path, count: int, size: tuple[int, int] = (40, 30)) -> list[Path]:
    """Small distinct PNGs (distinct content, so distinct uploads and charges)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"tile{i:02d}.png"
        Image.new("RGB", (size[0] + i, size[1]), (20 * i % 255, 90, 160)).save(path)
        paths.append(path)
    return paths


def write_mp4(
    path: Path, width: int = 64, height: int = 48, frames: int = 12, fps: int = 12
) -> Path:
    """A tiny real H.264 MP4, a different colour on each frame."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="mp4") as sink:
        stream = sink.add_stream("libx264", rate=fps)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            image = Image.new("RGB", (width, height), (index * 20 % 255, 90, 160))
            sink.mux(stream.encode(av.VideoFrame.from_image(image)))
        sink.mux(stream.encode(None))
    return path
