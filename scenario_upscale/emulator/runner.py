"""Background work: moving jobs through their statuses and importing completed uploads.

The image resize (Pillow) and the video re-encode (PyAV) run in the runtime's thread pool so the
event loop keeps answering polls.
"""

from __future__ import annotations

import asyncio
import functools

from .imaging import InvalidMedia, MediaInfo, inspect_media, resize_image
from .runtime import Runtime
from .store import JobRecord, JobStatus, UploadRecord
from .timeutil import now_dt, now_iso
from .video import reencode_video

# Fractions of job_duration_s spent in each phase. A job that starts ``pending`` (profile
# ``sparse-pages``) spends the queued share in three equal slices: pending, warming-up, queued.
_QUEUED_SHARE = 0.15
_WARM_UP_PHASES: tuple[JobStatus, ...] = ("warming-up", "queued")
_RUNNING_SHARE = 0.65
_FINALIZING_SHARE = 0.20
_PROGRESS_STEPS = 5
_RUNNING_PROGRESS_CAP = 0.9

FAILURE_ERROR = "Upscale failed: the inference worker ran out of memory (emulated failure)"
FAILURE_HINT = (
    "Retry the job, or lower the upscale factor / input size. "
    "The creative units of this job were refunded."
)


def _fail(runtime: Runtime, job: JobRecord, error: str, hint: str) -> None:
    job.error = error
    job.hint = hint
    job.move_to("failure")
    # Refund as the real API does unless disableRefund (never set for the emulated models).
    runtime.stats.record_refund(job.input_key, job.content_key, job.cu_cost)


async def run_job(runtime: Runtime, job: JobRecord) -> None:
    duration = runtime.config.job_duration_s
    if job.status == "pending":
        slice_s = duration * _QUEUED_SHARE / (len(_WARM_UP_PHASES) + 1)
        for phase in _WARM_UP_PHASES:
            await asyncio.sleep(slice_s)
            job.move_to(phase)
        await asyncio.sleep(slice_s)
    else:
        await asyncio.sleep(duration * _QUEUED_SHARE)
    job.move_to("in-progress", 0.0)
    source = runtime.store.blobs[job.input_asset_id]
    parent = runtime.store.assets.get(job.input_asset_id)
    work: asyncio.Future[tuple[bytes, MediaInfo]] | None = None
    if not job.will_fail:
        work = asyncio.ensure_future(
            _render(runtime, job, source, parent is not None and parent.kind == "video")
        )
    try:
        for step in range(1, _PROGRESS_STEPS + 1):
            await asyncio.sleep(duration * _RUNNING_SHARE / _PROGRESS_STEPS)
            job.progress = round(_RUNNING_PROGRESS_CAP * step / _PROGRESS_STEPS, 4)
            job.updated = now_dt()
            if job.will_fail and step > _PROGRESS_STEPS // 2:
                _fail(runtime, job, FAILURE_ERROR, FAILURE_HINT)
                return
        assert work is not None
        try:
            data, info = await work
        except Exception as exc:  # any Pillow/memory problem is a job failure, not a crash
            _fail(runtime, job, f"Upscale failed: {exc.__class__.__name__}: {exc}", FAILURE_HINT)
            return
    finally:
        if work is not None and not work.done():
            work.cancel()
    job.move_to("finalizing", 0.95)
    await asyncio.sleep(duration * _FINALIZING_SHARE)
    stem = (parent.name.rsplit(".", 1)[0] if parent else "output") or "output"
    asset = runtime.add_asset(
        data,
        info,
        name=f"{stem}-upscaled.{info.extension}",
        source=job.output_type,
        meta_type=job.output_type,
        model_id=job.model_id,
        parent_id=job.input_asset_id,
        root_parent_id=(parent.root_parent_id or parent.id) if parent else None,
        parent_job_id=job.job_id,
        output_index=0,
    )
    job.asset_ids = [asset.id]
    job.move_to("success", 1.0)


async def _render(
    runtime: Runtime, job: JobRecord, source: bytes, video: bool
) -> tuple[bytes, MediaInfo]:
    if not video:
        return await runtime.in_thread(resize_image, source, job.output_width, job.output_height)
    return await runtime.in_thread(
        functools.partial(
            reencode_video,
            source,
            job.output_width,
            job.output_height,
            frame_rate=job.output_frame_rate,
            quality=job.input.get("outputQuality"),
            write_mode=job.input.get("outputWriteMode"),
        )
    )


async def import_upload(runtime: Runtime, upload: UploadRecord) -> None:
    await asyncio.sleep(runtime.config.upload_processing_s)
    parts = runtime.store.upload_parts.get(upload.id, {})
    missing = [n for n in range(1, upload.parts_count + 1) if n not in parts]
    if missing:
        _finish_upload(upload, error=f"Missing part(s) {missing}: PUT every part before complete")
        return
    data = b"".join(parts[n] for n in range(1, upload.parts_count + 1))
    if upload.file_size is not None and upload.file_size != len(data):
        _finish_upload(
            upload,
            error=f"File size mismatch: declared {upload.file_size} bytes, received {len(data)}",
        )
        return
    try:
        info = await runtime.in_thread(inspect_media, data, upload.kind)
    except InvalidMedia as exc:
        _finish_upload(upload, error=f"The uploaded file is not a valid {upload.kind}: {exc}")
        return
    options = upload.asset_options
    source = "uploaded" if info.kind == "image" else "uploaded-video"
    asset = runtime.add_asset(
        data,
        info,
        name=upload.file_name,
        source=source,
        meta_type=source,
        parent_id=options.get("parentId"),
        collection_ids=list(options.get("collectionIds") or []),
        hidden=bool(options.get("hide", False)),
    )
    runtime.store.upload_parts.pop(upload.id, None)  # free the part bytes
    upload.entity_id = asset.id
    upload.status = "imported"
    upload.updated_at = now_iso()


def _finish_upload(upload: UploadRecord, *, error: str) -> None:
    upload.status = "failed"
    upload.error_message = error
    upload.updated_at = now_iso()
