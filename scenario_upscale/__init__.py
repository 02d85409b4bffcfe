"""scenario-upscale's engine: upscale images and videos with Scenario's API, without Prefect.

Example:
    >>> async def main() -> None:
    ...     async with ScenarioClient(api_key="k", api_secret="s") as client:
    ...         report = await run_batch(client, "art/*.png", "out/", [UpscaleSpec()])
    ...         print(report.summary())
"""

from scenario_upscale.api import ScenarioClient
from scenario_upscale.batch import run_batch
from scenario_upscale.errors import (
    BudgetExceeded,
    DownloadFailed,
    InvalidInput,
    InvalidOption,
    InvalidTarget,
    InvalidUpscaleParameters,
    JobFailed,
    JobTimedOut,
    ScenarioAPIError,
    ScenarioAuthError,
    ScenarioBadRequest,
    ScenarioConnectionError,
    ScenarioError,
    ScenarioNotFound,
    ScenarioProjectRefused,
    ScenarioRateLimited,
    ScenarioServerError,
    SubmitFailed,
)
from scenario_upscale.items import BatchReport, ItemResult, ItemStatus, UpscaleSpec
from scenario_upscale.pipeline import BatchOptions, PlainSteps, StepRunner, run_pipeline
from scenario_upscale.polling import JobWatcher, PollPolicy
from scenario_upscale.progress import Progress
from scenario_upscale.retry import (
    CeilingWait,
    DownloadRetry,
    ImportWait,
    LostSubmitRetry,
    RetryPolicy,
)
from scenario_upscale.session import BatchSession

__all__ = [
    "BatchOptions",
    "BatchReport",
    "BatchSession",
    "BudgetExceeded",
    "CeilingWait",
    "DownloadFailed",
    "DownloadRetry",
    "ImportWait",
    "InvalidInput",
    "InvalidOption",
    "InvalidTarget",
    "InvalidUpscaleParameters",
    "ItemResult",
    "ItemStatus",
    "JobFailed",
    "JobTimedOut",
    "JobWatcher",
    "LostSubmitRetry",
    "PlainSteps",
    "PollPolicy",
    "Progress",
    "RetryPolicy",
    "ScenarioAPIError",
    "ScenarioAuthError",
    "ScenarioBadRequest",
    "ScenarioClient",
    "ScenarioConnectionError",
    "ScenarioError",
    "ScenarioNotFound",
    "ScenarioProjectRefused",
    "ScenarioRateLimited",
    "ScenarioServerError",
    "StepRunner",
    "SubmitFailed",
    "UpscaleSpec",
    "run_batch",
    "run_pipeline",
]
