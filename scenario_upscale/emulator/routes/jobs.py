"""Jobs: read one, list with filters and cursor pagination, refuse cancel (3.6-3.8)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, get_args

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from ..deps import (
    API_DEPENDENCIES,
    decode_cursor,
    encode_cursor,
    get_runtime,
    read_model,
    split_csv,
)
from ..errors import bad_request, not_found
from ..render import job_json
from ..store import JobRecord, JobStatus
from ..timeutil import parse_iso

router = APIRouter(prefix="/v1", dependencies=API_DEPENDENCIES)

_STATUSES = set(get_args(JobStatus))


class JobActionBody(BaseModel):
    action: str


def _parse_time(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_iso(value)
    except ValueError as exc:
        raise bad_request(f"Invalid parameter '{name}': not an ISO-8601 date: {value!r}") from exc


def find_job(request: Request, job_id: str) -> JobRecord:
    job = get_runtime(request).store.jobs.get(job_id)
    if job is None:
        raise not_found(f"Job {job_id} not found")
    return job


@router.get("/jobs")
async def list_jobs(
    request: Request,
    status: str | None = None,
    type_: str | None = Query(None, alias="type"),
    types: str | None = None,
    workflow_id: str | None = Query(None, alias="workflowId"),
    created_after: str | None = Query(None, alias="createdAfter"),
    updated_after: str | None = Query(None, alias="updatedAfter"),
    page_size: int = Query(50, alias="pageSize"),
    pagination_token: str | None = Query(None, alias="paginationToken"),
) -> dict[str, Any]:
    runtime = get_runtime(request)
    if not 1 <= page_size <= 100:
        raise bad_request("Invalid parameter 'pageSize': must be between 1 and 100")
    if status is not None and status not in _STATUSES:
        raise bad_request(
            f"Invalid parameter 'status': {status!r} is not one of {sorted(_STATUSES)}"
        )
    wanted_types = set(split_csv(type_, types))
    # SDK docstring: status/type/types/workflowId switch the order to update date, and
    # createdAfter is then not allowed ("use updatedAfter with them").
    by_update = status is not None or bool(wanted_types) or workflow_id is not None
    if by_update and created_after is not None:
        raise bad_request(
            "Invalid parameter 'createdAfter': not allowed with status, type, types or"
            " workflowId (they sort jobs by update date); use 'updatedAfter'"
        )
    created_min = _parse_time("createdAfter", created_after)
    updated_min = _parse_time("updatedAfter", updated_after)

    def sort_key(job: JobRecord) -> list[float]:
        return [job.updated.timestamp(), job.seq] if by_update else [job.seq]

    # Cursor = sort key of the last job returned (newest first). With update-date order a job
    # that changes while a client pages moves to the front, as it would on a live API.
    state = decode_cursor(pagination_token) if pagination_token else {}
    cursor = state.get("after")
    if cursor is not None and not isinstance(cursor, list):
        raise bad_request("Invalid paginationToken")
    sparse = runtime.config.behaviour.sparse_page_size
    if sparse is not None:
        if state.get("empty"):
            # Profile sparse-pages: the page after a full one is empty but says "go on".
            return {"jobs": [], "nextPaginationToken": encode_cursor({"after": cursor})}
        page_size = min(page_size, sparse)

    def keep(job: JobRecord) -> bool:
        return (
            (cursor is None or sort_key(job) < cursor)
            and (status is None or job.status == status)
            and (not wanted_types or job.job_type in wanted_types)
            and workflow_id is None  # no emulated job belongs to a workflow
            and (created_min is None or job.created > created_min)
            and (updated_min is None or job.updated > updated_min)
        )

    matching = sorted(
        (job for job in runtime.store.jobs.values() if keep(job)), key=sort_key, reverse=True
    )
    page = matching[:page_size]
    body: dict[str, Any] = {"jobs": [job_json(job, runtime.config) for job in page]}
    if len(matching) > page_size:
        after: dict[str, Any] = {"after": sort_key(page[-1])}
        if sparse is not None:
            after["empty"] = True
        body["nextPaginationToken"] = encode_cursor(after)
    return body


@router.get("/jobs/{jobId}")
async def get_job(jobId: str, request: Request) -> dict[str, Any]:
    return {"job": job_json(find_job(request, jobId), get_runtime(request).config)}


@router.post("/jobs/{jobId}/action")
async def job_action(jobId: str, request: Request) -> dict[str, Any]:
    find_job(request, jobId)  # 404 first, as for any unknown job
    body = await read_model(request, JobActionBody)
    if body.action != "cancel":
        raise bad_request(f"Invalid action '{body.action}': the only action is 'cancel'")
    # Only inference jobs are cancellable and every emulated job is a custom one (wording from a
    # third-party capture of the real API).
    raise bad_request("Cannot cancel this type of job. Action not permitted.")
