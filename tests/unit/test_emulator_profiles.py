"""The pure parts of the emulator profiles: the table, the echo, the renditions, the switch."""

from __future__ import annotations

import io
from typing import Any, get_args

import av
import pytest
from PIL import Image
from pydantic import ValidationError
from typer.testing import CliRunner

from scenario_upscale import cli
from scenario_upscale.emulator import EmulatorConfig
from scenario_upscale.emulator import server as emulator_server
from scenario_upscale.emulator.catalog import MODELS_BY_ID
from scenario_upscale.emulator.errors import error_response
from scenario_upscale.emulator.imaging import (
    RENDITION_NOTE,
    transformed_image,
    transformed_media,
)
from scenario_upscale.emulator.profiles import (
    PROFILE_NAMES,
    PROFILES,
    Behaviour,
    ProfileName,
    behaviour_of,
    is_dry_run,
)
from scenario_upscale.emulator.validation import normalised_input
from tests.support import write_mp4


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def gradient(width: int = 48, height: int = 32, mode: str = "RGB") -> Image.Image:
    image = Image.new("RGB", (width, height))
    image.putdata(
        [(x * 5 % 256, y * 7 % 256, (x + y) % 256) for y in range(height) for x in range(width)]
    )
    return image.convert(mode)


# --- the table ----------------------------------------------------------------------------------


def test_every_profile_name_has_a_behaviour_and_only_default_changes_nothing() -> None:
    assert set(PROFILES) == set(PROFILE_NAMES) == set(get_args(ProfileName))
    assert len(PROFILE_NAMES) == 9
    assert behaviour_of("default") == Behaviour()
    changed = [name for name in PROFILE_NAMES if behaviour_of(name) != Behaviour()]
    assert sorted(changed) == sorted(set(PROFILE_NAMES) - {"default"})


def test_profiles_switch_what_the_spec_says() -> None:
    assert behaviour_of("transformed-urls").transformed_urls
    ceiling = behaviour_of("ceiling-no-retry-hint")
    assert (ceiling.ceiling_cap, ceiling.retry_hint) == (3, False)
    assert behaviour_of("default").dry_run_status == 269
    assert (
        behaviour_of("dry-run-200").dry_run_status,
        behaviour_of("dry-run-200").dry_run_job,
    ) == (
        200,
        False,
    )
    assert (
        behaviour_of("dry-run-with-job").dry_run_status,
        behaviour_of("dry-run-with-job").dry_run_job,
    ) == (200, True)
    echo = behaviour_of("normalised-echo")
    assert (echo.normalised_echo, echo.job_type) == (True, "upscale")
    assert behaviour_of("default").job_type == "custom"
    assert behaviour_of("gateway-limits").gateway_body_limit == 6_000_000
    sparse = behaviour_of("sparse-pages")
    assert (sparse.sparse_page_size, sparse.warm_up_statuses) == (2, True)
    assert behaviour_of("strict-project").require_project_id


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, False), ("false", False), ("true", True), ("api", True), ("", True)],
)
def test_a_bare_dry_run_is_a_dry_run(value: str | None, expected: bool) -> None:
    assert is_dry_run(value) is expected


# --- the config switch --------------------------------------------------------------------------


def test_the_profile_is_a_validated_config_field() -> None:
    assert EmulatorConfig().profile == "default"
    config = EmulatorConfig(profile="sparse-pages")
    assert config.behaviour == behaviour_of("sparse-pages")
    assert config.public_dump()["profile"] == "sparse-pages"
    assert config.patched({"profile": "strict-project"}).behaviour.require_project_id
    with pytest.raises(ValidationError, match="profile"):
        EmulatorConfig(profile="sparse")


def test_the_emulator_command_takes_a_profile_by_option_or_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    served: list[EmulatorConfig] = []
    # The command's only side effect is serving: record the config instead of binding a port.
    monkeypatch.setattr(emulator_server, "serve", lambda host, port, config: served.append(config))
    runner = CliRunner()
    by_option = runner.invoke(cli.app, ["emulator", "--profile", "gateway-limits"])
    assert by_option.exit_code == 0, by_option.output
    assert "profile gateway-limits" in by_option.output
    by_env = runner.invoke(
        cli.app, ["emulator"], env={"SCENARIO_EMULATOR_PROFILE": "dry-run-with-job"}
    )
    assert by_env.exit_code == 0, by_env.output
    assert [config.profile for config in served] == ["gateway-limits", "dry-run-with-job"]

    wrong = runner.invoke(cli.app, ["emulator", "--profile", "sparse"])
    assert wrong.exit_code == 2 and "sparse-pages" in wrong.output
    assert len(served) == 2


# --- normalised echo ----------------------------------------------------------------------------


def test_normalised_input_adds_defaults_floats_and_schema_order() -> None:
    spec = MODELS_BY_ID["model_upscale-v3"]
    body = {"upscaleFactor": 4, "tileStyle": True, "image": "asset_x", "styleImages": []}
    echo = normalised_input(spec, body)
    schema_order = [item.name for item in spec.inputs if item.name in echo]
    assert list(echo) == schema_order and next(iter(echo)) == "image"
    assert echo["upscaleFactor"] == 4.0 and isinstance(echo["upscaleFactor"], float)
    assert echo["tileStyle"] is True  # booleans are not numbers here
    assert echo["style"] == "standard" and echo["preset"] == "precise"
    assert echo["guidanceScale"] == 6.0 and isinstance(echo["guidanceScale"], float)
    defaulted = {item.name for item in spec.inputs if item.default is not None}
    assert set(echo) == defaulted | set(body)
    assert "seed" not in echo and "prompt" not in echo  # no default, not sent
    assert body == {"upscaleFactor": 4, "tileStyle": True, "image": "asset_x", "styleImages": []}


def test_normalised_input_turns_integers_in_arrays_into_floats() -> None:
    spec = MODELS_BY_ID["model_sc-upscale-flux"]
    echo = normalised_input(spec, {"image": "asset_x", "lorasScale": [1, 0.5]})
    assert echo["lorasScale"] == [1.0, 0.5]
    assert all(isinstance(value, float) for value in echo["lorasScale"])


# --- transformed renditions ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "L"])
def test_a_png_rendition_is_the_same_picture_with_other_bytes(mode: str) -> None:
    original = encode(gradient(mode=mode), "PNG")
    rendition = transformed_image(original)
    assert len(rendition) != len(original)
    with Image.open(io.BytesIO(original)) as before, Image.open(io.BytesIO(rendition)) as after:
        assert (after.format, after.size, after.mode) == ("PNG", before.size, before.mode)
        assert after.info.get("Comment") == RENDITION_NOTE
        assert after.convert("RGBA").tobytes() == before.convert("RGBA").tobytes()


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "GIF"])
def test_other_image_renditions_keep_format_and_size(fmt: str) -> None:
    original = encode(gradient(), fmt, **({"quality": 95} if fmt != "GIF" else {}))
    rendition = transformed_image(original)
    with Image.open(io.BytesIO(rendition)) as after:
        assert (after.format, after.size) == (fmt, (48, 32))
    if fmt != "GIF":  # lossy formats are re-encoded at another quality
        assert rendition != original


def test_an_mp4_rendition_has_the_same_frames_and_other_bytes(tmp_path: Any) -> None:
    original = write_mp4(tmp_path / "clip.mp4", 64, 48, frames=6, fps=6).read_bytes()
    rendition = transformed_media(original, "video", "video/mp4", 64, 48)
    assert rendition != original
    with av.open(io.BytesIO(rendition), mode="r") as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 6 and {(f.width, f.height) for f in frames} == {(64, 48)}


def test_videos_the_encoder_cannot_rewrite_are_served_as_stored() -> None:
    data = b"not decoded: a webm would be re-encoded as mp4, so it is left alone"
    assert transformed_media(data, "video", "video/webm", 64, 48) == data


# --- bare error bodies --------------------------------------------------------------------------


def test_bare_errors_carry_only_their_message_and_the_trace_id_header() -> None:
    bare = error_response(400, "projectId is required", key="error", bare=True)
    assert bare.body == b'{"error":"projectId is required"}'
    assert bare.headers["x-trace-id"].startswith("trace")
    full = error_response(400, "Bad", key="reason")
    assert b'"traceId"' in full.body
