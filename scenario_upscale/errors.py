"""Exceptions raised by the engine.

One base class, subclasses named for the operation or the outcome, each carrying the server's own
message. None of them ever holds the credentials: the SDK's exceptions keep the request (and with it
the ``Authorization`` header), so we copy out the fields we need and never chain the raw request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ScenarioError(Exception):
    """Base class of every error raised by scenario_upscale."""


class ScenarioAPIError(ScenarioError):
    """The Scenario API answered with an error status.

    Attributes:
        operation: What we were doing, e.g. ``"GET /jobs/{jobId}"``.
        status_code: The HTTP status.
        reason: The API's own message (``reason`` → ``message`` → ``error`` → ``detail``).
        trace_id: The API's trace id, when it sent one, for support requests.
        details: The ``details`` object of the error body, when present.
    """

    def __init__(
        self,
        operation: str,
        status_code: int,
        reason: str,
        *,
        trace_id: str | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        self.operation = operation
        self.status_code = status_code
        self.reason = reason
        self.trace_id = trace_id
        self.details = details or {}
        trace = f" (trace id {trace_id})" if trace_id else ""
        super().__init__(f"{operation} failed with HTTP {status_code}: {reason}{trace}")


class ScenarioBadRequest(ScenarioAPIError):
    """HTTP 400/422: the API rejected the request; retrying the same request never helps."""


class ScenarioAuthError(ScenarioAPIError):
    """HTTP 401/403: wrong key/secret, or the plan does not give access to this model."""


class ScenarioProjectRefused(ScenarioAuthError):
    """HTTP 400/403 about the project: the ``projectId`` sent is not the key's, or one is needed.

    Attributes:
        project_id: The project id that was sent (``None`` when none was).
    """

    def __init__(
        self,
        operation: str,
        status_code: int,
        reason: str,
        *,
        project_id: str | None,
        trace_id: str | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(operation, status_code, reason, trace_id=trace_id, details=details)
        self.project_id = project_id
        if project_id:
            advice = (
                f"the API refused project id {project_id!r}: set the project id of the project "
                "your API key belongs to (Scenario web app > project settings > API keys), or "
                "leave it empty to use the key's own project"
            )
        else:
            advice = (
                "the API wants a project id: set it to the id (proj_...) of the project your API "
                "key belongs to (Scenario web app > project settings)"
            )
        self.args = (f"{self.args[0]}; {advice}",)


class ScenarioNotFound(ScenarioAPIError):
    """HTTP 404: unknown model, job, asset or upload."""


class ScenarioRateLimited(ScenarioAPIError):
    """HTTP 429: the team's rate limit or concurrency ceiling was reached.

    Attributes:
        retry_after: Seconds the API asked us to wait (``remainingSeconds`` or ``Retry-After``).
        action_limit: The team's concurrency ceiling (``details.actionLimit``), when given.
    """

    def __init__(
        self,
        operation: str,
        status_code: int,
        reason: str,
        *,
        trace_id: str | None = None,
        details: dict[str, object] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(operation, status_code, reason, trace_id=trace_id, details=details)
        self.retry_after = retry_after
        limit = self.details.get("actionLimit")
        self.action_limit = int(limit) if isinstance(limit, int | float) else None


class ScenarioServerError(ScenarioAPIError):
    """HTTP 5xx: a server-side fault; idempotent calls are retried before this is raised."""


class ScenarioConnectionError(ScenarioError):
    """The request never got an answer: connection refused or dropped, or a timeout."""

    def __init__(self, operation: str, cause: str) -> None:
        self.operation = operation
        self.cause = cause
        super().__init__(f"{operation} got no answer from the Scenario API: {cause}")


class InvalidUpscaleParameters(ScenarioError, ValueError):
    """A parameter does not fit the model's input schema; raised before any credit is spent.

    Attributes:
        model_id: The model whose schema was checked.
        field: The offending input name.
        value: The value given (``None`` when a required input is missing).
        allowed: A human description of what the model accepts.
    """

    def __init__(self, model_id: str, field: str, value: object, allowed: str) -> None:
        self.model_id = model_id
        self.field = field
        self.value = value
        self.allowed = allowed
        shown = "missing" if value is None else f"got {value!r}"
        super().__init__(f"{model_id}: invalid parameter {field!r}: {shown}; allowed: {allowed}")


class InvalidInput(ScenarioError, ValueError):
    """An input file or location cannot be used (missing, unreadable, not an image or video)."""


class BudgetExceeded(ScenarioError):
    """The dry-run price of a batch is above the caller's ``max_creative_units``.

    Attributes:
        total: The dry-run total, in creative units.
        budget: The caller's ``max_creative_units``.
        priced: Each priced job as ``(model id, creative units)``: the price per model.
    """

    def __init__(
        self,
        total: float,
        budget: float,
        count: int,
        priced: Sequence[tuple[str, float]] = (),
    ) -> None:
        self.total = total
        self.budget = budget
        self.count = count
        self.priced = list(priced)
        super().__init__(
            f"the batch of {count} job(s) would cost {total:g} creative units, above the budget "
            f"of {budget:g}; nothing was submitted"
        )

    def __reduce__(self) -> tuple[type[BudgetExceeded], tuple[float, float, int, list[Any]]]:
        # A stopped run's persisted result: pickle rebuilds it from these, not from the message.
        return (BudgetExceeded, (self.total, self.budget, self.count, self.priced))


class SubmitFailed(ScenarioError):
    """A job could not be submitted (and, after an ambiguous failure, was not found either)."""


class JobFailed(ScenarioError):
    """The job reached ``failure`` or ``canceled``.

    Attributes:
        job_id: The Scenario job id.
        status: The terminal status as the API spelled it.
        error: ``metadata.error`` from the job.
        hint: ``metadata.hint`` from the job, an actionable fix when the API gives one.
    """

    def __init__(self, job_id: str, status: str, error: str | None, hint: str | None) -> None:
        self.job_id = job_id
        self.status = status
        self.error = error
        self.hint = hint
        reason = error or "no reason given"
        tail = f" Hint: {hint}" if hint else ""
        super().__init__(f"job {job_id} ended with status {status!r}: {reason}.{tail}")


class JobTimedOut(ScenarioError):
    """The deadline passed before these jobs reached a terminal status."""

    def __init__(self, job_ids: Sequence[str], deadline_s: float) -> None:
        self.job_ids = list(job_ids)
        self.deadline_s = deadline_s
        shown = ", ".join(self.job_ids[:5]) + (" …" if len(self.job_ids) > 5 else "")
        super().__init__(
            f"{len(self.job_ids)} job(s) still running after {deadline_s:g} s: {shown}. "
            "They keep running on Scenario and stay paid for; rerun to collect them."
        )


class DownloadFailed(ScenarioError):
    """An output could not be downloaded or did not match what the API announced."""


class InvalidOption(ScenarioError, ValueError):
    """A batch option (a flow parameter) is out of range; raised before anything is touched.

    Attributes:
        field: The option's name, as the flow parameter is spelled.
        value: The value given.
        allowed: What the option accepts, in words.
    """

    def __init__(self, where: str, field: str, value: object, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{where}: invalid parameter {field!r}: got {value!r}; allowed: {allowed}")


class InvalidTarget(ScenarioError, ValueError):
    """The output location cannot be written: checked before the first upload or submit."""
