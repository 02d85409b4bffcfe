"""Lost answers, crashes and reruns: a job is paid for once, whatever happens to the client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from scenario_upscale.api import ScenarioClient
from scenario_upscale.batch import BatchSession, Plan, UpscaleSpec, run_batch
from scenario_upscale.emulator import EmulatorServer
from scenario_upscale.journal import Journal, default_journal_path
from tests.support import FAST_POLL, write_images


@contextlib.asynccontextmanager
async def _first_run(
    client: ScenarioClient, tmp_path: Path, images: int
) -> AsyncIterator[tuple[BatchSession, Plan]]:
    """A first run over ``images`` new inputs in ``tmp_path/in``, up to its plan (what it does
    next, and how it dies, is the test's)."""
    write_images(tmp_path / "in", images)
    async with BatchSession(client, str(tmp_path / "out")) as session:
        yield session, await session.prepare(str(tmp_path / "in"), [UpscaleSpec()])


async def test_a_generate_answer_dropped_after_the_job_was_created_is_reconciled(
    make_client: Callable[..., ScenarioClient], fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    images = write_images(tmp_path / "in", 1)
    fresh_emulator.configure(drop_generate_after_commit=1)
    async with make_client(timeout_s=2.0) as client:
        report = await run_batch(
            client, str(images[0]), str(tmp_path / "out"), poll=FAST_POLL, dry_run_pricing=False
        )
    [result] = report.results
    assert result.status == "success", result.error
    assert result.reconciled
    stats = fresh_emulator.stats()
    assert stats.faults_injected.get("drop") == 1
    assert stats.requests["POST /v1/generate/custom/{modelId}"] == 1  # never resent
    assert stats.jobs_created == 1
    [charges] = stats.charges_by_input.values()
    assert charges.charges == 1
    assert stats.creative_units_charged == result.creative_units


async def test_a_5xx_before_anything_was_created_is_resent_once_checked(
    make_client: Callable[..., ScenarioClient], fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    images = write_images(tmp_path / "in", 1)
    fresh_emulator.configure(fail_next_n_posts=1, fault_routes=["/v1/generate/custom/{modelId}"])
    async with make_client() as client:
        report = await run_batch(
            client, str(images[0]), str(tmp_path / "out"), poll=FAST_POLL, dry_run_pricing=False
        )
    [result] = report.results
    assert result.status == "success" and not result.reconciled
    stats = fresh_emulator.stats()
    assert stats.requests["POST /v1/generate/custom/{modelId}"] == 2
    assert stats.requests.get("GET /v1/jobs", 0) >= 1  # looked before resending
    assert stats.jobs_created == 1


async def test_a_rerun_of_a_finished_batch_creates_no_job(
    client: ScenarioClient, fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    write_images(tmp_path / "in", 3)
    first = await run_batch(client, str(tmp_path / "in"), str(tmp_path / "out"), poll=FAST_POLL)
    assert first.count("success") == 3
    before = fresh_emulator.stats()
    second = await run_batch(client, str(tmp_path / "in"), str(tmp_path / "out"), poll=FAST_POLL)
    assert second.count("skipped") == 3 and second.ok
    assert second.creative_units == 0
    after = fresh_emulator.stats()
    assert after.jobs_created == before.jobs_created == 3
    assert after.assets_created == before.assets_created  # not even uploaded again
    assert after.dry_runs == before.dry_runs


async def test_a_run_killed_after_submit_is_resumed_without_paying_again(
    client: ScenarioClient, fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    out = str(tmp_path / "out")
    # The first run submits, then dies before waiting or collecting anything.
    async with _first_run(client, tmp_path, 3) as (session, plan):
        submitted = await session.submit(plan.items)
    assert len(submitted) == 3 and fresh_emulator.stats().jobs_created == 3

    report = await run_batch(client, str(tmp_path / "in"), out, poll=FAST_POLL)
    assert report.count("success") == 3
    assert all(r.resumed for r in report.results)
    assert report.creative_units == 0  # paid by the first run
    assert fresh_emulator.stats().jobs_created == 3


async def test_a_run_killed_between_sending_a_submit_and_recording_it_is_reconciled(
    client: ScenarioClient, fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    out = str(tmp_path / "out")
    async with _first_run(client, tmp_path, 2) as (session, plan):
        # What a crash leaves: "submitting" was written and the job created, "submitted" never.
        for item in plan.items:
            item = await session.uploads.ready(item)  # an input is uploaded just before its submit
            session.journal.write("submitting", key=item.key)
            await client.submit(item.model_id, item.body)
    journal = Journal(default_journal_path(out), session.journal.namespace)
    assert len(journal.submitting) == 2 and not journal.jobs

    report = await run_batch(client, str(tmp_path / "in"), out, poll=FAST_POLL)
    assert report.count("success") == 2
    assert all(r.reconciled and r.resumed for r in report.results)
    stats = fresh_emulator.stats()
    assert stats.jobs_created == 2
    assert all(c.charges == 1 for c in stats.charges_by_input.values())


async def test_identical_files_in_one_batch_share_one_upload_and_one_job(
    client: ScenarioClient, fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    [original] = write_images(tmp_path / "in", 1)
    (tmp_path / "in" / "copy.png").write_bytes(original.read_bytes())
    report = await run_batch(client, str(tmp_path / "in"), str(tmp_path / "out"), poll=FAST_POLL)
    assert report.count("success") == 2
    assert {Path(r.outputs[0]).name for r in report.results} == {
        "copy@upscale-v3x2.png",
        "tile00@upscale-v3x2.png",
    }
    assert len({r.job_id for r in report.results}) == 1
    stats = fresh_emulator.stats()
    assert stats.assets_created == 2  # one upload and one output
    assert stats.jobs_created == 1
    second = await run_batch(client, str(tmp_path / "in"), str(tmp_path / "out"), poll=FAST_POLL)
    assert second.count("skipped") == 2
    assert fresh_emulator.stats().jobs_created == 1


async def test_a_rerun_retries_an_input_whose_job_failed(
    client: ScenarioClient, fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    write_images(tmp_path / "in", 2)
    fresh_emulator.configure(fail_next_n_jobs=1)
    first = await run_batch(client, str(tmp_path / "in"), str(tmp_path / "out"), poll=FAST_POLL)
    assert first.count("failure") == 1 and first.count("success") == 1
    second = await run_batch(client, str(tmp_path / "in"), str(tmp_path / "out"), poll=FAST_POLL)
    assert second.count("success") == 1 and second.count("skipped") == 1
    [retried] = [r for r in second.results if r.status == "success"]
    [failed] = [r for r in first.results if r.status == "failure"]
    assert retried.source == failed.source and retried.job_id != failed.job_id
    stats = fresh_emulator.stats()
    assert stats.jobs_created == 3  # the failed one was refunded
    assert stats.creative_units_refunded > 0
    assert all(r.input_width for r in second.results)  # skipped ones too


async def test_a_rerun_whose_new_submit_loses_its_answer_never_takes_the_failed_job_for_it(
    client: ScenarioClient, fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    # Found by the 1000-input soak: the lost answer was matched, within the clock-skew margin,
    # to the input's own failed job of the run before, so the input failed again untried.
    write_images(tmp_path / "in", 1)
    inputs, out = str(tmp_path / "in"), str(tmp_path / "out")
    fresh_emulator.configure(fail_next_n_jobs=1)
    first = await run_batch(client, inputs, out, poll=FAST_POLL, dry_run_pricing=False)
    assert first.count("failure") == 1
    fresh_emulator.configure(fail_next_n_posts=1, fault_routes=["/v1/generate/custom/{modelId}"])
    second = await run_batch(client, inputs, out, poll=FAST_POLL, dry_run_pricing=False)
    [result] = second.results
    assert result.status == "success", result.error
    assert result.job_id != first.results[0].job_id and not result.reconciled
    assert fresh_emulator.stats().jobs_created == 2


async def test_two_runs_on_one_target_at_once_pay_once(
    client: ScenarioClient, fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    write_images(tmp_path / "in", 3)
    first, second = await asyncio.gather(
        run_batch(client, str(tmp_path / "in"), str(tmp_path / "out"), poll=FAST_POLL),
        run_batch(client, str(tmp_path / "in"), str(tmp_path / "out"), poll=FAST_POLL),
    )
    # Both work at once, each input claimed by one of them: the other takes its job over.
    assert first.ok and second.ok
    assert {r.job_id for r in first.results} == {r.job_id for r in second.results}
    stats = fresh_emulator.stats()
    assert stats.jobs_created == 3
    assert first.creative_units + second.creative_units == stats.creative_units_charged


async def test_outputs_in_the_target_are_done_whatever_the_spelling_of_the_endpoint(
    make_client: Callable[..., ScenarioClient], fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    write_images(tmp_path / "in", 3)
    inputs, target = str(tmp_path / "in"), str(tmp_path / "out")
    async with make_client() as client:
        first = await run_batch(client, inputs, target, poll=FAST_POLL)
    assert first.count("success") == 3
    before = fresh_emulator.stats()
    localhost = fresh_emulator.base_url.replace("127.0.0.1", "localhost")
    assert localhost != fresh_emulator.base_url
    # The same API and target, spelled another way; then with the block's project filled in.
    for spelling in ({"base_url": localhost + "/"}, {"project_id": "proj_same_team"}):
        async with make_client(**spelling) as client:
            again = await run_batch(client, inputs, target, poll=FAST_POLL)
        assert again.count("skipped") == 3 and again.ok, spelling
        assert again.creative_units == 0
        assert {r.job_id for r in again.results} == {r.job_id for r in first.results}
    after = fresh_emulator.stats()
    assert after.jobs_created == before.jobs_created == 3
    assert after.creative_units_charged == before.creative_units_charged
