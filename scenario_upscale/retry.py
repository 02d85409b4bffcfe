"""What to do when a try fails, one policy per kind of failure, and the one loop that applies them.

* reads (any idempotent call: GET, bulk read, dry run, part PUT, small upload): ``RetryPolicy``,
  capped exponential backoff with full jitter, or the wait a 429 names;
* uploads not imported yet: ``ImportWait``, a poll that slows down, until a deadline;
* downloads cut short or from an expired URL: ``DownloadRetry``, a fresh URL at once or a
  backoff;
* submits refused by the team's concurrency ceiling: ``CeilingWait``, until one of our jobs ends
  (or after a backoff when none of ours is in flight);
* submits whose answer was lost: ``LostSubmitRetry``, a backoff after the call looked for the
  job in ``GET /jobs`` and found none.

Kept apart from the poll cadence (``polling.py``): how often we ask is a different question
from what we do when one ask fails. Written here rather than with a retry library because two
of the pauses are not sleeps (waiting for one of our jobs to end; refreshing a URL at once), and
each policy is a few lines on top of one loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field

from scenario_upscale.errors import (
    ScenarioConnectionError,
    ScenarioError,
    ScenarioRateLimited,
    ScenarioServerError,
)
from scenario_upscale.slots import JobSlots

log = logging.getLogger("scenario_upscale.retry")
R = TypeVar("R")


class RetryRule(Protocol):
    """Decides, after failed try number ``attempt`` (1-based), whether to try again.

    ``pause`` returns once it is time for the next try (it has waited), or False to give up:
    the failure is then raised to the caller as it is.
    """

    async def pause(self, error: Exception, attempt: int) -> bool: ...


async def retry(call: Callable[[], Awaitable[R]], rule: RetryRule) -> R:
    """Run ``call`` until it succeeds or ``rule`` gives up; the one retry loop of the engine.

    Example:
        >>> async def read(client):
        ...     return await retry(lambda: client.get_job("job_1"), RetryPolicy())
    """
    attempt = 1
    while True:
        try:
            return await call()
        except Exception as error:
            if not await rule.pause(error, attempt):
                raise
            attempt += 1


def _full_jitter(ceiling: float, rng: random.Random | None = None) -> float:
    return (rng or random).uniform(0, ceiling)


class RetryPolicy(BaseModel):
    """Reads: capped exponential backoff with full jitter, for idempotent requests only.

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
        return _full_jitter(min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)), rng)

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

    async def pause(self, error: Exception, attempt: int) -> bool:
        wait = self.wait_for(error, attempt) if isinstance(error, ScenarioError) else None
        if wait is None or attempt >= self.attempts:
            return False
        log.debug("%s; retry %d in %.2f s", error, attempt, wait)
        await asyncio.sleep(wait)
        return True


class NotYet(Exception):
    """Raised by a call that polls for a state (an upload being imported) not reached yet."""


class ImportWait:
    """Uploads: ask again, less and less often, until the upload is imported or ``deadline_s``.

    The deadline is measured on a monotonic clock from the first ask, not as a sum of sleeps.
    """

    def __init__(
        self,
        deadline_s: float = 600.0,
        *,
        first_s: float = 0.2,
        growth: float = 1.5,
        max_s: float = 3.0,
    ) -> None:
        self.deadline_s = deadline_s
        self.first_s, self.growth, self.max_s = first_s, growth, max_s
        self._started = time.monotonic()

    async def pause(self, error: Exception, attempt: int) -> bool:
        if not isinstance(error, NotYet) or time.monotonic() - self._started > self.deadline_s:
            return False
        await asyncio.sleep(min(self.first_s * self.growth ** (attempt - 1), self.max_s))
        return True


class RetryNow(Exception):
    """A try failed in a way the call has already dealt with (it fetched a fresh signed URL):
    try again at once."""


class Transient(Exception):
    """A try failed in a way another try may not (a transfer cut short, a 5xx from the CDN)."""


class DownloadRetry:
    """Downloads: ``attempts`` tries in all; a fresh URL is tried at once, a transient failure
    after a capped, jittered backoff. No sleep after the last try."""

    def __init__(self, attempts: int = 4, max_delay_s: float = 8.0) -> None:
        self.attempts = attempts
        self.max_delay_s = max_delay_s

    async def pause(self, error: Exception, attempt: int) -> bool:
        if attempt >= self.attempts:
            return False
        if isinstance(error, RetryNow):
            return True
        if isinstance(error, Transient | httpx.TransportError):
            await asyncio.sleep(_full_jitter(min(self.max_delay_s, 0.5 * 2**attempt)))
            return True
        return False


class CeilingWait:
    """The concurrency ceiling: a submit refused with a 429 created nothing. Learn the ceiling
    from it, then wait for one of our jobs to end (or back off when none of ours is in flight:
    the slots are held by another client of the team) and submit again, as often as it takes.

    The call gives its slot back before raising, so that ``slots`` counts only real jobs.
    """

    def __init__(self, slots: JobSlots, policy: RetryPolicy, name: str) -> None:
        self.slots = slots
        self.policy = policy
        self.name = name

    async def pause(self, error: Exception, attempt: int) -> bool:
        if not isinstance(error, ScenarioRateLimited):
            return False
        self.slots.lower(error.action_limit)
        backoff = self.policy.wait_for(error, attempt) or self.policy.delay(attempt)
        log.info(
            "%s: concurrency ceiling reached (%d of ours in flight); submitting when one ends",
            self.name,
            self.slots.in_flight,
        )
        await self.slots.wait_for_room(backoff, self.policy.max_server_wait_s)
        return True


class LostSubmit(Exception):
    """A submit got no usable answer and no job turned up for it in ``GET /jobs``."""


class LostSubmitRetry:
    """A submit whose answer was lost (timeout, dropped connection, 5xx) and whose job was not
    found: sent again after a backoff, ``attempts`` times in all. The call itself looks for the
    job before raising ``LostSubmit``, so a job is never paid for twice."""

    def __init__(self, policy: RetryPolicy, attempts: int) -> None:
        self.policy = policy
        self.attempts = attempts

    async def pause(self, error: Exception, attempt: int) -> bool:
        if not isinstance(error, LostSubmit) or attempt >= self.attempts:
            return False
        await asyncio.sleep(self.policy.delay(attempt))
        return True
