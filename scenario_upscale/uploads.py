"""Inputs read and uploaded once: shared by content hash within a run and, through the journal,
across runs.

Reading an input (``read``) identifies it and hashes it; its bytes are not kept. An input is
uploaded only when it is about to be priced or submitted (``ready``): a file is read again then,
one upload part at a time, hashed as it is sent and checked against the first hash. So the memory
held for inputs is a part per upload in flight, whatever the size of the files or of the batch;
identical files share one upload even while it is in flight.

Until its upload, an item's request body carries a placeholder for the asset id
(``pending_asset``), which ``ready`` replaces.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import IO, Any

from scenario_upscale import sources
from scenario_upscale.api import ScenarioClient
from scenario_upscale.errors import InvalidInput, ScenarioBadRequest, ScenarioNotFound
from scenario_upscale.items import BatchItem
from scenario_upscale.journal import Journal
from scenario_upscale.sources import SourceFile

_PENDING = "pending-upload:"

UNUSABLE = (InvalidInput, ScenarioBadRequest, ScenarioNotFound)
"""What makes one input unusable (unreadable, not an image, refused at upload), not the batch."""


def pending_asset(source: SourceFile) -> str:
    """What stands for ``source``'s asset id in a request body until it is uploaded."""
    return _PENDING + source.sha256


class Uploads:
    """Reads inputs and gives each distinct content one asset id, ``concurrency`` at a time."""

    def __init__(self, client: ScenarioClient, journal: Journal, *, concurrency: int = 8) -> None:
        self.client = client
        self.journal = journal
        self._uploading: dict[str, asyncio.Future[str]] = {}
        self._gate = asyncio.Semaphore(concurrency)

    async def read(self, location: str) -> tuple[SourceFile, str | None]:
        """The input at ``location``, and its asset id when it already has one (a Scenario
        asset, or content an earlier run uploaded).

        Raises:
            InvalidInput: unreadable, or not an image or video.
        """
        if sources.is_asset_id(location):
            asset = await self.client.get_asset(location)
            kind = "video" if asset.kind == "video" else "image"
            # An asset is identified by its id: there are no bytes here to hash.
            source = SourceFile(
                location=location,
                name=f"{location}.{asset.mime_type.split('/')[-1]}",
                kind=kind,
                mime_type=asset.mime_type,
                sha256=location,
                size=asset.size or 0,
                width=asset.width,
                height=asset.height,
            )
            return source, asset.id
        async with self._gate:
            source = await sources.read(location, self.client.cdn)
        return source, self.journal.uploads.get(source.sha256)

    async def ready(self, item: BatchItem) -> BatchItem:
        """``item`` with its input's asset id in its body, uploading the input if need be.

        Raises:
            InvalidInput: the input can no longer be read, or changed since it was read.
            ScenarioError: the upload failed.
        """
        pending = pending_asset(item.source)
        fields = [name for name, value in item.body.items() if value == pending]
        if not fields:
            return item
        asset_id = await self.asset_id(item.source)
        body: dict[str, Any] = {**item.body, **dict.fromkeys(fields, asset_id)}
        return item.model_copy(update={"body": body})

    async def asset_id(self, source: SourceFile) -> str:
        """The asset id of ``source``'s content: uploaded by this run, or by an earlier one."""
        cached = self.journal.uploads.get(source.sha256)
        if cached is not None:
            return cached
        if source.sha256 not in self._uploading:
            self._uploading[source.sha256] = asyncio.ensure_future(self._send(source))
        return await self._uploading[source.sha256]

    async def _send(self, source: SourceFile) -> str:
        async with self._gate:
            if sources.is_http(source.location):
                data = await sources.fetch(source.location, self.client.cdn)
                digest = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
                if digest != source.sha256:
                    raise _changed(source)
                asset_id = await self.client.upload(
                    data, name=source.name, mime_type=source.mime_type, kind=source.kind
                )
            else:
                asset_id = await self._stream(source)
        self.journal.write("uploaded", sha256=source.sha256, asset_id=asset_id)
        return asset_id

    async def _stream(self, source: SourceFile) -> str:
        """Upload a file read once, front to back, hashing what is sent (never held whole)."""
        with await asyncio.to_thread(sources.open_file, source.location) as handle:
            reader = _HashingReader(handle, source)
            asset_id = await self.client.upload(
                reader,
                name=source.name,
                mime_type=source.mime_type,
                kind=source.kind,
                size=source.size,
            )
            # Checked after sending (the bytes are not kept to check first): an asset with other
            # content may exist, but no job is submitted with it.
            unchanged = await asyncio.to_thread(reader.unchanged)
        if not unchanged:
            raise _changed(source)
        return asset_id


def _changed(source: SourceFile) -> InvalidInput:
    return InvalidInput(
        f"input {source.location!r} changed while the batch ran: its content is no "
        "longer what was checked and priced; run the batch again"
    )


class _HashingReader:
    """Reads a file for an upload, hashing its bytes the first time they go past (a retried part
    seeks back and reads them again)."""

    def __init__(self, handle: IO[bytes], source: SourceFile) -> None:
        self._handle = handle
        self._source = source
        self._hasher = hashlib.sha256()
        self._hashed = 0  # bytes [0, _hashed) are in the hash
        self._position = 0

    def seek(self, offset: int, whence: int = 0, /) -> int:
        self._position = self._handle.seek(offset, whence)
        return self._position

    def read(self, size: int = -1, /) -> bytes:
        wanted = self._source.size - self._position if size < 0 else size
        data = self._handle.read(wanted)
        end = self._position + len(data)
        if self._position <= self._hashed < end:
            self._hasher.update(memoryview(data)[self._hashed - self._position :])
            self._hashed = end
        self._position = end
        if len(data) < wanted and end < self._source.size:
            raise _changed(self._source)  # shorter than when it was read: do not send a part short
        return data

    def unchanged(self) -> bool:
        """Whether the file had exactly the bytes it had when it was read, and no more."""
        self._handle.seek(self._source.size)
        at_end = not self._handle.read(1)
        return (
            at_end
            and self._hashed == self._source.size
            and (self._hasher.hexdigest() == self._source.sha256)
        )
