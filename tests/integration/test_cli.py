"""The ``scenario-upscale`` command line, run as a user runs it: a subprocess."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from PIL import Image

from blocks.credentials import ScenarioCredentials
from commands.prefect_runtime import find_free_port
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
        deadline = time.monotonic() + 30
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
