"""A batch's memory across crashes: what was uploaded, submitted and collected.

An append-only JSON-lines file, one record per fact, flushed to disk before the next step. It is
written *before* a submit ("submitting") and after it ("submitted"), so a rerun knows which inputs
may have a job on Scenario already: those are looked up, never paid for again.

Records carry a namespace (API base URL + project) so a journal written against the emulator never
lends its asset or job ids to a run against Scenario's cloud. Except "collected": an output in the
target is done whatever the spelling of the endpoint that made it (``localhost`` or ``127.0.0.1``,
with the project id or without), so those records are read from every namespace. Each carries what
makes the output that output, the source's hash, the model and the parameters it ran with (its key
hashes the same three), and is only trusted while the output files are still there.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock, Timeout
from pydantic import BaseModel, Field

RecordKind = Literal["uploaded", "submitting", "submitted", "collected"]


class JournalRecord(BaseModel):
    kind: RecordKind
    namespace: str
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    key: str | None = None
    sha256: str | None = None
    asset_id: str | None = None
    job_id: str | None = None
    creative_units: float | None = None
    outputs: list[str] = Field(default_factory=list)
    model_id: str | None = None
    parameters: dict[str, Any] | None = None
    """The parameters the model ran with, defaults included (``params.effective_parameters``)."""


def request_key(sha256: str, model_id: str, parameters: dict[str, Any]) -> str:
    """One input, one model, one set of parameters: the unit that is paid for once.

    Example:
        >>> request_key("ab", "model_x", {"b": 1, "a": 2}) == request_key("ab", "model_x",
        ...                                                              {"a": 2, "b": 1})
        True
    """
    canonical = json.dumps([sha256, model_id, parameters], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


class Journal:
    """The records of one output target, read at start and appended as work happens.

    Args:
        path: The JSON-lines file (created with its folder when missing).
        namespace: Which API this run talks to; records of other namespaces are ignored.
    """

    def __init__(self, path: Path, namespace: str) -> None:
        self.path = path
        self.namespace = namespace
        self._lock = threading.Lock()
        # Records written, the lines not yet on disk, and how many records are (``flushed``).
        self._pending: list[str] = []
        self._disk_lock = threading.Lock()
        self._written = 0
        self._synced = 0
        self._syncing: asyncio.Future[None] | None = None
        self.uploads: dict[str, str] = {}
        self.submitting: dict[str, datetime] = {}
        self.jobs: dict[str, tuple[str, float | None]] = {}
        self.collected: dict[str, list[str]] = {}
        self.collected_jobs: dict[str, str] = {}
        """The job of each collected key: in any namespace, for the report of a skipped input."""
        self.collected_at: dict[str, datetime] = {}
        """When each key was collected: tells a batch's own earlier attempts from older runs."""
        self._read_up_to = 0
        self._load()

    def _load(self) -> None:
        """Apply the records appended since the last read (by this run or any other)."""
        if not self.path.exists():
            return
        with self.path.open("rb") as handle:
            handle.seek(self._read_up_to)
            appended = handle.read()
        # Only whole lines: another run may be writing the last one right now.
        complete = appended[: appended.rfind(b"\n") + 1]
        self._read_up_to += len(complete)
        for line in complete.decode("utf-8", errors="replace").splitlines():
            if line.strip():
                # A line cut short by a crash mid-write is the only possible damage: skip it.
                try:
                    record = JournalRecord.model_validate_json(line)
                except ValueError:
                    continue
                # What is in the target is done, whichever endpoint spelling produced it.
                if record.namespace == self.namespace or record.kind == "collected":
                    self._apply(record)

    @contextlib.asynccontextmanager
    async def claim(self, key: str, poll_s: float = 0.02) -> AsyncIterator[None]:
        """Hold ``key`` alone among every run writing this journal, then read what they
        recorded since: wrap the decision to submit ``key`` and its "submitting" record in it.

        Runs on one target (shards of a batch, overlapping batches, on several workers) work
        at once, each input claimed only while it is looked up and submitted: the second run
        to claim an input finds the first one's "submitting"/"submitted" record and takes that
        job over instead of paying again. The claim is a file lock beside the journal, one of
        256 by the key's first two hex digits, so every process that sees this folder (this
        machine, or a shared file system) shares it; the system drops the lock of a killed
        process. It is tried without blocking so the event loop keeps running while it waits.
        """
        lock_path = self.path.parent / "claims" / f"{key[:2]}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        # Not thread-local: a run may take the lock on one thread and give it back on another.
        lock = FileLock(lock_path, thread_local=False)
        while True:
            try:
                lock.acquire(blocking=False)
                break
            except Timeout:
                await asyncio.sleep(poll_s)
        try:
            self._load()
            yield
            # What was recorded under the claim is on disk before the next claimant reads it:
            # its "submitted" finds the job at once, not through a listing.
            await self.flushed()
        finally:
            lock.release()

    def _apply(self, record: JournalRecord) -> None:
        if record.kind == "uploaded" and record.sha256 and record.asset_id:
            self.uploads[record.sha256] = record.asset_id
        elif record.kind == "submitting" and record.key:
            self.submitting[record.key] = record.at
        elif record.kind == "submitted" and record.key and record.job_id:
            self.jobs[record.key] = (record.job_id, record.creative_units)
        elif record.kind == "collected" and record.key:
            # Identical inputs share a key (and a job) but each has its own output file.
            known = self.collected.setdefault(record.key, [])
            known.extend(o for o in record.outputs if o not in known)
            if record.job_id:
                self.collected_jobs[record.key] = record.job_id
            self.collected_at[record.key] = record.at

    def write(self, kind: RecordKind, **fields: Any) -> None:
        """Record one fact; it is on disk once ``flushed()`` returns, and within moments anyway.

        Within an event loop the line is appended, with the others written meanwhile, by one
        write and one fsync in a thread (``flushed``), so the loop never waits on the disk; a
        submit awaits ``flushed()`` after its "submitting" record, before the POST, which is
        what keeps a rerun from paying twice. Outside a loop it is on disk when this returns.
        """
        record = JournalRecord(kind=kind, namespace=self.namespace, **fields)
        line = record.model_dump_json(exclude_defaults=False) + "\n"
        with self._lock:
            self._pending.append(line)
            self._written += 1
            self._apply(record)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._append_pending()
            return
        if self._syncing is None or self._syncing.done():
            self._syncing = asyncio.ensure_future(self._flush())

    async def flushed(self) -> None:
        """Every record written so far is on disk (written and fsynced), one write and fsync in
        a thread for all the records written meanwhile (a group commit)."""
        wanted = self._written
        while self._synced < wanted:
            if self._syncing is None or self._syncing.done():
                self._syncing = asyncio.ensure_future(self._flush())
            await asyncio.shield(self._syncing)

    async def _flush(self) -> None:
        # One flush at a time (``_syncing``), so records reach the file in the order written.
        while self._synced < self._written:
            await asyncio.to_thread(self._append_pending)

    def _append_pending(self) -> None:
        # The disk lock keeps the lines in order; ``write`` takes only the short ``_lock``, so
        # it never waits for an fsync.
        with self._disk_lock:
            with self._lock:
                lines, self._pending = self._pending, []
                upto = self._written
            if lines:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write("".join(lines))
                    handle.flush()
                    os.fsync(handle.fileno())
            self._synced = max(self._synced, upto)


def default_journal_path(target: str) -> Path:
    """Next to local outputs (``<target>/.scenario-upscale/journal.jsonl``); for a remote target,
    in the user's cache folder, one file per target."""
    if "://" not in target or target.startswith("file://"):
        local = Path(target.removeprefix("file://"))
        return local / ".scenario-upscale" / "journal.jsonl"
    digest = hashlib.sha256(target.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "scenario-upscale" / digest / "journal.jsonl"
