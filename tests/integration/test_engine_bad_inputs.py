"""Bad input fails clearly, before any credit is spent, and names what is wrong.

Each case runs a real batch against the emulator server and checks the message, then that the
emulator charged nothing and created no job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from scenario_upscale.api import ScenarioClient
from scenario_upscale.batch import UpscaleSpec, run_batch
from scenario_upscale.emulator import EmulatorServer
from scenario_upscale.errors import ScenarioError
from tests.support import FAST_POLL, write_images, write_mp4


@dataclass
class Case:
    expect: list[str]
    model_id: str = "model_upscale-v3"
    parameters: dict[str, Any] = field(default_factory=dict)
    inputs: str = "good.png"
    client: dict[str, Any] = field(default_factory=dict)
    budget: float | None = None


CASES = {
    "unknown model": Case(["model_nope", "404"], model_id="model_nope"),
    "factor above max": Case(
        ["'upscaleFactor'", "got 17", "<= 16"], parameters={"upscaleFactor": 17}
    ),
    "factor below min": Case(["'upscaleFactor'", ">= 1"], parameters={"upscaleFactor": 0}),
    "factor as text": Case(["'upscaleFactor'", "a number"], parameters={"upscaleFactor": "4"}),
    "factor as boolean": Case(["'upscaleFactor'", "a number"], parameters={"upscaleFactor": True}),
    "wrong input name": Case(["'scale'", "upscaleFactor"], parameters={"scale": 2}),
    "file input given as a parameter": Case(["'image'", "source"], parameters={"image": "x"}),
    "image input on an imageUrl model": Case(
        ["'image'", "'imageUrl'"],
        model_id="model_seedvr-2-upscale-image",
        parameters={"image": "asset_x"},
    ),
    "value not allowed": Case(
        ["'upscaleFactor'", "'2x'", "'4x'"],
        model_id="model_topaz-image-upscale",
        parameters={"upscaleFactor": "3x"},
    ),
    "number not in the allowed set": Case(
        ["'scaleFactor'", "2, 4, 8, 16"],
        model_id="model_clarity-pro-upscaler",
        parameters={"scaleFactor": 3},
    ),
    "style not allowed": Case(["'style'", "'anime'"], parameters={"style": "watercolor"}),
    "missing file": Case(["missing.png", "does not exist"], inputs="missing.png"),
    "not an image": Case(["notes.png", "not an image"], inputs="notes.png"),
    "empty file": Case(["empty.png", "empty"], inputs="empty.png"),
    "empty folder": Case(["has no image or video files"], inputs="nothing/"),
    "video to an image model": Case(["upscales images", "clip.mp4 is a video"], inputs="clip.mp4"),
    "unknown asset id": Case(["asset_doesnotexist", "404"], inputs="asset_doesnotexist"),
    "bad credentials": Case(["HTTP 401"], client={"api_secret": "wrong-secret"}),
    "no credentials": Case(["API key and secret are required"], client={"api_key": ""}),
    "budget below the dry-run price": Case(
        ["above the budget of 0.5", "nothing was submitted"], budget=0.5
    ),
    "refused by the API at the dry run": Case(
        ["dryRun failed with HTTP 400", "exceeds"],
        parameters={"upscaleFactor": 16},
        inputs="big.png",
    ),
}


def _inputs(folder: Path) -> None:
    write_images(folder, 1)
    (folder / "tile00.png").rename(folder / "good.png")
    Image.new("RGB", (1200, 1000)).save(folder / "big.png")
    (folder / "notes.png").write_text("not really a picture")
    (folder / "empty.png").write_bytes(b"")
    write_mp4(folder / "clip.mp4")
    (folder / "nothing").mkdir()


@pytest.mark.parametrize("name", list(CASES))
async def test_bad_input_is_refused_before_anything_is_paid(
    name: str,
    make_client: Callable[..., ScenarioClient],
    fresh_emulator: EmulatorServer,
    tmp_path: Path,
) -> None:
    case = CASES[name]
    _inputs(tmp_path)
    location = case.inputs if case.inputs.startswith("asset_") else str(tmp_path / case.inputs)
    spec = UpscaleSpec(model_id=case.model_id, parameters=case.parameters)
    try:
        async with make_client(**case.client) as client:
            report = await run_batch(
                client,
                location,
                str(tmp_path / "out"),
                [spec],
                poll=FAST_POLL,
                max_creative_units=case.budget,
            )
    except ScenarioError as error:
        message = str(error)
    else:
        # A bad input file fails that input alone; the batch says why.
        [result] = report.results
        assert result.status == "invalid", result
        message = result.error or ""
    for fragment in case.expect:
        assert fragment in message, message
    assert fresh_emulator.api_secret not in message
    stats = fresh_emulator.stats()
    assert stats.jobs_created == 0
    assert stats.creative_units_charged == 0
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*.png"))
