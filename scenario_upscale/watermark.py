"""New since the last successful run: list a source with modification times, keep a watermark.

The watermark is a small JSON file in the target's ``.scenario-upscale/watermarks/`` folder, next
to the engine's journal, rather than a Prefect Variable:

* it describes the outputs, so it lives and dies with them: point a deployment at a fresh target,
  or empty the target, and everything in the source is new again (a Variable would silently skip
  inputs that never reached the new target);
* it works wherever the target is (a local folder or any fsspec URL), for any worker that can
  write the outputs, and for the flow called as a plain function or a subflow, without a
  deployment to key it by;
* one file per source *and* upscale settings: changing the model or its parameters starts afresh.

Modification times come from the storage itself (``fs.modified``), never the worker's clock, so a
skewed clock cannot hide a file. Inputs modified exactly at the watermark are remembered by name:
storages with coarse timestamps (S3: seconds) can show a file that landed after the last listing
with the same time as the newest file of that listing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import fsspec
from pydantic import BaseModel, Field

from scenario_upscale import sources, storage
from scenario_upscale.errors import InvalidInput
from scenario_upscale.items import UpscaleSpec

WATERMARK_FOLDER = ".scenario-upscale/watermarks"


class ListedInput(BaseModel):
    """An input found in the source, with its modification time as the storage reports it."""

    location: str
    modified_at: datetime


class Watermark(BaseModel):
    """How far a source has been upscaled into a target, as of the last successful run.

    Attributes:
        source: The source location the mark belongs to.
        modified_at: Newest modification time among the inputs of successful runs.
        at_mark: Inputs modified exactly at ``modified_at`` (already done).
        flow_run_id: The run that moved the mark last.
        updated_at: When it moved.
    """

    source: str
    modified_at: datetime | None = None
    at_mark: list[str] = Field(default_factory=list)
    flow_run_id: str | None = None
    updated_at: datetime | None = None

    def is_new(self, found: ListedInput) -> bool:
        """True if ``found`` was not covered by a successful run yet.

        Example:
            >>> mark = Watermark(source="in/", modified_at=datetime(2026, 1, 1, tzinfo=UTC),
            ...                  at_mark=["in/a.png"])
            >>> mark.is_new(ListedInput(location="in/a.png", modified_at=mark.modified_at))
            False
            >>> mark.is_new(ListedInput(location="in/b.png", modified_at=mark.modified_at))
            True
        """
        if self.modified_at is None or found.modified_at > self.modified_at:
            return True
        return found.modified_at == self.modified_at and found.location not in self.at_mark

    def advanced(self, done: Sequence[ListedInput], flow_run_id: str | None) -> Watermark:
        """The mark after ``done`` were all upscaled (unchanged if ``done`` is empty)."""
        if not done:
            return self
        newest = max(f.modified_at for f in done)
        at_mark = [f.location for f in done if f.modified_at == newest]
        if newest == self.modified_at:
            at_mark = sorted(set(self.at_mark) | set(at_mark))
        return Watermark(
            source=self.source,
            modified_at=newest,
            at_mark=sorted(at_mark),
            flow_run_id=flow_run_id,
            updated_at=datetime.now(UTC),
        )


def watermark_path(target: str, source: str, upscales: Sequence[UpscaleSpec]) -> str:
    """Where the watermark of ``source`` upscaled with ``upscales`` into ``target`` is kept.

    Example:
        >>> watermark_path("out", "in/", [UpscaleSpec()]).startswith(
        ...     "out/.scenario-upscale/watermarks/")
        True
    """
    canonical = json.dumps([source, [s.model_dump(mode="json") for s in upscales]], sort_keys=True)
    key = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return f"{target.rstrip('/')}/{WATERMARK_FOLDER}/{key}.json"


def load_watermark(path: str, source: str) -> Watermark:
    """The saved watermark, or an empty one (everything is new) if there is none yet."""
    fs, fs_path = fsspec.core.url_to_fs(path)
    if not fs.exists(fs_path):
        return Watermark(source=source)
    with fs.open(fs_path, "r") as handle:
        return Watermark.model_validate_json(handle.read())


def save_watermark(path: str, mark: Watermark) -> None:
    """Write the watermark whole or not at all (a ``.part`` file renamed into place)."""
    storage.write_whole(path, mark.model_dump_json(indent=2).encode())


def _modified_at(fs: fsspec.AbstractFileSystem, path: str) -> datetime:
    try:
        value: Any = fs.modified(path)
    except NotImplementedError:
        info = fs.info(path)
        value = next(
            (info[k] for k in ("mtime", "LastModified", "last_modified", "updated") if k in info),
            None,
        )
        if value is None:
            raise InvalidInput(
                f"cannot tell when {path!r} was modified: its storage reports no time"
            ) from None
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, tz=UTC)
    elif isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    # Naive times from a storage are UTC (fsspec's memory and local filesystems return UTC).
    moment: datetime = value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def list_source(source: str) -> list[ListedInput]:
    """Every image or video in ``source`` (folder, glob or fsspec URL) with its modification time.

    An existing folder with nothing in it yet, or a glob matching nothing, is an empty listing,
    not an error: a nightly run over a quiet day has nothing to do.

    Raises:
        InvalidInput: the source does not exist, or is an http URL or asset id (they cannot be
            listed, so nothing can be "new" in them).
    """
    if sources.is_asset_id(source) or source.startswith(("http://", "https://")):
        raise InvalidInput(
            f"source {source!r} cannot be listed: give a folder, a glob or an fsspec URL"
        )
    fs, path = fsspec.core.url_to_fs(source)
    try:
        locations = sources.expand(source)
    except InvalidInput:
        if any(ch in path for ch in "*?[") or fs.isdir(path):
            return []
        raise
    found = []
    for location in locations:
        file_fs, file_path = fsspec.core.url_to_fs(location)
        found.append(ListedInput(location=location, modified_at=_modified_at(file_fs, file_path)))
    return found
