"""The engine end to end against the emulator as a real server on 127.0.0.1.

The client validates every answer strictly against the official SDK's models, so a shape the SDK
would not parse fails here.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import fsspec
import pytest
from PIL import Image

from scenario_upscale import storage
from scenario_upscale.api import ScenarioClient
from scenario_upscale.batch import UpscaleSpec, run_batch
from scenario_upscale.emulator import EmulatorServer
from scenario_upscale.params import build_body
from scenario_upscale.polling import JobWatcher
from tests.support import FAST_POLL, write_images


async def test_upload_validate_price_submit_poll_download(
    client: ScenarioClient, fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    source = write_images(tmp_path / "in", 1, size=(50, 40))[0]
    model = await client.get_model("model_upscale-v3")
    asset_id = await client.upload(
        source.read_bytes(), name=source.name, mime_type="image/png", kind="image"
    )
    body = build_body(model, asset_id, {"upscaleFactor": 3})
    price = await client.price("model_upscale-v3", body)
    assert price.creative_units > 0
    assert fresh_emulator.stats().creative_units_charged == 0  # a dry run is free

    submitted = await client.submit("model_upscale-v3", body)
    assert submitted.creative_units == price.creative_units
    assert not submitted.reconciled
    async with JobWatcher(client, FAST_POLL) as watcher:
        job = await watcher.wait(submitted.job)
    assert job.outcome == "success" and job.asset_ids
    [asset] = await client.get_assets(job.asset_ids)
    assert (asset.width, asset.height) == (150, 120)

    stored = await storage.download(
        client.cdn, asset, str(tmp_path / "out" / "x.png"), refresh_url=client.fresh_download_url
    )
    with Image.open(stored.location) as image:
        assert image.size == (150, 120)
    assert not list((tmp_path / "out").glob("*.part"))
    stats = fresh_emulator.stats()
    assert stats.jobs_created == 1 and stats.creative_units_charged == price.creative_units


async def test_a_batch_of_two_models_gives_images_of_the_requested_sizes(
    client: ScenarioClient, fresh_emulator: EmulatorServer, images: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    specs = [
        UpscaleSpec(model_id="model_upscale-v3", parameters={"upscaleFactor": 2}),
        UpscaleSpec(model_id="model_seedvr-2-upscale-image", parameters={"upscaleFactor": 3}),
    ]
    progress: list[int] = []
    report = await run_batch(
        client,
        str(images[0].parent),
        str(out),
        specs,
        poll=FAST_POLL,
        on_progress=lambda p: progress.append(p.finished),
    )
    assert report.ok and report.count("success") == 8, report.results
    for result in report.results:
        factor = 2 if result.model_id == "model_upscale-v3" else 3
        assert result.input_width is not None and result.input_height is not None
        with Image.open(result.outputs[0]) as image:
            assert image.size == (result.input_width * factor, result.input_height * factor)
        assert (result.output_width, result.output_height) == image.size
    assert sorted(p.name for p in out.glob("*.png"))[0] == "tile00@seedvr-2-upscale-imagex3.png"
    assert progress[-1] == 8
    stats = fresh_emulator.stats()
    assert stats.jobs_created == 8 and stats.dry_runs == 8
    assert report.creative_units == stats.creative_units_charged
    assert all(c.charges == 1 for c in stats.charges_by_input.values())


async def test_many_jobs_are_watched_through_listings_not_one_get_per_job(
    client: ScenarioClient, fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    images = write_images(tmp_path / "in", 8)
    report = await run_batch(
        client,
        [str(p) for p in images],
        str(tmp_path / "out"),
        poll=FAST_POLL,
        dry_run_pricing=False,
    )
    assert report.ok
    requests = fresh_emulator.stats().requests
    listings = requests.get("GET /v1/jobs", 0)
    singles = requests.get("GET /v1/jobs/{jobId}", 0)
    assert listings >= 1
    # One listing answers for all eight jobs: far fewer status requests than jobs x ticks.
    assert listings + singles < 8 * 3, requests


async def test_transient_faults_are_absorbed(
    make_client: Callable[..., ScenarioClient],
    fresh_emulator: EmulatorServer,
    images: list[Path],
    tmp_path: Path,
) -> None:
    fresh_emulator.configure(fail_next_n_gets=3)
    async with make_client() as client:
        report = await run_batch(
            client, [str(p) for p in images[:2]], str(tmp_path / "out"), poll=FAST_POLL
        )
    assert report.ok, report.results
    stats = fresh_emulator.stats()
    assert stats.faults_injected.get("5xx", 0) == 3
    assert stats.jobs_created == 2


async def test_an_expired_signed_url_is_replaced_by_a_fresh_one(
    client: ScenarioClient, fresh_emulator: EmulatorServer, images: list[Path], tmp_path: Path
) -> None:
    fresh_emulator.configure(url_ttl_s=1.0)
    asset_id = await client.upload(
        images[0].read_bytes(), name="a.png", mime_type="image/png", kind="image"
    )
    asset = await client.get_asset(asset_id)
    await asyncio.sleep(1.3)
    stored = await storage.download(
        client.cdn, asset, str(tmp_path / "a.png"), refresh_url=client.fresh_download_url
    )
    assert stored.sha256 == hashlib.sha256(images[0].read_bytes()).hexdigest()
    stats = fresh_emulator.stats()
    assert stats.responses_by_status.get("403", 0) == 1
    assert stats.requests.get("POST /v1/assets/{assetId}/download", 0) == 1


async def test_the_concurrency_ceiling_is_waited_out_without_paying_twice(
    client: ScenarioClient, fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    fresh_emulator.configure(concurrency_limit=2)
    images = write_images(tmp_path / "in", 5)
    report = await run_batch(
        client,
        str(tmp_path / "in"),
        str(tmp_path / "out"),
        poll=FAST_POLL,
        max_concurrency=5,
        dry_run_pricing=False,
    )
    assert report.ok, report.results
    stats = fresh_emulator.stats()
    assert stats.rate_limited >= 1  # the ceiling was really hit
    assert stats.jobs_created == len(images)
    assert all(c.charges == 1 for c in stats.charges_by_input.values())


async def test_a_failed_job_is_reported_with_its_reason_and_refunded(
    client: ScenarioClient, fresh_emulator: EmulatorServer, images: list[Path], tmp_path: Path
) -> None:
    fresh_emulator.configure(fail_next_n_jobs=1)
    report = await run_batch(
        client,
        [str(images[0]), str(images[1])],
        str(tmp_path / "out"),
        poll=FAST_POLL,
        max_concurrency=1,
        shard_size=1,
    )
    failed = [r for r in report.results if r.status == "failure"]
    assert len(failed) == 1 and report.count("success") == 1
    assert failed[0].job_id and failed[0].error and "ended with status 'failure'" in failed[0].error
    assert "Hint:" in failed[0].error
    assert not report.ok
    stats = fresh_emulator.stats()
    assert stats.creative_units_refunded > 0


async def test_a_large_image_goes_through_the_multipart_upload(
    client: ScenarioClient, fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    path = tmp_path / "big.png"
    Image.frombytes("RGB", (1500, 1500), os.urandom(1500 * 1500 * 3)).save(path)
    data = path.read_bytes()
    assert len(data) > 6 * 1024 * 1024  # above the base64 limit
    asset_id = await client.upload(data, name="big.png", mime_type="image/png", kind="image")
    asset = await client.get_asset(asset_id)
    assert (asset.width, asset.height, asset.size) == (1500, 1500, len(data))
    requests = fresh_emulator.stats().requests
    assert requests.get("POST /v1/uploads") == 1
    assert requests.get("POST /v1/assets", 0) == 0


async def test_fsspec_locations_in_and_out(
    client: ScenarioClient,
    fresh_emulator: EmulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the remote target's journal
    memory = fsspec.filesystem("memory")
    for path in write_images(tmp_path / "in", 2):
        memory.pipe(f"/in-{tmp_path.name}/{path.name}", path.read_bytes())
    report = await run_batch(
        client, f"memory://in-{tmp_path.name}/", f"memory://out-{tmp_path.name}", poll=FAST_POLL
    )
    assert report.ok, report.results
    for result in report.results:
        [output] = result.outputs
        assert output.startswith("memory://out-")
        with memory.open(output, "rb") as handle, Image.open(handle) as image:
            assert image.size == (result.input_width * 2, result.input_height * 2)  # type: ignore[operator]
    assert not memory.glob(f"/out-{tmp_path.name}/*.part")
    assert (tmp_path / "cache" / "scenario-upscale").is_dir()


async def test_a_download_cut_short_is_retried_and_never_left_half_written(
    client: ScenarioClient, fresh_emulator: EmulatorServer, images: list[Path], tmp_path: Path
) -> None:
    fresh_emulator.configure(truncate_next_n_downloads=1, fail_next_n_downloads=1)
    report = await run_batch(client, str(images[0]), str(tmp_path / "out"), poll=FAST_POLL)
    assert report.ok, report.results
    [output] = report.results[0].outputs
    with Image.open(output) as image:
        image.load()  # the whole file decodes
    assert not list((tmp_path / "out").glob("*.part"))
    stats = fresh_emulator.stats()
    assert stats.faults_injected.get("download_truncated") == 1
    assert stats.faults_injected.get("download_5xx") == 1


async def test_an_upload_that_fails_with_a_5xx_is_retried(
    client: ScenarioClient, fresh_emulator: EmulatorServer, images: list[Path], tmp_path: Path
) -> None:
    fresh_emulator.configure(fail_next_n_posts=2, fault_routes=["/v1/assets"])
    report = await run_batch(client, str(images[0]), str(tmp_path / "out"), poll=FAST_POLL)
    assert report.ok, report.results
    stats = fresh_emulator.stats()
    assert stats.faults_injected.get("5xx") == 2
    assert stats.requests["POST /v1/assets"] == 3
