"""The crash journal and output naming: pure logic on local files."""

from __future__ import annotations

import asyncio
from pathlib import Path

from scenario_upscale.batch import journal_key
from scenario_upscale.journal import Journal, default_journal_path, request_key
from scenario_upscale.models import ModelInput, ModelSpec
from scenario_upscale.storage import output_name


def test_journal_survives_a_reload_and_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path, "emu")
    journal.write("uploaded", sha256="abc", asset_id="asset_1")
    journal.write("submitting", key="k1")
    journal.write("submitted", key="k1", job_id="job_1", creative_units=2.5)
    journal.write("collected", key="k1", job_id="job_1", outputs=["/out/a.png"])
    with path.open("a") as handle:
        handle.write('{"kind": "submitted", "namespace": "emu", "key": "k2", "job_')  # crash
    again = Journal(path, "emu")
    assert again.uploads == {"abc": "asset_1"}
    assert again.jobs == {"k1": ("job_1", 2.5)}
    assert again.collected == {"k1": ["/out/a.png"]}
    assert "k1" in again.submitting and "k2" not in again.jobs


def test_journal_ignores_other_namespaces_but_not_what_the_target_holds(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    earlier = Journal(path, "http://127.0.0.1:1/v1|")
    earlier.write("uploaded", sha256="abc", asset_id="asset_1")
    earlier.write("submitted", key="k1", job_id="job_1", creative_units=1.0)
    earlier.write("collected", key="k1", job_id="job_1", outputs=["/out/a.png"], sha256="abc")
    other = Journal(path, "http://localhost:1/v1|proj_1")
    # Asset and job ids belong to the endpoint they came from; an output in the target is done.
    assert other.uploads == {} and other.jobs == {}
    assert other.collected == {"k1": ["/out/a.png"]} and other.collected_jobs == {"k1": "job_1"}


def test_request_key_depends_on_content_model_and_parameters() -> None:
    base = request_key("sha", "model_a", {"upscaleFactor": 2})
    assert base == request_key("sha", "model_a", {"upscaleFactor": 2})
    assert base != request_key("sha2", "model_a", {"upscaleFactor": 2})
    assert base != request_key("sha", "model_b", {"upscaleFactor": 2})
    assert base != request_key("sha", "model_a", {"upscaleFactor": 4})


def test_journal_location() -> None:
    assert default_journal_path("out") == Path("out/.scenario-upscale/journal.jsonl")
    remote = default_journal_path("s3://bucket/upscaled")
    assert remote.name == "journal.jsonl" and "scenario-upscale" in remote.parts


def test_output_names() -> None:
    assert output_name("hero.png", "model_upscale-v3", "x4", "image/png") == "hero@upscale-v3x4.png"
    assert output_name("a.b.jpg", "model_topaz-image-upscale", "2x", "image/jpeg") == (
        "a.b@topaz-image-upscale-2x.jpg"
    )
    assert output_name("clip.mov", "model_x", "x2", "video/mp4", index=2) == "clip@xx2-3.mp4"


V3 = ModelSpec(
    id="model_upscale-v3",
    inputs=[
        ModelInput(name="image", type="file", required={"always": True}),
        ModelInput(name="upscaleFactor", type="number", default=2),
        ModelInput(name="style", type="string", default="standard"),
        ModelInput(name="seed", type="number"),
    ],
)


def test_the_key_is_on_the_parameters_the_model_runs_with(tmp_path: Path) -> None:
    """Parameters `{}` and `{"upscaleFactor": 2}` (the model's default) are one job."""
    journal = Journal(tmp_path / "j.jsonl", "emu")
    same = {
        journal_key(journal, "sha", V3, p)
        for p in ({}, {"upscaleFactor": 2}, {"upscaleFactor": 2.0, "style": "standard"})
    }
    assert len(same) == 1
    assert journal_key(journal, "sha", V3, {"upscaleFactor": 4}) not in same
    assert journal_key(journal, "sha", V3, {"seed": 1}) not in same


def test_a_journal_keyed_on_the_parameters_as_given_is_still_found(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    # Written by an earlier version: the key hashed the parameters exactly as given.
    Journal(path, "emu").write("collected", key=request_key("sha", V3.id, {}), outputs=["/o.png"])
    Journal(path, "emu").write(
        "submitted", key=request_key("sha2", V3.id, {"upscaleFactor": 2}), job_id="job_2"
    )
    journal = Journal(path, "emu")
    # The same input, now run with the default spelled out (or left out): found, not paid again.
    assert journal_key(journal, "sha", V3, {"upscaleFactor": 2}) == request_key("sha", V3.id, {})
    assert journal_key(journal, "sha2", V3, {}) == request_key("sha2", V3.id, {"upscaleFactor": 2})
    assert journal_key(journal, "sha3", V3, {}) == request_key(
        "sha3", V3.id, {"upscaleFactor": 2, "style": "standard"}
    )


async def test_a_second_run_claiming_an_input_waits_and_then_sees_the_first_runs_job(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out" / "j.jsonl"
    first, second = Journal(path, "emu"), Journal(path, "emu")
    entered: list[str] = []
    second_waits = asyncio.Event()

    async def second_run() -> None:
        second_waits.set()
        async with second.claim("ab12"):
            entered.append("second")

    async with first.claim("ab12"):
        entered.append("first")
        waiter = asyncio.create_task(second_run())
        await second_waits.wait()
        await asyncio.sleep(0.1)  # the second run polls the lock meanwhile
        assert not waiter.done()
        first.write("submitted", key="ab12", job_id="job_1")
    await asyncio.wait_for(waiter, timeout=30)
    assert entered == ["first", "second"]
    # It read what the first run recorded once it had the claim: nothing is paid for twice.
    assert second.jobs == {"ab12": ("job_1", None)}


async def test_claims_on_other_inputs_do_not_wait_for_each_other(tmp_path: Path) -> None:
    path = tmp_path / "out" / "j.jsonl"
    first, second = Journal(path, "emu"), Journal(path, "emu")
    async with first.claim("ab12"), asyncio.timeout(30), second.claim("cd34"):
        second.write("submitting", key="cd34")
    assert "cd34" in second.submitting
