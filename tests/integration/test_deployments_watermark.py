"""``upscale-new-assets`` and its watermark: what counts as new, and when the mark moves.

The flow runs in this process against the session Prefect server and the emulator; the listing
and watermark helpers need neither.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fsspec
import pytest
from PIL import Image

from blocks.credentials import ScenarioCredentials
from flows.pipeline import upscale_new_assets
from flows.states import result_of
from scenario_upscale.batch import UpscaleSpec
from scenario_upscale.emulator import EmulatorServer
from scenario_upscale.errors import InvalidInput
from scenario_upscale.watermark import (
    ListedInput,
    Watermark,
    list_source,
    load_watermark,
    save_watermark,
    watermark_path,
)
from tests.prefect_server import PrefectTestServer

T0 = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)


def png(path: Path, shade: int, mtime: datetime | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24 + shade % 7, 18), (shade % 255, 80, 200)).save(path)
    if mtime is not None:
        os.utime(path, (mtime.timestamp(), mtime.timestamp()))
    return path


# -- the watermark, pure -------------------------------------------------------------------------


def test_everything_is_new_before_the_first_run() -> None:
    mark = Watermark(source="in")
    assert mark.is_new(ListedInput(location="in/a.png", modified_at=T0))


def test_files_at_the_mark_are_new_unless_done() -> None:
    done = [
        ListedInput(location="in/a.png", modified_at=T0 - timedelta(hours=1)),
        ListedInput(location="in/b.png", modified_at=T0),
    ]
    mark = Watermark(source="in").advanced(done, "run-1")
    assert (mark.modified_at, mark.at_mark, mark.flow_run_id) == (T0, ["in/b.png"], "run-1")
    # Same second as b.png, landed after the listing (coarse storage clocks): still new.
    late = ListedInput(location="in/c.png", modified_at=T0)
    assert mark.is_new(late)
    assert not mark.is_new(done[0]) and not mark.is_new(done[1])
    again = mark.advanced([late], "run-2")
    assert again.modified_at == T0 and again.at_mark == ["in/b.png", "in/c.png"]
    assert mark.advanced([], "run-3") is mark


def test_watermark_key_follows_source_and_settings() -> None:
    base = watermark_path("out", "in", [UpscaleSpec()])
    assert base.startswith("out/.scenario-upscale/watermarks/")
    assert watermark_path("out/", "in", [UpscaleSpec()]) == base
    assert watermark_path("out", "other", [UpscaleSpec()]) != base
    x4 = UpscaleSpec(parameters={"upscaleFactor": 4})
    assert watermark_path("out", "in", [x4]) != base


def test_watermark_round_trip_on_an_fsspec_target() -> None:
    target = f"memory://wm-{uuid.uuid4().hex[:8]}/out"
    path = watermark_path(target, "in", [UpscaleSpec()])
    assert load_watermark(path, "in") == Watermark(source="in")
    mark = Watermark(source="in", modified_at=T0, at_mark=["in/a.png"], flow_run_id="r")
    save_watermark(path, mark)
    assert load_watermark(path, "in") == mark
    fs, _ = fsspec.core.url_to_fs(target)
    assert not [p for p in fs.find(target) if p.endswith(".part")]


# -- listing a source ----------------------------------------------------------------------------


def test_list_source_reports_the_storage_modification_time(tmp_path: Path) -> None:
    png(tmp_path / "in" / "a.png", 1, T0)
    png(tmp_path / "in" / "b.png", 2, T0 + timedelta(seconds=90))
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    found = list_source(str(tmp_path / "in"))
    assert [(Path(f.location).name, f.modified_at) for f in found] == [
        ("a.png", T0),
        ("b.png", T0 + timedelta(seconds=90)),
    ]


def test_list_source_on_fsspec_memory() -> None:
    root = f"memory://src-{uuid.uuid4().hex[:8]}"
    with fsspec.open(f"{root}/in/a.png", "wb") as handle:
        Image.new("RGB", (8, 8)).save(handle, format="PNG")
    (found,) = list_source(f"{root}/in/")
    assert found.location.startswith("memory://") and found.location.endswith("/in/a.png")
    assert found.modified_at.tzinfo is not None


def test_an_empty_folder_or_glob_is_nothing_new_but_a_missing_source_is_an_error(
    tmp_path: Path,
) -> None:
    (tmp_path / "empty").mkdir()
    assert list_source(str(tmp_path / "empty")) == []
    assert list_source(str(tmp_path / "empty" / "*.png")) == []
    with pytest.raises(InvalidInput, match="does not exist"):
        list_source(str(tmp_path / "missing"))
    for unlistable in ("https://example.com/a.png", "asset_123"):
        with pytest.raises(InvalidInput, match="cannot be listed"):
            list_source(unlistable)


# -- the flow ------------------------------------------------------------------------------------


@pytest.fixture
async def credentials_block(
    prefect_client_settings: PrefectTestServer, fresh_emulator: EmulatorServer
) -> AsyncIterator[str]:
    name = f"scenario-watermark-{uuid.uuid4().hex[:8]}"
    await ScenarioCredentials(
        api_key=fresh_emulator.api_key,
        api_secret=fresh_emulator.api_secret,
        base_url=fresh_emulator.base_url,
        timeout_s=10,
    ).asave(name)
    yield name


@pytest.mark.prefect_server
async def test_only_new_inputs_are_upscaled_and_the_mark_moves_only_on_success(
    credentials_block: str, fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    source, target = tmp_path / "incoming", str(tmp_path / "upscaled")
    png(source / "a.png", 1, T0)
    png(source / "b.png", 2, T0 + timedelta(seconds=1))

    async def run() -> tuple[list[str], Watermark, int]:
        # A run whose batch was partial ends "Partially completed" (FAILED-type): its result
        # is read from the state.
        result = await result_of(
            await upscale_new_assets(
                str(source),
                target,
                credentials_block=credentials_block,
                concurrency_limit=None,
                return_state=True,
            )
        )
        names = sorted(Path(n).name for n in result.new_inputs)
        return names, result.watermark, fresh_emulator.stats().jobs_created

    names, mark, jobs = await run()
    assert (names, jobs, mark.modified_at) == (["a.png", "b.png"], 2, T0 + timedelta(seconds=1))
    assert load_watermark(_mark(target, source), str(source)) == mark  # saved beside the outputs
    names, mark, jobs = await run()  # nothing new: no batch, no job
    assert (names, jobs, mark.modified_at) == ([], 2, T0 + timedelta(seconds=1))

    # Two new inputs, one job fails: the mark stays, so the next run tries the failure again.
    png(source / "c.png", 3, T0 + timedelta(seconds=2))
    png(source / "d.png", 4, T0 + timedelta(seconds=3))
    fresh_emulator.configure(fail_next_n_jobs=1)
    names, mark, jobs = await run()
    assert (names, jobs, mark.modified_at) == (["c.png", "d.png"], 4, T0 + timedelta(seconds=1))

    names, mark, jobs = await run()
    assert names == ["c.png", "d.png"]  # still new to the watermark...
    assert jobs == 5  # ...but only the failed one is submitted again (the journal)
    assert mark.modified_at == T0 + timedelta(seconds=3) and mark.at_mark == [str(source / "d.png")]
    assert (await run())[0] == []


def _mark(target: str, source: Path) -> str:
    return watermark_path(target, str(source), [UpscaleSpec()])
