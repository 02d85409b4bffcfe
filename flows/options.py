"""The options the upscale flows share, defined once.

``upscale-batch``, ``upscale-new-assets`` and ``asset-pipeline`` take these as flow parameters
(flat, with the names and defaults users see in the Prefect UI and set in deployments). Each flow
signature takes its defaults from ``DEFAULTS``; a flow that hands work to ``upscale-batch`` passes
the options it was given with ``UpscaleOptions.given``, so a parameter is added in one place.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from scenario_upscale.batch import UpscaleSpec
from scenario_upscale.pipeline import BatchOptions

DEFAULT_CREDENTIALS_BLOCK = "scenario"
DEFAULT_CONCURRENCY_LIMIT = "scenario-team-jobs"


class UpscaleOptions(BatchOptions):
    """A batch's options as flow parameters: the engine's ``BatchOptions`` and what Prefect adds.

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

    @property
    def specs(self) -> list[UpscaleSpec]:
        """The upscales, or the default one."""
        return self.upscales or [UpscaleSpec()]

    def given(self) -> dict[str, Any]:
        """The options set explicitly, by parameter name, values as they are (not dumped)."""
        given = self.model_fields_set
        return {name: getattr(self, name) for name in type(self).model_fields if name in given}


DEFAULTS = UpscaleOptions()
