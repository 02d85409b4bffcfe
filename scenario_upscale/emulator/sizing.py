"""Output size and price of a generation, derived from the model's scale rule.

Dry runs and real runs both call :func:`plan_output`, so the price a client is quoted is exactly the
price it is charged. Video outputs have even sides (H.264 with 4:2:0 chroma needs them) and cost
output pixels times seconds.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel

from .catalog import ModelSpec

_FACTOR_STRING = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*x\s*$", re.IGNORECASE)
_SHORT_SIDE = {"720p": 720, "1080p": 1080, "1440p": 1440, "2160p": 2160}
_LONG_SIDE = {"1k": 1024, "2k": 2048, "4k": 3840}
_VIDEO_SHORT_SIDE = {"720p": 720, "1080p": 1080, "4k": 2160}
_PRUNA_CAP_PIXELS = 8_000_000


class OutputPlan(BaseModel):
    width: int
    height: int
    creative_units: float
    # Video only: the output frame rate when the model sets one (Topaz ``fps``), else None.
    frame_rate: float | None = None

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1_000_000


def effective_params(spec: ModelSpec, body: dict[str, Any]) -> dict[str, Any]:
    """The body with every defaulted input filled in, as the model would see it."""
    params = {item.name: item.default for item in spec.inputs if item.default is not None}
    params.update(body)
    return params


def parse_factor(value: Any) -> float:
    """``2`` -> 2.0, ``"4x"`` -> 4.0; topaz's ``"None"`` (no upscale) -> 1.0."""
    if isinstance(value, bool):
        raise ValueError(f"not a scale factor: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _FACTOR_STRING.match(value)
        if match:
            return float(match.group(1))
        if value.strip().lower() == "none":
            return 1.0
    raise ValueError(f"not a scale factor: {value!r}")


def _scale(spec: ModelSpec, params: dict[str, Any], width: int, height: int) -> float:
    rule = spec.scale
    if rule.mode == "factor":
        assert rule.input is not None
        return parse_factor(params.get(rule.input, 1))
    if rule.mode == "fixed":
        return rule.fixed_factor
    if rule.mode == "long_side":
        assert rule.input is not None
        target = _LONG_SIDE[str(params.get(rule.input, "4k")).lower()]
        return target / max(width, height)
    if rule.mode == "short_side":
        assert rule.input is not None
        target = _VIDEO_SHORT_SIDE[str(params.get(rule.input, "1080p")).lower()]
        return target / min(width, height)
    if rule.mode == "seedvr":
        if params.get("upscaleMode", "factor") == "target":
            return _SHORT_SIDE[str(params.get("targetResolution", "1080p"))] / min(width, height)
        return parse_factor(params.get("upscaleFactor", 2))
    # megapixels (Pruna): a target area, or a factor capped at 8 MP.
    pixels = width * height
    if params.get("upscaleMode", "target") == "target":
        return math.sqrt(float(params.get("target", 4)) * 1_000_000 / pixels)
    factor = parse_factor(params.get("factor", 2))
    if pixels * factor * factor > _PRUNA_CAP_PIXELS:
        factor = math.sqrt(_PRUNA_CAP_PIXELS / pixels)
    return factor


def _even(value: float) -> int:
    return max(2, 2 * round(value / 2))


def plan_output(
    spec: ModelSpec,
    body: dict[str, Any],
    width: int,
    height: int,
    *,
    duration: float | None = None,
) -> OutputPlan:
    """Output size and price; ``duration`` (seconds) prices a video (1 s when unknown)."""
    params = effective_params(spec, body)
    scale = _scale(spec, params, width, height)
    cap = spec.scale.max_long_side
    if cap is not None and max(width, height) * scale > cap:
        scale = cap / max(width, height)
    seconds = 1.0
    frame_rate: float | None = None
    if spec.kind == "video":
        out_w, out_h = _even(width * scale), _even(height * scale)
        seconds = duration if duration else 1.0
        if spec.frame_rate_input is not None:
            frame_rate = float(params[spec.frame_rate_input])
    else:
        out_w = max(1, round(width * scale))
        out_h = max(1, round(height * scale))
    # Cost follows output pixels (SKILLS: "Cost follows output pixels"), and seconds of video.
    units = spec.rate_per_megapixel * out_w * out_h / 1_000_000 * seconds
    cost = max(spec.min_cost, round(units, 1))
    return OutputPlan(width=out_w, height=out_h, creative_units=cost, frame_rate=frame_rate)
