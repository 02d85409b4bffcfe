"""The checks that spend nothing: auth and project, the model, uploads, the dry run."""

from __future__ import annotations

import base64
import math
from typing import Any

import httpx

from scenario_upscale.api import (
    BASE64_UPLOAD_LIMIT,
    read_dry_run,
)
from scenario_upscale.doctor.findings import (
    DRY_RUN_STATUS,
    LARGE_PROBE_BYTES,
    SCALE_INPUTS,
    TINY_SIZE,
    WRONG_PROJECT,
    Verdict,
)
from scenario_upscale.doctor.session import Session, json_of, png, reason_of
from scenario_upscale.errors import ScenarioError
from scenario_upscale.models import ModelSpec
from scenario_upscale.params import build_body, file_input

# -- 1. auth and project ----------------------------------------------------------------------


async def probe_auth(s: Session) -> None:
    """A cheap authenticated GET with the user's project, then one with a project not theirs."""
    step = "auth and project"
    mine = await s.call("GET", "jobs", params={"pageSize": 1})
    if mine.status_code == 401:
        raise s.fail(
            step,
            f"the API refused the key and secret (HTTP 401: {reason_of(mine)}); check the API key "
            "and its secret (Scenario web app > project settings > API keys)",
            status=401,
        )
    if mine.status_code in (400, 403):
        if s.settings.project_id:
            advice = (
                f"the API refused project {s.settings.project_id!r} (HTTP {mine.status_code}: "
                f"{reason_of(mine)}); use the id of the project the API key was created in "
                "(proj_…, in the Scenario web app's project settings)"
            )
        else:
            advice = (
                f"the API refused a request without a project (HTTP {mine.status_code}: "
                f"{reason_of(mine)}); set the project id (--project-id, or the block's project_id)"
            )
            s.observe(
                "strict-project",
                f"HTTP {mine.status_code} without projectId",
                copes=False,
                how="the engine sends projectId only when one is configured: configure it",
            )
        raise s.fail(step, advice, status=mine.status_code)
    if mine.status_code != 200:
        raise s.fail(step, f"GET /jobs answered HTTP {mine.status_code}: {reason_of(mine)}")
    other = await s.call("GET", "jobs", project=WRONG_PROJECT, params={"pageSize": 1})
    if other.status_code in (400, 403, 404):
        s.observe(
            "strict-project",
            f"a project not ours answered HTTP {other.status_code}: {reason_of(other)}",
            copes=True,
            how=(
                "the engine sends the configured projectId on every call, and yours was accepted"
                if s.settings.project_id
                else "the engine sends no projectId when none is configured, which was accepted"
            ),
        )
        s.check(
            step,
            "note",
            "authenticated; the API enforces project ownership",
            wrong=other.status_code,
        )
    else:
        s.check(
            step, "ok", "authenticated; a projectId not ours is ignored", wrong=other.status_code
        )


# -- 2. the model -----------------------------------------------------------------------------


def _scale_parameters(model: ModelSpec) -> dict[str, Any]:
    """The model's numeric scale input at its default: a number sent, to see how it is echoed."""
    for name in SCALE_INPUTS:
        spec = model.input(name)
        if spec is not None and spec.type == "number" and isinstance(spec.default, int | float):
            return {name: int(spec.default) if float(spec.default).is_integer() else spec.default}
    return {}


async def probe_model(s: Session) -> None:
    step = "model and inputs[]"
    model_id = s.settings.model_id
    response = await s.call("GET", f"models/{model_id}")
    if response.status_code != 200:
        raise s.fail(
            step,
            f"GET /models/{model_id} answered HTTP {response.status_code}: {reason_of(response)}; "
            "pick an image upscale model your plan can use (--model)",
        )
    body = json_of(response)
    raw = body.get("model") if isinstance(body, dict) else None
    if not isinstance(raw, dict) or not isinstance(raw.get("inputs"), list):
        raise s.fail(step, f"GET /models/{model_id} has no model.inputs[] list")
    model = ModelSpec.model_validate(raw)
    try:
        carrier = file_input(model)
    except ScenarioError as error:
        raise s.fail(step, str(error)) from None
    if (carrier.kind or "image") != "image":
        raise s.fail(step, f"{model_id} takes a {carrier.kind}, not an image: pick an image model")
    s.model = model
    s.check(
        step,
        "ok",
        f"{model_id}: {len(model.inputs)} inputs, the image goes in {carrier.name!r}",
        inputs=[i.name for i in model.inputs],
    )


# -- 3. uploads -------------------------------------------------------------------------------


async def _upload(s: Session, name: str, data: bytes) -> httpx.Response:
    payload = {"name": name, "image": base64.b64encode(data).decode("ascii"), "hide": True}
    return await s.call("POST", "assets", json_body=payload)


def _largest_engine_body() -> int:
    """The largest JSON body the engine's base64 upload sends (base64 is 4/3 of the bytes)."""
    return (BASE64_UPLOAD_LIMIT + 2) // 3 * 4 + 1024


async def probe_uploads(s: Session) -> None:
    step = "uploads"
    tiny = await _upload(s, "scenario-doctor.png", png(TINY_SIZE, noise=False))
    body = json_of(tiny)
    if tiny.status_code != 200 or not isinstance(body, dict) or "asset" not in body:
        raise s.fail(step, f"POST /assets answered HTTP {tiny.status_code}: {reason_of(tiny)}")
    s.input_asset = str(body["asset"]["id"])
    side = math.isqrt(LARGE_PROBE_BYTES // 3) + 1
    large_data = png((side, side), noise=True)
    large = await _upload(s, "scenario-doctor-large.png", large_data)
    sent = len(large.request.content)
    if large.status_code == 413:
        largest = _largest_engine_body()
        s.observe(
            "gateway-limits",
            f"a {sent / 1e6:.1f} MB base64 body was refused with HTTP 413",
            copes=largest < sent,
            how=(
                f"the engine sends base64 only below {BASE64_UPLOAD_LIMIT / 2**20:.1f} MiB raw "
                f"(bodies up to {largest / 1e6:.1f} MB) and multipart above"
            ),
        )
        s.check(step, "note", f"tiny upload ok; a {sent / 1e6:.1f} MB body is refused (413)")
    elif large.status_code == 200:
        s.check(step, "ok", f"tiny upload ok; a {sent / 1e6:.1f} MB base64 body is accepted")
    else:
        s.check(
            step,
            "note",
            f"tiny upload ok; the {sent / 1e6:.1f} MB probe answered HTTP {large.status_code}: "
            f"{reason_of(large)}",
        )


# -- 4. the dry run ---------------------------------------------------------------------------


async def probe_dry_run(s: Session) -> None:
    step = "dry run"
    assert s.model is not None and s.input_asset is not None
    s.body = build_body(s.model, s.input_asset, _scale_parameters(s.model))
    response = await s.call(
        "POST",
        f"generate/custom/{s.settings.model_id}",
        params={"dryRun": "true"},
        json_body=s.body,
    )
    payload = json_of(response)
    try:
        # The engine's own reader, on the live answer: if it reads the cost, the engine copes.
        s.cost = read_dry_run(response.status_code, payload).creative_units
    except ScenarioError as error:
        message = f"{error}; the API said: {reason_of(response)}"
        raise s.fail(step, message, status=response.status_code) from None
    with_job = isinstance(payload, dict) and "job" in payload
    how = "the engine's dry-run reader (api.read_dry_run) reads the cost from this answer"
    # dry-run-200 is the cost-only answer with 200; a job key is the other reading, whatever the
    # status (PROFILES.md).
    if with_job:
        evidence = f"the dry run answered HTTP {response.status_code} with a job key"
        s.observe("dry-run-with-job", evidence, copes=True, how=how)
    elif response.status_code == 200:
        s.observe("dry-run-200", "the dry run answered HTTP 200", copes=True, how=how)
    shape = "with a job" if with_job else "cost only"
    verdict: Verdict = "ok" if response.status_code == DRY_RUN_STATUS and not with_job else "note"
    s.check(
        step,
        verdict,
        f"HTTP {response.status_code}, {shape}: one job costs {s.cost:g} creative units",
        status=response.status_code,
        job_key=with_job,
        creative_units=s.cost,
    )
