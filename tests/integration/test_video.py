"""Videos end to end: a real MP4 goes through the multipart upload, a video upscaler and back.

The emulator really re-encodes (PyAV), so the output is checked frame by frame; bad videos and
mismatched models fail before anything is paid.
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import httpx
import pytest

from scenario_upscale import storage
from scenario_upscale.api import ScenarioClient
from scenario_upscale.batch import UpscaleSpec, run_batch
from scenario_upscale.emulator import EmulatorServer
from scenario_upscale.errors import DownloadFailed, InvalidInput
from scenario_upscale.models import Asset
from scenario_upscale.sources import identify
from tests.support import FAST_POLL, write_images, write_mp4

SEEDVR = "model_seedvr-2-upscale-video"
SEEDVR_X2 = UpscaleSpec(model_id=SEEDVR, parameters={"upscaleFactor": 2})


def decoded(path: Path | str) -> tuple[set[tuple[int, int]], int, float]:
    """Frame sizes, frame count and average frame rate of a video file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or 0)
        frames = list(container.decode(stream))
    return {(f.width, f.height) for f in frames}, len(frames), rate


async def test_video_is_uploaded_in_parts_upscaled_and_really_re_encoded(
    client: ScenarioClient, fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    video = write_mp4(tmp_path / "in" / "clip.mp4")
    out = tmp_path / "out"
    report = await run_batch(client, str(video), str(out), [SEEDVR_X2], poll=FAST_POLL)
    [result] = report.results
    assert result.status == "success", result.error
    assert result.outputs == [str(out / "clip@seedvr-2-upscale-videox2.mp4")]
    assert (result.input_width, result.input_height) == (64, 48)
    assert (result.output_width, result.output_height) == (128, 96)
    sizes, count, rate = decoded(result.outputs[0])
    assert sizes == {(128, 96)}
    assert abs(count - 12) <= 1 and rate == pytest.approx(12)
    assert not list(out.glob("*.part"))

    stats = fresh_emulator.stats()
    assert stats.requests.get("POST /v1/uploads") == 1
    assert stats.requests.get("POST /v1/uploads/{uploadId}/action") == 1
    assert stats.requests.get("POST /v1/assets", 0) == 0  # never the base64 image upload
    assert stats.jobs_created == 1 and stats.creative_units_charged == result.creative_units > 0

    # A rerun finds the output in place: nothing uploaded, submitted or paid again.
    again = await run_batch(client, str(video), str(out), [SEEDVR_X2], poll=FAST_POLL)
    [skipped] = again.results
    assert skipped.status == "skipped" and skipped.outputs == result.outputs
    assert (skipped.output_width, skipped.output_height) == (128, 96)
    assert fresh_emulator.stats().jobs_created == 1


@pytest.mark.parametrize(
    ("model_id", "parameters", "name", "size", "fps"),
    [
        (
            "model_flash-vsr-video-upscale",
            {"upscaleFactor": 3},
            "clip@flash-vsr-video-upscalex3.mp4",
            (192, 144),
            12,
        ),
        (
            "model_topazlabs-video-upscale",
            {"resolution": "720p", "fps": 24},
            "clip@topazlabs-video-upscale-720p.mp4",
            (960, 720),
            24,
        ),
    ],
)
async def test_other_video_models(
    client: ScenarioClient,
    tmp_path: Path,
    model_id: str,
    parameters: dict[str, object],
    name: str,
    size: tuple[int, int],
    fps: int,
) -> None:
    video = write_mp4(tmp_path / "clip.mp4")
    report = await run_batch(
        client,
        str(video),
        str(tmp_path / "out"),
        [UpscaleSpec(model_id=model_id, parameters=parameters)],
        poll=FAST_POLL,
    )
    [result] = report.results
    assert result.status == "success", result.error
    assert result.outputs == [str(tmp_path / "out" / name)]
    sizes, count, rate = decoded(result.outputs[0])
    assert sizes == {size} and rate == pytest.approx(fps)
    assert abs(count - fps) <= 1  # a one-second input


async def test_a_fake_video_is_invalid_and_nothing_is_paid(
    client: ScenarioClient, fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(os.urandom(4096))
    report = await run_batch(
        client,
        str(fake),
        str(tmp_path / "out"),
        [UpscaleSpec(model_id=SEEDVR)],
        poll=FAST_POLL,
    )
    [result] = report.results
    assert result.status == "invalid"
    assert result.error and "fake.mp4" in result.error and "not a video" in result.error
    stats = fresh_emulator.stats()
    assert (stats.uploads_created, stats.jobs_created, stats.creative_units_charged) == (0, 0, 0)


async def test_videos_and_images_only_go_to_models_of_their_kind(
    client: ScenarioClient, fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    video = write_mp4(tmp_path / "in" / "clip.mp4")
    [image] = write_images(tmp_path / "in", 1)
    report = await run_batch(
        client,
        [str(video), str(image)],
        str(tmp_path / "out"),
        [UpscaleSpec(model_id="model_upscale-v3"), UpscaleSpec(model_id=SEEDVR)],
        poll=FAST_POLL,
        dry_run_pricing=False,
    )
    by_pair = {(Path(r.source).name, r.model_id): r for r in report.results}
    video_to_image = by_pair[("clip.mp4", "model_upscale-v3")]
    assert video_to_image.status == "invalid"
    assert video_to_image.error and "upscales images" in video_to_image.error
    image_to_video = by_pair[(image.name, SEEDVR)]
    assert image_to_video.status == "invalid"
    assert image_to_video.error and "upscales videos" in image_to_video.error
    # The matching pairs ran.
    assert by_pair[("clip.mp4", SEEDVR)].status == "success"
    assert by_pair[(image.name, "model_upscale-v3")].status == "success"
    assert fresh_emulator.stats().jobs_created == 2


def test_identify_probes_videos(tmp_path: Path) -> None:
    data = write_mp4(tmp_path / "clip.mp4", 80, 60).read_bytes()
    source = identify(data, "in/clip.mp4", "clip.mp4")
    assert (source.kind, source.mime_type, source.width, source.height) == (
        "video",
        "video/mp4",
        80,
        60,
    )
    assert identify(data, "in/clip.mov", "clip.mov").mime_type == "video/quicktime"
    for bad in (b"\x00\x00\x00\x18ftypmp42" + bytes(64), b"not a video at all"):
        with pytest.raises(InvalidInput, match=r"'in/bad\.mp4' is not a video"):
            identify(bad, "in/bad.mp4", "bad.mp4")


async def test_download_refuses_a_video_that_does_not_decode(tmp_path: Path) -> None:
    """An output announced as a video but whose bytes are not one never gets its final name."""
    garbage = os.urandom(2048)
    transport = httpx.MockTransport(lambda _: httpx.Response(200, content=garbage))
    asset = Asset(id="asset_broken", url="https://cdn.test/x", mime_type="video/mp4", kind="video")
    destination = tmp_path / "out" / "clip@x.mp4"

    async def never(_: str) -> str:
        raise AssertionError("the URL did not expire")

    async with httpx.AsyncClient(transport=transport) as cdn:
        with pytest.raises(DownloadFailed, match="not a decodable video"):
            await storage.download(cdn, asset, str(destination), refresh_url=never)
    assert not destination.exists()
    assert not list((tmp_path / "out").glob("*.part"))


def test_image_size_reads_videos_too(tmp_path: Path) -> None:
    video = write_mp4(tmp_path / "clip.mp4", 96, 64)
    assert storage.image_size(str(video)) == (96, 64)
    (tmp_path / "junk.mp4").write_bytes(b"junk")
    assert storage.image_size(str(tmp_path / "junk.mp4")) == (None, None)
