"""The pure parts of scaling out: shards, and what the stack and the parent say when they fail."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from commands.stack import LocalPostgres, PostgresUnavailable, descendants, postgres_bin
from flows.sharded import ShardFailed, _of_this_batch, cut_shards
from scenario_upscale.batch import ItemResult


def test_shards_are_the_same_whatever_the_order_of_the_inputs(tmp_path: Path) -> None:
    names = [f"{n:03d}.png" for n in range(7)]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    first = cut_shards(str(tmp_path), 3)
    again = cut_shards([str(tmp_path / n) for n in reversed(names)], 3)
    assert first == again
    assert [len(s) for s in first] == [3, 3, 1]
    assert [Path(p).name for p in first[0]] == names[:3]


def test_a_shard_that_never_finished_says_which_and_why() -> None:
    error = ShardFailed(2, 3, "run x's worker worker-1 stopped sending heartbeats")
    assert str(error) == (
        "shard 2 did not finish after 3 attempt(s): run x's worker worker-1 stopped sending "
        "heartbeats"
    )


def test_without_postgresql_the_stack_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PostgresUnavailable) as error:
        postgres_bin(debian=tmp_path / "nothing")
    assert str(error.value) == (
        "PostgreSQL's initdb and pg_ctl were not found (on the PATH or in "
        "/usr/lib/postgresql/*/bin): install them, e.g. `apt-get install postgresql` on Debian"
    )


def test_a_failing_postgresql_program_is_named_with_its_own_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    programs = tmp_path / "bin"
    programs.mkdir()
    for name in ("initdb", "pg_ctl"):
        script = programs / name
        script.write_text("#!/bin/sh\necho 'initdb: error: disk full' >&2\nexit 1\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr("commands.stack.postgres_bin", lambda: programs)
    monkeypatch.setattr("commands.stack.os.geteuid", lambda: 1000)  # not root: run them as is
    postgres = LocalPostgres(tmp_path / "pg")
    with pytest.raises(PostgresUnavailable) as error:
        postgres.start()
    assert str(error.value) == "`initdb` failed with code 1: initdb: error: disk full"


def test_the_processes_below_a_process_are_found_to_any_depth() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import subprocess; subprocess.run(['sleep', '30'])"]
    )
    below: list[int] = []
    try:
        deadline = time.monotonic() + 30  # a poll: the grandchild starts when it starts
        while not (below := descendants(child.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        [sleeper] = below
        assert sleeper in descendants(os.getpid())  # a grandchild of this process
    finally:
        for pid in [*below, child.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        child.wait()


def test_what_a_dead_attempt_of_this_batch_collected_is_an_output_of_the_batch() -> None:
    started = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

    def skipped(at: datetime | None) -> ItemResult:
        return ItemResult(source="a.png", model_id="m", status="skipped", collected_at=at)

    by_dead_attempt = _of_this_batch(skipped(started + timedelta(seconds=5)), started)
    assert (by_dead_attempt.status, by_dead_attempt.resumed) == ("success", True)
    assert _of_this_batch(skipped(started - timedelta(days=1)), started).status == "skipped"
    assert _of_this_batch(skipped(None), started).status == "skipped"
