"""Each emulator profile against the real server: the README's profile table, row by row.

Raw httpx where the exact status, header or JSON text is the point; the official SDK in strict
mode where the point is that a client still parses the answer.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from typing import Any

import av
import httpx
import pytest
from PIL import Image
from scenario_sdk import omit

from scenario_upscale.emulator import EmulatorConfig, EmulatorServer
from scenario_upscale.emulator.profiles import PROFILE_NAMES, ProfileName
from tests.integration.test_emulator_contract import (
    TERMINAL,
    b64,
    make_png,
    sdk_client,
    upload_video,
)
from tests.support import mp4_bytes

MODEL = "model_upscale-v3"


@pytest.fixture
async def api(fresh_emulator: EmulatorServer) -> AsyncIterator[httpx.AsyncClient]:
    """Raw client of the (reset) emulator's /v1 with its credentials."""
    async with httpx.AsyncClient(
        base_url=fresh_emulator.base_url,
        auth=(fresh_emulator.api_key, fresh_emulator.api_secret),
        timeout=10.0,
    ) as http:
        yield http


@pytest.fixture
async def cdn() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as http:
        yield http


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def upload_png(api: httpx.AsyncClient, data: bytes, **query: str) -> dict[str, Any]:
    response = await api.post("/assets", params=query, json={"name": "in.png", "image": b64(data)})
    asset: dict[str, Any] = ok(response)["asset"]
    return asset


async def submit(api: httpx.AsyncClient, body: dict[str, Any], **query: str) -> httpx.Response:
    return await api.post(f"/generate/custom/{MODEL}", params=query, json=body)


async def wait_job(api: httpx.AsyncClient, job_id: str, **query: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        job: dict[str, Any] = ok(await api.get(f"/jobs/{job_id}", params=query))["job"]
        if job["status"] in TERMINAL:
            return job
        assert time.monotonic() < deadline, f"job {job_id} stuck in {job['status']}"
        await asyncio.sleep(0.05)


# --- the switch ---------------------------------------------------------------------------------


async def test_the_profile_is_shown_set_at_run_time_and_validated(
    fresh_emulator: EmulatorServer,
) -> None:
    async with httpx.AsyncClient(base_url=fresh_emulator.root_url, timeout=10.0) as control:
        assert (await control.get("/_emulator/config")).json()["profile"] == "default"
        changed = await control.put("/_emulator/config", json={"profile": "sparse-pages"})
        assert changed.status_code == 200 and changed.json()["profile"] == "sparse-pages"
        wrong = await control.put("/_emulator/config", json={"profile": "sparse"})
        assert wrong.status_code == 400
        assert wrong.json()["reason"].startswith("Invalid config field 'profile'")
        assert (await control.get("/_emulator/config")).json()["profile"] == "sparse-pages"
        (await control.post("/_emulator/reset")).raise_for_status()
        assert (await control.get("/_emulator/config")).json()["profile"] == "default"


def test_reset_keeps_the_profile_the_server_started_with() -> None:
    with EmulatorServer(EmulatorConfig(profile="strict-project")) as server:
        server.configure(profile="default")
        assert server.app.runtime.config.profile == "default"
        server.reset()
        restored = server.app.runtime.config
        assert restored.profile == "strict-project"
        missing = httpx.get(
            f"{server.base_url}/models/{MODEL}", auth=(server.api_key, server.api_secret)
        )
        assert missing.status_code == 400


# --- default ------------------------------------------------------------------------------------


async def test_default_accepts_original_assets_and_changes_nothing(
    api: httpx.AsyncClient, cdn: httpx.AsyncClient
) -> None:
    raw = make_png(40, 30)
    asset = await upload_png(api, raw)
    assert "/_cdn/" in asset["url"]
    single = ok(await api.get(f"/assets/{asset['id']}", params={"originalAssets": "true"}))
    bulk = ok(
        await api.post(
            "/assets/get-bulk", params={"originalAssets": "true"}, json={"assetIds": [asset["id"]]}
        )
    )
    plain = ok(await api.get(f"/assets/{asset['id']}"))
    for found in (single["asset"], bulk["assets"][0], plain["asset"]):
        assert found["properties"]["size"] == len(raw)
        assert (await cdn.get(found["url"])).content == raw
    refused = await api.get(f"/assets/{asset['id']}", params={"originalAssets": "maybe"})
    assert refused.status_code == 400
    assert refused.json()["reason"].startswith("Invalid parameter 'originalAssets'")


@pytest.mark.parametrize("profile", PROFILE_NAMES)
async def test_a_bare_dry_run_is_a_dry_run_in_every_profile(
    api: httpx.AsyncClient, fresh_emulator: EmulatorServer, profile: ProfileName
) -> None:
    fresh_emulator.configure(profile=profile)
    # Every profile ignores a correct projectId but strict-project requires it.
    project = {"projectId": fresh_emulator.app.runtime.config.project_id}
    asset_id = (await upload_png(api, make_png(), **project))["id"]
    status = {"dry-run-200": 200, "dry-run-with-job": 200}.get(profile, 269)
    for bare in ("dryRun", "dryRun="):
        url = f"/generate/custom/{MODEL}?{bare}&projectId={project['projectId']}"
        body = ok(await api.post(url, json={"image": asset_id}), status)
        assert body["creativeUnitsCost"] > 0
        assert ("job" in body) is (profile == "dry-run-with-job")
    upload_dry_run = await api.post(
        f"/uploads?dryRun&projectId={project['projectId']}",
        json={"fileName": "a.png", "contentType": "image/png", "kind": "image", "parts": 1},
    )
    assert ok(upload_dry_run, status) == {"creativeUnitsCost": 0, "creativeUnitsDiscount": 0}
    stats = fresh_emulator.stats()
    assert (stats.dry_runs, stats.jobs_created, stats.uploads_created) == (2, 0, 0)
    assert stats.creative_units_charged == 0


async def test_dry_run_false_submits_and_other_values_are_refused(
    api: httpx.AsyncClient, fresh_emulator: EmulatorServer
) -> None:
    asset_id = (await upload_png(api, make_png()))["id"]
    assert ok(await submit(api, {"image": asset_id}, dryRun="false"))["job"]["jobId"]
    bogus = await submit(api, {"image": asset_id}, dryRun="yes")
    assert bogus.status_code == 400
    assert bogus.json()["reason"] == "Invalid parameter 'dryRun': must be 'true' or 'api'"
    stats = fresh_emulator.stats()
    assert (stats.dry_runs, stats.jobs_created) == (0, 1)


# --- transformed-urls ---------------------------------------------------------------------------


async def test_transformed_urls_serve_a_rendition_unless_the_original_is_asked_for(
    api: httpx.AsyncClient, cdn: httpx.AsyncClient, fresh_emulator: EmulatorServer
) -> None:
    fresh_emulator.configure(profile="transformed-urls")
    raw = make_png(64, 48, (10, 120, 240))
    asset_id = (await upload_png(api, raw))["id"]
    transformed = ok(await api.get(f"/assets/{asset_id}"))["asset"]
    original = ok(await api.get(f"/assets/{asset_id}", params={"originalAssets": "true"}))["asset"]
    (bulk_transformed,) = ok(await api.post("/assets/get-bulk", json={"assetIds": [asset_id]}))[
        "assets"
    ]
    (bulk_original,) = ok(
        await api.post(
            "/assets/get-bulk", params={"originalAssets": "true"}, json={"assetIds": [asset_id]}
        )
    )["assets"]
    size = transformed["properties"]["size"]
    assert size == original["properties"]["size"] == len(raw)

    for listed in (transformed, bulk_transformed):
        response = await cdn.get(listed["url"])
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        assert len(response.content) != size
        assert int(response.headers["content-length"]) == len(response.content)
        with Image.open(io.BytesIO(response.content)) as image:
            assert (image.format, image.size) == ("PNG", (64, 48))
        head = await cdn.head(listed["url"])
        assert int(head.headers["content-length"]) == len(response.content)
    for listed in (original, bulk_original):
        response = await cdn.get(listed["url"])
        assert len(response.content) == size and response.content == raw
        assert int(response.headers["content-length"]) == size
    # The explicit download link is the file itself (see profiles.py).
    link = ok(await api.post(f"/assets/{asset_id}/download", json={}))
    assert (await cdn.get(link["url"])).content == raw


async def test_transformed_urls_of_a_video_keep_its_frames(
    cdn: httpx.AsyncClient, fresh_emulator: EmulatorServer
) -> None:
    fresh_emulator.configure(profile="transformed-urls")
    data = mp4_bytes(64, 48, frames=12, fps=12)
    sdk = sdk_client(fresh_emulator)
    try:
        asset_id = (await upload_video(sdk, cdn, data)).entity_id
        transformed = (await sdk.assets.retrieve(asset_id)).asset
        original = (await sdk.assets.retrieve(asset_id, original_assets=True)).asset
    finally:
        await sdk.close()
    rendition = (await cdn.get(transformed.url)).content
    assert len(rendition) != transformed.properties.size == len(data)
    assert (await cdn.get(original.url)).content == data
    with av.open(io.BytesIO(rendition), mode="r") as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 12 and {(f.width, f.height) for f in frames} == {(64, 48)}


async def test_download_faults_still_apply_to_transformed_urls(
    api: httpx.AsyncClient, cdn: httpx.AsyncClient, fresh_emulator: EmulatorServer
) -> None:
    fresh_emulator.configure(profile="transformed-urls")
    url = (await upload_png(api, make_png(200, 150)))["url"]
    fresh_emulator.configure(fail_next_n_downloads=1, truncate_next_n_downloads=1)
    assert (await cdn.get(url)).status_code == 503
    with pytest.raises(httpx.RemoteProtocolError):
        await cdn.get(url)
    assert (await cdn.get(url)).status_code == 200


# --- ceiling-no-retry-hint ----------------------------------------------------------------------


async def test_the_plan_ceiling_is_3_and_its_429_has_no_retry_hint(
    api: httpx.AsyncClient, fresh_emulator: EmulatorServer
) -> None:
    fresh_emulator.configure(profile="ceiling-no-retry-hint", job_duration_s=30)
    asset_id = (await upload_png(api, make_png()))["id"]
    for _ in range(3):
        ok(await submit(api, {"image": asset_id}))
    limited = await submit(api, {"image": asset_id})
    assert limited.status_code == 429
    body = limited.json()
    assert body["details"] == {"actionName": "generate", "actionLimit": 3}
    assert "remainingSeconds" not in body and body["reason"]
    assert "retry-after" not in limited.headers
    stats = fresh_emulator.stats()
    assert (stats.jobs_created, stats.rate_limited) == (3, 1)


async def test_the_concurrency_knob_can_still_lower_the_plan_ceiling(
    api: httpx.AsyncClient, fresh_emulator: EmulatorServer
) -> None:
    fresh_emulator.configure(
        profile="ceiling-no-retry-hint", job_duration_s=30, concurrency_limit=1
    )
    asset_id = (await upload_png(api, make_png()))["id"]
    ok(await submit(api, {"image": asset_id}))
    limited = await submit(api, {"image": asset_id})
    assert limited.status_code == 429
    assert limited.json()["details"] == {"actionName": "generate", "actionLimit": 1}


# --- dry-run-200 / dry-run-with-job -------------------------------------------------------------


async def test_dry_run_200_answers_the_cost_only(
    api: httpx.AsyncClient, fresh_emulator: EmulatorServer
) -> None:
    fresh_emulator.configure(profile="dry-run-200")
    asset_id = (await upload_png(api, make_png(100, 75)))["id"]
    body = {"image": asset_id, "upscaleFactor": 4}
    estimate = ok(await submit(api, body, dryRun="true"))
    assert set(estimate) == {"creativeUnitsCost", "creativeUnitsDiscount", "costDetails"}
    assert (
        ok(await submit(api, body, dryRun="api"))["creativeUnitsCost"]
        == (estimate["creativeUnitsCost"])
    )
    stats = fresh_emulator.stats()
    assert (stats.jobs_created, stats.creative_units_charged, stats.dry_runs) == (0, 0, 2)
    real = ok(await submit(api, body))
    assert real["creativeUnitsCost"] == estimate["creativeUnitsCost"]


async def test_dry_run_with_job_answers_a_job_that_does_not_exist(
    api: httpx.AsyncClient, fresh_emulator: EmulatorServer
) -> None:
    fresh_emulator.configure(profile="dry-run-with-job")
    asset_id = (await upload_png(api, make_png()))["id"]
    body = {"image": asset_id, "upscaleFactor": 3}
    answer = ok(await submit(api, body, dryRun="true"))
    job = answer["job"]
    assert answer["creativeUnitsCost"] > 0
    assert job["jobId"].startswith("job_") and job["status"] == "success"
    assert job["jobType"] == "custom" and job["metadata"]["input"] == body
    assert job["metadata"]["assetIds"] == []
    missing = await api.get(f"/jobs/{job['jobId']}")
    assert missing.status_code == 404
    assert missing.json()["reason"] == f"Job {job['jobId']} not found"
    assert ok(await api.get("/jobs"))["jobs"] == []
    stats = fresh_emulator.stats()
    assert (stats.jobs_created, stats.creative_units_charged, stats.dry_runs) == (0, 0, 1)

    # The official SDK's strict job model accepts it (its type for /generate/custom).
    sdk = sdk_client(fresh_emulator)
    try:
        parsed = await sdk.generate.run_model(MODEL, body=body, dry_run="true")
    finally:
        await sdk.close()
    assert (
        parsed.job.status == "success"
        and parsed.creative_units_cost == (answer["creativeUnitsCost"])
    )


# --- normalised-echo ----------------------------------------------------------------------------


async def test_normalised_echo_adds_defaults_floats_and_job_type_upscale(
    api: httpx.AsyncClient, fresh_emulator: EmulatorServer
) -> None:
    fresh_emulator.configure(profile="normalised-echo")
    asset_id = (await upload_png(api, make_png()))["id"]
    sent = {"upscaleFactor": 2, "image": asset_id}
    response = await submit(api, sent)
    created = ok(response)["job"]
    assert created["jobType"] == "upscale"
    echo = created["metadata"]["input"]
    assert '"upscaleFactor":2.0' in response.text.replace(" ", "")
    assert echo["upscaleFactor"] == 2.0 and isinstance(echo["upscaleFactor"], float)
    inputs = ok(await api.get(f"/models/{MODEL}"))["model"]["inputs"]
    defaults = {item["name"]: item["default"] for item in inputs if "default" in item}
    assert list(echo) == [item["name"] for item in inputs if item["name"] in echo]
    assert set(echo) == set(defaults) | set(sent)
    assert echo["style"] == defaults["style"] and echo["guidanceScale"] == 6.0
    assert isinstance(echo["guidanceScale"], float)

    done = await wait_job(api, created["jobId"])
    assert done["status"] == "success" and done["metadata"]["input"] == echo
    assert ok(await api.get("/jobs", params={"type": "custom"}))["jobs"] == []
    (listed,) = ok(await api.get("/jobs", params={"type": "upscale"}))["jobs"]
    assert listed["jobId"] == created["jobId"]

    sdk = sdk_client(fresh_emulator)
    try:
        parsed = (await sdk.jobs.retrieve(created["jobId"])).job
    finally:
        await sdk.close()
    assert parsed.job_type == "upscale"


# --- gateway-limits -----------------------------------------------------------------------------


async def test_gateway_limits_refuse_bodies_over_6_mb_before_any_route(
    api: httpx.AsyncClient, cdn: httpx.AsyncClient, fresh_emulator: EmulatorServer
) -> None:
    fresh_emulator.configure(profile="gateway-limits")
    too_big = b"\x89PNG" + bytes(4_600_000)  # base64 of 4.6 MB raw is 6.13 MB
    refused = await api.post("/assets", json={"name": "big.png", "image": b64(too_big)})
    assert refused.status_code == 413
    assert refused.json() == {"error": "Request Entity Too Large"}
    asset_id = (await upload_png(api, make_png()))["id"]
    padded = await submit(api, {"image": asset_id, "prompt": "x" * 6_000_001})
    assert padded.status_code == 413
    stats = fresh_emulator.stats()
    assert (stats.assets_created, stats.jobs_created, stats.creative_units_charged) == (1, 0, 0)
    assert stats.responses_by_status["413"] == 2

    # Just under the cap the route runs (and refuses the bytes for what they are).
    under = await api.post("/assets", json={"name": "x.png", "image": b64(bytes(4_400_000))})
    assert under.status_code == 400 and "not a valid image" in under.json()["reason"]
    # The fake S3 is not behind the API gateway: a large part is accepted.
    created = ok(
        await api.post(
            "/uploads",
            json={"fileName": "a.png", "contentType": "image/png", "kind": "image", "parts": 1},
        )
    )["upload"]
    part = await cdn.put(created["parts"][0]["url"], content=bytes(6_500_000))
    assert part.status_code == 200


# --- sparse-pages -------------------------------------------------------------------------------


async def test_sparse_pages_hold_two_jobs_then_nothing_but_a_token(
    api: httpx.AsyncClient, fresh_emulator: EmulatorServer
) -> None:
    fresh_emulator.configure(profile="sparse-pages", job_duration_s=30)
    asset_id = (await upload_png(api, make_png()))["id"]
    created = [ok(await submit(api, {"image": asset_id}))["job"]["jobId"] for _ in range(5)]
    pages: list[list[str]] = []
    tokens: list[str | None] = []
    query: dict[str, Any] = {"pageSize": 50}
    while True:
        page = ok(await api.get("/jobs", params=query))
        pages.append([job["jobId"] for job in page["jobs"]])
        tokens.append(page.get("nextPaginationToken"))
        if not page.get("nextPaginationToken"):
            break
        query = {"pageSize": 50, "paginationToken": page["nextPaginationToken"]}
    assert [len(page) for page in pages] == [2, 0, 2, 0, 1]
    assert all(tokens[:-1]) and tokens[-1] is None
    assert [job_id for page in pages for job_id in page] == list(reversed(created))

    # Every page, the empty ones too, parses with the SDK's strict models. (Its auto-pager
    # stops at the first empty page, so a client must follow the token itself.)
    sdk = sdk_client(fresh_emulator)
    walked: list[str] = []
    token: str | None = None
    try:
        for _ in pages:
            sdk_page = await sdk.jobs.list(page_size=50, pagination_token=token or omit)
            walked += [job.job_id for job in sdk_page.jobs]
            token = sdk_page.next_pagination_token
    finally:
        await sdk.close()
    assert walked == list(reversed(created)) and not token


async def test_sparse_pages_jobs_pass_through_pending_and_warming_up(
    api: httpx.AsyncClient, fresh_emulator: EmulatorServer
) -> None:
    fresh_emulator.configure(profile="sparse-pages")
    asset_id = (await upload_png(api, make_png()))["id"]
    created = ok(await submit(api, {"image": asset_id}))["job"]
    assert created["status"] == "pending"
    done = await wait_job(api, created["jobId"])
    history = [entry["status"] for entry in done["statusHistory"]]
    assert history == ["pending", "warming-up", "queued", "in-progress", "finalizing", "success"]
    sdk = sdk_client(fresh_emulator)
    try:
        parsed = (await sdk.jobs.retrieve(created["jobId"])).job
    finally:
        await sdk.close()
    assert [entry.status for entry in parsed.status_history] == history


# --- strict-project -----------------------------------------------------------------------------


async def test_strict_project_requires_the_emulators_project_id(
    api: httpx.AsyncClient, cdn: httpx.AsyncClient, fresh_emulator: EmulatorServer
) -> None:
    fresh_emulator.configure(profile="strict-project")
    project = fresh_emulator.app.runtime.config.project_id
    for query in ({}, {"projectId": ""}):
        missing = await api.get(f"/models/{MODEL}", params=query)
        assert missing.status_code == 400
        assert missing.json() == {"error": "projectId is required"}
    other = await api.get(f"/models/{MODEL}", params={"projectId": "proj_other"})
    assert other.status_code == 403
    assert other.json() == {
        "error": "Project proj_other not found or not accessible by this API key"
    }
    no_key = await cdn.get(f"{fresh_emulator.base_url}/models/{MODEL}")
    assert no_key.status_code == 401  # credentials are checked first
    refused = await api.post("/assets", json={"name": "a.png", "image": b64(make_png())})
    assert refused.status_code == 400
    assert fresh_emulator.stats().assets_created == 0

    # With the right project the whole upscale path works, and the CDN needs no project.
    sdk = sdk_client(fresh_emulator, default_query={"projectId": project})
    try:
        asset_id = (await sdk.assets.upload(name="a.png", image=b64(make_png()))).asset.id
        job_id = (await sdk.generate.run_model(MODEL, body={"image": asset_id})).job.job_id
        done = await wait_job(api, job_id, projectId=project)
        assert done["status"] == "success"
        output = (await sdk.assets.retrieve(done["metadata"]["assetIds"][0])).asset
        listed = [job.job_id async for job in sdk.jobs.list()]
    finally:
        await sdk.close()
    assert listed == [job_id]
    downloaded = await cdn.get(output.url)
    assert downloaded.status_code == 200 and len(downloaded.content) == output.properties.size
