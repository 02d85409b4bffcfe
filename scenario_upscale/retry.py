"""What to do when one request fails: which failures are worth another try, and how long to wait.

Kept apart from the poll cadence (``polling.py``): how often we ask is a different question
from what we do when one ask fails.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from scenario_upscale.errors import (
    ScenarioConnectionError,
    ScenarioError,
    ScenarioRateLimited,
    ScenarioServerError,
)

T = TypeVar("T")


class RetryPolicy(BaseModel):
    """Capped exponential backoff with full jitter, for idempotent requests only.

    Example:
        >>> RetryPolicy(attempts=5, base_delay_s=0.5).delay(3, rng=random.Random(0)) <= 4.0
        True
    """

    model_config = ConfigDict(frozen=True)

    attempts: int = Field(default=5, ge=1, description="Tries in all, the first one included.")
    base_delay_s: float = Field(default=0.5, gt=0)
    max_delay_s: float = Field(default=20.0, gt=0)
    max_server_wait_s: float = Field(
        default=60.0, gt=0, description="Cap on a wait the server asks for (429 remainingSeconds)."
    )

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based): full jitter."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return (rng or random).uniform(0, ceiling)

    def wait_for(self, error: ScenarioError, attempt: int) -> float | None:
        """How long to wait before retrying after ``error``, or ``None`` if it is not retryable."""
        if isinstance(error, ScenarioRateLimited):
            if error.retry_after is not None:
                # The server said when; a little jitter keeps many waiting clients apart.
                return min(error.retry_after, self.max_server_wait_s) + random.uniform(0, 0.25)
            return self.delay(attempt)
        if isinstance(error, ScenarioServerError | ScenarioConnectionError):
            return self.delay(attempt)
        return None


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[ScenarioError, int, float], None] | None = None,
) -> T:
    """Run an idempotent ``call``, retrying transient failures as ``policy`` says."""
    attempt = 1
    while True:
        try:
            return await call()
        except ScenarioError as error:
            wait = policy.wait_for(error, attempt)
            if wait is None or attempt >= policy.attempts:
                raise
            if on_retry is not None:
                on_retry(error, attempt, wait)
            await asyncio.sleep(wait)
            attempt += 1
