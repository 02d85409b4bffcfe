"""The journal's group commit: records reach the disk off the event loop, in order, and all of
them by the time ``flushed()`` returns."""

from __future__ import annotations

import asyncio
from pathlib import Path

from scenario_upscale.journal import Journal


async def test_every_record_is_on_disk_in_order_once_flushed(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j" / "journal.jsonl", "ns")
    for n in range(50):
        journal.write("submitting", key=f"k{n}")
        if n % 7 == 0:
            await asyncio.sleep(0)  # let a flush start in between: later lines go after it
    await journal.flushed()
    again = Journal(journal.path, "ns")
    assert list(again.submitting) == [f"k{n}" for n in range(50)]
    assert journal.path.read_text().count("\n") == 50


async def test_flushed_waits_for_a_flush_already_under_way(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl", "ns")
    journal.write("submitting", key="a")  # starts a flush
    journal.write("submitted", key="a", job_id="job_1")  # written while it runs
    await journal.flushed()
    assert Journal(journal.path, "ns").jobs == {"a": ("job_1", None)}


def test_outside_an_event_loop_a_record_is_on_disk_at_once(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl", "ns")
    journal.write("uploaded", sha256="ab", asset_id="asset_1")
    assert Journal(journal.path, "ns").uploads == {"ab": "asset_1"}
