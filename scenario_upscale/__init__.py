"""scenario-upscale's engine: upscale images and videos with Scenario's API, without Prefect.

Example:
    >>> async def main() -> None:
    ...     async with ScenarioClient(api_key="k", api_secret="s") as client:
    ...         report = await run_batch(client, "art/*.png", "out/", [UpscaleSpec()])
    ...         print(report.summary())

The names are loaded on first use (PEP 562): importing one module of the package, as the command
line does for the emulator's profile names, does not load the whole engine and the official SDK
with it (~2 s, which ``scenario-upscale demo`` spent before it could start its Prefect server).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_EXPORTS = {
    "api": ("ScenarioClient",),
    "batch": ("run_batch",),
    "errors": (
        "BudgetExceeded",
        "DownloadFailed",
        "InvalidInput",
        "InvalidOption",
        "InvalidTarget",
        "InvalidUpscaleParameters",
        "JobFailed",
        "JobTimedOut",
        "ScenarioAPIError",
        "ScenarioAuthError",
        "ScenarioBadRequest",
        "ScenarioConnectionError",
        "ScenarioError",
        "ScenarioNotFound",
        "ScenarioProjectRefused",
        "ScenarioRateLimited",
        "ScenarioServerError",
        "SubmitFailed",
    ),
    "items": ("BatchReport", "ItemResult", "ItemStatus", "UpscaleSpec"),
    "pipeline": ("BatchOptions", "PlainSteps", "StepRunner", "run_pipeline"),
    "polling": ("JobWatcher", "PollPolicy"),
    "progress": ("Progress",),
    "retry": ("CeilingWait", "DownloadRetry", "ImportWait", "LostSubmitRetry", "RetryPolicy"),
    "session": ("BatchSession",),
}
"""The module of each public name, for ``__getattr__`` (the imports above are for type checkers)."""
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # looked up once
    return value
