"""The emulator against the official SDK with strict response validation.

Every answer must parse with ``scenario_sdk``'s own response models (strict validation on) and
behave as ``scenario-api.md`` says. The server is real (uvicorn on 127.0.0.1); nothing is mocked.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import AsyncIterator
from typing import Any

import av
import httpx
import pytest
import scenario_sdk
from PIL import Image
from scenario_sdk import AsyncScenario

from scenario_upscale.emulator import EmulatorServer
from tests.support import mp4_bytes

TERMINAL = {"success", "failure", "canceled"}


def make_png(
    width: int = 40, height: int = 30, color: tuple[int, int, int] = (200, 30, 30)
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sdk_client(emu: EmulatorServer, **overrides: Any) -> AsyncScenario:
    options: dict[str, Any] = {
        "api_key": emu.api_key,
        "api_secret": emu.api_secret,
        "base_url": emu.base_url,
        "_strict_response_validation": True,
        "max_retries": 0,
        "timeout": 10.0,
    }
    options.update(overrides)
    return AsyncScenario(**options)


@pytest.fixture
async def client(fresh_emulator: EmulatorServer) -> AsyncIterator[AsyncScenario]:
    sdk = sdk_client(fresh_emulator)
    try:
        yield sdk
    finally:
        await sdk.close()


@pytest.fixture
async def cdn() -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client for signed URLs: no Scenario credentials."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        yield http


async def upload(client: AsyncScenario, data: bytes | None = None, name: str = "in.png") -> str:
    response = await client.assets.upload(name=name, image=b64(data or make_png()))
    return response.asset.id


async def wait_job(client: AsyncScenario, job_id: str, timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        job = (await client.jobs.retrieve(job_id)).job
        if job.status in TERMINAL:
            return job
        assert time.monotonic() < deadline, f"job {job_id} stuck in {job.status}"
        await asyncio.sleep(0.05)


# --- models -------------------------------------------------------------------------------


async def test_model_retrieve_has_contract_inputs(client: AsyncScenario) -> None:
    model = (await client.models.retrieve("model_upscale-v3")).model
    assert (model.type, model.custom, model.capabilities) == ("custom", True, ["img2img"])
    assert model.disable_refund is False
    inputs = {item.name: item for item in model.inputs or []}
    image = inputs["image"]
    assert (image.type, image.kind) == ("file", "image")
    assert image.required is not None and image.required.always is True
    factor = inputs["upscaleFactor"]
    assert (factor.type, factor.min, factor.max, factor.default) == ("number", 1, 16, 2)
    assert inputs["preset"].allowed_values == ["precise", "balanced", "creative"]

    seedvr = (await client.models.retrieve("model_seedvr-2-upscale-image")).model
    seedvr_inputs = {item.name: item for item in seedvr.inputs or []}
    assert "image" not in seedvr_inputs and seedvr_inputs["imageUrl"].type == "file"
    assert seedvr_inputs["upscaleMode"].allowed_values == ["factor", "target"]
    assert seedvr_inputs["targetResolution"].default == "1080p"

    topaz = (await client.models.retrieve("model_topaz-image-upscale")).model
    topaz_factor = next(i for i in topaz.inputs or [] if i.name == "upscaleFactor")
    assert (topaz_factor.type, topaz_factor.default) == ("string", "2x")
    assert topaz_factor.allowed_values == ["None", "2x", "4x", "6x"]

    clarity = (await client.models.retrieve("model_clarity-pro-upscaler")).model
    clarity_factor = next(i for i in clarity.inputs or [] if i.name == "scaleFactor")
    assert (clarity_factor.type, clarity_factor.allowed_values) == ("number", [2, 4, 8, 16])

    gemini = (await client.models.retrieve("model_scenario-gemini-upscale")).model
    gemini_factor = next(i for i in gemini.inputs or [] if i.name == "upscaleFactor")
    assert (gemini_factor.type, gemini_factor.allowed_values) == ("string", ["4k"])

    for model_id in (
        "model_sc-upscale-flux",
        "model_magnific-upscaler-precision",
        "model_crystal-upscaler",
        "model_recraft-crisp-upscale",
    ):
        assert (await client.models.retrieve(model_id)).model.id == model_id


async def test_model_list_paginates_public_models(client: AsyncScenario) -> None:
    first = await client.models.list(privacy="public", page_size=4)
    assert len(first.models) == 4 and first.next_pagination_token
    ids = [model.id async for model in client.models.list(privacy="public", page_size=4)]
    assert len(ids) == len(set(ids)) >= 9
    assert "model_upscale-v3" in ids
    private = await client.models.list()  # default privacy=private: the team owns none
    assert private.models == [] and not private.next_pagination_token


# --- assets -------------------------------------------------------------------------------


async def test_asset_upload_get_bulk_and_download(
    client: AsyncScenario, cdn: httpx.AsyncClient, fresh_emulator: EmulatorServer
) -> None:
    raw = make_png(40, 30)
    plain = (await client.assets.upload(name="plain.png", image=b64(raw))).asset
    data_url = (
        await client.assets.upload(name="dataurl.png", image="data:image/png;base64," + b64(raw))
    ).asset
    for asset in (plain, data_url):
        assert (asset.kind, asset.mime_type, asset.source, asset.status) == (
            "image",
            "image/png",
            "uploaded",
            "success",
        )
        assert (asset.properties.width, asset.properties.height) == (40, 30)
        assert asset.properties.size == len(raw)
        assert asset.metadata.type == "uploaded" and asset.metadata.kind == "image"
        assert asset.created_at.endswith("Z") and asset.created_at[-5] != ":"

    fetched = (await client.assets.retrieve(plain.id)).asset
    assert fetched.id == plain.id and fetched.metadata.name == "plain.png"

    bulk = await client.assets.get_bulk(asset_ids=[plain.id, data_url.id, "asset_unknown"])
    assert sorted(a.id for a in bulk.assets) == sorted([plain.id, data_url.id])

    link = await client.assets.download.request(plain.id)
    assert link.mime_type == "image/png"
    for url in (fetched.url, link.url):
        # A stray Authorization header must be ignored by the CDN, like a real presigned URL.
        response = await cdn.get(url, headers={"Authorization": "Basic Zm9vOmJhcg=="})
        assert response.status_code == 200 and response.content == raw
        assert response.headers["content-type"] == "image/png"

    stats = fresh_emulator.stats()
    assert stats.assets_created == 2 and stats.cdn_downloads == 2


async def test_asset_upload_rejects_bad_payloads(client: AsyncScenario) -> None:
    with pytest.raises(scenario_sdk.BadRequestError) as not_image:
        await client.assets.upload(name="x.png", image=b64(b"definitely not an image"))
    assert "not a valid image" in not_image.value.body["reason"]  # type: ignore[index]

    with pytest.raises(scenario_sdk.BadRequestError) as not_base64:
        await client.assets.upload(name="x.png", image="%%% not base64 %%%")
    assert "base64" in not_base64.value.body["reason"]  # type: ignore[index]

    too_big = b"\x89PNG" + bytes(6 * 1024 * 1024)
    with pytest.raises(scenario_sdk.BadRequestError) as large:
        await client.assets.upload(name="big.png", image=b64(too_big))
    assert "/v1/uploads" in large.value.body["reason"]  # type: ignore[index]


async def test_expired_url_is_403_and_download_gives_a_fresh_one(
    client: AsyncScenario, cdn: httpx.AsyncClient, fresh_emulator: EmulatorServer
) -> None:
    asset_id = await upload(client)
    fresh_emulator.configure(url_ttl_s=0)
    expired = (await client.assets.retrieve(asset_id)).asset.url
    assert (await cdn.get(expired)).status_code == 403
    fresh_emulator.configure(url_ttl_s=60)
    fresh = (await client.assets.download.request(asset_id)).url
    assert (await cdn.get(fresh)).status_code == 200
    tampered = fresh.replace("sig=", "sig=0")
    assert (await cdn.get(tampered)).status_code == 403
    assert (await cdn.get(fresh.split("?")[0])).status_code == 403


# --- multipart uploads ----------------------------------------------------------------------


async def test_multipart_upload_imports_an_asset(
    client: AsyncScenario, cdn: httpx.AsyncClient, fresh_emulator: EmulatorServer
) -> None:
    data = make_png(64, 48, (10, 120, 240))
    created = (
        await client.uploads.create(
            file_name="large.png",
            content_type="image/png",
            kind="image",
            parts=2,
            file_size=len(data),
        )
    ).upload
    assert created.status == "pending" and created.source == "multipart"
    parts = created.parts or []
    assert [int(p.number) for p in parts] == [1, 2]
    half = len(data) // 2
    for part, chunk in zip(parts, (data[:half], data[half:]), strict=True):
        put = await cdn.put(part.url, content=chunk, headers={"Content-Type": "image/png"})
        assert put.status_code == 200 and put.headers["etag"]

    completed = (await client.uploads.trigger_action(created.id, action="complete")).upload
    assert completed.status == "validating"
    for _ in range(100):
        current = (await client.uploads.retrieve(created.id)).upload
        if current.status in ("imported", "failed"):
            break
        await asyncio.sleep(0.05)
    assert current.status == "imported" and current.entity_id
    asset = (await client.assets.retrieve(current.entity_id)).asset
    assert (asset.properties.width, asset.properties.height, asset.properties.size) == (
        64,
        48,
        len(data),
    )
    assert (await cdn.get(asset.url)).content == data
    assert fresh_emulator.stats().uploads_created == 1


async def test_multipart_upload_of_non_image_fails_with_message(
    client: AsyncScenario, cdn: httpx.AsyncClient
) -> None:
    created = (
        await client.uploads.create(
            file_name="fake.png", content_type="image/png", kind="image", parts=1
        )
    ).upload
    part_url = (created.parts or [])[0].url
    bad_sig = part_url.replace("sig=", "sig=f")
    assert (await cdn.put(bad_sig, content=b"x")).status_code == 403
    assert (await cdn.put(part_url, content=b"plain text, not a PNG")).status_code == 200
    await client.uploads.trigger_action(created.id, action="complete")
    for _ in range(100):
        current = (await client.uploads.retrieve(created.id)).upload
        if current.status in ("imported", "failed"):
            break
        await asyncio.sleep(0.05)
    assert current.status == "failed"
    assert current.error_message and "not a valid image" in current.error_message
    assert current.entity_id is None


# --- generate + jobs ---------------------------------------------------------------------


async def test_the_sdk_mistypes_the_cost_only_dry_run_answer(client: AsyncScenario) -> None:
    """The one upscale-path answer the strict SDK cannot parse, so the engine reads it raw.

    The SDK types every ``generate`` answer as a job response with ``job`` required; the spec's
    dry-run answer (269) carries only the cost. If an SDK release fixes the type, this fails and
    the engine may go back to the typed call.
    """
    asset_id = await upload(client, make_png(40, 30))
    with pytest.raises(scenario_sdk.APIResponseValidationError):
        await client.generate.run_model(
            "model_upscale-v3", body={"image": asset_id, "upscaleFactor": 2}, dry_run="true"
        )


async def test_dry_run_is_269_charges_nothing_and_matches_the_real_price(
    client: AsyncScenario, fresh_emulator: EmulatorServer
) -> None:
    asset_id = await upload(client, make_png(100, 75))
    costs = {}
    for factor in (2, 16):
        raw = await client.generate.with_raw_response.run_model(
            "model_upscale-v3", body={"image": asset_id, "upscaleFactor": factor}, dry_run="true"
        )
        assert raw.status_code == 269
        body = raw.http_response.json()
        assert "job" not in body
        assert body["costDetails"]["custom-generation"] == body["creativeUnitsCost"]
        costs[factor] = body["creativeUnitsCost"]
    assert costs[16] > costs[2] > 0  # cost follows output pixels

    api_tier = await client.generate.with_raw_response.run_model(
        "model_upscale-v3", body={"image": asset_id, "upscaleFactor": 16}, dry_run="api"
    )
    assert api_tier.status_code == 269
    stats = fresh_emulator.stats()
    assert (stats.jobs_created, stats.creative_units_charged, stats.dry_runs) == (0, 0, 3)

    fresh_emulator.configure(max_output_megapixels=1)
    with pytest.raises(scenario_sdk.BadRequestError, match="exceeds the emulator limit"):
        await client.generate.with_raw_response.run_model(
            "model_upscale-v3", body={"image": asset_id, "upscaleFactor": 16}, dry_run="true"
        )
    fresh_emulator.configure(max_output_megapixels=64)

    real = await client.generate.run_model(
        "model_upscale-v3", body={"image": asset_id, "upscaleFactor": 16}
    )
    assert real.creative_units_cost == costs[16] == real.job.billing.cu_cost  # type: ignore[union-attr]
    assert fresh_emulator.stats().creative_units_charged == costs[16]


async def test_jobs_run_to_success_with_really_upscaled_outputs(
    client: AsyncScenario, cdn: httpx.AsyncClient, fresh_emulator: EmulatorServer
) -> None:
    asset_id = await upload(client, make_png(40, 30), name="tile.png")
    cases: list[tuple[str, dict[str, Any], tuple[int, int]]] = [
        ("model_upscale-v3", {"image": asset_id, "upscaleFactor": 3}, (120, 90)),
        ("model_topaz-image-upscale", {"image": asset_id, "upscaleFactor": "4x"}, (160, 120)),
        ("model_clarity-pro-upscaler", {"image": asset_id, "scaleFactor": 2}, (80, 60)),
        (
            "model_seedvr-2-upscale-image",
            {"imageUrl": asset_id, "upscaleMode": "target", "targetResolution": "720p"},
            (960, 720),
        ),
    ]
    submitted = []
    for model_id, body, expected in cases:
        response = await client.generate.run_model(model_id, body=body)
        job = response.job
        assert (job.status, job.progress, job.job_type) == ("queued", 0, "custom")
        assert job.metadata.input == body and job.metadata.asset_ids == []
        assert job.billing is not None and job.billing.cu_cost == response.creative_units_cost
        submitted.append((job.job_id, model_id, expected))

    for job_id, model_id, expected in submitted:
        seen_progress: list[float] = []
        while True:
            polled = (await client.jobs.retrieve(job_id)).job
            seen_progress.append(polled.progress)
            if polled.status in TERMINAL:
                break
            await asyncio.sleep(0.03)
        assert polled.status == "success", polled.metadata.error
        assert seen_progress == sorted(seen_progress) and polled.progress == 1
        history = [entry.status for entry in polled.status_history]
        assert history == ["queued", "in-progress", "finalizing", "success"]
        assert polled.metadata.asset_ids and len(polled.metadata.asset_ids) == 1

        output = (await client.assets.retrieve(polled.metadata.asset_ids[0])).asset
        assert output.source == "upscale" and output.metadata.type == "upscale"
        assert output.metadata.parent_job_id == job_id
        assert output.metadata.parent_id == asset_id
        assert output.metadata.api_model_id == model_id
        assert (output.properties.width, output.properties.height) == expected
        downloaded = await cdn.get(output.url)  # no auth header
        assert downloaded.status_code == 200
        assert Image.open(io.BytesIO(downloaded.content)).size == expected

    stats = fresh_emulator.stats()
    assert stats.jobs_created == 4 and stats.jobs_by_status == {"success": 4}
    assert all(entry.charges == 1 for entry in stats.charges_by_input.values())


async def test_job_list_filters_and_paginates(
    client: AsyncScenario, fresh_emulator: EmulatorServer
) -> None:
    # Long jobs stay "queued" (no updates) while we page: with type/status filters the order is
    # by update date, where a job that changes mid-walk moves to the front, as on a live API.
    fresh_emulator.configure(concurrency_limit=20, job_duration_s=30)
    asset_id = await upload(client)
    before = time.time()
    created = []
    for _ in range(7):
        response = await client.generate.run_model("model_upscale-v3", body={"image": asset_id})
        created.append(response.job.job_id)

    first = await client.jobs.list(page_size=3)
    assert len(first.jobs) == 3 and first.next_pagination_token
    listed = [job.job_id async for job in client.jobs.list(page_size=3)]
    assert listed == list(reversed(created))  # newest first, every job exactly once

    raw = await client.jobs.with_raw_response.list(page_size=50)
    assert "nextPaginationToken" not in raw.http_response.json()

    custom = [job.job_id async for job in client.jobs.list(type="custom", page_size=2)]
    assert sorted(custom) == sorted(created)
    several = [job.job_id async for job in client.jobs.list(types=["custom", "upscale"])]
    assert sorted(several) == sorted(created)
    assert [job async for job in client.jobs.list(type="upscale")] == []
    queued = [job async for job in client.jobs.list(status="queued")]
    assert {job.status for job in queued} <= {"queued"}
    assert [job async for job in client.jobs.list(status="success")] == []

    iso_before = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(before - 1)) + ".000Z"
    iso_future = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 60)) + ".000Z"
    assert len([j async for j in client.jobs.list(created_after=iso_before)]) == 7
    assert [j async for j in client.jobs.list(created_after=iso_future)] == []
    assert [j async for j in client.jobs.list(updated_after=iso_future, type="custom")] == []
    with pytest.raises(scenario_sdk.BadRequestError, match="updatedAfter"):
        await client.jobs.list(created_after=iso_before, type="custom")
    with pytest.raises(scenario_sdk.BadRequestError, match="pageSize"):
        await client.jobs.list(page_size=101)


async def test_cancel_of_a_custom_job_is_refused(client: AsyncScenario) -> None:
    asset_id = await upload(client)
    job_id = (
        await client.generate.run_model("model_upscale-v3", body={"image": asset_id})
    ).job.job_id
    with pytest.raises(scenario_sdk.BadRequestError) as refused:
        await client.jobs.trigger_action(job_id, action="cancel")
    assert refused.value.body["reason"] == (  # type: ignore[index]
        "Cannot cancel this type of job. Action not permitted."
    )
    assert (await wait_job(client, job_id)).status == "success"


# --- errors ----------------------------------------------------------------------------------


async def test_bad_or_missing_credentials_are_401(
    fresh_emulator: EmulatorServer, cdn: httpx.AsyncClient
) -> None:
    wrong = sdk_client(fresh_emulator, api_secret="not-the-secret")
    try:
        with pytest.raises(scenario_sdk.AuthenticationError):
            await wrong.models.retrieve("model_upscale-v3")
    finally:
        await wrong.close()
    anonymous = await cdn.get(f"{fresh_emulator.base_url}/jobs")
    assert anonymous.status_code == 401 and "message" in anonymous.json()
    assert fresh_emulator.api_secret not in anonymous.text


async def test_unknown_resources_are_404(client: AsyncScenario) -> None:
    with pytest.raises(scenario_sdk.NotFoundError):
        await client.models.retrieve("model_does-not-exist")
    with pytest.raises(scenario_sdk.NotFoundError):
        await client.jobs.retrieve("job_doesnotexist000000000000")
    with pytest.raises(scenario_sdk.NotFoundError):
        await client.assets.retrieve("asset_doesnotexist00000000000")
    with pytest.raises(scenario_sdk.NotFoundError):
        await client.uploads.retrieve("upload_doesnotexist0000000000")
    with pytest.raises(scenario_sdk.NotFoundError):
        await client.generate.run_model("model_nope", body={"image": "asset_x"})


@pytest.mark.parametrize(
    ("model_id", "body", "field"),
    [
        ("model_upscale-v3", {"upscaleFactor": 20}, "upscaleFactor"),
        ("model_upscale-v3", {"upscaleFactor": "2"}, "upscaleFactor"),
        ("model_upscale-v3", {"style": "oil-painting"}, "style"),
        ("model_upscale-v3", {"scalingFactor": 2}, "scalingFactor"),
        ("model_upscale-v3", {"image": None}, "image"),
        ("model_upscale-v3", {"image": "asset_missing000000000000000"}, "image"),
        ("model_topaz-image-upscale", {"upscaleFactor": 2}, "upscaleFactor"),
        ("model_clarity-pro-upscaler", {"scaleFactor": 3}, "scaleFactor"),
        ("model_seedvr-2-upscale-image", {"image": "ASSET"}, "image"),
        ("model_upscale-v3", {"seed": 1.5}, "seed"),
    ],
)
async def test_invalid_inputs_are_400_naming_the_field(
    client: AsyncScenario,
    fresh_emulator: EmulatorServer,
    model_id: str,
    body: dict[str, Any],
    field: str,
) -> None:
    asset_id = await upload(client)
    file_input = "imageUrl" if "seedvr" in model_id else "image"
    request = {
        file_input: asset_id,
        **{k: (asset_id if v == "ASSET" else v) for k, v in body.items()},
    }
    with pytest.raises(scenario_sdk.BadRequestError) as error:
        await client.generate.run_model(model_id, body=request)
    assert f"'{field}'" in error.value.body["reason"]  # type: ignore[index]
    stats = fresh_emulator.stats()
    assert (stats.jobs_created, stats.creative_units_charged) == (0, 0)


async def test_concurrency_ceiling_is_429_with_details(
    client: AsyncScenario, fresh_emulator: EmulatorServer
) -> None:
    fresh_emulator.configure(concurrency_limit=2, job_duration_s=5)
    asset_id = await upload(client)
    costs = [
        (
            await client.generate.run_model("model_upscale-v3", body={"image": asset_id})
        ).creative_units_cost
        for _ in range(2)
    ]
    with pytest.raises(scenario_sdk.RateLimitError) as limited:
        await client.generate.run_model("model_upscale-v3", body={"image": asset_id})
    body = limited.value.body
    assert isinstance(body, dict)
    assert body["details"] == {"actionName": "generate", "actionLimit": 2}
    assert body["remainingSeconds"] >= 1 and body["reason"]
    stats = fresh_emulator.stats()
    assert (stats.jobs_created, stats.rate_limited) == (2, 1)
    assert stats.creative_units_charged == sum(c or 0 for c in costs) > 0
    # Dry runs are estimates, not generations: the ceiling does not apply to them.
    dry = await client.generate.with_raw_response.run_model(
        "model_upscale-v3", body={"image": asset_id}, dry_run="true"
    )
    assert dry.status_code == 269


# --- faults ------------------------------------------------------------------------------------


async def test_job_failure_fault_fails_with_hint_and_refunds(
    client: AsyncScenario, fresh_emulator: EmulatorServer
) -> None:
    fresh_emulator.configure(fail_next_n_jobs=1)
    asset_id = await upload(client)
    failing = await client.generate.run_model("model_upscale-v3", body={"image": asset_id})
    passing = await client.generate.run_model("model_upscale-v3", body={"image": asset_id})
    failed = await wait_job(client, failing.job.job_id)
    assert failed.status == "failure" and failed.metadata.error and failed.metadata.hint
    assert failed.metadata.asset_ids == []
    assert failed.status_history[-1].status == "failure"
    assert (await wait_job(client, passing.job.job_id)).status == "success"
    stats = fresh_emulator.stats()
    cost = failing.creative_units_cost
    assert stats.creative_units_refunded == cost
    assert stats.creative_units_charged == 2 * (cost or 0)
    (entry,) = stats.charges_by_input.values()
    assert (entry.charges, entry.refunds) == (2, 1)
    assert stats.jobs_by_status == {"failure": 1, "success": 1}


async def test_drop_after_commit_gives_a_transport_error_but_one_paid_job(
    client: AsyncScenario, fresh_emulator: EmulatorServer
) -> None:
    asset_id = await upload(client)
    fresh_emulator.configure(drop_generate_after_commit=1)
    with pytest.raises(scenario_sdk.APIConnectionError):
        await client.generate.run_model("model_upscale-v3", body={"image": asset_id})
    stats = fresh_emulator.stats()
    assert stats.jobs_created == 1 and stats.faults_injected == {"drop": 1}
    (entry,) = stats.charges_by_input.values()
    assert entry.charges == 1 and stats.creative_units_charged > 0
    # The job exists: a client can reconcile through the job list instead of resubmitting.
    (job,) = [job async for job in client.jobs.list(type="custom")]
    assert job.metadata.input == {"image": asset_id}
    # The knob was a count: the next call answers normally.
    await client.generate.run_model("model_upscale-v3", body={"image": asset_id})
    assert fresh_emulator.stats().jobs_created == 2


async def test_5xx_faults(client: AsyncScenario, fresh_emulator: EmulatorServer) -> None:
    asset_id = await upload(client)
    fresh_emulator.configure(fail_next_n_gets=1)
    with pytest.raises(scenario_sdk.InternalServerError) as first:
        await client.assets.retrieve(asset_id)
    assert first.value.status_code == 503
    assert (await client.assets.retrieve(asset_id)).asset.id == asset_id

    fresh_emulator.configure(error_rate_5xx=1.0)
    with pytest.raises(scenario_sdk.InternalServerError) as random_fault:
        await client.assets.retrieve(asset_id)
    assert random_fault.value.status_code in (500, 502, 503)
    fresh_emulator.configure(error_rate_5xx=0.0, fail_next_n_posts=1)
    with pytest.raises(scenario_sdk.InternalServerError):
        await client.generate.run_model("model_upscale-v3", body={"image": asset_id})
    stats = fresh_emulator.stats()
    assert stats.jobs_created == 0 and stats.creative_units_charged == 0
    assert stats.faults_injected["5xx"] == 3


async def test_timeout_and_latency_faults(fresh_emulator: EmulatorServer) -> None:
    impatient = sdk_client(fresh_emulator, timeout=0.3)
    try:
        fresh_emulator.configure(hang_next_n_requests=1, hang_s=2)
        with pytest.raises(scenario_sdk.APITimeoutError):
            await impatient.models.retrieve("model_upscale-v3")
        fresh_emulator.configure(latency_s=0.2)
        started = time.monotonic()
        await impatient.models.retrieve("model_upscale-v3")
        assert time.monotonic() - started >= 0.2
    finally:
        await impatient.close()
    faults = fresh_emulator.stats().faults_injected
    assert faults["timeout"] == 1 and faults["latency"] >= 1


async def test_stats_count_requests_by_route(
    client: AsyncScenario, fresh_emulator: EmulatorServer
) -> None:
    asset_id = await upload(client)
    await client.assets.retrieve(asset_id)
    await client.assets.retrieve(asset_id)
    stats = fresh_emulator.stats()
    assert stats.requests["POST /v1/assets"] == 1
    assert stats.requests["GET /v1/assets/{assetId}"] == 2
    assert stats.responses_by_status["200"] >= 3


async def test_cdn_download_faults(
    client: AsyncScenario, cdn: httpx.AsyncClient, fresh_emulator: EmulatorServer
) -> None:
    raw = make_png(200, 150)
    url = (await client.assets.retrieve(await upload(client, raw))).asset.url
    fresh_emulator.configure(fail_next_n_downloads=1, truncate_next_n_downloads=1)
    assert (await cdn.get(url)).status_code == 503
    with pytest.raises(httpx.RemoteProtocolError):
        await cdn.get(url)  # half the body, then the connection is reset
    assert (await cdn.get(url)).content == raw
    faults = fresh_emulator.stats().faults_injected
    assert faults == {"download_5xx": 1, "download_truncated": 1}


# --- video (contract 3.2 multipart, 3.9 video properties, 6.2 video upscalers) -----------------


async def upload_video(
    client: AsyncScenario, cdn: httpx.AsyncClient, data: bytes, name: str = "clip.mp4"
) -> Any:
    """All video goes through /v1/uploads; returns the final upload."""
    created = (
        await client.uploads.create(
            file_name=name, content_type="video/mp4", kind="video", parts=1, file_size=len(data)
        )
    ).upload
    assert created.kind == "video"
    put = await cdn.put((created.parts or [])[0].url, content=data)
    assert put.status_code == 200
    await client.uploads.trigger_action(created.id, action="complete")
    for _ in range(200):
        current = (await client.uploads.retrieve(created.id)).upload
        if current.status in ("imported", "failed"):
            return current
        await asyncio.sleep(0.05)
    raise AssertionError(f"upload {created.id} stuck in {current.status}")


async def test_video_models_take_a_video_file_input(client: AsyncScenario) -> None:
    expected = {
        "model_seedvr-2-upscale-video": {"upscaleMode", "targetResolution", "outputQuality"},
        "model_flash-vsr-video-upscale": {"upscaleFactor", "colorFix", "preserveAudio"},
        "model_topazlabs-video-upscale": {"resolution", "fps"},
    }
    for model_id, names in expected.items():
        model = (await client.models.retrieve(model_id)).model
        assert model.capabilities == ["video2video"]
        inputs = {item.name: item for item in model.inputs or []}
        video = inputs["video"]
        assert (video.type, video.kind) == ("file", "video")
        assert video.required is not None and video.required.always is True
        assert names <= set(inputs)
    seedvr_model = (await client.models.retrieve("model_seedvr-2-upscale-video")).model
    seedvr = {i.name: i for i in seedvr_model.inputs or []}
    assert (seedvr["upscaleFactor"].min, seedvr["upscaleFactor"].max) == (2, 10)
    topaz = (await client.models.retrieve("model_topazlabs-video-upscale")).model
    resolution = next(i for i in topaz.inputs or [] if i.name == "resolution")
    assert (resolution.allowed_values, resolution.default) == (["720p", "1080p", "4k"], "1080p")
    tagged = [m.id async for m in client.models.list(privacy="public", tags="video-upscale")]
    assert "model_seedvr-2-upscale-video" in tagged and "model_upscale-v3" not in tagged


async def test_video_upload_and_upscale_parse_strictly_and_really_re_encode(
    client: AsyncScenario, cdn: httpx.AsyncClient, fresh_emulator: EmulatorServer
) -> None:
    data = mp4_bytes(64, 48, frames=12, fps=12)
    upload = await upload_video(client, cdn, data)
    assert upload.status == "imported" and upload.entity_id
    asset = (await client.assets.retrieve(upload.entity_id)).asset
    assert (asset.kind, asset.mime_type, asset.source) == ("video", "video/mp4", "uploaded-video")
    assert asset.metadata.type == "uploaded-video" and asset.metadata.kind == "video"
    props = asset.properties
    assert (props.width, props.height, props.size) == (64, 48, len(data))
    assert (props.frame_rate, props.nb_frames, props.codec_name) == (12, 12, "h264")
    assert props.duration == pytest.approx(1.0, abs=0.1)
    assert props.bitrate and props.bitrate > 0
    assert (await cdn.get(asset.url)).content == data

    response = await client.generate.run_model(
        "model_seedvr-2-upscale-video", body={"video": asset.id, "upscaleFactor": 2}
    )
    assert response.creative_units_cost and response.creative_units_cost > 0
    job = await wait_job(client, response.job.job_id)
    assert job.status == "success", job.metadata.error
    (output_id,) = job.metadata.asset_ids or []
    output = (await client.assets.retrieve(output_id)).asset
    assert (output.kind, output.mime_type, output.source) == ("video", "video/mp4", "upscale-video")
    assert output.metadata.type == "upscale-video"
    assert output.metadata.parent_id == asset.id
    assert (output.properties.width, output.properties.height) == (128, 96)
    assert output.properties.nb_frames == 12 and output.properties.codec_name in ("h264", "mpeg4")
    body = (await cdn.get(output.url)).content
    assert len(body) == output.properties.size
    with av.open(io.BytesIO(body)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 12 and {(f.width, f.height) for f in frames} == {(128, 96)}
    link = await client.assets.download.request(output_id, target_format="mp4")
    assert link.mime_type == "video/mp4"
    stats = fresh_emulator.stats()
    assert stats.requests.get("POST /v1/assets", 0) == 0
    assert stats.creative_units_charged == response.creative_units_cost


async def test_video_cost_grows_with_output_pixels_and_duration(
    client: AsyncScenario, cdn: httpx.AsyncClient, fresh_emulator: EmulatorServer
) -> None:
    one_second = (await upload_video(client, cdn, mp4_bytes(frames=12))).entity_id
    two_seconds = (await upload_video(client, cdn, mp4_bytes(frames=24), "long.mp4")).entity_id

    async def price(asset_id: str, resolution: str) -> float:
        raw = await client.generate.with_raw_response.run_model(
            "model_seedvr-2-upscale-video",
            body={"video": asset_id, "upscaleMode": "target", "targetResolution": resolution},
            dry_run="true",
        )
        assert raw.status_code == 269 and "job" not in raw.http_response.json()
        return float(raw.http_response.json()["creativeUnitsCost"])

    short_hd, long_hd = await price(one_second, "1080p"), await price(two_seconds, "1080p")
    assert long_hd == pytest.approx(2 * short_hd, rel=0.05)
    assert await price(one_second, "2160p") > short_hd
    stats = fresh_emulator.stats()
    assert (stats.jobs_created, stats.creative_units_charged, stats.dry_runs) == (0, 0, 3)


async def test_video_upload_of_non_video_fails_with_message(
    client: AsyncScenario, cdn: httpx.AsyncClient, fresh_emulator: EmulatorServer
) -> None:
    fake = b"\x00\x00\x00\x18ftypmp42" + bytes(300)
    upload = await upload_video(client, cdn, fake, "fake.mp4")
    assert upload.status == "failed" and upload.entity_id is None
    assert upload.error_message and "not a valid video" in upload.error_message
    assert fresh_emulator.stats().assets_created == 0


async def test_video_and_image_inputs_are_checked_against_the_model_kind(
    client: AsyncScenario, cdn: httpx.AsyncClient, fresh_emulator: EmulatorServer
) -> None:
    video_id = (await upload_video(client, cdn, mp4_bytes())).entity_id
    image_id = await upload(client)
    with pytest.raises(scenario_sdk.BadRequestError) as to_image_model:
        await client.generate.run_model("model_upscale-v3", body={"image": video_id})
    reason = to_image_model.value.body["reason"]  # type: ignore[index]
    assert "'image'" in reason and "is a video" in reason
    with pytest.raises(scenario_sdk.BadRequestError) as to_video_model:
        await client.generate.run_model("model_seedvr-2-upscale-video", body={"video": image_id})
    reason = to_video_model.value.body["reason"]  # type: ignore[index]
    assert "'video'" in reason and "expected a video" in reason
    with pytest.raises(scenario_sdk.BadRequestError, match="'upscaleFactor'"):
        await client.generate.run_model(
            "model_flash-vsr-video-upscale", body={"video": video_id, "upscaleFactor": 8}
        )
    stats = fresh_emulator.stats()
    assert (stats.jobs_created, stats.creative_units_charged) == (0, 0)
