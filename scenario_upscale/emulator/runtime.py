"""The live emulator: config, state, counters, RNG and background work, shared by all routes."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .config import EmulatorConfig
from .ids import new_id
from .imaging import MediaInfo, transformed_media
from .signing import UrlSigner
from .stats import EmulatorStats, StatsRecorder
from .store import AssetRecord, Store
from .timeutil import now_iso

T = TypeVar("T")


class Runtime:
    def __init__(self, config: EmulatorConfig) -> None:
        self.initial_config = config
        self.config = config
        self.signer = UrlSigner()
        self.store = Store()
        self.stats = StatsRecorder()
        self.rng = random.Random(config.seed)
        # A private pool so image work never starves the loop's default executor and so
        # shutdown can wait for it deterministically.
        self.executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="emulator-work")
        self.tasks: set[asyncio.Task[None]] = set()
        self.shutdown_event = asyncio.Event()

    # --- configuration ----------------------------------------------------------------------

    def configure(self, changes: dict[str, Any]) -> EmulatorConfig:
        new = self.config.patched(changes)
        if "seed" in changes:
            self.rng = random.Random(new.seed)
        self.config = new
        return new

    def reset(self) -> None:
        """Back to the start-up config with no state, counters or running jobs."""
        for task in list(self.tasks):
            task.cancel()
        self.tasks.clear()
        self.config = self.initial_config
        self.store = Store()
        self.stats = StatsRecorder()
        self.rng = random.Random(self.config.seed)

    # --- fault helpers ----------------------------------------------------------------------

    def chance(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate

    def take(self, knob: str) -> bool:
        """Consume one unit of a deterministic count knob (e.g. ``fail_next_n_jobs``)."""
        remaining = int(getattr(self.config, knob))
        if remaining <= 0:
            return False
        self.config = self.config.patched({knob: remaining - 1})
        return True

    async def sleep_or_shutdown(self, seconds: float) -> None:
        """Sleep, but wake at shutdown so hanging requests never hold the server open."""
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.shutdown_event.wait(), timeout=seconds)

    # --- background work --------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def in_thread(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, func, *args)

    async def close(self) -> None:
        self.shutdown_event.set()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        self.executor.shutdown(wait=True, cancel_futures=True)

    # --- shared operations ------------------------------------------------------------------

    def add_asset(
        self,
        data: bytes,
        info: MediaInfo,
        *,
        name: str,
        source: str,
        meta_type: str,
        **provenance: Any,
    ) -> AssetRecord:
        stamp = now_iso()
        record = AssetRecord(
            id=new_id("asset"),
            kind=info.kind,
            mime_type=info.mime_type,
            source=source,
            meta_type=meta_type,
            name=name,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            width=info.width,
            height=info.height,
            duration=info.duration,
            frame_rate=info.frame_rate,
            nb_frames=info.nb_frames,
            codec_name=info.codec_name,
            bitrate=info.bitrate,
            created_at=stamp,
            updated_at=stamp,
            **provenance,
        )
        self.store.assets[record.id] = record
        self.store.blobs[record.id] = data
        self.stats.assets_created += 1
        return record

    async def rendition(self, asset: AssetRecord) -> bytes:
        """The transformed rendition of ``asset`` (profile ``transformed-urls``), made once."""
        cached = self.store.renditions.get(asset.id)
        if cached is None:
            cached = await self.in_thread(
                transformed_media,
                self.store.blobs[asset.id],
                asset.kind,
                asset.mime_type,
                asset.width or 0,
                asset.height or 0,
            )
            self.store.renditions[asset.id] = cached
        return cached

    def snapshot_stats(self) -> EmulatorStats:
        return self.stats.snapshot(self.store.jobs_by_status(), self.store.uploads_by_status())
