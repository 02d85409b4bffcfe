"""What the doctor found: its settings, a line per check, the behaviours seen, as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, computed_field

from scenario_upscale.api import DEFAULT_BASE_URL

Behaviour = Literal[
    "transformed-urls",
    "ceiling-no-retry-hint",
    "dry-run-200",
    "dry-run-with-job",
    "normalised-echo",
    "gateway-limits",
    "sparse-pages",
    "strict-project",
]
"""The non-default emulator profiles (README.md, "The emulator"): one plausible answer each."""

Verdict = Literal["ok", "note", "FAIL", "skipped"]

DEFAULT_MODEL = "model_upscale-v3"
"""Scenario's own upscaler, the engine's default model. Prices follow output pixels (contract
§6.3): on the doctor's 64x48 image an upscaler costs about its per-job minimum."""
WRONG_PROJECT = "proj_scenario-doctor-not-yours"
LARGE_PROBE_BYTES = 5_000_000
"""Raw size of the large-body probe: ~6.7 MB of base64, above a common 6 MB gateway cap."""
TINY_SIZE = (64, 48)
DRY_RUN_STATUS = 269
"""The dry-run status the engine was first written for (the emulator's default)."""
SCALE_INPUTS = ("upscaleFactor", "scaleFactor", "factor")
LIST_PAGE_SIZE = 2
"""Small pages, so that even a few recent jobs show how the API pages them."""
MAX_PAGES = 50


class DoctorSettings(BaseModel):
    """Where to probe, with what credentials, and how much the doctor may spend."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    api_key: SecretStr
    api_secret: SecretStr
    base_url: str = DEFAULT_BASE_URL
    project_id: str | None = None
    model_id: str = DEFAULT_MODEL
    submit: bool = False
    max_creative_units: float = Field(default=2.0, gt=0)
    timeout_s: float = Field(default=60.0, gt=0)
    job_deadline_s: float = Field(default=900.0, gt=0)
    """How long the submitted job may take before the doctor stops polling it."""
    ceiling_wait_s: float = Field(default=900.0, ge=0)
    """How long to wait for a free slot when the team's concurrency ceiling answers 429."""


class Check(BaseModel):
    """One line of the report: a step, its verdict and what was seen."""

    step: str
    verdict: Verdict
    message: str
    seen: dict[str, Any] = Field(default_factory=dict)


class Observation(BaseModel):
    """A behaviour the API showed, and whether the engine's own code coped with it."""

    behaviour: Behaviour
    evidence: str
    engine_copes: bool
    how: str


class Findings(BaseModel):
    """Everything the doctor found, as written to ``scenario-doctor.json``."""

    base_url: str
    project_id: str | None
    model_id: str
    submitted: bool = False
    job_id: str | None = None
    creative_units_spent: float = 0.0
    checks: list[Check] = Field(default_factory=list)
    behaviours: list[Observation] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def assumptions_hold(self) -> bool:
        """No check failed and the engine coped with every behaviour seen."""
        return all(c.verdict != "FAIL" for c in self.checks) and all(
            b.engine_copes for b in self.behaviours
        )

    def behaviour_names(self) -> list[Behaviour]:
        return [b.behaviour for b in self.behaviours]


def write_findings(findings: Findings, path: Path) -> None:
    """Write the findings as indented JSON (no secret is ever part of them)."""
    path.write_text(findings.model_dump_json(indent=2) + "\n", encoding="utf-8")
