"""Shared pytest fixtures. Each block owns one concern; add new blocks below with a header."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scenario_upscale.emulator import EmulatorConfig, EmulatorServer

# The real Prefect server for the session (fixtures `prefect_server`, `prefect_client_settings`).
pytest_plugins = ["tests.prefect_server"]

# ============================================================================================
# Scenario API emulator
#
# `emulator`        one real HTTP server (uvicorn on 127.0.0.1, free port) for the whole session,
#                   with 0.5 s jobs. Use emulator.base_url / api_key / api_secret with any client.
# `fresh_emulator`  the same server, reset first: no assets/jobs/uploads, zeroed stats, and the
#                   start-up config (faults off). Use it whenever a test reads stats or sets faults.
# ============================================================================================

EMULATOR_JOB_DURATION_S = 0.5


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(job_duration_s=EMULATOR_JOB_DURATION_S)) as server:
        yield server


@pytest.fixture
def fresh_emulator(emulator: EmulatorServer) -> EmulatorServer:
    emulator.reset()
    return emulator
