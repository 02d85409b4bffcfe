"""The upscale models the emulator knows, with their ``inputs[]`` as in contract sections 6.1-6.2.

The input schemas are what ``GET /v1/models/{id}`` returns and what ``/generate/custom`` validates
against, so both sides come from this single table. ``ScaleRule`` says how the output size is
derived from the inputs, which is emulator knowledge (the real API does not publish it).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

InputType = Literal[
    "boolean",
    "file",
    "file_array",
    "inputs_array",
    "model",
    "model_array",
    "number",
    "number_array",
    "string",
    "string_array",
]

MODELS_CREATED_AT = "2025-06-01T00:00:00.000Z"
MAX_SEED = 2147483647


class InputRequired(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    always: bool | None = None


class ModelInput(BaseModel):
    """One entry of ``model.inputs[]``; serialised with the API's camelCase names."""

    model_config = ConfigDict(populate_by_name=True)

    name: str
    type: InputType
    label: str | None = None
    description: str | None = None
    default: Any = None
    min: float | None = None
    max: float | None = None
    step: float | None = None
    allowed_values: list[Any] | None = Field(default=None, alias="allowedValues")
    min_length: int | None = Field(default=None, alias="minLength")
    max_length: int | None = Field(default=None, alias="maxLength")
    kind: Literal["image", "video"] | None = None
    # Seconds; file inputs of kind video only, "validated at job creation time" (contract 3.3).
    min_duration: float | None = Field(default=None, alias="minDuration")
    max_duration: float | None = Field(default=None, alias="maxDuration")
    required: InputRequired | None = None
    parent: bool | None = None
    cost_impact: bool | None = Field(default=None, alias="costImpact")

    @property
    def is_required(self) -> bool:
        return bool(self.required and self.required.always)

    def to_api(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


class ScaleRule(BaseModel):
    """How the emulator turns inputs into an output size.

    - ``factor``: multiply both sides by the number (or ``"4x"`` string) in ``input``; a string
      that is not ``<n>x`` (topaz ``"None"``) means 1.
    - ``seedvr``: ``upscaleMode`` factor -> ``upscaleFactor``; target -> short side from
      ``targetResolution`` (``1080p`` -> 1080).
    - ``long_side``: ``"4k"`` means a long side of 3840 px (gemini; Magnific video ``1k``/``2k``).
    - ``short_side``: ``"720p"``/``"1080p"`` set the short side, ``"4k"`` means 2160 (Topaz video).
    - ``megapixels``: Pruna's ``upscaleMode`` target (``target`` MP) or factor, capped at 8 MP.
    - ``fixed``: a constant factor (models without a scale input).
    """

    mode: Literal["factor", "seedvr", "long_side", "short_side", "megapixels", "fixed"]
    input: str | None = None
    fixed_factor: float = 2.0
    # The model never outputs a longer side than this (e.g. "capped at 4K output").
    max_long_side: int | None = None


class ModelSpec(BaseModel):
    id: str
    name: str
    vendor: str
    file_input: str
    output_type: Literal["upscale", "upscale-texture", "upscale-skybox", "upscale-video"] = (
        "upscale"
    )
    scale: ScaleRule
    # Emulator pricing: creative units per output megapixel (per megapixel and second of video),
    # with a floor per job.
    rate_per_megapixel: float
    min_cost: float = 1.0
    # Video models whose output frame rate is an input (Topaz ``fps``).
    frame_rate_input: str | None = None
    inputs: list[ModelInput]

    def input_named(self, name: str) -> ModelInput | None:
        return next((item for item in self.inputs if item.name == name), None)

    @property
    def kind(self) -> Literal["image", "video"]:
        """What the main file input takes."""
        main = self.input_named(self.file_input)
        return main.kind if main is not None and main.kind is not None else "image"

    @property
    def tags(self) -> list[str]:
        return [f"{self.kind}-upscale", self.vendor]

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "shortDescription": f"{self.name} (Scenario emulator)",
            "type": "custom",
            "custom": True,
            "capabilities": ["video2video" if self.kind == "video" else "img2img"],
            "collectionIds": [],
            "exampleAssetIds": [],
            "privacy": "public",
            "source": "scenario",
            "status": "trained",
            "tags": self.tags,
            "trainingImagesNumber": 0,
            "accessRestrictions": 25,
            "disableRefund": False,
            "createdAt": MODELS_CREATED_AT,
            "updatedAt": MODELS_CREATED_AT,
            "inputs": [item.to_api() for item in self.inputs],
        }


# --- small constructors so the table below reads like the contract -------------------------


def _file(name: str = "image") -> ModelInput:
    return ModelInput(
        name=name,
        type="file",
        label="Image",
        kind="image",
        required=InputRequired(always=True),
        parent=True,
    )


def _video(max_duration: float | None = None) -> ModelInput:
    return ModelInput(
        name="video",
        type="file",
        label="Video",
        kind="video",
        required=InputRequired(always=True),
        parent=True,
        max_duration=max_duration,
    )


def _files(name: str, max_items: int) -> ModelInput:
    return ModelInput(name=name, type="file_array", kind="image", max_length=max_items)


def _num(
    name: str,
    lo: float,
    hi: float,
    default: float | None = None,
    *,
    step: float | None = None,
    cost: bool = False,
    allowed: list[Any] | None = None,
) -> ModelInput:
    return ModelInput(
        name=name,
        type="number",
        min=lo,
        max=hi,
        default=default,
        step=step,
        allowed_values=allowed,
        cost_impact=True if cost else None,
    )


def _str(
    name: str, allowed: list[str] | None = None, default: str | None = None, *, cost: bool = False
) -> ModelInput:
    return ModelInput(
        name=name,
        type="string",
        allowed_values=allowed,
        default=default,
        cost_impact=True if cost else None,
    )


def _bool(name: str, default: bool | None = None) -> ModelInput:
    return ModelInput(name=name, type="boolean", default=default)


def _seed() -> ModelInput:
    return _num("seed", 0, MAX_SEED, step=1)


_PRESETS = ["precise", "balanced", "creative"]
_V3_STYLES = [
    "standard",
    "cartoon",
    "anime",
    "comic",
    "minimalist",
    "photography",
    "3d-rendered",
]


def _flux_inputs(*, skybox: bool = False) -> list[ModelInput]:
    items = [
        _file(),
        _num("upscaleFactor", 2, 8, 2, cost=True),
    ]
    if not skybox:
        items += [
            _str("preset", _PRESETS, "balanced"),
            ModelInput(name="loras", type="model_array"),
            ModelInput(name="lorasScale", type="number_array"),
        ]
    items += [
        _str("prompt"),
        _files("imagePrompt", 4),
        _num("imagePromptStrength", 0, 1, 0.6),
        _num("controlnetConditioningScale", 0, 1, 0.5 if skybox else 0.4),
        _num("strength", 0, 1, 0.6 if skybox else 0.4),
        _num("numInferenceSteps", 1, 50, 28, step=1),
        _bool("detailsEnable", True),
        _str("baseModel", ["FLUX.1-dev", "FLUX.1-Krea-dev"]),
        _seed(),
    ]
    return items


def _video_output_inputs() -> list[ModelInput]:
    return [
        _str("outputQuality", ["low", "medium", "high", "maximum"], "high"),
        _str("outputWriteMode", ["fast", "balanced", "small"], "balanced"),
    ]


def _magnific_video_inputs(*, creative: bool) -> list[ModelInput]:
    items = [_video()]
    if creative:
        items.append(_num("creativity", 0, 100, 0))
    items += [
        _str("resolution", ["1k", "2k", "4k"], "2k", cost=True),
        _bool("fpsBoost"),
        _num("sharpen", 0, 100),
        _num("smartGrain", 0, 100),
    ]
    if creative:
        items += [_str("flavor", ["vivid", "natural"]), _bool("turbo")]
    else:
        items.append(_num("strength", 0, 100, 60))
    return items


_FACTOR_UPSCALE = ScaleRule(mode="factor", input="upscaleFactor")
_FACTOR_SCALE = ScaleRule(mode="factor", input="scaleFactor")

MODELS: list[ModelSpec] = [
    ModelSpec(
        id="model_upscale-v3",
        name="Scenario Upscale V3",
        vendor="scenario",
        file_input="image",
        scale=_FACTOR_UPSCALE,
        rate_per_megapixel=4.0,
        inputs=[
            _file(),
            _num("upscaleFactor", 1, 16, 2, cost=True),
            _str("style", _V3_STYLES, "standard"),
            _str("preset", _PRESETS, "precise"),
            _files("styleImages", 10),
            _num("styleStrength", 0, 3, 0.5),
            _bool("tileStyle", False),
            _str("prompt"),
            _str("negativePrompt"),
            _num("guidanceScale", 0, 10, 6),
            _num("controlnetConditioningScale", 0, 1.2, 0.8),
            _num("strength", 0.1, 1, 0.1),
            _num("strengthDecay", 0.1, 1, 0.8),
            _num("fractality", 0, 1, 0),
            _num("loraDetailsScale", -1.5, 1.5, 0),
            _bool("overrideEmbeddings", False),
            _seed(),
        ],
    ),
    ModelSpec(
        id="model_sc-upscale-flux",
        name="Scenario Flux Upscale",
        vendor="bfl",
        file_input="image",
        scale=_FACTOR_UPSCALE,
        rate_per_megapixel=8.0,
        inputs=_flux_inputs(),
    ),
    ModelSpec(
        id="model_sc-upscale-flux-texture",
        name="Scenario Texture Upscale",
        vendor="bfl",
        file_input="image",
        output_type="upscale-texture",
        scale=_FACTOR_UPSCALE,
        rate_per_megapixel=8.0,
        inputs=_flux_inputs(),
    ),
    ModelSpec(
        id="model_sc-upscale-flux-skybox",
        name="Scenario Skybox Upscale",
        vendor="bfl",
        file_input="image",
        output_type="upscale-skybox",
        scale=_FACTOR_UPSCALE,
        rate_per_megapixel=8.0,
        inputs=_flux_inputs(skybox=True),
    ),
    ModelSpec(
        id="model_scenario-gemini-upscale",
        name="Scenario Gemini Upscale",
        vendor="google",
        file_input="image",
        scale=ScaleRule(mode="long_side", input="upscaleFactor"),
        rate_per_megapixel=3.0,
        inputs=[
            _file(),
            _str("prompt"),
            _str("upscaleFactor", ["4k"], "4k", cost=True),
            _num("creativity", 0, 100, 50),
            _seed(),
        ],
    ),
    ModelSpec(
        id="model_seedvr-2-upscale-image",
        name="SeedVR2 Image Upscale",
        vendor="bytedance",
        file_input="imageUrl",
        scale=ScaleRule(mode="seedvr"),
        rate_per_megapixel=5.0,
        inputs=[
            _file("imageUrl"),
            _str("upscaleMode", ["factor", "target"], "factor", cost=True),
            _num("upscaleFactor", 2, 10, 2, cost=True),
            _str("targetResolution", ["720p", "1080p", "1440p", "2160p"], "1080p", cost=True),
            _num("noiseScale", 0, 1, 0.1),
            _seed(),
        ],
    ),
    ModelSpec(
        id="model_topaz-image-upscale",
        name="Topaz Image Upscale",
        vendor="topaz",
        file_input="image",
        scale=_FACTOR_UPSCALE,
        rate_per_megapixel=10.0,
        inputs=[
            _file(),
            _str(
                "enhanceModel",
                ["Standard V2", "Low Resolution V2", "CGI", "High Fidelity V2", "Text Refine"],
                "Standard V2",
            ),
            _str("upscaleFactor", ["None", "2x", "4x", "6x"], "2x", cost=True),
            _str("subjectDetection", ["None", "All", "Foreground", "Background"]),
            _bool("faceEnhancement"),
            _num("faceEnhancementCreativity", 0, 1, 0),
            _num("faceEnhancementStrength", 0, 1, 0.8),
        ],
    ),
    ModelSpec(
        id="model_magnific-upscaler-creative",
        name="Magnific Creative Upscaler",
        vendor="magnific",
        file_input="image",
        scale=_FACTOR_SCALE,
        rate_per_megapixel=12.0,
        inputs=[
            _file(),
            _str("prompt"),
            _str("scaleFactor", ["2x", "4x", "8x", "16x"], "2x", cost=True),
            _str(
                "optimizedFor",
                [
                    "standard",
                    "soft_portraits",
                    "hard_portraits",
                    "art_n_illustration",
                    "videogame_assets",
                    "nature_n_landscapes",
                    "films_n_photography",
                    "3d_renders",
                    "science_fiction_n_horror",
                ],
            ),
            _num("creativity", -10, 10, 0),
            _num("hdr", -10, 10, 0),
            _num("resemblance", -10, 10, 0),
            _num("fractality", -10, 10, 0),
            _str(
                "engine",
                ["automatic", "magnific_illusio", "magnific_sharpy", "magnific_sparkle"],
            ),
        ],
    ),
    ModelSpec(
        id="model_magnific-upscaler-precision",
        name="Magnific Precision Upscaler",
        vendor="magnific",
        file_input="image",
        scale=_FACTOR_SCALE,
        rate_per_megapixel=12.0,
        inputs=[
            _file(),
            _num("scaleFactor", 2, 16, 2, cost=True),
            _num("sharpen", 0, 100, 7),
            _num("smartGrain", 0, 100, 7),
            _num("ultraDetail", 0, 100, 30),
            _str("flavor", ["sublime", "photo", "photo_denoiser"]),
        ],
    ),
    ModelSpec(
        id="model_clarity-pro-upscaler",
        name="Clarity Pro Upscaler",
        vendor="clarity",
        file_input="image",
        scale=_FACTOR_SCALE,
        rate_per_megapixel=10.0,
        inputs=[
            _file(),
            _num("scaleFactor", 2, 16, 2, cost=True, allowed=[2, 4, 8, 16]),
            _num("creativity", -10, 10, 0),
        ],
    ),
    ModelSpec(
        id="model_crystal-upscaler",
        name="Crystal Upscaler",
        vendor="clarity",
        file_input="image",
        scale=_FACTOR_SCALE,
        rate_per_megapixel=6.0,
        inputs=[
            _file(),
            _num("scaleFactor", 1, 200, 2, cost=True),
            _num("creativity", 0, 10, 0),
        ],
    ),
    ModelSpec(
        id="model_p-image-upscale",
        name="Pruna Image Upscale",
        vendor="pruna",
        file_input="image",
        scale=ScaleRule(mode="megapixels"),
        rate_per_megapixel=2.0,
        inputs=[
            _file(),
            _str("upscaleMode", ["target", "factor"], "target", cost=True),
            _num("target", 1, 8, 4, cost=True),
            _num("factor", 1, 8, 2, cost=True),
            _bool("enhanceDetails"),
            _bool("enhanceRealism"),
        ],
    ),
    # Recraft publishes no factor input; the emulator assumes a 2x output (INFERRED).
    ModelSpec(
        id="model_recraft-crisp-upscale",
        name="Recraft Crisp Upscale",
        vendor="recraft",
        file_input="image",
        scale=ScaleRule(mode="fixed", fixed_factor=2.0),
        rate_per_megapixel=4.0,
        inputs=[_file()],
    ),
    ModelSpec(
        id="model_recraft-creative-upscale",
        name="Recraft Creative Upscale",
        vendor="recraft",
        file_input="image",
        scale=ScaleRule(mode="fixed", fixed_factor=2.0),
        rate_per_megapixel=6.0,
        inputs=[_file()],
    ),
    # --- video upscalers (contract 6.2); capability video2video, output video/mp4 ---------
    ModelSpec(
        id="model_seedvr-2-upscale-video",
        name="SeedVR2 Video Upscale",
        vendor="bytedance",
        file_input="video",
        output_type="upscale-video",
        scale=ScaleRule(mode="seedvr"),
        rate_per_megapixel=2.0,
        inputs=[
            _video(),
            _str("upscaleMode", ["factor", "target"], "factor", cost=True),
            _num("upscaleFactor", 2, 10, 2, cost=True),
            _str("targetResolution", ["720p", "1080p", "1440p", "2160p"], "1080p", cost=True),
            _num("noiseScale", 0, 1, 0.1),
            *_video_output_inputs(),
            _seed(),
        ],
    ),
    ModelSpec(
        id="model_flash-vsr-video-upscale",
        name="FlashVSR Video Upscale",
        vendor="flashvsr",
        file_input="video",
        output_type="upscale-video",
        scale=_FACTOR_UPSCALE,
        rate_per_megapixel=1.0,
        inputs=[
            _video(),
            _num("upscaleFactor", 2, 4, 2, cost=True),
            _str("acceleration", ["regular", "high", "full"]),
            _bool("colorFix", True),
            _num("quality", 0, 100, 70),
            _bool("preserveAudio", False),
            *_video_output_inputs(),
        ],
    ),
    ModelSpec(
        id="model_topazlabs-video-upscale",
        name="Topaz Labs Video Upscale",
        vendor="topaz",
        file_input="video",
        output_type="upscale-video",
        scale=ScaleRule(mode="short_side", input="resolution"),
        rate_per_megapixel=3.0,
        frame_rate_input="fps",
        inputs=[
            _video(),
            _str("resolution", ["720p", "1080p", "4k"], "1080p", cost=True),
            _num("fps", 15, 60, 60, step=1, cost=True),
        ],
    ),
    # Runway: 4x, at most 4K out; inputs under 40 s.
    ModelSpec(
        id="model_runway-upscale-v1",
        name="Runway Upscale V1",
        vendor="runway",
        file_input="video",
        output_type="upscale-video",
        scale=ScaleRule(mode="fixed", fixed_factor=4.0, max_long_side=3840),
        rate_per_megapixel=2.0,
        inputs=[_video(max_duration=40)],
    ),
    ModelSpec(
        id="model_crystal-video-upscaler",
        name="Crystal Video Upscaler",
        vendor="clarity",
        file_input="video",
        output_type="upscale-video",
        scale=ScaleRule(mode="factor", input="scaleFactor", max_long_side=3840),
        rate_per_megapixel=2.0,
        inputs=[_video(), _num("scaleFactor", 1, 200, 2, cost=True)],
    ),
    ModelSpec(
        id="model_magnific-video-upscaler-creative",
        name="Magnific Video Upscaler Creative",
        vendor="magnific",
        file_input="video",
        output_type="upscale-video",
        scale=ScaleRule(mode="long_side", input="resolution"),
        rate_per_megapixel=4.0,
        inputs=_magnific_video_inputs(creative=True),
    ),
    ModelSpec(
        id="model_magnific-video-upscaler-precision",
        name="Magnific Video Upscaler Precision",
        vendor="magnific",
        file_input="video",
        output_type="upscale-video",
        scale=ScaleRule(mode="long_side", input="resolution"),
        rate_per_megapixel=4.0,
        inputs=_magnific_video_inputs(creative=False),
    ),
]

MODELS_BY_ID: dict[str, ModelSpec] = {spec.id: spec for spec in MODELS}
