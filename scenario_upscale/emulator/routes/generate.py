"""``POST /v1/generate/custom/{modelId}``: validate, price, dry-run or create + charge a job."""

from __future__ import annotations

import math
import time
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from ..catalog import MODELS_BY_ID, ModelSpec
from ..deps import API_DEPENDENCIES, get_runtime, read_json
from ..errors import ApiError, bad_request, not_found
from ..ids import new_id
from ..profiles import is_dry_run
from ..render import cost_json, job_json
from ..runner import run_job
from ..runtime import Runtime
from ..sizing import OutputPlan, plan_output
from ..store import AssetRecord, JobRecord, JobStatus, StatusEntry
from ..timeutil import now_dt, to_iso
from ..validation import normalised_input, validate_body

router = APIRouter(prefix="/v1", dependencies=API_DEPENDENCIES)


def _remaining_seconds(runtime: Runtime) -> int:
    """Rough time until the oldest running job ends, for the 429 ``remainingSeconds``."""
    duration = runtime.config.job_duration_s
    now = time.time()
    ends = [job.created.timestamp() + duration for job in runtime.store.active_jobs()]
    return max(1, math.ceil(min(ends) - now)) if ends else 1


def _new_job(
    runtime: Runtime, spec: ModelSpec, body: dict[str, Any], asset: AssetRecord, plan: OutputPlan
) -> JobRecord:
    """A job record for ``body``, shaped by the profile (echo, job type, first status)."""
    behaviour = runtime.config.behaviour
    moment = now_dt()
    first: JobStatus = "pending" if behaviour.warm_up_statuses else "queued"
    digest = asset.sha256
    return JobRecord(
        job_id=new_id("job"),
        seq=runtime.store.next_seq(),
        job_type=behaviour.job_type,
        status=first,
        model_id=spec.id,
        output_type=spec.output_type,
        input=normalised_input(spec, body) if behaviour.normalised_echo else body,
        input_asset_id=asset.id,
        cu_cost=plan.creative_units,
        input_key=f"{spec.id}|{asset.id}|sha256:{digest}",
        content_key=f"{spec.id}|sha256:{digest}",
        output_width=plan.width,
        output_height=plan.height,
        output_frame_rate=plan.frame_rate,
        created=moment,
        updated=moment,
        status_history=[StatusEntry(status=first, date=to_iso(moment))],
    )


def _dry_run_answer(runtime: Runtime, job: JobRecord) -> JSONResponse:
    """The estimate; under ``dry-run-with-job`` next to a job that is never stored or charged."""
    behaviour = runtime.config.behaviour
    runtime.stats.dry_runs += 1
    body = cost_json(job.cu_cost)
    if behaviour.dry_run_job:
        job.move_to("success", 1.0)
        body = {"job": job_json(job, runtime.config), **body}
    return JSONResponse(body, status_code=behaviour.dry_run_status)


def _rate_limited(runtime: Runtime, active: int, ceiling: int) -> ApiError:
    runtime.stats.rate_limited += 1
    extra: dict[str, Any] = {"details": {"actionName": "generate", "actionLimit": ceiling}}
    if runtime.config.behaviour.retry_hint:
        extra["remainingSeconds"] = _remaining_seconds(runtime)
    return ApiError(
        429,
        f"Too many concurrent generations: {active} jobs already running for this team"
        f" (limit {ceiling}). Wait for a job to finish before submitting another.",
        extra=extra,
    )


def _ceiling(runtime: Runtime) -> int:
    cap = runtime.config.behaviour.ceiling_cap
    limit = runtime.config.concurrency_limit
    return limit if cap is None else min(limit, cap)


@router.post("/generate/custom/{modelId}", response_model=None)
async def generate_custom(
    modelId: str,
    request: Request,
    dry_run: str | None = Query(None, alias="dryRun"),
) -> dict[str, Any] | JSONResponse:
    runtime = get_runtime(request)
    spec = MODELS_BY_ID.get(modelId)
    if spec is None:
        raise not_found(f"Model {modelId} not found")
    if dry_run is not None and dry_run != "false" and not is_dry_run(dry_run):
        raise bad_request("Invalid parameter 'dryRun': must be 'true' or 'api'")
    body = await read_json(request)
    asset = validate_body(spec, body, runtime.store.assets.get)
    if asset.width is None or asset.height is None:
        raise bad_request(f"Input '{spec.file_input}': asset {asset.id} has no known dimensions")
    plan = plan_output(spec, body, asset.width, asset.height, duration=asset.duration)
    limit = runtime.config.max_output_megapixels
    if plan.megapixels > limit:
        raise bad_request(
            f"Requested output {plan.width}x{plan.height} ({plan.megapixels:.1f} MP) exceeds the"
            f" emulator limit of {limit:g} MP: lower the scale inputs of {spec.id}"
        )
    if is_dry_run(dry_run):
        return _dry_run_answer(runtime, _new_job(runtime, spec, body, asset, plan))

    async with runtime.store.lock:
        active = len(runtime.store.active_jobs())
        ceiling = _ceiling(runtime)
        if active >= ceiling:
            raise _rate_limited(runtime, active, ceiling)
        job = _new_job(runtime, spec, body, asset, plan)
        job.will_fail = runtime.take("fail_next_n_jobs") or runtime.chance(
            runtime.config.job_failure_rate
        )
        runtime.store.jobs[job.job_id] = job
        runtime.stats.jobs_created += 1
        # Charged at creation, like the real API (refunded if the job fails).
        runtime.stats.record_charge(job.input_key, job.content_key, job.cu_cost)
    runtime.spawn(run_job(runtime, job))

    if runtime.take("drop_generate_after_commit"):
        # The job exists and is paid for; the outer middleware aborts the connection instead
        # of sending this response, so the client sees a transport error.
        request.scope["emulator.drop"] = True
        runtime.stats.faults["drop"] += 1
    return {"job": job_json(job, runtime.config), **cost_json(job.cu_cost)}
