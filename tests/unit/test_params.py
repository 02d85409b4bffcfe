"""Parameter checks against inputs[]: each rejection names the field and what is allowed."""

from __future__ import annotations

from typing import Any

import pytest

from scenario_upscale.errors import InvalidUpscaleParameters
from scenario_upscale.models import ModelInput, ModelSpec
from scenario_upscale.params import build_body, file_input, media_kind, scale_label

REQUIRED = {"always": True}

UPSCALE_V3 = ModelSpec(
    id="model_upscale-v3",
    inputs=[
        ModelInput(name="image", type="file", kind="image", required=REQUIRED),
        ModelInput(name="upscaleFactor", type="number", min=1, max=16, default=2),
        ModelInput(
            name="style", type="string", default="standard", allowedValues=["standard", "anime"]
        ),
        ModelInput(name="styleImages", type="file_array", kind="image"),
        ModelInput(name="tileStyle", type="boolean", default=False),
        ModelInput(name="prompt", type="string", maxLength=10),
    ],
)
SEEDVR = ModelSpec(
    id="model_seedvr-2-upscale-image",
    inputs=[
        ModelInput(name="imageUrl", type="file", kind="image", required=REQUIRED),
        ModelInput(
            name="upscaleMode", type="string", default="factor", allowedValues=["factor", "target"]
        ),
        ModelInput(name="upscaleFactor", type="number", min=2, max=10, default=2),
        ModelInput(
            name="targetResolution", type="string", default="1080p", allowedValues=["720p", "1080p"]
        ),
    ],
)
TOPAZ = ModelSpec(
    id="model_topaz-image-upscale",
    inputs=[
        ModelInput(name="image", type="file", kind="image", required=REQUIRED),
        ModelInput(
            name="upscaleFactor", type="string", default="2x", allowedValues=["None", "2x", "4x"]
        ),
    ],
)
CLARITY = ModelSpec(
    id="model_clarity-pro-upscaler",
    inputs=[
        ModelInput(name="image", type="file", kind="image", required=REQUIRED),
        ModelInput(name="scaleFactor", type="number", default=2, allowedValues=[2, 4, 8, 16]),
    ],
)
VIDEO = ModelSpec(
    id="model_flash-vsr-video-upscale",
    inputs=[ModelInput(name="video", type="file", kind="video", required=REQUIRED)],
)


def test_the_file_goes_into_the_models_own_file_input() -> None:
    assert build_body(UPSCALE_V3, "asset_1", {"upscaleFactor": 4}) == {
        "image": "asset_1",
        "upscaleFactor": 4,
    }
    assert build_body(SEEDVR, "asset_1", {}) == {"imageUrl": "asset_1"}
    assert file_input(VIDEO).name == "video"
    assert media_kind(VIDEO) == "video"
    assert media_kind(UPSCALE_V3) == "image"


def test_accepted_values_pass_unchanged() -> None:
    body = build_body(
        UPSCALE_V3,
        "a",
        {"upscaleFactor": 2.5, "style": "anime", "styleImages": ["asset_x"], "tileStyle": True},
    )
    assert body["upscaleFactor"] == 2.5 and body["styleImages"] == ["asset_x"]
    assert build_body(CLARITY, "a", {"scaleFactor": 8.0})["scaleFactor"] == 8.0
    assert build_body(TOPAZ, "a", {"upscaleFactor": "4x"})["upscaleFactor"] == "4x"


@pytest.mark.parametrize(
    ("model", "parameters", "field", "allowed_fragment"),
    [
        (UPSCALE_V3, {"upscaleFactor": 17}, "upscaleFactor", "<= 16"),
        (UPSCALE_V3, {"upscaleFactor": 0.5}, "upscaleFactor", ">= 1"),
        (UPSCALE_V3, {"upscaleFactor": "4"}, "upscaleFactor", "a number"),
        (UPSCALE_V3, {"upscaleFactor": True}, "upscaleFactor", "a number"),
        (UPSCALE_V3, {"upscaleFactor": float("nan")}, "upscaleFactor", "a number"),
        (UPSCALE_V3, {"style": "watercolor"}, "style", "'standard', 'anime'"),
        (UPSCALE_V3, {"tileStyle": "yes"}, "tileStyle", "true or false"),
        (UPSCALE_V3, {"styleImages": "asset_x"}, "styleImages", "list of asset ids"),
        (UPSCALE_V3, {"styleImages": [3]}, "styleImages", "asset id"),
        (UPSCALE_V3, {"prompt": "x" * 11}, "prompt", "a string"),
        (UPSCALE_V3, {"scale": 2}, "scale", "upscaleFactor"),
        (UPSCALE_V3, {"image": "asset_y"}, "image", "given as the source"),
        (SEEDVR, {"image": "asset_y"}, "image", "imageUrl"),
        (TOPAZ, {"upscaleFactor": 2}, "upscaleFactor", "'2x'"),
        (CLARITY, {"scaleFactor": 3}, "scaleFactor", "2, 4, 8, 16"),
        (CLARITY, {"scaleFactor": True}, "scaleFactor", "2, 4, 8, 16"),
    ],
)
def test_rejections_name_the_field_the_value_and_what_is_allowed(
    model: ModelSpec, parameters: dict[str, Any], field: str, allowed_fragment: str
) -> None:
    with pytest.raises(InvalidUpscaleParameters) as caught:
        build_body(model, "asset_1", parameters)
    assert caught.value.field == field
    assert caught.value.model_id == model.id
    message = str(caught.value)
    assert f"'{field}'" in message and allowed_fragment in message


def test_a_required_input_without_default_must_be_given() -> None:
    model = ModelSpec(
        id="model_m",
        inputs=[
            ModelInput(name="image", type="file", required=REQUIRED),
            ModelInput(name="seed", type="number", required=REQUIRED),
        ],
    )
    with pytest.raises(InvalidUpscaleParameters, match="'seed': missing"):
        build_body(model, "asset_1", {})


def test_a_model_without_file_input_is_refused() -> None:
    with pytest.raises(InvalidUpscaleParameters, match="no image or video file input"):
        build_body(ModelSpec(id="model_text", inputs=[]), "asset_1", {})


@pytest.mark.parametrize(
    ("model", "parameters", "label"),
    [
        (UPSCALE_V3, {"upscaleFactor": 4}, "x4"),
        (UPSCALE_V3, {}, "x2"),
        (SEEDVR, {"upscaleMode": "target", "targetResolution": "720p"}, "720p"),
        (SEEDVR, {"upscaleFactor": 3}, "x3"),
        (TOPAZ, {"upscaleFactor": "4x"}, "4x"),
        (CLARITY, {"scaleFactor": 8}, "x8"),
        (VIDEO, {}, "x"),
    ],
)
def test_scale_labels_name_outputs_predictably(
    model: ModelSpec, parameters: dict[str, Any], label: str
) -> None:
    assert scale_label(model, parameters) == label
