"""Pydantic models at the engine's boundaries: what the API gives us and what we give callers.

The API's own shapes are parsed by the official SDK; these models keep only what the engine uses,
with our names, so that the rest of the code does not depend on SDK internals.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Outcome = Literal["success", "failure", "canceled"]

# Aliases seen in Scenario's own client code and docs (contract §4, §7.2). Accepting them costs
# nothing and protects us from a spelling drift on the server.
_SUCCESS = frozenset({"success", "succeeded", "completed"})
_FAILURE = frozenset({"failure", "failed", "error"})
_CANCELED = frozenset({"canceled", "cancelled"})


def terminal_outcome(status: str) -> Outcome | None:
    """Map a job status, aliases included, to its outcome, or ``None`` while it is still running.

    Unknown statuses are treated as non-terminal: the watcher's deadline bounds the wait.

    >>> terminal_outcome("cancelled"), terminal_outcome("finalizing")
    ('canceled', None)
    """
    s = status.lower()
    if s in _SUCCESS:
        return "success"
    if s in _FAILURE:
        return "failure"
    if s in _CANCELED:
        return "canceled"
    return None


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class RequiredRule(_Model):
    always: bool | None = None
    if_defined: object | None = Field(default=None, alias="ifDefined")
    if_not_defined: object | None = Field(default=None, alias="ifNotDefined")


class ModelInput(_Model):
    """One entry of a model's ``inputs[]``: the contract for one field of the request body."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    name: str
    type: str
    kind: str | None = None
    default: Any = None
    min: float | None = None
    max: float | None = None
    step: float | None = None
    allowed_values: list[Any] | None = Field(default=None, alias="allowedValues")
    min_length: float | None = Field(default=None, alias="minLength")
    max_length: float | None = Field(default=None, alias="maxLength")
    max_size: float | None = Field(default=None, alias="maxSize")
    required: RequiredRule | None = None

    @property
    def always_required(self) -> bool:
        return bool(self.required and self.required.always)


class ModelSpec(_Model):
    """A model as ``GET /v1/models/{modelId}`` describes it."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    id: str
    name: str = ""
    type: str | None = None
    capabilities: list[str] = Field(default_factory=list)
    disable_refund: bool = Field(default=False, alias="disableRefund")
    inputs: list[ModelInput] = Field(default_factory=list)

    def input(self, name: str) -> ModelInput | None:
        return next((i for i in self.inputs if i.name == name), None)


class Price(_Model):
    """The price a dry run gives (HTTP 269 or 200, see ``api.read_dry_run``)."""

    creative_units: float
    discount: float = 0.0
    details: dict[str, float] = Field(default_factory=dict)


class Job(_Model):
    """A job as the engine sees it."""

    job_id: str
    job_type: str | None = None
    status: str
    progress: float = 0.0
    asset_ids: list[str] = Field(default_factory=list)
    error: str | None = None
    hint: str | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    creative_units: float | None = None
    refund_disabled: bool = False
    """``billing.disableRefund``: a failure of this job is not refunded."""

    @property
    def outcome(self) -> Outcome | None:
        return terminal_outcome(self.status)


class SubmittedJob(_Model):
    """What a successful submit tells us: the job and what it costs."""

    job: Job
    creative_units: float | None = None
    reconciled: bool = False
    """True when the POST's answer was lost and the job was found again through ``GET /jobs``."""


class Asset(_Model):
    """An asset: an uploaded input or a job's output."""

    id: str
    url: str
    mime_type: str
    kind: str
    status: str = "success"
    width: int | None = None
    height: int | None = None
    size: int | None = None


class Upload(_Model):
    """A multipart upload (``/v1/uploads``)."""

    id: str
    status: str
    asset_id: str | None = None
    error: str | None = None
