"""The options the upscale flows share, defined once.

``upscale-batch`` and ``upscale-image`` take them as the parameters of a form anyone can fill
in the Prefect UI: the output folder, the model (``flows.upscale_models``), a budget that is a
plain number, a credentials block picker, and the engineering knobs grouped apart in
``AdvancedSettings`` with defaults that need no touching. ``upscale-new-assets`` and
``asset-pipeline`` still take the knobs flat; ``UpscaleOptions`` holds them flat for every flow
and ``UpscaleOptions.given`` turns the options a flow was given into ``upscale-batch``'s
parameters, so a parameter is added in one place.

Every option is checked at once: ``UpscaleOptions.checked`` names every bad option, its value
and what is allowed, in words, before anything is uploaded. The knobs' ranges are in the form's
schema (``minimum``) rather than in pydantic constraints, so the form refuses a bad value before
submit and a Python caller gets these words rather than pydantic's.
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from blocks.credentials import ScenarioCredentials
from flows.upscale_models import ModelChoice
from scenario_upscale.batch import UpscaleSpec
from scenario_upscale.errors import InvalidOption
from scenario_upscale.pipeline import BatchOptions

DEFAULT_CREDENTIALS_BLOCK = "scenario"
DEFAULT_CONCURRENCY_LIMIT = "scenario-team-jobs"


def _no_budget_is_zero(value: object) -> object:
    return 0 if value is None else value


Budget = Annotated[
    float,
    BeforeValidator(_no_budget_is_zero),
    Field(
        json_schema_extra={
            "title": "Budget in creative units (0: no limit)",
            "minimum": 0,
        }
    ),
]
"""Stop before anything is submitted if the priced total is above this; 0 means no limit."""

Credentials = Annotated[
    # Two tabs in the form: a picker of the saved blocks, or a block's name. The name tab comes
    # prefilled with the default, so an untouched form runs with the "scenario" block, and the
    # CLI, deployments and Python callers keep naming one.
    ScenarioCredentials | str,
    Field(json_schema_extra={"title": "Scenario credentials: pick a block, or name one"}),
]
"""A ScenarioCredentials block, or the name of a saved one."""


def _none_is_empty(value: object) -> object:
    return "" if value is None else value


class InvalidOptions(InvalidOption):
    """Every bad option of one call, in one message; ``problems`` has one error per option."""

    def __init__(self, where: str, problems: list[InvalidOption]) -> None:
        first = problems[0]
        super().__init__(where, first.field, first.value, first.allowed)
        self.problems = problems
        prefix = f"{where}: "
        self.args = (prefix + "; ".join(str(p).removeprefix(prefix) for p in problems),)


class AdvancedSettings(BaseModel):
    """How a batch runs: defaults that suit nearly every run.

    Example:
        >>> AdvancedSettings(max_concurrency=4).max_concurrency
        4
    """

    model_config = ConfigDict(title="Advanced (the defaults need no touching)", extra="forbid")

    dry_run_pricing: bool = Field(default=True, title="Price every job first (free)")
    max_concurrency: int = Field(
        default=8, title="Jobs in flight at once for this run", json_schema_extra={"minimum": 1}
    )
    concurrency_limit: Annotated[str, BeforeValidator(_none_is_empty)] = Field(
        default=DEFAULT_CONCURRENCY_LIMIT,
        title="Team concurrency limit shared by all runs (empty: none)",
    )
    shard_size: int = Field(
        default=25, title="Inputs per Prefect task", json_schema_extra={"minimum": 1}
    )
    job_deadline_minutes: float = Field(
        default=60.0,
        title="Give up waiting for a job after (minutes)",
        json_schema_extra={"exclusiveMinimum": 0},
    )


class UpscaleOptions(BatchOptions):
    """A batch's options, flat: the engine's ``BatchOptions`` and what Prefect adds.

    Example:
        >>> UpscaleOptions(target="out", max_creative_units=50).given()
        {'max_creative_units': 50.0, 'target': 'out'}
    """

    target: str = Field(default="upscaled", description="Output folder: a path or fsspec URL.")
    upscales: list[UpscaleSpec] | None = Field(
        default=None, description="Models and parameters (default: Upscale V3 at 2x)."
    )
    credentials_block: str = Field(
        default=DEFAULT_CREDENTIALS_BLOCK, description="Name of the ScenarioCredentials block."
    )
    concurrency_limit: str | None = Field(
        default=DEFAULT_CONCURRENCY_LIMIT,
        description="Global concurrency limit shared by all runs (the team's ceiling).",
    )
    job_deadline_minutes: float = Field(
        default=60.0, gt=0, description="Give up waiting for a job after this long."
    )
    fail_on_any_error: bool = Field(default=False, description="End Failed if any input fails.")

    @classmethod
    def checked(cls, where: str, **values: Any) -> Self:
        """The options, or ``InvalidOption`` naming every bad one, its value and what is
        allowed, in words (never pydantic's own report).

        Example:
            >>> UpscaleOptions.checked("upscale-batch", max_concurrency=0, shard_size=-1)
            Traceback (most recent call last):
            ...
            scenario_upscale.errors.InvalidOption: upscale-batch: invalid parameter \
'max_concurrency': got 0; allowed: a number >= 1 (jobs in flight at once); invalid parameter \
'shard_size': got -1; allowed: a number >= 1 (inputs per submit/wait/collect step)
        """
        # A None where None is the default is no choice: it is not "given" (a deployment run
        # gets the parameters given, and its form's budget is a number, never null).
        fields = cls.model_fields
        values = {
            k: v
            for k, v in values.items()
            if v is not None or k not in fields or fields[k].default is not None
        }
        try:
            return cls(**values)
        except ValidationError as error:
            bad = dict.fromkeys(str(e["loc"][0]) for e in error.errors() if e["loc"])
            problems: list[InvalidOption] = []
            for name in bad:
                try:
                    # One option at a time: the engine's words for what it allows.
                    super().checked(where, **{name: values.get(name)})
                except InvalidOption as one:
                    problems.append(one)
            raise InvalidOptions(where, problems) from None

    @classmethod
    def of(
        cls,
        where: str,
        advanced: AdvancedSettings | None,
        **values: Any,
    ) -> Self:
        """The options from a form's parameters: ``advanced`` spread flat beside the others."""
        knobs = (advanced or AdvancedSettings()).model_dump()
        knobs["concurrency_limit"] = knobs["concurrency_limit"] or None
        return cls.checked(where, **knobs, **values)

    @property
    def specs(self) -> list[UpscaleSpec]:
        """The upscales, or the default one."""
        return self.upscales or [UpscaleSpec()]

    def given(self) -> dict[str, Any]:
        """The options set explicitly, as ``upscale-batch``'s parameters (knobs in
        ``advanced``), values as they are (not dumped)."""
        given = self.model_fields_set
        flat = {name: getattr(self, name) for name in type(self).model_fields if name in given}
        knobs = {k: flat.pop(k) for k in AdvancedSettings.model_fields if k in flat}
        if knobs:
            flat["advanced"] = AdvancedSettings(**knobs)
        return flat


DEFAULTS = UpscaleOptions()

# The form's fields, titled.


def _titled(title: str) -> Any:
    return Field(json_schema_extra={"title": title})


Inputs = Annotated[list[str] | str, _titled("Images: files, folders, globs or URLs")]
ImageSource = Annotated[str, _titled("Image: a path, URL or Scenario asset id")]
OutputFolder = Annotated[str, _titled("Output folder")]
Model = Annotated[ModelChoice, _titled("Model")]
FailOnAnyError = Annotated[bool, _titled("Fail the run if any input fails")]
SeveralModels = Annotated[
    list[UpscaleSpec] | None, _titled("Several models at once (replaces Model)")
]
Advanced = Annotated[AdvancedSettings, _titled("Advanced")]
Announce = Annotated[
    bool, _titled("Publish the results and the batch event (off for the shards of a sharded batch)")
]
