"""In-memory state of one emulated team: assets (+ bytes), uploads, jobs.

Records are internal and snake_case; ``render.py`` turns them into API JSON. All mutation happens
on the server's event loop; ``lock`` serialises the few check-then-act sequences that await.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from .imaging import MediaProperties
from .timeutil import now_dt, to_iso

JobStatus = Literal[
    "pending", "queued", "warming-up", "in-progress", "finalizing", "success", "failure", "canceled"
]
TERMINAL_STATUSES: frozenset[str] = frozenset({"success", "failure", "canceled"})
UploadStatus = Literal["pending", "validating", "validated", "imported", "complete", "failed"]


class AssetRecord(MediaProperties):
    id: str
    kind: Literal["image", "video"]
    mime_type: str
    source: str
    meta_type: str
    name: str
    size: int
    sha256: str
    model_id: str | None = None
    parent_id: str | None = None
    root_parent_id: str | None = None
    parent_job_id: str | None = None
    output_index: int | None = None
    collection_ids: list[str] = Field(default_factory=list)
    hidden: bool = False
    created_at: str
    updated_at: str


class StatusEntry(BaseModel):
    status: JobStatus
    date: str


class JobRecord(BaseModel):
    job_id: str
    seq: int
    job_type: str = "custom"
    status: JobStatus = "queued"
    progress: float = 0.0
    model_id: str
    output_type: str = "upscale"
    input: dict[str, Any]
    input_asset_id: str
    asset_ids: list[str] = Field(default_factory=list)
    error: str | None = None
    hint: str | None = None
    cu_cost: float
    input_key: str
    content_key: str
    output_width: int
    output_height: int
    # Video jobs: the output frame rate when the model changes it (Topaz ``fps``).
    output_frame_rate: float | None = None
    will_fail: bool = False
    created: datetime
    updated: datetime
    status_history: list[StatusEntry] = Field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def move_to(self, status: JobStatus, progress: float | None = None) -> None:
        moment = now_dt()
        if status != self.status:
            self.status_history.append(StatusEntry(status=status, date=to_iso(moment)))
        self.status = status
        if progress is not None:
            self.progress = progress
        self.updated = moment


class UploadPart(BaseModel):
    number: int
    url: str
    expires: str


class UploadRecord(BaseModel):
    id: str
    status: UploadStatus = "pending"
    file_name: str
    content_type: str
    kind: str
    parts_count: int
    file_size: int | None = None
    parts: list[UploadPart] = Field(default_factory=list)
    asset_options: dict[str, Any] = Field(default_factory=dict)
    entity_id: str | None = None
    error_message: str | None = None
    created_at: str
    updated_at: str


class Store:
    def __init__(self) -> None:
        self.assets: dict[str, AssetRecord] = {}
        self.blobs: dict[str, bytes] = {}
        # Transformed renditions served by /_cdn-transform, made on first download.
        self.renditions: dict[str, bytes] = {}
        self.uploads: dict[str, UploadRecord] = {}
        self.upload_parts: dict[str, dict[int, bytes]] = {}
        self.jobs: dict[str, JobRecord] = {}
        self.lock = asyncio.Lock()
        self._seq = itertools.count(1)

    def next_seq(self) -> int:
        return next(self._seq)

    def active_jobs(self) -> list[JobRecord]:
        return [job for job in self.jobs.values() if not job.terminal]

    def jobs_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for job in self.jobs.values():
            counts[job.status] = counts.get(job.status, 0) + 1
        return counts

    def uploads_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for upload in self.uploads.values():
            counts[upload.status] = counts.get(upload.status, 0) + 1
        return counts
