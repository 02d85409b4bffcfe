"""Output sizes and prices of the emulator's scale rules (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from scenario_upscale.emulator.catalog import MODELS_BY_ID
from scenario_upscale.emulator.sizing import parse_factor, plan_output


@pytest.mark.parametrize(
    ("model_id", "body", "size", "expected"),
    [
        ("model_upscale-v3", {}, (100, 50), (200, 100)),  # default factor 2
        ("model_upscale-v3", {"upscaleFactor": 1}, (100, 50), (100, 50)),
        ("model_topaz-image-upscale", {"upscaleFactor": "6x"}, (10, 20), (60, 120)),
        ("model_topaz-image-upscale", {"upscaleFactor": "None"}, (10, 20), (10, 20)),
        ("model_magnific-upscaler-creative", {"scaleFactor": "16x"}, (10, 10), (160, 160)),
        ("model_magnific-upscaler-precision", {"scaleFactor": 3.5}, (10, 10), (35, 35)),
        ("model_seedvr-2-upscale-image", {"upscaleFactor": 3}, (40, 30), (120, 90)),
        (
            "model_seedvr-2-upscale-image",
            {"upscaleMode": "target", "targetResolution": "2160p"},
            (40, 30),
            (2880, 2160),
        ),
        ("model_seedvr-2-upscale-image", {"upscaleMode": "target"}, (30, 40), (1080, 1440)),
        ("model_scenario-gemini-upscale", {}, (40, 30), (3840, 2880)),
        ("model_p-image-upscale", {}, (1000, 1000), (2000, 2000)),  # 4 MP target
        (
            "model_p-image-upscale",
            {"upscaleMode": "factor", "factor": 8},
            (1000, 1000),
            (2828, 2828),
        ),
        ("model_recraft-crisp-upscale", {}, (33, 21), (66, 42)),
    ],
)
def test_output_size(
    model_id: str, body: dict[str, Any], size: tuple[int, int], expected: tuple[int, int]
) -> None:
    plan = plan_output(MODELS_BY_ID[model_id], body, *size)
    assert (plan.width, plan.height) == expected


def test_cost_follows_output_pixels_with_a_floor() -> None:
    spec = MODELS_BY_ID["model_upscale-v3"]
    tiny = plan_output(spec, {"upscaleFactor": 2}, 10, 10)
    big = plan_output(spec, {"upscaleFactor": 16}, 100, 75)
    assert tiny.creative_units == spec.min_cost
    assert big.creative_units == round(spec.rate_per_megapixel * 1600 * 1200 / 1e6, 1)
    assert big.creative_units > tiny.creative_units


@pytest.mark.parametrize(("value", "factor"), [(2, 2.0), (2.5, 2.5), ("4x", 4.0), ("None", 1.0)])
def test_parse_factor(value: Any, factor: float) -> None:
    assert parse_factor(value) == factor


@pytest.mark.parametrize("value", [True, "4k", "two", None])
def test_parse_factor_rejects(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_factor(value)
