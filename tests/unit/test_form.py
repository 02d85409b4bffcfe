"""The run form of upscale-batch and upscale-image: what the Prefect UI builds it from (the
flows' parameter schema), every bad option named at once, and defaults that agree."""

from __future__ import annotations

from typing import Any

import pytest
from prefect.utilities.callables import parameter_schema

from deployments.definitions import DeploymentSettings
from flows.options import UpscaleOptions
from flows.upscale import DEFAULT_MODEL, upscale_batch, upscale_image
from flows.upscale_models import OtherModel, ScenarioModels, UpscaleV3, choice_for
from scenario_upscale.batch import UpscaleSpec
from scenario_upscale.errors import InvalidOption


def _schema(flow: Any) -> dict[str, Any]:
    return parameter_schema(flow.fn).model_dump()


def test_every_bad_option_is_named_at_once_in_words() -> None:
    with pytest.raises(InvalidOption) as error:
        UpscaleOptions.checked("upscale-batch", max_concurrency=0, shard_size=-1)
    assert str(error.value) == (
        "upscale-batch: invalid parameter 'max_concurrency': got 0; allowed: a number >= 1 "
        "(jobs in flight at once); invalid parameter 'shard_size': got -1; allowed: a number "
        ">= 1 (inputs per submit/wait/collect step)"
    )


@pytest.mark.parametrize("flow", [upscale_batch, upscale_image])
def test_the_form_offers_the_models_in_groups_with_their_ranges(flow: Any) -> None:
    schema = _schema(flow)
    model = schema["properties"]["model"]
    groups = [schema["definitions"][r["$ref"].split("/")[-1]]["title"] for r in model["anyOf"]]
    assert groups == [
        "Scenario models",
        "Partner image models",
        "Video models",
        "Another model (by id)",
    ]
    v3 = schema["definitions"]["UpscaleV3"]["properties"]["upscaleFactor"]
    assert (v3["minimum"], v3["maximum"], v3["default"]) == (1, 16, 2)
    budget = schema["properties"]["max_creative_units"]
    assert budget["type"] == "number" and budget["minimum"] == 0 and "anyOf" not in budget
    credentials = schema["properties"]["credentials_block"]
    assert {"$ref": "#/definitions/ScenarioCredentials"} in credentials["anyOf"]


def test_the_engineering_knobs_are_grouped_apart() -> None:
    schema = _schema(upscale_batch)
    assert not {"shard_size", "max_concurrency", "concurrency_limit"} & set(schema["properties"])
    advanced = schema["definitions"]["AdvancedSettings"]["properties"]
    assert advanced["max_concurrency"]["minimum"] == 1 and advanced["shard_size"]["default"] == 25


def test_the_deployments_default_model_is_the_forms() -> None:
    assert DeploymentSettings().model_parameter() == DEFAULT_MODEL.model_dump(mode="json")


def test_a_model_spec_becomes_its_form_entry_or_another_model() -> None:
    four = choice_for(UpscaleSpec(parameters={"upscaleFactor": 4}))
    assert isinstance(four, ScenarioModels) and four.scenario == UpscaleV3(upscaleFactor=4)
    assert choice_for(UpscaleSpec(model_id="model_new", parameters={"x": 1})) == OtherModel(
        model_id="model_new", parameters={"x": 1}
    )
    # An input the form does not show (asset ids) keeps the spec as it is.
    styled = UpscaleSpec(parameters={"styleImages": ["asset_1"]})
    assert choice_for(styled).spec() == styled


def test_no_budget_is_not_a_given_option() -> None:
    # asset-pipeline hands the given options to an upscale-batch deployment, whose budget is a
    # number: None there would be refused ("None is not of type 'number'").
    options = UpscaleOptions.checked("asset-pipeline", target="out", max_creative_units=None)
    assert options.given() == {"target": "out"}


def test_the_flows_can_be_cloudpickled_as_a_served_run_ships_them() -> None:
    # ``flow.serve`` starts each run with the flow cloudpickled: anything the flow's wrappers
    # name that cannot be pickled (a ContextVar) crashes every served run before it starts.
    import cloudpickle

    from flows.upscale import upscale_batch, upscale_image

    for flow in (upscale_batch, upscale_image):
        assert cloudpickle.loads(cloudpickle.dumps(flow)).name == flow.name
