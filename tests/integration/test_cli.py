"""The ``scenario-upscale`` command line, run as a user runs it: a subprocess."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from PIL import Image
from typer.testing import CliRunner

import deployments.serve
from blocks.credentials import ScenarioCredentials
from commands.cli import app
from commands.prefect_runtime import find_free_port
from deployments.definitions import DeploymentSettings
from scenario_upscale.emulator import EmulatorServer
from tests.prefect_server import PrefectTestServer
from tests.support import write_images

CLI = [sys.executable, "-m", "commands.cli"]


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


async def test_upscale_runs_the_batch_flow_on_the_configured_server(
    prefect_client_settings: PrefectTestServer, fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    block = f"cli-{uuid.uuid4().hex[:8]}"
    await ScenarioCredentials(
        api_key=fresh_emulator.api_key,
        api_secret=fresh_emulator.api_secret,
        base_url=fresh_emulator.base_url,
    ).asave(block)
    write_images(tmp_path / "in", 2)
    done = run_cli(
        "upscale",
        str(tmp_path / "in"),
        "--target",
        str(tmp_path / "out"),
        "--param",
        "upscaleFactor=3",
        "--credentials-block",
        block,
        env=prefect_client_settings.env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Completed: 2 upscaled" in done.stdout
    assert f"{prefect_client_settings.url}/runs/flow-run/" in done.stdout
    for output in (tmp_path / "out").glob("*.png"):
        with Image.open(output) as image:
            assert image.size[1] == 90  # 30 px high, upscaled 3x
    assert len(list((tmp_path / "out").glob("*@upscale-v3x3.png"))) == 2
    assert fresh_emulator.api_secret not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("bad", "code", "state"), [(1, 3, "Partially completed"), (2, 1, "Failed")]
)
def test_upscale_exits_non_zero_when_an_input_failed(
    prefect_client_settings: PrefectTestServer,
    fresh_emulator: EmulatorServer,
    tmp_path: Path,
    bad: int,
    code: int,
    state: str,
) -> None:
    block = f"cli-{uuid.uuid4().hex[:8]}"
    asyncio.run(
        ScenarioCredentials(
            api_key=fresh_emulator.api_key,
            api_secret=fresh_emulator.api_secret,
            base_url=fresh_emulator.base_url,
        ).asave(block)
    )
    good = write_images(tmp_path / "in", 2 - bad)
    broken = [tmp_path / "in" / f"broken{n}.png" for n in range(bad)]
    for path in broken:
        path.write_text("not a picture")
    inputs = [str(p) for p in [*good, *broken]]
    done = CliRunner().invoke(
        app,
        ["upscale", *inputs, "--target", str(tmp_path / "out"), "--credentials-block", block],
    )
    assert done.exit_code == code, done.output
    assert f"{state}: {bad} of 2 input(s) failed" in done.output
    assert "broken0.png" in done.output


def test_upscale_help_documents_the_exit_codes() -> None:
    done = CliRunner().invoke(app, ["upscale", "--help"], env={"COLUMNS": "200"})
    assert done.exit_code == 0
    for line in ("0 completed", "3 partially completed", "1 failed", "2 bad command-line options"):
        assert line in done.output, done.output


def test_a_malformed_param_is_refused_before_anything_runs(tmp_path: Path) -> None:
    done = run_cli("upscale", "x.png", "--param", "upscaleFactor", env={"PATH": ""}, cwd=tmp_path)
    assert done.returncode == 2
    assert "'upscaleFactor' is not NAME=VALUE" in done.stderr


def test_the_emulator_command_serves_the_api(tmp_path: Path) -> None:
    port = find_free_port()
    process = subprocess.Popen(
        [*CLI, "emulator", "--port", str(port), "--api-key", "k", "--api-secret", "s"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/v1/models/model_upscale-v3"
        deadline = time.monotonic() + 120  # generous: a loaded machine starts it slowly
        while True:
            try:
                response = httpx.get(url, auth=("k", "s"), timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("the emulator did not start")
                time.sleep(0.2)
        assert response.status_code == 200
        assert response.json()["model"]["id"] == "model_upscale-v3"
        assert httpx.get(url, auth=("k", "wrong"), timeout=2).status_code == 401
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert f"listening on http://127.0.0.1:{port}/v1" in output


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "scenario-upscale"
    assert script.is_file()
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "demo" in done.stdout and "emulator" in done.stdout


@pytest.fixture
def served_with(monkeypatch: pytest.MonkeyPatch) -> list[tuple[DeploymentSettings, float]]:
    """What ``scenario-upscale serve`` would serve, captured instead of served."""
    calls: list[tuple[DeploymentSettings, float]] = []
    monkeypatch.setattr(deployments.serve, "serve_deployments", lambda s, p: calls.append((s, p)))
    for name in list(os.environ):
        if name.startswith("SCENARIO_UPSCALE_"):
            monkeypatch.delenv(name)
    return calls


def test_serve_without_options_serves_what_prefect_yaml_deploys(
    served_with: list[tuple[DeploymentSettings, float]],
) -> None:
    done = CliRunner().invoke(app, ["serve"])
    assert done.exit_code == 0, done.output
    assert served_with == [(DeploymentSettings(), 10.0)]


def test_serve_reads_options_and_scenario_upscale_variables(
    served_with: list[tuple[DeploymentSettings, float]],
) -> None:
    env = {
        "SCENARIO_UPSCALE_SOURCE": "s3://drop/in/",
        "SCENARIO_UPSCALE_INTERVAL": "30",
        "SCENARIO_UPSCALE_PREFETCH_SECONDS": "3",
        "SCENARIO_UPSCALE_TARGET": "from-env",
    }
    done = CliRunner().invoke(
        app, ["serve", "--target", "out", "--parameters", '{"upscaleFactor": 4}'], env=env
    )
    assert done.exit_code == 0, done.output
    ((settings, prefetch),) = served_with
    assert (settings.source, settings.target, settings.interval_s, prefetch) == (
        "s3://drop/in/",
        "out",  # an option wins over its variable
        30.0,
        3.0,
    )
    assert settings.upscales_parameter() == [
        {"model_id": "model_upscale-v3", "parameters": {"upscaleFactor": 4}}
    ]
    assert settings.published == DeploymentSettings().published


def test_serve_with_another_model_leaves_its_parameters_to_it(
    served_with: list[tuple[DeploymentSettings, float]],
) -> None:
    done = CliRunner().invoke(app, ["serve", "--model", "model_other", "--cron", "0 3 * * *"])
    assert done.exit_code == 0, done.output
    ((settings, _),) = served_with
    assert settings.upscales_parameter() == [{"model_id": "model_other", "parameters": {}}]
    assert settings.schedule().cron == "0 3 * * *"  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", ["{upscaleFactor: 4}", "[4]"])
def test_serve_refuses_parameters_that_are_not_a_json_object(
    served_with: list[tuple[DeploymentSettings, float]], value: str
) -> None:
    done = CliRunner().invoke(app, ["serve", "--parameters", value], env={"COLUMNS": "200"})
    assert done.exit_code == 2
    assert f"{value!r} is not a JSON object such as" in done.output
    assert served_with == []
