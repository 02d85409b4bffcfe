"""After ``scenario-upscale demo``, serving finds a working ``scenario`` block: the demo saves
its block under the default name, and ``serve`` starts the embedded emulator again on the port
that block names when nothing answers there (the demo's emulator stopped with the demo)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from blocks.credentials import ScenarioCredentials
from commands.demo import DEMO_BLOCK, local_emulator
from commands.prefect_runtime import find_free_port
from flows.options import DEFAULT_CREDENTIALS_BLOCK
from scenario_upscale.emulator import EmulatorConfig
from tests.prefect_server import PrefectTestServer

pytestmark = pytest.mark.prefect_server


def test_the_demo_saves_its_block_under_the_name_serve_uses() -> None:
    assert DEMO_BLOCK == DEFAULT_CREDENTIALS_BLOCK == "scenario"


def test_serve_starts_the_emulator_the_block_points_at(
    prefect_client_settings: PrefectTestServer,
) -> None:
    name = f"demo-{uuid.uuid4().hex[:8]}"
    base_url = f"http://127.0.0.1:{find_free_port()}/v1"
    emulator = EmulatorConfig()
    ScenarioCredentials(
        api_key=emulator.api_key,
        api_secret=emulator.api_secret.get_secret_value(),
        base_url=base_url,
    ).save(name)
    said: list[str] = []

    with local_emulator(name, said.append):
        answer = httpx.get(
            f"{base_url}/models/model_upscale-v3",
            auth=(emulator.api_key, emulator.api_secret.get_secret_value()),
            timeout=30,
        )

    assert answer.status_code == 200, answer.text
    assert said == [
        f"Started the embedded Scenario emulator at {base_url}: the {name!r} block points at "
        "it (saved by `scenario-upscale demo`)."
    ]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/models/model_upscale-v3", timeout=5)


def test_serve_leaves_a_remote_api_alone(prefect_client_settings: PrefectTestServer) -> None:
    name = f"cloud-{uuid.uuid4().hex[:8]}"
    ScenarioCredentials(
        api_key="k", api_secret="s", base_url="https://api.cloud.scenario.com/v1"
    ).save(name)
    said: list[str] = []

    with local_emulator(name, said.append):
        pass

    assert said == []
