"""Inputs read and uploaded once: shared by content hash within a run and, through the journal,
across runs.

The bytes of an input are kept in memory only from its read to its upload; identical files in one
batch share one upload even while it is in flight.
"""

from __future__ import annotations

import asyncio

from scenario_upscale import sources
from scenario_upscale.api import ScenarioClient
from scenario_upscale.journal import Journal
from scenario_upscale.sources import SourceFile


class Uploads:
    """Reads inputs and gives each distinct content one asset id."""

    def __init__(self, client: ScenarioClient, journal: Journal) -> None:
        self.client = client
        self.journal = journal
        self._uploading: dict[str, asyncio.Future[str]] = {}
        # Bytes read but not yet uploaded, by content hash; dropped once uploaded.
        self._unsent: dict[str, bytes] = {}

    async def read(self, location: str) -> tuple[SourceFile, str | None]:
        """The input at ``location``, and its asset id when it already is a Scenario asset.

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
        source, data = await sources.read(location, self.client.cdn)
        self._unsent[source.sha256] = data
        return source, None

    async def asset_id(self, source: SourceFile) -> str:
        """The asset id of ``source``'s content: uploaded by this run, or by an earlier one."""
        cached = self.journal.uploads.get(source.sha256)
        if cached is not None:
            self._unsent.pop(source.sha256, None)
            return cached
        if source.sha256 not in self._uploading:
            self._uploading[source.sha256] = asyncio.ensure_future(self._send(source))
        return await self._uploading[source.sha256]

    def forget(self, source: SourceFile) -> None:
        """Every upload of these bytes is over (or was never needed): drop them from memory."""
        self._unsent.pop(source.sha256, None)

    async def _send(self, source: SourceFile) -> str:
        data = self._unsent.pop(source.sha256)
        asset_id = await self.client.upload(
            data, name=source.name, mime_type=source.mime_type, kind=source.kind
        )
        self.journal.write("uploaded", sha256=source.sha256, asset_id=asset_id)
        return asset_id
