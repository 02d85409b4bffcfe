"""Uploading a large file keeps the client's memory flat in the file's size, and a file that
changed since it was read is refused.

The upload runs in a child process, so its peak RSS (``VmHWM``) is its own: the peak's growth
from just before the input is read to after it is uploaded is what reading, hashing, probing and
uploading held. A memory bound, not a timing one.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import av
import pytest
from PIL import Image

from scenario_upscale.api import BASE64_UPLOAD_LIMIT, ScenarioClient
from scenario_upscale.emulator import EmulatorServer
from scenario_upscale.errors import InvalidInput
from scenario_upscale.journal import Journal
from scenario_upscale.uploads import Uploads
from tests.support import write_mp4

# The child: read and check the input as the planner does, then upload it as a submit would.
CHILD = """
import asyncio, json, sys
from pathlib import Path
from scenario_upscale.api import ScenarioClient
from scenario_upscale.journal import Journal
from scenario_upscale.uploads import Uploads


def peak_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


async def main(base_url: str, key: str, secret: str, video: str, journal: str) -> None:
    async with ScenarioClient(api_key=key, api_secret=secret, base_url=base_url) as client:
        uploads = Uploads(client, Journal(Path(journal), "memory"))
        before = peak_kb()
        source, _ = await uploads.read(video)
        asset_id = await uploads.asset_id(source)
        after = peak_kb()
        asset = await client.get_asset(asset_id)
    print(json.dumps({"growth_kb": after - before, "size": source.size, "asset_size": asset.size,
                      "width": source.width, "sha256": source.sha256}))


asyncio.run(main(*sys.argv[1:]))
"""


def noise_mp4(path: Path, frames: int) -> Path:
    """A lossless 1080p H.264 MP4 of noise: ~3.8 MB a frame that no codec can shrink."""
    with av.open(str(path), mode="w", format="mp4") as sink:
        stream = sink.add_stream("libx264", rate=24)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.options = {"qp": "0", "preset": "ultrafast"}
        for _ in range(frames):
            image = Image.frombytes("RGB", (1920, 1080), os.urandom(1920 * 1080 * 3))
            frame = av.VideoFrame.from_image(image)  # type: ignore[no-untyped-call]  # PyAV stub
            sink.mux(stream.encode(frame))
        sink.mux(stream.encode(None))
    return path


def test_uploading_a_large_video_holds_less_than_the_file(
    fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    video = noise_mp4(tmp_path / "big.mp4", frames=24)
    size = video.stat().st_size
    assert size > 80_000_000  # several multipart parts
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            fresh_emulator.base_url,
            fresh_emulator.api_key,
            fresh_emulator.api_secret,
            str(video),
            str(tmp_path / "journal.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    assert (measured["size"], measured["asset_size"], measured["width"]) == (size, size, 1920)
    # A 1 MiB slice in memory at a time, whatever the file's size (33-50 MB measured, mostly the
    # decoded first frame and the libraries' buffers); holding the file whole, as reads and
    # uploads once did, grew it ~256 MB, nearly three times the file.
    assert measured["growth_kb"] * 1024 < size, measured
    assert fresh_emulator.stats().requests.get("POST /v1/uploads") == 1


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda data: data[:-1] + b"x", id="same size, other bytes"),
        pytest.param(lambda data: data[:-1000], id="cut short"),
        pytest.param(lambda data: data + b"more", id="grown"),
    ],
)
async def test_an_input_changed_after_it_was_read_is_refused_at_upload(
    client: ScenarioClient, tmp_path: Path, change: Callable[[bytes], bytes]
) -> None:
    """The streamed upload hashes what it sends and checks it against the hash taken at read."""
    video = write_mp4(tmp_path / "clip.mp4")
    # Padded past the base64 limit (MP4 ignores trailing bytes), and changed only there, so the
    # file is still a video the emulator accepts: only the hash can tell.
    padded = video.read_bytes() + bytes(BASE64_UPLOAD_LIMIT)
    video.write_bytes(padded)
    uploads = Uploads(client, Journal(tmp_path / "journal.jsonl", "changed"))
    source, _ = await uploads.read(str(video))
    video.write_bytes(change(padded))
    with pytest.raises(InvalidInput, match=r"'.*clip\.mp4' changed while the batch ran"):
        await uploads.asset_id(source)


async def test_a_file_upload_needs_its_size_and_all_of_its_bytes(client: ScenarioClient) -> None:
    with pytest.raises(ValueError, match="give the size of a file to upload"):
        await client.upload(io.BytesIO(b"x"), name="a.mp4", mime_type="video/mp4", kind="video")
    with pytest.raises(ValueError, match="the data ended 6 bytes before its declared size"):
        await client.upload(
            io.BytesIO(b"four"), name="a.mp4", mime_type="video/mp4", kind="video", size=10
        )
