"""The emulator's video side without a server: probing, re-encoding, sizing, pricing, validation."""

from __future__ import annotations

import io
import os
from typing import Any

import av
import pytest
from PIL import Image

from scenario_upscale.emulator.catalog import MODELS, MODELS_BY_ID
from scenario_upscale.emulator.errors import ApiError
from scenario_upscale.emulator.imaging import InvalidMedia, inspect_media
from scenario_upscale.emulator.sizing import plan_output
from scenario_upscale.emulator.store import AssetRecord
from scenario_upscale.emulator.validation import validate_body
from scenario_upscale.emulator.video import OUTPUT_CODEC, probe_video, reencode_video
from tests.support import mp4_bytes
from tests.unit.test_emulator_validation import IMAGE

VIDEO_MODELS = [m for m in MODELS if m.kind == "video"]


def frames_of(data: bytes) -> list[av.VideoFrame]:
    with av.open(io.BytesIO(data)) as container:
        return list(container.decode(video=0))


# --- probing --------------------------------------------------------------------------------


def test_probe_reports_the_contract_properties() -> None:
    data = mp4_bytes(frames=24, fps=12)
    info = probe_video(data)
    assert (info.kind, info.mime_type, info.extension) == ("video", "video/mp4", "mp4")
    assert (info.width, info.height, info.size) == (64, 48, len(data))
    assert (info.frame_rate, info.nb_frames, info.codec_name) == (12, 24, "h264")
    assert info.duration == pytest.approx(2.0, abs=0.1)
    assert info.bitrate and info.bitrate > 0
    assert inspect_media(data, "video") == info


def test_probe_counts_frames_of_containers_without_a_count() -> None:
    info = probe_video(mp4_bytes(frames=10, container="matroska"))
    assert (info.mime_type, info.extension, info.nb_frames) == ("video/x-matroska", "mkv", 10)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"plain text",
        os.urandom(4096),
        b"\x00\x00\x00\x18ftypmp42" + bytes(256),  # an mp4 header and nothing behind it
    ],
)
def test_probe_rejects_what_is_not_a_video(data: bytes) -> None:
    with pytest.raises(InvalidMedia):
        probe_video(data)


def test_an_image_is_not_a_video_upload() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    with pytest.raises(InvalidMedia):
        inspect_media(buffer.getvalue(), "video")


# --- re-encoding ------------------------------------------------------------------------------


def test_reencode_resizes_every_frame_and_keeps_the_count() -> None:
    out, info = reencode_video(mp4_bytes(), 128, 96)
    frames = frames_of(out)
    assert len(frames) == 12 and {(f.width, f.height) for f in frames} == {(128, 96)}
    assert (info.mime_type, info.width, info.height, info.nb_frames) == ("video/mp4", 128, 96, 12)
    assert info.codec_name == ("h264" if OUTPUT_CODEC == "libx264" else "mpeg4")
    assert info.frame_rate == 12 and info.size == len(out)


def test_reencode_keeps_the_picture() -> None:
    out, _ = reencode_video(mp4_bytes(frames=3), 32, 24)
    red, green, blue = frames_of(out)[-1].to_image().getpixel((16, 12))  # type: ignore[misc]
    assert abs(red - 40) < 16 and abs(green - 90) < 16 and abs(blue - 160) < 16


@pytest.mark.parametrize(("fps", "frames"), [(24, 24), (6, 6)])
def test_reencode_changes_the_frame_rate_without_changing_the_duration(
    fps: int, frames: int
) -> None:
    out, info = reencode_video(mp4_bytes(frames=12, fps=12), 64, 48, frame_rate=fps)
    assert len(frames_of(out)) == frames
    assert info.frame_rate == fps and info.duration == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("quality", ["low", "maximum", None])
def test_reencode_accepts_the_output_quality_inputs(quality: str | None) -> None:
    out, info = reencode_video(mp4_bytes(frames=4), 64, 48, quality=quality, write_mode="small")
    assert info.nb_frames == 4 and len(out) > 0


# --- catalog, sizing and price ----------------------------------------------------------------


def test_video_models_are_video2video_with_a_required_video_input() -> None:
    assert {m.id for m in VIDEO_MODELS} >= {
        "model_seedvr-2-upscale-video",
        "model_flash-vsr-video-upscale",
        "model_topazlabs-video-upscale",
    }
    for spec in VIDEO_MODELS:
        api = spec.to_api()
        assert api["capabilities"] == ["video2video"] and "video-upscale" in api["tags"]
        video = next(i for i in api["inputs"] if i["name"] == "video")
        assert video["kind"] == "video" and video["required"] == {"always": True}
        assert spec.output_type == "upscale-video"


@pytest.mark.parametrize(
    ("model_id", "body", "size", "expected"),
    [
        ("model_seedvr-2-upscale-video", {}, (64, 48), (128, 96)),
        ("model_seedvr-2-upscale-video", {"upscaleFactor": 3}, (65, 49), (196, 148)),  # even
        (
            "model_seedvr-2-upscale-video",
            {"upscaleMode": "target", "targetResolution": "720p"},
            (64, 48),
            (960, 720),
        ),
        ("model_flash-vsr-video-upscale", {"upscaleFactor": 4}, (64, 48), (256, 192)),
        ("model_topazlabs-video-upscale", {}, (64, 48), (1440, 1080)),
        ("model_topazlabs-video-upscale", {"resolution": "4k"}, (48, 64), (2160, 2880)),
        ("model_runway-upscale-v1", {}, (64, 48), (256, 192)),
        ("model_runway-upscale-v1", {}, (1920, 1080), (3840, 2160)),  # capped at 4K
        ("model_crystal-video-upscaler", {"scaleFactor": 200}, (64, 48), (3840, 2880)),
        ("model_magnific-video-upscaler-creative", {}, (64, 48), (2048, 1536)),
        ("model_magnific-video-upscaler-precision", {"resolution": "1k"}, (64, 48), (1024, 768)),
    ],
)
def test_video_output_size(
    model_id: str, body: dict[str, Any], size: tuple[int, int], expected: tuple[int, int]
) -> None:
    plan = plan_output(MODELS_BY_ID[model_id], body, *size, duration=1.0)
    assert (plan.width, plan.height) == expected


def test_video_price_grows_with_output_pixels_and_seconds() -> None:
    spec = MODELS_BY_ID["model_seedvr-2-upscale-video"]
    target = {"upscaleMode": "target", "targetResolution": "1080p"}
    one = plan_output(spec, target, 64, 48, duration=1.0)
    ten = plan_output(spec, target, 64, 48, duration=10.0)
    bigger = plan_output(spec, {**target, "targetResolution": "2160p"}, 64, 48, duration=1.0)
    assert one.creative_units == round(spec.rate_per_megapixel * 1440 * 1080 / 1e6, 1)
    assert ten.creative_units == pytest.approx(10 * one.creative_units, rel=0.01)
    assert bigger.creative_units > one.creative_units
    assert plan_output(spec, {}, 8, 8, duration=0.5).creative_units == spec.min_cost


def test_topaz_fps_sets_the_output_frame_rate() -> None:
    spec = MODELS_BY_ID["model_topazlabs-video-upscale"]
    assert plan_output(spec, {}, 64, 48, duration=1).frame_rate == 60  # the default
    assert plan_output(spec, {"fps": 24}, 64, 48, duration=1).frame_rate == 24
    seedvr = MODELS_BY_ID["model_seedvr-2-upscale-video"]
    assert plan_output(seedvr, {}, 64, 48, duration=1).frame_rate is None


# --- validation ------------------------------------------------------------------------------

VIDEO = IMAGE.model_copy(
    update={"id": "asset_video", "kind": "video", "mime_type": "video/mp4", "duration": 12.0}
)
LONG_VIDEO = VIDEO.model_copy(update={"id": "asset_long", "duration": 75.0})
ASSETS = {a.id: a for a in (IMAGE, VIDEO, LONG_VIDEO)}


def check(model_id: str, body: Any) -> AssetRecord:
    return validate_body(MODELS_BY_ID[model_id], body, ASSETS.get)


def test_a_video_body_returns_the_video_asset() -> None:
    body = {"video": "asset_video", "upscaleFactor": 4, "outputQuality": "maximum"}
    assert check("model_seedvr-2-upscale-video", body) is VIDEO
    assert check("model_runway-upscale-v1", {"video": "asset_video"}) is VIDEO


@pytest.mark.parametrize(
    ("model_id", "body", "fragments"),
    [
        ("model_seedvr-2-upscale-video", {"video": "asset_image"}, ["'video'", "expected a video"]),
        ("model_upscale-v3", {"image": "asset_video"}, ["'image'", "is a video"]),
        ("model_seedvr-2-upscale-video", {"image": "asset_video"}, ["Unknown input 'image'"]),
        ("model_seedvr-2-upscale-video", {}, ["Missing required input 'video'"]),
        ("model_flash-vsr-video-upscale", {"video": "asset_video", "upscaleFactor": 5}, ["<= 4"]),
        ("model_topazlabs-video-upscale", {"video": "asset_video", "resolution": "8k"}, ['"4k"']),
        ("model_topazlabs-video-upscale", {"video": "asset_video", "fps": 90}, ["<= 60"]),
        ("model_runway-upscale-v1", {"video": "asset_long"}, ["75 s", "at most 40 s"]),
    ],
)
def test_bad_video_bodies_are_400(model_id: str, body: Any, fragments: list[str]) -> None:
    with pytest.raises(ApiError) as error:
        check(model_id, body)
    assert error.value.status_code == 400
    for fragment in fragments:
        assert fragment in error.value.text
