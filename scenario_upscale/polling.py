"""One watcher follows many jobs until each reaches a terminal status.

Cadence: a job is asked about soon after submit, then at its expected end: the sooner of its
progress rate's and how long the jobs seen ending so far took (by the API's own timestamps).
Once due, it is asked about every ``due_interval_s``, less often the longer it is overdue; with
no estimate yet, less and less often while it shows no progress. So an ending is seen within
about ``due_interval_s`` of it, and the asks between submit and end are few.
When several jobs are in flight, one ``GET /v1/jobs?type=…&updatedAfter=…`` listing answers
for all of them, instead of one ``GET /v1/jobs/{id}`` per job per tick. ``updatedAfter`` is
taken from the server's own ``updatedAt`` stamps, so a clock difference between us and the API
loses no update.

The listing's type filter is the ``jobType`` the API itself gave each watched job (the submit
answer carries it), never a type we assume: what the API calls a custom upscale is not confirmed
(``custom``, or ``upscale``…), and ``updatedAfter`` is only allowed with a type or status filter.
A job whose type is unknown is asked about directly, and so is any job a listing stops mentioning
(``stale_after_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Protocol, Self

from pydantic import BaseModel, ConfigDict, Field

from scenario_upscale.errors import JobTimedOut, ScenarioError, ScenarioNotFound
from scenario_upscale.models import Job

log = logging.getLogger("scenario_upscale.polling")


class JobSource(Protocol):
    """What the watcher needs from a client (``ScenarioClient`` fits)."""

    async def get_job(self, job_id: str) -> Job: ...

    def list_jobs(
        self, *, updated_after: datetime | None = None, job_types: Sequence[str] = ()
    ) -> AsyncIterator[Job]: ...


class PollPolicy(BaseModel):
    """How often to ask, and for how long.

    Example:
        >>> PollPolicy(deadline_s=1800).max_interval_s
        10.0
    """

    model_config = ConfigDict(frozen=True)

    first_interval_s: float = Field(default=1.0, gt=0, description="Wait before the first ask.")
    min_interval_s: float = Field(default=0.2, gt=0)
    max_interval_s: float = Field(default=10.0, gt=0)
    growth: float = Field(default=1.5, ge=1.0, description="Slow-down per tick with no progress.")
    deadline_s: float = Field(default=3600.0, gt=0, description="Per job, from when it is tracked.")
    due_interval_s: float = Field(
        default=0.25,
        gt=0,
        description="How often to ask about a job once its expected end has come.",
    )
    list_threshold: int = Field(
        default=3, ge=1, description="From this many jobs in flight on, one listing serves all."
    )
    stale_after_s: float = Field(
        default=30.0,
        gt=0,
        description="Ask a job directly when no listing mentioned it for this long.",
    )
    not_found_grace: int = Field(default=3, ge=0, description="404s tolerated right after submit.")
    max_consecutive_errors: int = Field(default=8, ge=1)


@dataclass
class _Tracked:
    job: Job
    future: asyncio.Future[Job]
    started: float
    last_seen: float
    not_found: int = 0
    on_update: Callable[[Job], None] | None = None
    idle_ticks: int = 0


class JobWatcher:
    """Tracks jobs and resolves one future per job when it reaches a terminal status.

    Use it as an async context manager; its polling loop runs only while jobs are tracked.

    Example:
        >>> async def wait_all(client, jobs):
        ...     async with JobWatcher(client) as watcher:
        ...         return await asyncio.gather(*(watcher.wait(job) for job in jobs))
    """

    def __init__(self, source: JobSource, policy: PollPolicy | None = None) -> None:
        self.source = source
        self.policy = policy or PollPolicy()
        self._tracked: dict[str, _Tracked] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._cursor: datetime | None = None
        # How long recent jobs took, creation to end, by the API's timestamps.
        self._durations: deque[float] = deque(maxlen=32)
        self.requests = 0
        """Status requests sent so far (listings and single GETs), for benchmarks and tests."""

    async def __aenter__(self) -> Self:
        self._loop_task = asyncio.create_task(self._run(), name="scenario-job-watcher")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for tracked in self._tracked.values():
            tracked.future.cancel()

    def track(
        self, job: Job, on_update: Callable[[Job], None] | None = None
    ) -> asyncio.Future[Job]:
        """Follow ``job``; the future resolves to the terminal job or fails with JobTimedOut.

        ``on_update`` is called with each new state (status or progress changed).
        """
        loop = asyncio.get_running_loop()
        if job.job_id in self._tracked:
            return self._tracked[job.job_id].future
        future: asyncio.Future[Job] = loop.create_future()
        if job.outcome is not None:
            future.set_result(job)
            return future
        now = time.monotonic()
        self._tracked[job.job_id] = _Tracked(job, future, now, now, on_update=on_update)
        if job.created_at is not None:
            floor = job.created_at - timedelta(seconds=5)
            self._cursor = floor if self._cursor is None else min(self._cursor, floor)
        self._wake.set()
        return future

    async def wait(self, job: Job, on_update: Callable[[Job], None] | None = None) -> Job:
        """Track ``job`` and wait for its terminal state."""
        return await self.track(job, on_update)

    # -- the loop -------------------------------------------------------------------------------

    async def _run(self) -> None:
        errors = 0
        while True:
            if not self._tracked:
                self._wake.clear()
                await self._wake.wait()
            await self._sleep_until_tick()
            try:
                await self._tick()
                errors = 0
            except ScenarioError as error:
                errors += 1
                log.warning("polling failed (%d in a row): %s", errors, error)
                if errors >= self.policy.max_consecutive_errors:
                    self._fail_all(error)
                    errors = 0
            except Exception as error:
                # A bug or an answer we cannot read: no waiter may hang on it.
                log.exception("the job watcher failed")
                self._fail_all(
                    ScenarioError(
                        f"watching jobs failed unexpectedly ({type(error).__name__}: {error}); "
                        "the jobs keep running on Scenario and stay paid for: rerun to collect them"
                    )
                )
            self._expire()

    async def _sleep_until_tick(self) -> None:
        tick_at = time.monotonic() + self._next_delay()
        while (remaining := tick_at - time.monotonic()) > 0:
            self._wake.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # arrives as the wait ends, and the watcher would then never stop.
            try:
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            except TimeoutError:
                return
            # A newly tracked job is first asked about within ``first_interval_s``; pulling the
            # tick earlier (never later) means a stream of new jobs cannot starve the others.
            tick_at = min(tick_at, time.monotonic() + self.policy.first_interval_s)

    def _next_delay(self) -> float:
        p = self.policy
        now = time.monotonic()
        typical = statistics.median(self._durations) if self._durations else None
        best = p.max_interval_s
        for t in self._tracked.values():
            age = now - t.started
            # Its whole run at its progress rate, or as long as the jobs seen ending took:
            # whichever ends sooner. Progress often covers only the running phase (the queue
            # before it counts in age, not in progress), so alone it says "later" than it is.
            estimates = [typical] if typical is not None else []
            if t.job.progress > 0 and age > 0:
                estimates.append(age / t.job.progress)
            expected = min(estimates, default=None)
            if expected is None:
                guess = p.first_interval_s * p.growth**t.idle_ticks
            elif expected - age > p.due_interval_s:
                guess = expected - age
            else:
                # Due: ask often, and less so the longer it is overdue (a queue, a slow job).
                guess = max(p.due_interval_s, (age - expected) / 4)
            best = min(best, guess)
        return max(p.min_interval_s, min(p.max_interval_s, best))

    async def _tick(self) -> None:
        pending = [t for t in self._tracked.values() if not t.future.done()]
        if not pending:
            return
        now = time.monotonic()
        typed = [t for t in pending if t.job.job_type]
        if len(typed) >= self.policy.list_threshold and self._cursor is not None:
            seen = await self._poll_by_listing(sorted({t.job.job_type or "" for t in typed}))
            stale = [
                t
                for t in pending
                if not t.job.job_type
                or (t.job.job_id not in seen and now - t.last_seen > self.policy.stale_after_s)
            ]
        else:
            stale = pending
        for t in stale:
            await self._poll_one(t)

    async def _poll_by_listing(self, job_types: list[str]) -> set[str]:
        assert self._cursor is not None
        seen: set[str] = set()
        newest = self._cursor
        self.requests += 1
        async for job in self.source.list_jobs(updated_after=self._cursor, job_types=job_types):
            if job.updated_at is not None and job.updated_at > newest:
                newest = job.updated_at
            tracked = self._tracked.get(job.job_id)
            if tracked is not None:
                seen.add(job.job_id)
                self._update(tracked, job)
        # Overlap a little: two updates in the same millisecond must not fall between listings.
        self._cursor = newest - timedelta(seconds=1)
        for t in self._tracked.values():
            if t.job.job_id not in seen:
                t.idle_ticks += 1
        return seen

    async def _poll_one(self, tracked: _Tracked) -> None:
        self.requests += 1
        try:
            job = await self.source.get_job(tracked.job.job_id)
        except ScenarioNotFound:
            # Right after submit a job can be briefly invisible to reads.
            tracked.not_found += 1
            if tracked.not_found > self.policy.not_found_grace:
                self._finish(
                    tracked,
                    error=ScenarioError(
                        f"job {tracked.job.job_id} is unknown to the API (404 after "
                        f"{tracked.not_found} polls)"
                    ),
                )
            return
        self._update(tracked, job)

    def _update(self, tracked: _Tracked, job: Job) -> None:
        now = time.monotonic()
        tracked.last_seen = now
        changed = (job.status, job.progress) != (tracked.job.status, tracked.job.progress)
        if changed:
            if job.status != tracked.job.status:
                log.info("job %s: %s → %s", job.job_id, tracked.job.status, job.status)
            tracked.idle_ticks = 0
            tracked.job = job
            if tracked.on_update is not None:
                tracked.on_update(job)
        else:
            tracked.idle_ticks += 1
        if job.outcome is not None:
            if job.created_at is not None and job.updated_at is not None:
                self._durations.append((job.updated_at - job.created_at).total_seconds())
            self._finish(tracked, job=job)

    def _finish(
        self, tracked: _Tracked, *, job: Job | None = None, error: Exception | None = None
    ) -> None:
        self._tracked.pop(tracked.job.job_id, None)
        if tracked.future.done():
            return
        if error is not None:
            tracked.future.set_exception(error)
        else:
            tracked.future.set_result(job or tracked.job)

    def _expire(self) -> None:
        now = time.monotonic()
        late = [t for t in self._tracked.values() if now - t.started > self.policy.deadline_s]
        for t in late:
            self._finish(t, error=JobTimedOut([t.job.job_id], self.policy.deadline_s))

    def _fail_all(self, error: Exception) -> None:
        for t in list(self._tracked.values()):
            self._finish(t, error=error)
