"""The soak and crash checks of ``bench/reliability.py`` at a small size, with their promises.

The same code as the full-size commands (README "Guarantees"): the engine's runs in child
processes, faults on every route, SIGKILLs read from the emulator's counters, and the judges of
what is on disk, which are shown to fail on bad files. Here the emulator is the suite's server
(its own thread in the test process, still another process than the runs): starting one more
would add seconds of imports to each check.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from scenario_upscale.emulator import EmulatorServer
from tests.support import bench_module

reliability = bench_module("reliability")


@pytest.fixture(scope="module", autouse=True)
def _no_child_left() -> Iterator[None]:
    yield
    reliability.stop_spare()  # the run started ahead, which has no batch to run


@pytest.fixture
def suite_emulator(fresh_emulator: EmulatorServer) -> Iterator[object]:
    controls = reliability.Emulator(
        fresh_emulator.root_url, fresh_emulator.api_key, fresh_emulator.api_secret
    )
    yield controls
    controls.http.close()


def test_a_small_soak_pays_each_input_once_and_delivers_every_paid_output(
    suite_emulator: object,
) -> None:
    figures = reliability.check(
        ["soak", "--inputs", "60", "--job-duration-s", "0.5"], suite_emulator
    )
    assert figures.broken == [], figures.show()
    assert int(figures.value("faults injected")) > 0
    assert figures.value("inputs charged more than once") == "0"
    assert figures.value("paid outputs not delivered in the run that paid") == "0"
    # Every input paid for is in the target, decoded whole at twice its size.
    charged = figures.value("inputs charged (net of refunds)")
    assert figures.value("outputs in target verified by decoding") == charged
    assert figures.value(".part files left in target") == "0"
    assert figures.value("files holding the key or secret") == "0"


def test_two_sigkills_and_a_rerun_pay_each_input_once_with_the_clean_run_s_bytes(
    suite_emulator: object,
) -> None:
    figures = reliability.check(
        ["crash", "--inputs", "20", "--kills", "submit,download", "--job-duration-s", "0.5"],
        suite_emulator,
    )
    assert figures.broken == [], figures.show()
    assert figures.value("kill points hit") == "submit, download"
    assert figures.value("inputs charged exactly once after the kills") == "20"
    assert figures.value("inputs charged more than once") == "0"
    assert figures.value("outputs byte-identical to the clean run") == "20"
    assert figures.value(".part files left in crashed") == "0"


def test_the_judge_of_outputs_catches_a_cut_file_a_wrong_size_and_a_part_file(
    tmp_path: Path,
) -> None:
    inputs, target = tmp_path / "in", tmp_path / "out"
    sources = reliability.write_inputs(inputs, 3)
    whole, cut, small = (target / f"in000{i}@upscale-v3x2.png" for i in range(3))
    target.mkdir()
    for source, output, factor in (
        (sources[0], whole, 2),
        (sources[1], cut, 2),
        (sources[2], small, 1),
    ):
        with Image.open(source) as image:
            image.resize((image.width * factor, image.height * factor)).save(output)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    (target / "in0003@upscale-v3x2.png.part").write_bytes(b"half")
    disk = reliability.judge_target(target, inputs)
    assert (disk.outputs, disk.verified) == (3, 1)
    assert disk.staging_left == ["in0003@upscale-v3x2.png.part"]
    [truncated, wrong] = disk.bad
    assert truncated.startswith("in0001@upscale-v3x2.png: OSError")
    width, height = Image.open(sources[2]).size
    assert wrong == (
        f"in0002@upscale-v3x2.png: {width}x{height}, expected {2 * width}x{2 * height}"
    )


def test_the_secret_scan_finds_the_secret_and_the_basic_auth_header(tmp_path: Path) -> None:
    needles = [b"soak-key-1", b"soak-secret-1", b"c29hay1rZXktMTpzb2FrLXNlY3JldC0x"]
    (tmp_path / "clean.log").write_text("GET /v1/jobs 200\n")
    (tmp_path / "leak.log").write_text("Authorization: Basic c29hay1rZXktMTpzb2FrLXNlY3JldC0x\n")
    (tmp_path / "deep").mkdir()
    (tmp_path / "deep" / "journal.jsonl").write_text('{"secret": "soak-secret-1"}\n')
    scanned, found = reliability.files_with_secrets([tmp_path], needles)
    assert scanned == 3
    assert sorted(Path(f).name for f in found) == ["journal.jsonl", "leak.log"]


def test_an_unknown_kill_point_is_refused_with_the_points_allowed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        reliability.check(["crash", "--kills", "submit,boot"])
    assert exit_.value.code == 2
    assert (
        "--kills: unknown boot; choose from upload, submit, poll, download"
        in capsys.readouterr().err
    )
