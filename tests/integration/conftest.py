"""Fixtures for the engine's integration tests: clients of the real emulator server, and inputs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from scenario_upscale.api import ScenarioClient
from scenario_upscale.emulator import EmulatorServer
from tests.support import FAST_RETRY, write_images


@pytest.fixture
def make_client(fresh_emulator: EmulatorServer) -> Callable[..., ScenarioClient]:
    """A factory of clients of the (reset) emulator; strict SDK validation of every answer."""

    def make(**overrides: object) -> ScenarioClient:
        options: dict[str, object] = {
            "api_key": fresh_emulator.api_key,
            "api_secret": fresh_emulator.api_secret,
            "base_url": fresh_emulator.base_url,
            "strict_responses": True,
            "timeout_s": 5.0,
            "retry": FAST_RETRY,
        }
        options.update(overrides)
        return ScenarioClient(**options)  # type: ignore[arg-type]

    return make


@pytest.fixture
async def client(make_client: Callable[..., ScenarioClient]) -> AsyncIterator[ScenarioClient]:
    async with make_client() as scenario:
        yield scenario


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    return write_images(tmp_path / "in", 4)
