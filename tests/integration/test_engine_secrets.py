"""The API secret never shows up in logs, exceptions or results, even at DEBUG level."""

from __future__ import annotations

import base64
import logging
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from scenario_upscale.api import ScenarioClient
from scenario_upscale.batch import run_batch
from scenario_upscale.emulator import EmulatorServer
from scenario_upscale.errors import ScenarioAuthError
from tests.support import FAST_POLL, write_images


def _forms(key: str, secret: str) -> list[str]:
    basic = base64.b64encode(f"{key}:{secret}".encode()).decode()
    return [secret, basic]


async def test_a_whole_batch_logs_no_secret(
    make_client: Callable[..., ScenarioClient],
    fresh_emulator: EmulatorServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_images(tmp_path / "in", 2)
    caplog.set_level(logging.DEBUG)
    async with make_client() as client:
        report = await run_batch(
            client, str(tmp_path / "in"), str(tmp_path / "out"), poll=FAST_POLL
        )
        shown = repr(client)
    assert report.ok
    text = caplog.text + report.model_dump_json() + shown
    assert "Request options" in caplog.text  # the SDK's DEBUG logging really was captured
    for form in _forms(fresh_emulator.api_key, fresh_emulator.api_secret):
        assert form not in text


async def test_an_auth_failure_carries_no_secret(
    make_client: Callable[..., ScenarioClient],
    fresh_emulator: EmulatorServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "wrong-but-still-secret-42"
    caplog.set_level(logging.DEBUG)
    async with make_client(api_secret=wrong) as client:
        with pytest.raises(ScenarioAuthError) as caught:
            await client.get_model("model_upscale-v3")
    error = caught.value
    chain = "".join(traceback.format_exception(error)) + repr(vars(error))
    for form in _forms(fresh_emulator.api_key, wrong):
        assert form not in chain
        assert form not in caplog.text
    assert error.status_code == 401
