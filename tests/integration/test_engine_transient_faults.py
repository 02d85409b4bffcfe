"""Transient faults are outlasted within the run that meets them: no input is lost to a
flaky submit while it waits for the team's ceiling, no paid output is left undelivered."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from scenario_upscale.api import ScenarioClient
from scenario_upscale.batch import run_batch
from scenario_upscale.emulator import EmulatorServer
from tests.support import FAST_POLL, write_images

GENERATE = "/v1/generate/custom/{modelId}"


async def test_waiting_for_the_ceiling_spends_none_of_the_lost_submit_tries(
    make_client: Callable[..., ScenarioClient], fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    # One job at a time for the team and many lost answers: every input waits for the ceiling
    # several times, each wait between lost answers.
    write_images(tmp_path / "in", 10)
    fresh_emulator.configure(concurrency_limit=1, error_rate_5xx_post=0.4, fault_routes=[GENERATE])
    async with make_client() as client:
        report = await run_batch(
            client,
            str(tmp_path / "in"),
            str(tmp_path / "out"),
            poll=FAST_POLL,
            dry_run_pricing=False,
        )
    assert [r.error for r in report.results if r.status != "success"] == []
    stats = fresh_emulator.stats()
    assert stats.faults_injected.get("5xx", 0) > 0
    assert stats.jobs_created == 10
    assert all(c.charges == 1 for c in stats.charges_by_input.values())


async def test_paid_outputs_outlast_more_download_faults_than_tries_of_old(
    make_client: Callable[..., ScenarioClient], fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    # Four tries per output used to be all: twelve 503s and twelve cut transfers for three
    # outputs leave one of them without a whole copy after four.
    write_images(tmp_path / "in", 3)
    fresh_emulator.configure(fail_next_n_downloads=12, truncate_next_n_downloads=12)
    async with make_client() as client:
        report = await run_batch(
            client,
            str(tmp_path / "in"),
            str(tmp_path / "out"),
            poll=FAST_POLL,
            dry_run_pricing=False,
        )
    assert [r.error for r in report.results if r.status != "success"] == []
    assert len(list((tmp_path / "out").glob("*.png"))) == 3
    stats = fresh_emulator.stats()
    assert stats.faults_injected.get("download_5xx") == 12
    assert stats.faults_injected.get("download_truncated") == 12
    assert stats.jobs_created == 3
    assert all(c.charges == 1 for c in stats.charges_by_input.values())
