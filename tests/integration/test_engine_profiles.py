"""The engine's whole path under every emulator profile: every plausible answer of the real API.

For each emulator profile (README.md, "The emulator"), ``run_batch`` uploads, prices (dry run),
submits, polls and collects; and a submit whose answer is lost after the job was created is
reconciled. Each test proves from ``/_emulator/stats`` one job and one charge per input, and from
the disk every output there, decoded by Pillow, of the expected pixel size.

One emulator for the module, reset and switched to a profile per test (``PUT /_emulator/config``).
The client always sends the emulator's ``projectId``, as a user with a project set would, so
``strict-project`` lets it through; a wrong one is its own test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import pytest
from PIL import Image

from scenario_upscale.api import BASE64_UPLOAD_LIMIT, ScenarioClient
from scenario_upscale.batch import BatchReport, UpscaleSpec, run_batch
from scenario_upscale.emulator import EmulatorConfig, EmulatorServer
from scenario_upscale.emulator.profiles import PROFILE_NAMES, ProfileName
from scenario_upscale.emulator.stats import EmulatorStats
from scenario_upscale.errors import ScenarioProjectRefused
from scenario_upscale.params import build_body
from tests.support import FAST_POLL, FAST_RETRY, write_images, write_mp4

FACTOR = 2
SPEC = UpscaleSpec(model_id="model_upscale-v3", parameters={"upscaleFactor": FACTOR})


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(job_duration_s=0.3)) as emulator:
        yield emulator


@pytest.fixture
def switch(server: EmulatorServer) -> Callable[..., EmulatorServer]:
    """Reset the module's emulator and put it under a profile (plus any fault knobs)."""

    def under(profile: ProfileName, **knobs: Any) -> EmulatorServer:
        server.reset()
        server.configure(profile=profile, **knobs)
        return server

    return under


def _client(server: EmulatorServer, **overrides: Any) -> ScenarioClient:
    options: dict[str, Any] = {
        "api_key": server.api_key,
        "api_secret": server.api_secret,
        "base_url": server.base_url,
        "project_id": server.app.runtime.config.project_id,
        "strict_responses": True,
        "timeout_s": 5.0,
        "retry": FAST_RETRY,
    }
    options.update(overrides)
    return ScenarioClient(**options)


async def _unpriced(client: ScenarioClient, tmp_path: Path, **options: Any) -> BatchReport:
    """``tmp_path/in`` upscaled into ``tmp_path/out`` with ``SPEC``, without a dry run first."""
    return await run_batch(
        client,
        str(tmp_path / "in"),
        str(tmp_path / "out"),
        [SPEC],
        poll=FAST_POLL,
        dry_run_pricing=False,
        **options,
    )


def _decoded_size(path: str) -> tuple[int, int]:
    with Image.open(path) as image:
        image.load()  # every pixel decodes, not only the header
        width, height = image.size
    return width, height


def _assert_paid_once_and_collected(
    report: BatchReport, stats: EmulatorStats, inputs: list[Path]
) -> None:
    assert report.ok and len(report.results) == len(inputs), report.results
    assert stats.jobs_created == len(inputs)
    assert len(stats.charges_by_input) == len(inputs)
    assert all(c.charges == 1 and c.refunds == 0 for c in stats.charges_by_input.values())
    assert report.creative_units == stats.creative_units_charged > 0
    for result, source in zip(
        sorted(report.results, key=lambda r: r.source), sorted(inputs), strict=True
    ):
        with Image.open(source) as image:
            width, height = image.size
        [output] = result.outputs
        assert Path(output).is_file()
        assert _decoded_size(output) == (width * FACTOR, height * FACTOR)


@pytest.mark.parametrize("profile", PROFILE_NAMES)
async def test_the_whole_path_pays_once_and_collects_every_output(
    switch: Callable[..., EmulatorServer], profile: ProfileName, tmp_path: Path
) -> None:
    server = switch(profile)
    # More inputs than the plan ceiling of ceiling-no-retry-hint (3), all submitted at once.
    inputs = write_images(tmp_path / "in", 5)
    async with _client(server) as client:
        report = await run_batch(
            client, str(tmp_path / "in"), str(tmp_path / "out"), [SPEC], poll=FAST_POLL
        )
        stats = server.stats()
        await _assert_originals(client, report)
    _assert_paid_once_and_collected(report, stats, inputs)
    assert stats.dry_runs == len(inputs)  # priced, and no dry run taken for a job
    assert not list((tmp_path / "out").glob("*.part"))


def _size_on_disk(path: str) -> int:
    return os.path.getsize(path)


async def _assert_originals(client: ScenarioClient, report: BatchReport) -> None:
    """Each output is the stored original, byte for byte, not a transformed rendition."""
    for result in report.results:
        assert result.job_id is not None
        job = await client.get_job(result.job_id)
        [asset] = await client.get_assets(job.asset_ids)
        assert asset.size == _size_on_disk(result.outputs[0])


@pytest.mark.parametrize("profile", ["default", "transformed-urls"])
async def test_a_video_is_collected_whole_and_decodable(
    switch: Callable[..., EmulatorServer], profile: ProfileName, tmp_path: Path
) -> None:
    server = switch(profile)
    video = write_mp4(tmp_path / "in" / "clip.mp4")
    spec = UpscaleSpec(model_id="model_seedvr-2-upscale-video", parameters={"upscaleFactor": 2})
    async with _client(server) as client:
        report = await run_batch(client, str(video), str(tmp_path / "out"), [spec], poll=FAST_POLL)
        stats = server.stats()
        await _assert_originals(client, report)
    [result] = report.results
    assert result.status == "success", result.error
    assert stats.jobs_created == 1 and len(stats.charges_by_input) == 1
    with av.open(result.outputs[0]) as container:
        frames = list(container.decode(container.streams.video[0]))
    assert frames and {(f.width, f.height) for f in frames} == {(128, 96)}


@pytest.mark.parametrize("profile", PROFILE_NAMES)
async def test_a_lost_submit_is_reconciled_not_paid_twice(
    switch: Callable[..., EmulatorServer], profile: ProfileName, tmp_path: Path
) -> None:
    server = switch(profile, drop_generate_after_commit=1)
    inputs = write_images(tmp_path / "in", 2)
    async with _client(server, timeout_s=2.0) as client:
        report = await _unpriced(client, tmp_path)
    stats = server.stats()
    _assert_paid_once_and_collected(report, stats, inputs)
    assert stats.faults_injected.get("drop") == 1
    assert [r.reconciled for r in report.results].count(True) == 1
    assert stats.requests["POST /v1/generate/custom/{modelId}"] == len(inputs)  # never resent


async def test_the_plan_ceiling_without_a_retry_hint_fails_no_item(
    switch: Callable[..., EmulatorServer], tmp_path: Path
) -> None:
    # Jobs long enough that all six submits meet the ceiling of 3 while the first jobs run.
    server = switch("ceiling-no-retry-hint", job_duration_s=1.0)
    inputs = write_images(tmp_path / "in", 6)
    async with _client(server) as client:
        report = await _unpriced(client, tmp_path, max_concurrency=6)
    stats = server.stats()
    _assert_paid_once_and_collected(report, stats, inputs)
    # Refused at least once, and the ceiling learnt: not one refusal per item per poll.
    assert 1 <= stats.rate_limited <= len(inputs)


async def test_slots_held_by_another_client_are_waited_for_with_a_capped_backoff(
    switch: Callable[..., EmulatorServer], tmp_path: Path
) -> None:
    # Long enough that the other client's jobs still run when ours are first submitted.
    server = switch("ceiling-no-retry-hint", job_duration_s=3.0)
    others = write_images(tmp_path / "others", 3)
    inputs = write_images(tmp_path / "in", 2)
    async with _client(server) as other, _client(server) as client:
        model = await other.get_model(SPEC.model_id)
        for path in others:  # another client of the team takes all three slots
            asset_id = await other.upload(
                path.read_bytes(), name=path.name, mime_type="image/png", kind="image"
            )
            await other.submit(SPEC.model_id, build_body(model, asset_id, SPEC.parameters))
        report = await _unpriced(client, tmp_path)
    stats = server.stats()
    assert report.ok, report.results
    assert stats.rate_limited >= 1  # refused while none of ours was in flight
    assert stats.jobs_created == len(others) + len(inputs)
    assert all(c.charges == 1 for c in stats.charges_by_input.values())


async def test_an_image_too_large_for_a_gateway_capped_base64_body_goes_multipart(
    switch: Callable[..., EmulatorServer], tmp_path: Path
) -> None:
    server = switch("gateway-limits")
    path = tmp_path / "noise.png"
    Image.frombytes("RGB", (1300, 1300), os.urandom(1300 * 1300 * 3)).save(path)
    data = path.read_bytes()
    # Under the old 6 MiB limit this went as base64: a body over the 6 MB gateway cap.
    assert BASE64_UPLOAD_LIMIT < len(data) < 6 * 1024 * 1024 and len(data) * 4 / 3 > 6_000_000
    async with _client(server) as client:
        asset_id = await client.upload(data, name=path.name, mime_type="image/png", kind="image")
        asset = await client.get_asset(asset_id)
    assert (asset.width, asset.height, asset.size) == (1300, 1300, len(data))
    stats = server.stats()
    assert stats.requests.get("POST /v1/uploads") == 1
    assert stats.requests.get("POST /v1/assets", 0) == 0
    assert stats.responses_by_status.get("413", 0) == 0


async def test_a_project_the_key_cannot_use_fails_clearly_before_anything_is_spent(
    switch: Callable[..., EmulatorServer], tmp_path: Path
) -> None:
    server = switch("strict-project")
    write_images(tmp_path / "in", 1)
    async with _client(server, project_id="proj_someone_else") as client:
        with pytest.raises(ScenarioProjectRefused) as caught:
            await run_batch(client, str(tmp_path / "in"), str(tmp_path / "out"), poll=FAST_POLL)
    message = str(caught.value)
    assert "HTTP 403" in message and "project id 'proj_someone_else'" in message
    assert "set the project id of the project your API key belongs to" in message
    assert server.api_secret not in message
    stats = server.stats()
    assert stats.jobs_created == 0 and stats.assets_created == 0
