"""What to do when a try fails, one policy per kind of failure, and the one loop that applies them.

* reads (any idempotent call: GET, bulk read, dry run, part PUT, small upload): ``RetryPolicy``,
  capped exponential backoff with full jitter, or the wait a 429 names;
* uploads not imported yet: ``ImportWait``, a poll that slows down, until a deadline;
* downloads cut short or from an expired URL: ``DownloadRetry``, a fresh URL at once or a
  backoff, within a budget of time (two minutes by default);
* submits refused by the team's concurrency ceiling: ``CeilingWait``, until one of our jobs ends
  (or after a backoff when none of ours is in flight), within a budget of time of its own;
* submits whose answer was lost: ``LostSubmitRetry``, a backoff after the call looked for the
  job in ``GET /jobs`` and found none, a number of lost answers in a row; a ceiling wait is not
  one of them.

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
    """Downloads of paid outputs: outlast transient faults within the run.

    A transfer cut short, a 5xx from the CDN or a dropped connection is tried again after a
    capped, jittered backoff (``policy``'s) for as long as ``budget_s`` allows, measured on a
    monotonic clock from the first try: the output is paid for, and a few minutes of a flaky
    CDN must not leave it for a rerun. A fresh URL (expired link, wrong rendition) is tried at
    once, ``fresh_urls`` times in a row at most, since asking again repeats a cause that is not
    transient; a backoff wait in between starts the count again (the wait can outlive a URL).
    No sleep runs past the budget.
    """

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        budget_s: float = 120.0,
        fresh_urls: int = 4,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self.budget_s = budget_s
        self.fresh_urls = fresh_urls
        self._fresh = 0
        self._transient = 0
        self._started = time.monotonic()

    async def pause(self, error: Exception, attempt: int) -> bool:
        if isinstance(error, RetryNow):
            self._fresh += 1
            return self._fresh < self.fresh_urls
        if not isinstance(error, Transient | httpx.TransportError):
            return False
        self._transient += 1
        # A URL that expires after this wait expired because of it, not because fresh URLs fail:
        # only fresh URLs that expire one after another count against ``fresh_urls``.
        self._fresh = 0
        left = self.budget_s - (time.monotonic() - self._started)
        wait = self.policy.delay(self._transient)
        if wait >= left:
            return False
        log.debug("download: %s; again in %.2f s", error, wait)
        await asyncio.sleep(wait)
        return True


class CeilingWait:
    """The concurrency ceiling: a submit refused with a 429 created nothing. Learn the ceiling
    from it, then wait for one of our jobs to end (or back off when none of ours is in flight:
    the slots are held by another client of the team) and submit again, until ``budget_s`` of
    waiting has gone by.

    Waiting for the ceiling is not a failed try: it has its own budget of time, and a 429 is an
    answer, so it starts the lost-submit count (``lost``) afresh. The two budgets never eat into
    each other. The call gives its slot back before raising, so that ``slots`` counts only real
    jobs.
    """

    def __init__(
        self,
        slots: JobSlots,
        policy: RetryPolicy,
        name: str,
        *,
        lost: LostSubmitRetry | None = None,
        budget_s: float = 3600.0,
    ) -> None:
        self.slots = slots
        self.policy = policy
        self.name = name
        self.lost = lost
        self.budget_s = budget_s
        self.waited_s = 0.0

    async def pause(self, error: Exception, attempt: int) -> bool:
        if not isinstance(error, ScenarioRateLimited):
            return False
        if self.waited_s >= self.budget_s:
            raise CeilingNeverOpened(self.name, self.waited_s) from error
        if self.lost is not None:
            self.lost.reset()
        self.slots.lower(error.action_limit)
        backoff = self.policy.wait_for(error, attempt) or self.policy.delay(attempt)
        log.info(
            "%s: concurrency ceiling reached (%d of ours in flight); submitting when one ends",
            self.name,
            self.slots.in_flight,
        )
        started = time.monotonic()
        await self.slots.wait_for_room(
            backoff, min(self.policy.max_server_wait_s, self.budget_s - self.waited_s)
        )
        self.waited_s += time.monotonic() - started
        return True


class CeilingNeverOpened(ScenarioError):
    """The team's concurrency ceiling stayed full for the whole of ``CeilingWait.budget_s``."""

    def __init__(self, name: str, waited_s: float) -> None:
        super().__init__(
            f"{name}: the team's concurrency ceiling stayed full for {waited_s:.0f} s, so no "
            "job was submitted and nothing was charged; rerun when the team's other jobs have "
            "ended"
        )


class LostSubmit(Exception):
    """A submit got no usable answer and no job turned up for it in ``GET /jobs``."""


class LostSubmitRetry:
    """A submit whose answer was lost (timeout, dropped connection, 5xx) and whose job was not
    found: sent again after a backoff, ``attempts`` lost answers in a row at most. The call
    itself looks for the job before raising ``LostSubmit``, so a job is never paid for twice.

    It counts its own tries rather than the loop's ``attempt``: one instance can serve every
    call of one input's submit, and a ceiling wait in between (``CeilingWait``) resets it
    without counting as a lost answer.
    """

    def __init__(self, policy: RetryPolicy, attempts: int) -> None:
        self.policy = policy
        self.attempts = attempts
        self.lost = 0
        self.tries = 0
        """Every try of this input's submit that was sent, lost or answered."""

    def reset(self) -> None:
        """An answer came (a 429 from the ceiling): earlier lost answers no longer run on."""
        self.lost = 0

    async def pause(self, error: Exception, attempt: int) -> bool:
        if not isinstance(error, LostSubmit):
            return False
        self.lost += 1
        if self.lost >= self.attempts:
            return False
        await asyncio.sleep(self.policy.delay(self.lost))
        return True
