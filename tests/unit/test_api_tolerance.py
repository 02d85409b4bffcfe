"""Every plausible answer of the API, read right: dry runs, echoes, listings, project refusals.

Pure functions are called directly; the client is driven through an httpx ``MockTransport``
that plays the API's part, so each test shows what goes on the wire and what comes back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from scenario_upscale.api import BASE64_UPLOAD_LIMIT, ScenarioClient, read_dry_run
from scenario_upscale.errors import InvalidInput, ScenarioError, ScenarioProjectRefused
from scenario_upscale.models import ModelInput, ModelSpec
from scenario_upscale.params import echo_matches, same_value

SECRET = "s3cret-value"

UPSCALE_V3 = ModelSpec(
    id="model_upscale-v3",
    inputs=[
        ModelInput(name="image", type="file", kind="image", required={"always": True}),
        ModelInput(name="upscaleFactor", type="number", min=1, max=16, default=2),
        ModelInput(name="style", type="string", default="standard"),
        ModelInput(name="tileStyle", type="boolean", default=False),
        ModelInput(name="seed", type="number"),
    ],
)


# -- dry run --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (269, {"creativeUnitsCost": 7.5, "creativeUnitsDiscount": 0}),
        (200, {"creativeUnitsCost": 7.5}),
        (
            200,
            {
                "job": {"jobId": "job_fake", "status": "success", "jobType": "custom"},
                "creativeUnitsCost": 7.5,
                "costDetails": {"custom-generation": 7.5},
            },
        ),
        (200, {"job": {"jobId": "job_fake", "billing": {"cuCost": 7.5, "cuDiscount": 0}}}),
    ],
)
def test_a_dry_run_is_read_in_every_plausible_shape(status: int, body: dict[str, Any]) -> None:
    price = read_dry_run(status, body)
    assert price.creative_units == 7.5


def test_a_dry_run_keeps_the_discount_and_cost_details() -> None:
    price = read_dry_run(
        269,
        {"creativeUnitsCost": 10, "creativeUnitsDiscount": 2, "costDetails": {"upscale": 10}},
    )
    assert (price.discount, price.details) == (2.0, {"upscale": 10.0})


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (202, {"creativeUnitsCost": 1}, r"answered HTTP 202, not 269 or 200 with a price"),
        (200, "<html>", r"answered HTTP 200 without a JSON object"),
        (
            200,
            {"job": {"jobId": "job_1"}},
            r"answered HTTP 200 without creativeUnitsCost \(keys: job\)",
        ),
        (269, {}, r"without creativeUnitsCost \(keys: none\)"),
        (269, {"creativeUnitsCost": True}, r"without creativeUnitsCost"),
    ],
)
def test_a_dry_run_without_a_price_is_an_error(status: int, body: object, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        read_dry_run(status, body)


# -- echo matching ----------------------------------------------------------------------------


def _matches(echo: dict[str, Any], parameters: dict[str, Any], asset: str = "asset_1") -> bool:
    return echo_matches(echo, model=UPSCALE_V3, input_asset_id=asset, parameters=parameters)


def test_a_verbatim_echo_matches() -> None:
    assert _matches({"image": "asset_1", "upscaleFactor": 4}, {"upscaleFactor": 4})


def test_a_normalised_echo_matches_defaults_added_floats_and_order() -> None:
    echo = {
        "tileStyle": False,
        "style": "standard",
        "upscaleFactor": 2.0,
        "image": "asset_1",
    }
    assert _matches(echo, {})
    assert _matches(echo, {"upscaleFactor": 2})
    assert _matches(echo, {"upscaleFactor": 2.0, "style": "standard"})


@pytest.mark.parametrize(
    "carried",
    [
        "https://cdn.test/assets-transform/asset_1?sig=x",
        {"assetId": "asset_1", "url": "https://cdn.test/a"},
        ["asset_1"],
    ],
)
def test_the_input_asset_may_come_back_as_a_url_or_an_object(carried: object) -> None:
    assert _matches({"image": carried}, {})


@pytest.mark.parametrize(
    "carried", ["https://cdn.test/asset_10", "asset_1-b", {"id": "asset_2"}, ["asset_1", "x"], 1]
)
def test_another_asset_in_the_file_input_does_not_match(carried: object) -> None:
    assert not _matches({"image": carried}, {})


def test_an_echo_may_carry_more_than_we_sent() -> None:
    assert _matches({"image": "asset_1", "seed": 1234, "extra": "server-side"}, {})


@pytest.mark.parametrize(
    ("echo", "parameters"),
    [
        ({"image": "asset_2", "upscaleFactor": 4}, {"upscaleFactor": 4}),  # another input
        ({"image": "asset_1", "upscaleFactor": 4.5}, {"upscaleFactor": 4}),  # another value
        ({"image": "asset_1"}, {"upscaleFactor": 4}),  # the default (2), not ours
        ({"image": "asset_1", "tileStyle": 0}, {"tileStyle": False}),  # 0 is not False
        ({"image": "asset_1"}, {"seed": 7}),  # ours is missing from the echo
        ({"image": "asset_1", "modelId": "model_other"}, {}),  # another model
        ({"imageUrl": "asset_1"}, {}),  # another model's file input
    ],
)
def test_an_echo_of_another_request_does_not_match(
    echo: dict[str, Any], parameters: dict[str, Any]
) -> None:
    assert not _matches(echo, parameters)


def test_values_compare_as_json_numbers_not_python_ones() -> None:
    assert same_value(2, 2.0) and same_value([1, 2.5], [1.0, 2.5])
    assert same_value({"a": [1]}, {"a": [1.0]})
    assert not same_value(True, 1) and not same_value(0, False)
    assert not same_value([1], [1, 2]) and not same_value({"a": 1}, {"b": 1})
    assert not same_value("2", 2)


# -- the client against a scripted API --------------------------------------------------------

Handler = Callable[[httpx.Request], httpx.Response]


def _client(handler: Handler, **options: Any) -> ScenarioClient:
    return ScenarioClient(
        api_key="key",
        api_secret=SECRET,
        base_url="https://api.test/v1",
        transport=httpx.MockTransport(handler),
        **options,
    )


def _job(job_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "jobId": job_id,
        "jobType": "custom",
        "status": "queued",
        "progress": 0,
        "metadata": {},
        "statusHistory": [],
        "createdAt": "2026-01-01T10:00:00.000Z",
        "updatedAt": "2026-01-01T10:00:00.000Z",
        **fields,
    }


async def test_short_and_empty_pages_with_a_token_are_followed() -> None:
    pages = {
        None: ([_job("job_1"), _job("job_2")], "t1"),
        "t1": ([], "t2"),
        "t2": ([_job("job_3")], None),
    }
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        token = request.url.params.get("paginationToken")
        seen.append(token)
        jobs, following = pages[token]
        body: dict[str, Any] = {"jobs": jobs}
        if following:
            body["nextPaginationToken"] = following
        return httpx.Response(200, json=body)

    async with _client(handler) as client:
        ids = [job.job_id async for job in client.list_jobs(status="in-progress")]
    assert ids == ["job_1", "job_2", "job_3"] and seen == [None, "t1", "t2"]


async def test_a_listing_that_hands_back_the_same_token_is_stopped() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"jobs": [], "nextPaginationToken": "again"})

    async with _client(handler) as client:
        with pytest.raises(ScenarioError, match="handed back a page token twice"):
            _ = [job async for job in client.list_jobs()]


async def test_listing_filters_follow_the_sdk_rules() -> None:
    queries: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        queries.append(dict(request.url.params))
        return httpx.Response(200, json={"jobs": []})

    moment = datetime(2026, 1, 1, tzinfo=UTC)
    async with _client(handler) as client:
        _ = [j async for j in client.list_jobs(updated_after=moment, job_types=["custom"])]
        _ = [j async for j in client.list_jobs(updated_after=moment, job_types=["upscale", "c"])]
        _ = [j async for j in client.list_jobs(created_after=moment)]
        with pytest.raises(ValueError, match="updated_after needs a status or job_types filter"):
            _ = [j async for j in client.list_jobs(updated_after=moment)]
        with pytest.raises(ValueError, match="created_after cannot be combined with status"):
            _ = [j async for j in client.list_jobs(created_after=moment, status="queued")]
    one, two, created = queries
    assert one["type"] == "custom" and "types" not in one
    assert one["updatedAfter"] == "2026-01-01T00:00:00.000Z"
    assert two["types"] == "c,upscale" and "type" not in two  # types overrides type: never both
    assert created["createdAfter"] == "2026-01-01T00:00:00.000Z"
    assert "type" not in created and "types" not in created


async def test_a_lost_submit_is_found_by_its_echo_whatever_its_job_type() -> None:
    """The echo has the defaults filled in, floats, and jobType "upscale": still our job."""
    model = {
        "model": {
            "id": "model_upscale-v3",
            "inputs": UPSCALE_V3.model_dump(by_alias=True)["inputs"],
        }
    }
    echo = {"upscaleFactor": 2.0, "style": "standard", "tileStyle": False, "image": "asset_in"}
    other = {**echo, "image": "asset_other"}
    listed: list[dict[str, str]] = []
    posts = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal posts
        if request.url.path.startswith("/v1/models/"):
            return httpx.Response(200, json=model)
        if request.method == "POST":
            posts += 1
            return httpx.Response(502, json={"message": "Bad gateway"})
        listed.append(dict(request.url.params))
        created = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        jobs = [
            _job("job_other", jobType="upscale", createdAt=created, metadata={"input": other}),
            _job("job_ours", jobType="upscale", createdAt=created, metadata={"input": echo}),
        ]
        return httpx.Response(200, json={"jobs": jobs})

    async with _client(handler) as client:
        submitted = await client.submit("model_upscale-v3", {"image": "asset_in"})
    assert submitted.reconciled and submitted.job.job_id == "job_ours"
    assert posts == 1  # found, never resent
    assert "type" not in listed[0] and "types" not in listed[0] and "createdAfter" in listed[0]


@pytest.mark.parametrize(
    ("project_id", "status", "reason", "message"),
    [
        (
            "proj_wrong",
            403,
            "Project proj_wrong not found or not accessible by this API key",
            r"HTTP 403: Project proj_wrong not found.*; the API refused project id 'proj_wrong': "
            r"set the project id of the project your API key belongs to",
        ),
        (
            None,
            400,
            "projectId is required",
            r"HTTP 400: projectId is required; the API wants a project id: set it to the id "
            r"\(proj_...\) of the project your API key belongs to",
        ),
    ],
)
async def test_a_refused_project_fails_clearly(
    project_id: str | None, status: int, reason: str, message: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"error": reason})

    async with _client(handler, project_id=project_id) as client:
        with pytest.raises(ScenarioProjectRefused, match=message) as caught:
            await client.get_model("model_upscale-v3")
    assert caught.value.project_id == project_id
    assert SECRET not in str(caught.value)


async def test_a_403_about_something_else_is_not_blamed_on_the_project() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"reason": "This model needs the Pro plan"})

    async with _client(handler, project_id="proj_1") as client:
        with pytest.raises(ScenarioError) as caught:
            await client.get_model("model_upscale-v3")
    assert not isinstance(caught.value, ScenarioProjectRefused)


@pytest.mark.parametrize(
    ("size", "route"),
    [(BASE64_UPLOAD_LIMIT - 1, "/v1/assets"), (BASE64_UPLOAD_LIMIT, "/v1/uploads")],
)
async def test_base64_uploads_stop_below_three_and_a_half_mib(size: int, route: str) -> None:
    posted: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posted.append(request.url.path)
        if request.url.path == "/v1/assets":
            return httpx.Response(200, json={"asset": {"id": "asset_1"}})
        upload = {
            "id": "upload_1",
            "status": "imported",
            "entityId": "asset_1",
            "parts": [{"number": 1, "url": "https://s3.test/part1", "expires": "x"}],
        }
        return httpx.Response(200, json={"upload": upload})

    async with _client(handler) as client:
        asset_id = await client.upload(
            bytes(size), name="a.png", mime_type="image/png", kind="image"
        )
    assert asset_id == "asset_1" and posted[0] == route
    assert BASE64_UPLOAD_LIMIT == 3_670_016


async def test_assets_are_read_as_originals_in_chunks_the_bulk_route_accepts() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.method == "GET":
            return httpx.Response(200, json={"asset": _asset("asset_x")})
        ids = json.loads(request.content)["assetIds"]
        return httpx.Response(200, json={"assets": [_asset(i) for i in ids]})

    async with _client(handler) as client:
        assets = await client.get_assets(f"asset_{i}" for i in range(450))
        await client.get_asset("asset_x")
    assert [a.id for a in assets] == [f"asset_{i}" for i in range(450)]
    sizes = [len(json.loads(r.content)["assetIds"]) for r in requests if r.method == "POST"]
    assert sizes == [200, 200, 50]
    assert all(r.url.params.get("originalAssets") == "true" for r in requests)


def _asset(asset_id: str) -> dict[str, Any]:
    return {
        "id": asset_id,
        "url": f"https://cdn.test/{asset_id}",
        "mimeType": "image/png",
        "kind": "image",
        "properties": {"width": 2, "height": 2, "size": 10},
    }


async def test_a_job_the_engine_cannot_read_is_a_clear_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"jobs": [{"status": "queued", "metadata": {}}]})

    async with _client(handler) as client:
        with pytest.raises(
            ScenarioError, match=r"a job in the API's answer could not be read \(KeyError: 'id'\)"
        ):
            _ = [job async for job in client.list_jobs()]


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        ("failed", InvalidInput, "upload upload_1 was refused: unsupported codec"),
        ("pending", ScenarioError, "upload upload_1 not imported after 0 s"),
    ],
)
async def test_an_upload_refused_or_never_imported_says_so(
    status: str, error: type[Exception], message: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        upload = {
            "id": "upload_1",
            "status": status,
            "errorMessage": "unsupported codec",
            "parts": [{"number": 1, "url": "https://s3.test/part1", "expires": "x"}],
        }
        return httpx.Response(200, json={"upload": upload})

    async with _client(handler) as client:
        with pytest.raises(error, match=message):
            await client._wait_for_upload("upload_1", timeout_s=0)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (httpx.Response(200, text="<html>busy</html>"), "the API's answer is not a JSON object"),
        (httpx.Response(200, json=["job_1"]), "the API's answer is not a JSON object"),
        (httpx.Response(200, json={"creativeUnitsCost": 1}), "the answer has no job"),
    ],
)
async def test_an_answer_read_without_the_sdk_models_that_is_not_one_says_so(
    answer: httpx.Response, message: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return answer

    async with _client(handler) as client:
        with pytest.raises(ScenarioError, match=rf"GET /jobs/job_1: {message}"):
            await client.get_job("job_1")
        with pytest.raises(ScenarioError, match=rf"POST /generate/custom/model_x: {message}"):
            await client.submit("model_x", {"image": "asset_1"})


async def test_an_upload_answer_without_an_asset_id_says_so() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"asset": {}})

    async with _client(handler) as client:
        with pytest.raises(ScenarioError, match="POST /assets: the answer names no asset id"):
            await client.upload(b"png", name="a.png", mime_type="image/png", kind="image")
