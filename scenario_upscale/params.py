"""Check upscale parameters against a model's ``inputs[]`` before anything is spent.

The model's own schema (``GET /v1/models/{id}``) is the authority: the input that carries the file
and the name and type of the scale parameter differ from model to model (contract §6), so nothing
here is hard-coded per model.
"""

from __future__ import annotations

import math
import re
from typing import Any, TypeGuard

from scenario_upscale.errors import InvalidUpscaleParameters
from scenario_upscale.models import ModelInput, ModelSpec

_SCALE_INPUTS = ("upscaleFactor", "scaleFactor", "factor", "resolution")


def file_input(model: ModelSpec) -> ModelInput:
    """The input that carries the image or video (``image``, ``imageUrl``, ``video``…).

    The required file input wins over optional ones (style images, image prompts).
    """
    files = [i for i in model.inputs if i.type == "file"]
    if not files:
        raise InvalidUpscaleParameters(
            model.id, "<file input>", None, "this model takes no image or video file input"
        )
    return next((i for i in files if i.always_required), files[0])


def media_kind(model: ModelSpec) -> str:
    """``image`` or ``video``: what the model's file input accepts."""
    return file_input(model).kind or "image"


def _describe(spec: ModelInput) -> str:
    if spec.allowed_values is not None:
        return "one of " + ", ".join(repr(v) for v in spec.allowed_values)
    kind = {
        "number": "a number",
        "string": "a string",
        "boolean": "true or false",
        "file": f"an asset id of {spec.kind or 'image'}",
        "file_array": f"a list of asset ids of {spec.kind or 'image'}",
        "number_array": "a list of numbers",
        "string_array": "a list of strings",
        "model": "a model id",
        "model_array": "a list of model ids",
    }.get(spec.type, spec.type)
    bounds = []
    if spec.min is not None:
        bounds.append(f">= {spec.min:g}")
    if spec.max is not None:
        bounds.append(f"<= {spec.max:g}")
    return kind + (" " + " and ".join(bounds) if bounds else "")


def is_number(value: object) -> TypeGuard[int | float]:
    """A finite int or float, and not a boolean (``True`` is not 1 to the API)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_value(model_id: str, spec: ModelInput, value: object) -> None:
    def bad() -> InvalidUpscaleParameters:
        return InvalidUpscaleParameters(model_id, spec.name, value, _describe(spec))

    if spec.allowed_values is not None:
        # 2 and 2.0 are the same value to the API, True is not 1.
        if not any(
            type(value) is type(a) or (is_number(value) and is_number(a))
            for a in spec.allowed_values
            if value == a
        ):
            raise bad()
        return
    kind = spec.type
    if kind == "number":
        if not is_number(value):
            raise bad()
        if (spec.min is not None and value < spec.min) or (
            spec.max is not None and value > spec.max
        ):
            raise bad()
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise bad()
    elif kind in ("string", "file", "model"):
        if not isinstance(value, str) or (kind != "string" and not value):
            raise bad()
        if kind == "string" and (
            (spec.min_length is not None and len(value) < spec.min_length)
            or (spec.max_length is not None and len(value) > spec.max_length)
        ):
            raise bad()
    elif kind.endswith("_array"):
        if not isinstance(value, list):
            raise bad()
        item_type = {
            "file_array": "file",
            "number_array": "number",
            "model_array": "model",
            "string_array": "string",
        }.get(kind)
        if item_type is not None:
            item_spec = spec.model_copy(update={"type": item_type})
            for item in value:
                _check_value(model_id, item_spec, item)


def build_body(model: ModelSpec, asset_id: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """The flat request body for ``generate/custom``: the file input plus checked parameters.

    Args:
        model: The model, with its ``inputs[]``.
        asset_id: The uploaded input's asset id, put in the model's own file input.
        parameters: The caller's parameters, named as in ``inputs[].name``.

    Raises:
        InvalidUpscaleParameters: naming the field, the value and what the model allows.

    Example:
        >>> spec = ModelSpec(id="model_x", inputs=[
        ...     ModelInput(name="image", type="file", required={"always": True}),
        ...     ModelInput(name="upscaleFactor", type="number", min=1, max=16)])
        >>> build_body(spec, "asset_1", {"upscaleFactor": 4})
        {'image': 'asset_1', 'upscaleFactor': 4}
    """
    carrier = file_input(model)
    known = {i.name for i in model.inputs}
    for name in parameters:
        if name not in known:
            allowed = ", ".join(sorted(known - {carrier.name}))
            raise InvalidUpscaleParameters(
                model.id,
                name,
                parameters[name],
                f"inputs of this model: {allowed} (its file input is {carrier.name!r}, "
                "filled from the source)",
            )
        if name == carrier.name:
            raise InvalidUpscaleParameters(
                model.id,
                name,
                parameters[name],
                "the input file is given as the source, not as a parameter",
            )
    body: dict[str, Any] = {carrier.name: asset_id}
    for spec in model.inputs:
        if spec.name == carrier.name:
            continue
        if spec.name in parameters and parameters[spec.name] is not None:
            _check_value(model.id, spec, parameters[spec.name])
            body[spec.name] = parameters[spec.name]
        elif spec.always_required and spec.default is None:
            raise InvalidUpscaleParameters(model.id, spec.name, None, _describe(spec))
    return body


def scale_label(model: ModelSpec, parameters: dict[str, Any]) -> str:
    """A short label for the requested scale, used in output file names: ``x4``, ``4k``, ``1080p``.

    Falls back on the model's default for the scale input, then on ``x`` alone.
    """
    mode_spec = model.input("upscaleMode")
    mode = parameters.get("upscaleMode", mode_spec.default if mode_spec else None)
    # In target mode the model ignores the factor and aims at a resolution (SeedVR2, Pruna).
    order = ("targetResolution", "target") if mode == "target" else _SCALE_INPUTS
    for name in order:
        spec = model.input(name)
        if spec is None:
            continue
        value = parameters.get(name, spec.default)
        if value is None:
            continue
        text = f"{value:g}" if is_number(value) else str(value)
        return text if text[-1:].isalpha() else f"x{text}"
    return "x"


def _canonical(value: Any) -> Any:
    # 4.0 and 4 are the same request: a JSON round trip or a float-typed echo must not split them.
    if is_number(value) and float(value).is_integer():
        return int(value)
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def effective_parameters(model: ModelSpec, parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters the model will run with: the caller's, plus every default it left out.

    ``{}`` and ``{"upscaleFactor": 2}`` are the same job when 2 is the model's default, so this
    is what a request is keyed on and what an echo of it is compared with. The file input and
    ``None`` values are left out; integral numbers are ints.

    Example:
        >>> spec = ModelSpec(id="model_x", inputs=[
        ...     ModelInput(name="image", type="file", required={"always": True}),
        ...     ModelInput(name="upscaleFactor", type="number", default=2),
        ...     ModelInput(name="seed", type="number")])
        >>> effective_parameters(spec, {}) == effective_parameters(spec, {"upscaleFactor": 2.0})
        True
        >>> effective_parameters(spec, {"seed": 7})
        {'upscaleFactor': 2, 'seed': 7}
    """
    carrier = file_input(model).name
    merged = {i.name: i.default for i in model.inputs if i.name != carrier}
    merged.update({k: v for k, v in parameters.items() if k != carrier})
    return {k: _canonical(v) for k, v in merged.items() if v is not None}


def same_value(a: Any, b: Any) -> bool:
    """JSON equality where numbers compare by value (2 == 2.0) and booleans are not numbers.

    >>> same_value(2, 2.0), same_value(True, 1), same_value([1, "a"], [1.0, "a"])
    (True, False, True)
    """
    if is_number(a) and is_number(b):
        return float(a) == float(b)
    if isinstance(a, bool) or isinstance(b, bool) or is_number(a) or is_number(b):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return bool(a == b)


def _carries(value: Any, asset_id: str) -> bool:
    # The echo may give the file input back as the id we sent, a URL to it, an asset object
    # or a one-item list; an asset id is long and random, so finding it whole is enough.
    if isinstance(value, str):
        return re.search(rf"(?<![\w-]){re.escape(asset_id)}(?![\w-])", value) is not None
    if isinstance(value, dict):
        return any(_carries(v, asset_id) for v in value.values())
    if isinstance(value, list) and len(value) == 1:
        return _carries(value[0], asset_id)
    return False


def echo_matches(
    echo: dict[str, Any],
    *,
    model: ModelSpec,
    input_asset_id: str,
    parameters: dict[str, Any],
) -> bool:
    """Whether a job's ``metadata.input`` echoes a request for this model, input and parameters.

    The echo is only typed as "the inputs for the job" (contract §9): the API may add the model's
    defaults, send numbers as floats or reorder keys. So the echo matches when it carries our
    input asset in the model's file input (its id, or a URL or an object that names it) and,
    once both sides have the model's defaults filled
    in, every one of our parameters with the same value; keys the echo adds beyond ours are
    ignored. A ``modelId`` in the echo, if the API puts one there, must be this model. The job
    type is not looked at: what the API calls a custom upscale is not confirmed.

    Example:
        >>> spec = ModelSpec(id="model_x", inputs=[
        ...     ModelInput(name="image", type="file", required={"always": True}),
        ...     ModelInput(name="upscaleFactor", type="number", default=2)])
        >>> echo = {"upscaleFactor": 2.0, "image": "asset_1", "seed": 12}
        >>> echo_matches(echo, model=spec, input_asset_id="asset_1", parameters={})
        True
        >>> echo_matches(echo, model=spec, input_asset_id="asset_1", parameters={"seed": 7})
        False
    """
    if not _carries(echo.get(file_input(model).name), input_asset_id):
        return False
    if "modelId" in echo and echo["modelId"] != model.id:
        return False
    ours = effective_parameters(model, parameters)
    theirs = effective_parameters(model, echo)
    return all(k in theirs and same_value(v, theirs[k]) for k, v in ours.items())
