"""Check a ``/generate/custom`` body against the model's ``inputs[]``.

Every problem becomes a 400 whose ``reason`` names the field, the value and what is allowed, so a
client's misreading of the schema is visible at once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from .catalog import ModelInput, ModelSpec
from .errors import ApiError, bad_request
from .sizing import effective_params
from .store import AssetRecord

AssetLookup = Callable[[str], AssetRecord | None]


def _show(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_number(spec: ModelInput, value: Any, where: str) -> None:
    if not _is_number(value):
        raise bad_request(f"Input '{where}' must be a number, got {_show(value)}")
    if spec.allowed_values is not None and value not in spec.allowed_values:
        raise bad_request(
            f"Input '{where}' must be one of {_show(spec.allowed_values)}, got {_show(value)}"
        )
    if spec.min is not None and value < spec.min:
        raise bad_request(f"Input '{where}' must be >= {spec.min:g}, got {_show(value)}")
    if spec.max is not None and value > spec.max:
        raise bad_request(f"Input '{where}' must be <= {spec.max:g}, got {_show(value)}")
    if spec.step == 1 and float(value) != int(value):
        raise bad_request(f"Input '{where}' must be an integer, got {_show(value)}")


def _check_string(spec: ModelInput, value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise bad_request(f"Input '{where}' must be a string, got {_show(value)}")
    if spec.allowed_values is not None and value not in spec.allowed_values:
        raise bad_request(
            f"Input '{where}' must be one of {_show(spec.allowed_values)}, got {_show(value)}"
        )
    if spec.max_length is not None and len(value) > spec.max_length:
        raise bad_request(f"Input '{where}' must be at most {spec.max_length} characters")


def _check_file(spec: ModelInput, value: Any, where: str, lookup: AssetLookup) -> AssetRecord:
    if not isinstance(value, str) or not value.startswith("asset_"):
        raise bad_request(
            f"Input '{where}' must be the asset id (asset_...) of an uploaded file,"
            f" got {_show(value)}"
        )
    asset = lookup(value)
    if asset is None:
        raise bad_request(f"Input '{where}': asset {value} does not exist in this project")
    wanted = spec.kind or "image"
    if asset.kind != wanted:
        raise bad_request(f"Input '{where}': asset {value} is a {asset.kind}, expected a {wanted}")
    if asset.duration is not None:
        if spec.max_duration is not None and asset.duration > spec.max_duration:
            raise bad_request(
                f"Input '{where}': video {value} lasts {asset.duration:g} s,"
                f" the model accepts at most {spec.max_duration:g} s"
            )
        if spec.min_duration is not None and asset.duration < spec.min_duration:
            raise bad_request(
                f"Input '{where}': video {value} lasts {asset.duration:g} s,"
                f" the model needs at least {spec.min_duration:g} s"
            )
    return asset


def _check_array(spec: ModelInput, value: Any, where: str, lookup: AssetLookup) -> None:
    if not isinstance(value, list):
        raise bad_request(f"Input '{where}' must be an array, got {_show(value)}")
    if spec.max_length is not None and len(value) > spec.max_length:
        raise bad_request(f"Input '{where}' accepts at most {spec.max_length} items")
    if spec.min_length is not None and len(value) < spec.min_length:
        raise bad_request(f"Input '{where}' needs at least {spec.min_length} items")
    item_spec = spec.model_copy(update={"max_length": None, "min_length": None})
    for index, item in enumerate(value):
        item_where = f"{where}[{index}]"
        if spec.type == "file_array":
            _check_file(item_spec, item, item_where, lookup)
        elif spec.type == "number_array":
            _check_number(item_spec, item, item_where)
        elif not isinstance(item, str):  # string_array, model_array
            raise bad_request(f"Input '{item_where}' must be a string, got {_show(item)}")


def validate_body(model: ModelSpec, body: Any, lookup: AssetLookup) -> AssetRecord:
    """Validate and return the asset of the model's main file input."""
    if not isinstance(body, dict):
        raise bad_request("Request body must be a JSON object of the model's inputs")
    known = {item.name: item for item in model.inputs}
    for name in body:
        if name not in known:
            raise bad_request(
                f"Unknown input '{name}' for model {model.id}; allowed inputs: "
                + ", ".join(sorted(known))
            )
    for item in model.inputs:
        if item.is_required and name_missing(body, item.name):
            raise bad_request(f"Missing required input '{item.name}' for model {model.id}")
    main_asset: AssetRecord | None = None
    for name, value in body.items():
        spec = known[name]
        if spec.type == "number":
            _check_number(spec, value, name)
        elif spec.type in ("string", "model"):
            _check_string(spec, value, name)
        elif spec.type == "boolean":
            if not isinstance(value, bool):
                raise bad_request(f"Input '{name}' must be a boolean, got {_show(value)}")
        elif spec.type == "file":
            asset = _check_file(spec, value, name, lookup)
            if name == model.file_input:
                main_asset = asset
        else:
            _check_array(spec, value, name, lookup)
    if main_asset is None:  # pragma: no cover - guarded by the required check above
        raise ApiError(400, f"Missing required input '{model.file_input}'")
    return main_asset


def name_missing(body: dict[str, Any], name: str) -> bool:
    return name not in body or body[name] is None or body[name] == ""


def normalised_input(model: ModelSpec, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` as a normalising server would echo it (profile ``normalised-echo``).

    Every input of the schema that has a default and was not sent is added, keys follow
    ``inputs[]`` and integers become floats (``2`` -> ``2.0``), also inside arrays.
    """
    params = effective_params(model, body)
    ordered = [item.name for item in model.inputs if item.name in params]
    return {name: _as_floats(params[name]) for name in ordered}


def _as_floats(value: Any) -> Any:
    if isinstance(value, list):
        return [_as_floats(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value
