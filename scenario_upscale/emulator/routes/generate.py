"""``POST /v1/generate/custom/{modelId}``: validate, price, dry-run or create + charge a job."""

from __future__ import annotations

import math
import time
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from ..catalog import MODELS_BY_ID
from ..deps import get_runtime, read_json, require_auth
from ..errors import ApiError, bad_request, not_found
from ..ids import new_id
from ..render import cost_json, job_json
from ..runner import run_job
from ..runtime import Runtime
from ..sizing import plan_output
from ..store import JobRecord, StatusEntry
from ..timeutil import now_dt, to_iso
from ..validation import validate_body

router = APIRouter(prefix="/v1", dependencies=[Depends(require_auth)])

DRY_RUN_STATUS = 269


def _remaining_seconds(runtime: Runtime) -> int:
    """Rough time until the oldest running job ends, for the 429 ``remainingSeconds``."""
    duration = runtime.config.job_duration_s
    now = time.time()
    ends = [job.created.timestamp() + duration for job in runtime.store.active_jobs()]
    return max(1, math.ceil(min(ends) - now)) if ends else 1


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
    if dry_run not in (None, "true", "api", "false"):
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
    if dry_run in ("true", "api"):
        runtime.stats.dry_runs += 1
        return JSONResponse(cost_json(plan.creative_units), status_code=DRY_RUN_STATUS)

    async with runtime.store.lock:
        active = len(runtime.store.active_jobs())
        ceiling = runtime.config.concurrency_limit
        if active >= ceiling:
            runtime.stats.rate_limited += 1
            raise ApiError(
                429,
                f"Too many concurrent generations: {active} jobs already running for this team"
                f" (limit {ceiling}). Wait for a job to finish before submitting another.",
                extra={
                    "details": {"actionName": "generate", "actionLimit": ceiling},
                    "remainingSeconds": _remaining_seconds(runtime),
                },
            )
        moment = now_dt()
        digest = runtime.store.assets[asset.id].sha256
        job = JobRecord(
            job_id=new_id("job"),
            seq=runtime.store.next_seq(),
            model_id=spec.id,
            output_type=spec.output_type,
            input=body,
            input_asset_id=asset.id,
            cu_cost=plan.creative_units,
            input_key=f"{spec.id}|{asset.id}|sha256:{digest}",
            content_key=f"{spec.id}|sha256:{digest}",
            output_width=plan.width,
            output_height=plan.height,
            output_frame_rate=plan.frame_rate,
            will_fail=runtime.take("fail_next_n_jobs")
            or runtime.chance(runtime.config.job_failure_rate),
            created=moment,
            updated=moment,
            status_history=[StatusEntry(status="queued", date=to_iso(moment))],
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
