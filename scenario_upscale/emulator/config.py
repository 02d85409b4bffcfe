"""Run-time configuration of the emulator: identity, pacing and fault knobs.

One pydantic model so the same object can be given at start, patched at run time through
``PUT /_emulator/config`` and restored by ``POST /_emulator/reset``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from .profiles import Behaviour, ProfileName, behaviour_of


class EmulatorConfig(BaseModel):
    """Everything a test or a demo may want to tune. Defaults suit fast tests."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # --- identity -------------------------------------------------------------------------
    api_key: str = "emulator-key"
    # SecretStr so that dumping the config (GET/PUT /_emulator/config) never reveals it.
    api_secret: SecretStr = SecretStr("emulator-secret")
    project_id: str = "proj_emulator"
    author_id: str = "user_emulator0000000000000000"

    # Which plausible reading of the real API to play (see ``profiles.py``).
    profile: ProfileName = "default"

    # --- pacing ---------------------------------------------------------------------------
    job_duration_s: float = Field(default=1.0, ge=0)
    upload_processing_s: float = Field(default=0.2, ge=0)
    concurrency_limit: int = Field(default=8, ge=1)
    url_ttl_s: float = Field(default=3600.0, ge=0)

    # --- limits that mirror the real API ---------------------------------------------------
    # The docs say base64 uploads are for images "< 6 MB"; 6 MiB is the lenient reading.
    max_base64_image_bytes: int = Field(default=6 * 1024 * 1024, ge=1)
    # The gateway body cap quoted by Scenario's Blender plugin.
    max_request_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    # Protects the machine running the emulator: larger outputs are refused with a 400.
    max_output_megapixels: float = Field(default=64.0, gt=0)

    # --- faults (rates are probabilities 0..1 drawn from a seeded RNG) ---------------------
    seed: int | None = 0
    latency_s: float = Field(default=0.0, ge=0)
    error_rate_5xx: float = Field(default=0.0, ge=0, le=1)
    error_rate_5xx_post: float = Field(default=0.0, ge=0, le=1)
    fail_next_n_gets: int = Field(default=0, ge=0)
    fail_next_n_posts: int = Field(default=0, ge=0)
    timeout_rate: float = Field(default=0.0, ge=0, le=1)
    hang_next_n_requests: int = Field(default=0, ge=0)
    hang_s: float = Field(default=90.0, ge=0)
    drop_generate_after_commit: int = Field(default=0, ge=0)
    job_failure_rate: float = Field(default=0.0, ge=0, le=1)
    fail_next_n_jobs: int = Field(default=0, ge=0)
    # Fake CDN: the next N signed downloads answer 503, or send half the body and reset.
    fail_next_n_downloads: int = Field(default=0, ge=0)
    truncate_next_n_downloads: int = Field(default=0, ge=0)
    # Route templates (e.g. "/v1/jobs/{jobId}") the request faults apply to; empty = all /v1.
    fault_routes: list[str] = Field(default_factory=list)

    @property
    def behaviour(self) -> Behaviour:
        return behaviour_of(self.profile)

    def secret_value(self) -> str:
        return self.api_secret.get_secret_value()

    def patched(self, changes: dict[str, Any]) -> EmulatorConfig:
        """A validated copy with ``changes`` applied (partial update semantics)."""
        merged = self.model_dump()
        merged["api_secret"] = self.secret_value()
        merged.update(changes)
        return EmulatorConfig.model_validate(merged)

    def public_dump(self) -> dict[str, Any]:
        """JSON-safe view with the secret masked."""
        return self.model_dump(mode="json")
