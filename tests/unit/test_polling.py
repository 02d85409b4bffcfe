"""The job watcher's cadence and deadlines, driven by an in-memory job source (pure logic)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from scenario_upscale.errors import JobTimedOut, ScenarioError, ScenarioNotFound
from scenario_upscale.models import Job
from scenario_upscale.polling import JobWatcher, PollPolicy, _Tracked

FAST = PollPolicy(
    first_interval_s=0.01,
    min_interval_s=0.01,
    max_interval_s=0.05,
    deadline_s=5,
    stale_after_s=0.05,
)


class FakeJobs:
    """Jobs whose status follows a script, one step per status request.

    Like the API, a listing filtered by type shows only the jobs of those types.
    """

    def __init__(
        self, scripts: dict[str, list[str]], missing_first: int = 0, job_type: str = "custom"
    ) -> None:
        self.scripts = scripts
        self.step = dict.fromkeys(scripts, 0)
        self.gets = 0
        self.listings = 0
        self.listed_types: list[list[str]] = []
        self.missing_first = missing_first
        self.job_type = job_type

    def _job(self, job_id: str) -> Job:
        script = self.scripts[job_id]
        i = min(self.step[job_id], len(script) - 1)
        self.step[job_id] += 1
        return Job(
            job_id=job_id,
            job_type=self.job_type,
            status=script[i],
            updated_at=datetime.now(UTC) + timedelta(milliseconds=self.step[job_id]),
        )

    async def get_job(self, job_id: str) -> Job:
        self.gets += 1
        if self.gets <= self.missing_first:
            raise ScenarioNotFound("GET /jobs/{jobId}", 404, "Job not found")
        return self._job(job_id)

    async def list_jobs(
        self, *, updated_after: datetime | None = None, job_types: Sequence[str] = ()
    ) -> AsyncIterator[Job]:
        self.listings += 1
        self.listed_types.append(list(job_types))
        if self.job_type not in job_types:
            return
        for job_id in list(self.scripts):
            yield self._job(job_id)


def _queued(job_id: str, job_type: str | None = "custom") -> Job:
    return Job(job_id=job_id, job_type=job_type, status="queued", created_at=datetime.now(UTC))


async def test_aliases_and_unknown_statuses() -> None:
    source = FakeJobs({"a": ["queued", "processing", "weird-new-status", "cancelled"]})
    seen: list[str] = []
    async with JobWatcher(source, FAST) as watcher:
        job = await watcher.wait(_queued("a"), on_update=lambda j: seen.append(j.status))
    assert job.status == "cancelled" and job.outcome == "canceled"
    assert seen == ["processing", "weird-new-status", "cancelled"]
    assert source.gets == 4  # unknown statuses kept it waiting


async def test_many_jobs_are_followed_by_listing() -> None:
    scripts = {f"j{i}": ["queued", "in-progress", "success"] for i in range(6)}
    source = FakeJobs(scripts)
    async with JobWatcher(source, FAST) as watcher:
        jobs = await asyncio.gather(*(watcher.wait(_queued(j)) for j in scripts))
    assert all(j.outcome == "success" for j in jobs)
    assert source.listings >= 1 and source.gets == 0


async def test_a_404_right_after_submit_is_tolerated() -> None:
    source = FakeJobs({"a": ["queued", "success"]}, missing_first=2)
    async with JobWatcher(source, FAST) as watcher:
        assert (await watcher.wait(_queued("a"))).outcome == "success"


async def test_a_job_that_stays_unknown_is_an_error() -> None:
    source = FakeJobs({"a": ["queued"]}, missing_first=100)
    async with JobWatcher(source, FAST.model_copy(update={"not_found_grace": 2})) as watcher:
        with pytest.raises(Exception, match="unknown to the API"):
            await watcher.wait(_queued("a"))


async def test_the_deadline_ends_the_wait_with_a_clear_error() -> None:
    source = FakeJobs({"a": ["in-progress"]})
    policy = FAST.model_copy(update={"deadline_s": 0.2})
    async with JobWatcher(source, policy) as watcher:
        with pytest.raises(JobTimedOut, match=r"1 job\(s\) still running after 0.2 s: a"):
            await watcher.wait(_queued("a"))


async def test_cadence_slows_when_nothing_moves_and_quickens_near_the_end() -> None:
    policy = PollPolicy(first_interval_s=1.0, min_interval_s=0.2, max_interval_s=10.0)
    watcher = JobWatcher(FakeJobs({}), policy)
    now = time.monotonic()
    tracked = _Tracked(
        _queued("a"),
        asyncio.get_running_loop().create_future(),
        started=now - 9,
        last_seen=now,
    )
    watcher._tracked["a"] = tracked
    assert watcher._next_delay() == pytest.approx(1.0)  # soon after submit
    tracked.idle_ticks = 4
    assert watcher._next_delay() == pytest.approx(1.5**4)  # nothing moved: slower
    tracked.idle_ticks = 40
    assert watcher._next_delay() == 10.0  # capped
    tracked.job = tracked.job.model_copy(update={"progress": 0.9})
    # 90 % after 9 s: about 1 s left, so ask again then.
    assert watcher._next_delay() == pytest.approx(1.0, abs=0.05)
    tracked.job = tracked.job.model_copy(update={"progress": 0.1})
    assert watcher._next_delay() == 10.0  # 81 s left: no hurry


async def test_a_job_without_progress_is_asked_about_when_jobs_like_it_have_ended() -> None:
    policy = PollPolicy(first_interval_s=1.0, min_interval_s=0.2, due_interval_s=0.25)
    watcher = JobWatcher(FakeJobs({}), policy)
    watcher._durations.extend([1.9, 2.0, 2.1])  # the jobs seen ending so far took ~2 s
    tracked = _Tracked(
        _queued("a"), asyncio.get_running_loop().create_future(), started=0, last_seen=0
    )
    watcher._tracked["a"] = tracked
    for age, delay in [(0.5, 1.5), (1.9, 0.25), (2.5, 0.25), (6.0, 1.0)]:
        tracked.started = time.monotonic() - age
        # Before its expected end: then; once due: often, less so the longer it is overdue.
        assert watcher._next_delay() == pytest.approx(delay, abs=0.05), age


async def test_a_job_whose_progress_says_later_is_asked_when_jobs_like_it_ended() -> None:
    """Progress that leaves out the queue before it (10 % after 1 s of a 2 s job, half of it
    queued) must not push the ask past the end the jobs seen ending so far point to."""
    policy = PollPolicy(first_interval_s=1.0, min_interval_s=0.2, due_interval_s=0.25)
    watcher = JobWatcher(FakeJobs({}), policy)
    watcher._durations.extend([1.9, 2.0, 2.1])
    tracked = _Tracked(
        _queued("a").model_copy(update={"status": "in-progress", "progress": 0.1}),
        asyncio.get_running_loop().create_future(),
        started=time.monotonic() - 1.0,
        last_seen=0,
    )
    watcher._tracked["a"] = tracked
    assert watcher._next_delay() == pytest.approx(1.0, abs=0.05)  # at 2 s, not at 10 s
    tracked.job = tracked.job.model_copy(update={"progress": 0.9})
    assert watcher._next_delay() == pytest.approx(0.25, abs=0.01)  # 90 % at 1 s: due now


async def test_listings_filter_on_the_job_type_the_api_gave_not_on_custom() -> None:
    """Under a reading where a custom upscale is typed "upscale", the listing still finds it."""
    scripts = {f"j{i}": ["queued", "pending", "warming-up", "success"] for i in range(4)}
    source = FakeJobs(scripts, job_type="upscale")
    async with JobWatcher(source, FAST) as watcher:
        jobs = await asyncio.gather(*(watcher.wait(_queued(j, "upscale")) for j in scripts))
    assert all(j.outcome == "success" for j in jobs)
    assert source.gets == 0 and source.listed_types[0] == ["upscale"]


async def test_jobs_of_unknown_type_are_asked_about_one_by_one() -> None:
    scripts = {f"j{i}": ["queued", "success"] for i in range(4)}
    source = FakeJobs(scripts)
    async with JobWatcher(source, FAST) as watcher:
        jobs = await asyncio.gather(*(watcher.wait(_queued(j, None)) for j in scripts))
    assert all(j.outcome == "success" for j in jobs)
    assert source.listings == 0 and source.gets >= 4


class BrokenJobs(FakeJobs):
    """Answers with a job the engine cannot read (a status that is not a string)."""

    async def get_job(self, job_id: str) -> Job:
        return Job.model_construct(job_id=job_id, status=None, progress=0.0)  # type: ignore[arg-type]


async def test_an_unexpected_error_in_the_loop_fails_every_waiter_clearly() -> None:
    source = BrokenJobs({"a": ["queued"], "b": ["queued"]})
    async with JobWatcher(source, FAST) as watcher:
        waits = [watcher.track(_queued("a", None)), watcher.track(_queued("b", None))]
        async with asyncio.timeout(30):  # before the fix the waiters hung forever
            outcomes = await asyncio.gather(*waits, return_exceptions=True)
        for outcome in outcomes:
            assert isinstance(outcome, ScenarioError)
            assert "watching jobs failed unexpectedly (AttributeError" in str(outcome)
            assert "rerun to collect them" in str(outcome)
        # The watcher survives: a job tracked afterwards is still followed.
        source_ok = FakeJobs({"c": ["queued", "success"]})
        watcher.source = source_ok
        assert (await watcher.wait(_queued("c"))).outcome == "success"
