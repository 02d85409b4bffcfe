"""The upscale models the run form offers: one typed model per model family.

The Prefect UI builds a flow's run form from its parameters' JSON schema, so a discriminated
union of these models becomes a list of the known upscale models, each with its own inputs,
their ranges, allowed values and defaults. ``OtherModel`` names any other model id with raw
parameters. Inputs that take asset ids (style images, image prompts, LoRAs) are left to
``OtherModel``: a form field cannot pick a Scenario asset.

These models only shape the form and catch a slip before anything is uploaded: the model's own
schema (``GET /v1/models/{id}``, checked by ``scenario_upscale.params``) stays the authority,
so a model Scenario changes still works through ``OtherModel``. Ranges, allowed values and
defaults are those of the contract (``scenario-api.md`` section 6).

Field names are the API's input names (camelCase), so a choice turns into the request's
parameters as it is; titles are what people read.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from scenario_upscale.items import UpscaleSpec

MAX_SEED = 2147483647

Preset = Literal["precise", "balanced", "creative"]
VideoQuality = Literal["low", "medium", "high", "maximum"]
VideoWriteMode = Literal["fast", "balanced", "small"]
Resolution = Literal["720p", "1080p", "1440p", "2160p"]
Seed = Annotated[int | None, Field(ge=0, le=MAX_SEED, title="Seed (empty: random)")]
Prompt = Annotated[str, Field(title="Prompt (optional)")]


class _Choice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_id: str

    def spec(self) -> UpscaleSpec:
        """The model and the parameters to send: every input set, empty prompts left out."""
        parameters = {
            name: value
            for name, value in self.model_dump(exclude={"model_id"}).items()
            if value is not None and value != ""
        }
        return UpscaleSpec(model_id=self.model_id, parameters=parameters)


class UpscaleV3(_Choice):
    """Scenario Upscale V3: fast, 1-16x, with styles and a creativity knob."""

    model_config = ConfigDict(title="Upscale V3 (1-16x)")
    model_id: Literal["model_upscale-v3"] = Field(default="model_upscale-v3", title="Model")
    upscaleFactor: float = Field(default=2, ge=1, le=16, title="Upscale factor (1-16)")
    style: Literal[
        "standard", "cartoon", "anime", "comic", "minimalist", "photography", "3d-rendered"
    ] = Field(default="standard", title="Style")
    preset: Preset = Field(default="precise", title="Preset")
    strength: float = Field(default=0.1, ge=0.1, le=1, title="Creativity (0.1-1)")
    strengthDecay: float = Field(
        default=0.8, ge=0.1, le=1, title="Creativity kept per stage above 2x (0.1-1)"
    )
    fractality: float = Field(default=0, ge=0, le=1, title="Fractality (0-1)")
    loraDetailsScale: float = Field(default=0, ge=-1.5, le=1.5, title="Details (-1.5-1.5)")
    guidanceScale: float = Field(default=6, ge=0, le=10, title="Prompt guidance (0-10)")
    controlnetConditioningScale: float = Field(
        default=0.8, ge=0, le=1.2, title="Structure kept (0-1.2)"
    )
    prompt: Prompt = ""
    negativePrompt: str = Field(default="", title="Negative prompt (optional)")
    seed: Seed = None


class FluxUpscale(_Choice):
    """Scenario Flux Upscale, general or tiling-safe (texture)."""

    model_config = ConfigDict(title="Flux / Texture (2-8x)")
    model_id: Literal["model_sc-upscale-flux", "model_sc-upscale-flux-texture"] = Field(
        default="model_sc-upscale-flux", title="Model (texture: tiling-safe)"
    )
    upscaleFactor: float = Field(default=2, ge=2, le=8, title="Upscale factor (2-8)")
    preset: Preset = Field(default="balanced", title="Preset")
    strength: float = Field(default=0.4, ge=0, le=1, title="Creativity (0-1)")
    controlnetConditioningScale: float = Field(
        default=0.4, ge=0, le=1, title="Structure kept (0-1)"
    )
    numInferenceSteps: int = Field(default=28, ge=1, le=50, title="Steps (1-50)")
    detailsEnable: bool = Field(default=True, title="Enhance details")
    baseModel: Literal["FLUX.1-dev", "FLUX.1-Krea-dev"] | None = Field(
        default=None, title="Base model (empty: the model's own)"
    )
    prompt: Prompt = ""
    seed: Seed = None


class SkyboxUpscale(_Choice):
    """Scenario Skybox Upscale: keeps the 360-degree seam."""

    model_config = ConfigDict(title="Skybox 360 (2-8x)")
    model_id: Literal["model_sc-upscale-flux-skybox"] = Field(
        default="model_sc-upscale-flux-skybox", title="Model"
    )
    upscaleFactor: float = Field(default=2, ge=2, le=8, title="Upscale factor (2-8)")
    strength: float = Field(default=0.6, ge=0, le=1, title="Creativity (0-1)")
    controlnetConditioningScale: float = Field(
        default=0.5, ge=0, le=1, title="Structure kept (0-1)"
    )
    numInferenceSteps: int = Field(default=28, ge=1, le=50, title="Steps (1-50)")
    detailsEnable: bool = Field(default=True, title="Enhance details")
    prompt: Prompt = ""
    seed: Seed = None


class GeminiUpscale(_Choice):
    """Scenario Gemini Upscale: to 4K."""

    model_config = ConfigDict(title="Gemini (to 4K)")
    model_id: Literal["model_scenario-gemini-upscale"] = Field(
        default="model_scenario-gemini-upscale", title="Model"
    )
    upscaleFactor: Literal["4k"] = Field(default="4k", title="Output size")
    creativity: float = Field(default=50, ge=0, le=100, title="Creativity (0-100)")
    prompt: Prompt = ""
    seed: Seed = None


class _SeedVR2(_Choice):
    """What SeedVR2's image and video upscales share: by a factor or to a resolution."""

    upscaleMode: Literal["factor", "target"] = Field(
        default="factor", title="Mode (factor, or target resolution)"
    )
    upscaleFactor: float = Field(default=2, ge=2, le=10, title="Upscale factor (2-10)")
    targetResolution: Resolution = Field(default="1080p", title="Target resolution")
    noiseScale: float = Field(default=0.1, ge=0, le=1, title="Noise (0-1)")


class SeedVR2Image(_SeedVR2):
    """SeedVR2 image upscale (ByteDance): by a factor or to a resolution."""

    model_config = ConfigDict(title="SeedVR2")
    model_id: Literal["model_seedvr-2-upscale-image"] = Field(
        default="model_seedvr-2-upscale-image", title="Model"
    )
    seed: Seed = None


class TopazImage(_Choice):
    """Topaz image upscale."""

    model_config = ConfigDict(title="Topaz")
    model_id: Literal["model_topaz-image-upscale"] = Field(
        default="model_topaz-image-upscale", title="Model"
    )
    upscaleFactor: Literal["None", "2x", "4x", "6x"] = Field(default="2x", title="Upscale factor")
    enhanceModel: Literal[
        "Standard V2", "Low Resolution V2", "CGI", "High Fidelity V2", "Text Refine"
    ] = Field(default="Standard V2", title="Enhance model")
    subjectDetection: Literal["None", "All", "Foreground", "Background"] | None = Field(
        default=None, title="Subject detection"
    )
    faceEnhancement: bool = Field(default=False, title="Enhance faces")
    faceEnhancementCreativity: float = Field(default=0, ge=0, le=1, title="Face creativity (0-1)")
    faceEnhancementStrength: float = Field(default=0.8, ge=0, le=1, title="Face strength (0-1)")


class MagnificCreative(_Choice):
    """Magnific creative upscaler."""

    model_config = ConfigDict(title="Magnific creative")
    model_id: Literal["model_magnific-upscaler-creative"] = Field(
        default="model_magnific-upscaler-creative", title="Model"
    )
    scaleFactor: Literal["2x", "4x", "8x", "16x"] = Field(default="2x", title="Scale factor")
    optimizedFor: (
        Literal[
            "standard",
            "soft_portraits",
            "hard_portraits",
            "art_n_illustration",
            "videogame_assets",
            "nature_n_landscapes",
            "films_n_photography",
            "3d_renders",
            "science_fiction_n_horror",
        ]
        | None
    ) = Field(default=None, title="Optimized for")
    creativity: float = Field(default=0, ge=-10, le=10, title="Creativity (-10-10)")
    hdr: float = Field(default=0, ge=-10, le=10, title="HDR (-10-10)")
    resemblance: float = Field(default=0, ge=-10, le=10, title="Resemblance (-10-10)")
    fractality: float = Field(default=0, ge=-10, le=10, title="Fractality (-10-10)")
    engine: (
        Literal["automatic", "magnific_illusio", "magnific_sharpy", "magnific_sparkle"] | None
    ) = Field(default=None, title="Engine")
    prompt: Prompt = ""


class MagnificPrecision(_Choice):
    """Magnific precision upscaler."""

    model_config = ConfigDict(title="Magnific precision")
    model_id: Literal["model_magnific-upscaler-precision"] = Field(
        default="model_magnific-upscaler-precision", title="Model"
    )
    scaleFactor: float = Field(default=2, ge=2, le=16, title="Scale factor (2-16)")
    sharpen: float = Field(default=7, ge=0, le=100, title="Sharpen (0-100)")
    smartGrain: float = Field(default=7, ge=0, le=100, title="Smart grain (0-100)")
    ultraDetail: float = Field(default=30, ge=0, le=100, title="Ultra detail (0-100)")
    flavor: Literal["sublime", "photo", "photo_denoiser"] | None = Field(
        default=None, title="Flavor"
    )


class ClarityPro(_Choice):
    """Clarity Pro upscaler."""

    model_config = ConfigDict(title="Clarity Pro")
    model_id: Literal["model_clarity-pro-upscaler"] = Field(
        default="model_clarity-pro-upscaler", title="Model"
    )
    scaleFactor: Literal[2, 4, 8, 16] = Field(default=2, title="Scale factor")
    creativity: float = Field(default=0, ge=-10, le=10, title="Creativity (-10-10)")


class CrystalImage(_Choice):
    """Crystal upscaler (the factor is capped to what fits in memory)."""

    model_config = ConfigDict(title="Crystal")
    model_id: Literal["model_crystal-upscaler"] = Field(
        default="model_crystal-upscaler", title="Model"
    )
    scaleFactor: float = Field(default=2, ge=1, le=200, title="Scale factor (1-200)")
    creativity: float = Field(default=0, ge=0, le=10, title="Creativity (0-10)")


class PrunaImage(_Choice):
    """Pruna image upscale: to a size in megapixels or by a factor (8 MP at most)."""

    model_config = ConfigDict(title="Pruna")
    model_id: Literal["model_p-image-upscale"] = Field(
        default="model_p-image-upscale", title="Model"
    )
    upscaleMode: Literal["target", "factor"] = Field(
        default="target", title="Mode (target megapixels, or factor)"
    )
    target: float = Field(default=4, ge=1, le=8, title="Target megapixels (1-8)")
    factor: float = Field(default=2, ge=1, le=8, title="Factor (1-8)")
    enhanceDetails: bool = Field(default=False, title="Enhance details")
    enhanceRealism: bool = Field(default=False, title="Enhance realism")


class Recraft(_Choice):
    """Recraft upscales: no settings."""

    model_config = ConfigDict(title="Recraft")
    model_id: Literal["model_recraft-crisp-upscale", "model_recraft-creative-upscale"] = Field(
        default="model_recraft-crisp-upscale", title="Model"
    )


class SeedVR2Video(_SeedVR2):
    """SeedVR2 video upscale (ByteDance)."""

    model_config = ConfigDict(title="SeedVR2")
    model_id: Literal["model_seedvr-2-upscale-video"] = Field(
        default="model_seedvr-2-upscale-video", title="Model"
    )
    outputQuality: VideoQuality = Field(default="high", title="Output quality")
    outputWriteMode: VideoWriteMode = Field(default="balanced", title="Output write mode")
    seed: Seed = None


class FlashVSRVideo(_Choice):
    """FlashVSR video upscale."""

    model_config = ConfigDict(title="FlashVSR")
    model_id: Literal["model_flash-vsr-video-upscale"] = Field(
        default="model_flash-vsr-video-upscale", title="Model"
    )
    upscaleFactor: float = Field(default=2, ge=2, le=4, title="Upscale factor (2-4)")
    acceleration: Literal["regular", "high", "full"] | None = Field(
        default=None, title="Acceleration"
    )
    colorFix: bool = Field(default=True, title="Fix colours")
    quality: float = Field(default=70, ge=0, le=100, title="Quality (0-100)")
    preserveAudio: bool = Field(default=False, title="Keep the audio")
    outputQuality: VideoQuality = Field(default="high", title="Output quality")
    outputWriteMode: VideoWriteMode = Field(default="balanced", title="Output write mode")


class TopazVideo(_Choice):
    """Topaz Labs video upscale."""

    model_config = ConfigDict(title="Topaz")
    model_id: Literal["model_topazlabs-video-upscale"] = Field(
        default="model_topazlabs-video-upscale", title="Model"
    )
    resolution: Literal["720p", "1080p", "4k"] = Field(default="1080p", title="Resolution")
    fps: int = Field(default=60, ge=15, le=60, title="Frames per second (15-60)")


class RunwayVideo(_Choice):
    """Runway Upscale V1: 4x, 4K at most, inputs under 40 s."""

    model_config = ConfigDict(title="Runway")
    model_id: Literal["model_runway-upscale-v1"] = Field(
        default="model_runway-upscale-v1", title="Model"
    )


class CrystalVideo(_Choice):
    """Crystal video upscaler (4K output at most)."""

    model_config = ConfigDict(title="Crystal")
    model_id: Literal["model_crystal-video-upscaler"] = Field(
        default="model_crystal-video-upscaler", title="Model"
    )
    scaleFactor: float = Field(default=2, ge=1, le=200, title="Scale factor (1-200)")


class MagnificVideoCreative(_Choice):
    """Magnific creative video upscaler."""

    model_config = ConfigDict(title="Magnific creative")
    model_id: Literal["model_magnific-video-upscaler-creative"] = Field(
        default="model_magnific-video-upscaler-creative", title="Model"
    )
    resolution: Literal["1k", "2k", "4k"] = Field(default="2k", title="Resolution")
    creativity: float = Field(default=0, ge=0, le=100, title="Creativity (0-100)")
    sharpen: float | None = Field(default=None, ge=0, le=100, title="Sharpen (0-100)")
    smartGrain: float | None = Field(default=None, ge=0, le=100, title="Smart grain (0-100)")
    fpsBoost: bool = Field(default=False, title="Boost frame rate")
    flavor: Literal["vivid", "natural"] | None = Field(default=None, title="Flavor")
    turbo: bool = Field(default=False, title="Turbo")


class MagnificVideoPrecision(_Choice):
    """Magnific precision video upscaler."""

    model_config = ConfigDict(title="Magnific precision")
    model_id: Literal["model_magnific-video-upscaler-precision"] = Field(
        default="model_magnific-video-upscaler-precision", title="Model"
    )
    resolution: Literal["1k", "2k", "4k"] = Field(default="2k", title="Resolution")
    strength: float = Field(
        default=60, ge=0, le=100, title="Strength (0-100, ignored with frame-rate boost)"
    )
    sharpen: float | None = Field(default=None, ge=0, le=100, title="Sharpen (0-100)")
    smartGrain: float | None = Field(default=None, ge=0, le=100, title="Smart grain (0-100)")
    fpsBoost: bool = Field(default=False, title="Boost frame rate")


class OtherModel(_Choice):
    """Any other Scenario model, by id, with its inputs by their API names."""

    model_config = ConfigDict(title="Another model (by id)")
    model_id: str = Field(
        default="model_upscale-v3",
        min_length=1,
        title="Model id",
        description="A Scenario model id, e.g. model_upscale-v3.",
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        title="Parameters",
        description='Inputs by their API names, e.g. {"upscaleFactor": 4}.',
    )

    def spec(self) -> UpscaleSpec:
        return UpscaleSpec(model_id=self.model_id, parameters=self.parameters)


# The form shows a union as a row of tabs: four groups of a few models each keep that row short.


class ScenarioModels(BaseModel):
    """Scenario's own upscalers."""

    model_config = ConfigDict(extra="forbid", title="Scenario models")
    scenario: UpscaleV3 | FluxUpscale | SkyboxUpscale | GeminiUpscale = Field(
        default=UpscaleV3(), title="Model"
    )

    def spec(self) -> UpscaleSpec:
        return self.scenario.spec()


class PartnerImageModels(BaseModel):
    """Image upscalers from Scenario's partners."""

    model_config = ConfigDict(extra="forbid", title="Partner image models")
    partner: (
        SeedVR2Image
        | TopazImage
        | MagnificCreative
        | MagnificPrecision
        | ClarityPro
        | CrystalImage
        | PrunaImage
        | Recraft
    ) = Field(default=SeedVR2Image(), title="Model")

    def spec(self) -> UpscaleSpec:
        return self.partner.spec()


class VideoModels(BaseModel):
    """Video upscalers."""

    model_config = ConfigDict(extra="forbid", title="Video models")
    video: (
        SeedVR2Video
        | FlashVSRVideo
        | TopazVideo
        | RunwayVideo
        | CrystalVideo
        | MagnificVideoCreative
        | MagnificVideoPrecision
    ) = Field(default=SeedVR2Video(), title="Model")

    def spec(self) -> UpscaleSpec:
        return self.video.spec()


# A plain union: the form renders ``anyOf`` as tabs (a tagged union's ``oneOf`` only as JSON).
ModelChoice = ScenarioModels | PartnerImageModels | VideoModels | OtherModel
"""The model a run uses, as the form offers it. ``ScenarioModels()`` is Upscale V3 at 2x."""

_GROUPS: tuple[type[ScenarioModels] | type[PartnerImageModels] | type[VideoModels], ...] = (
    ScenarioModels,
    PartnerImageModels,
    VideoModels,
)


def choice_for(spec: UpscaleSpec) -> ScenarioModels | PartnerImageModels | VideoModels | OtherModel:
    """The form's choice for a model and its parameters: the model's own entry in the list,
    with every other input at its default, or ``OtherModel`` when the list has no entry that
    takes these parameters (an unknown model id, or an input the form does not show).

    Example:
        >>> choice = choice_for(UpscaleSpec(parameters={"upscaleFactor": 4}))
        >>> choice.spec().parameters["upscaleFactor"]
        4.0
        >>> choice_for(UpscaleSpec(model_id="model_new")).model_dump()
        {'model_id': 'model_new', 'parameters': {}}
    """
    for group in _GROUPS:
        [field] = group.model_fields
        try:
            return group.model_validate({field: {"model_id": spec.model_id, **spec.parameters}})
        except ValidationError:
            continue
    return OtherModel(model_id=spec.model_id, parameters=spec.parameters)
