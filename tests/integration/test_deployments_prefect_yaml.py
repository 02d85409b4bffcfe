"""``prefect deploy --all`` with the project's ``prefect.yaml``, against the session server.

Runs after ``test_deployments.py`` (same deployment names; its serve process is gone by then) and
deletes what it created, so later tests see no work pool deployments whose runs nobody picks up.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployments.definitions import ALL_DEPLOYMENTS, ASSET_UPLOADED
from tests.prefect_server import PrefectTestServer

pytestmark = pytest.mark.prefect_server

REPO = Path(__file__).parents[2]
POOL = "scenario-upscale"


def prefect(server: PrefectTestServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", *args],
        cwd=REPO,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture
def api(prefect_server: PrefectTestServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=prefect_server.api_url, timeout=10) as client:
        yield client


@pytest.fixture
def deployed(prefect_server: PrefectTestServer, api: httpx.Client) -> Iterator[str]:
    """Run ``prefect deploy --all``; afterwards delete its deployments, triggers and pool."""
    created = prefect(prefect_server, "work-pool", "create", POOL, "--type", "process")
    assert created.returncode == 0, created.stdout + created.stderr
    try:
        proc = prefect(prefect_server, "deploy", "--all")
        yield proc.stdout + proc.stderr
        assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        for name in ALL_DEPLOYMENTS:
            found = api.get(f"/deployments/name/{name}")
            if found.status_code == 200:
                deployment_id = found.json()["id"]
                for automation in _automations_of(api, deployment_id):
                    api.delete(f"/automations/{automation['id']}")
                api.delete(f"/deployments/{deployment_id}")
        api.delete(f"/work_pools/{POOL}")


def _automations_of(api: httpx.Client, deployment_id: str) -> list[dict[str, Any]]:
    automations: list[dict[str, Any]] = api.post("/automations/filter", json={}).json()
    return [
        a
        for a in automations
        if any(action.get("deployment_id") == deployment_id for action in a["actions"])
    ]


def test_prefect_deploy_all_validates_and_creates_every_deployment(
    deployed: str, api: httpx.Client
) -> None:
    before = hashlib.sha256((REPO / "prefect.yaml").read_bytes()).hexdigest()
    output = deployed
    assert "Traceback" not in output, output
    for name in ALL_DEPLOYMENTS:
        assert f"Deployment '{name}' successfully created" in output, output
        found = api.get(f"/deployments/name/{name}")
        assert found.status_code == 200, name
        deployment = found.json()
        assert deployment["work_pool_name"] == POOL
        # The build step recorded the project folder for the worker's pull step.
        assert deployment["pull_steps"] == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}
        ]
        env = deployment["job_variables"]["env"]
        assert env == {"PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true"}

    nightly = api.get("/deployments/name/upscale-new-assets/nightly").json()
    assert [s["schedule"]["cron"] for s in nightly["schedules"]] == ["0 2 * * *"]
    assert nightly["global_concurrency_limit"]["limit"] == 1
    assert nightly["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    assert nightly["parameters"]["source"] == "incoming"
    assert nightly["parameters"]["upscales"] == [
        {"model_id": "model_upscale-v3", "parameters": {"upscaleFactor": 2}}
    ]

    # The triggers became automations that run the deployments with templated parameters.
    uploaded = api.get("/deployments/name/upscale-batch/on-asset-uploaded").json()
    (automation,) = _automations_of(api, uploaded["id"])
    assert automation["trigger"]["expect"] == [ASSET_UPLOADED]
    assert automation["trigger"]["match"] == {"prefect.resource.id": "asset.*"}
    assert automation["actions"][0]["parameters"] == {"inputs": "{{ event.payload.location }}"}
    publish = api.get("/deployments/name/publish-upscaled/on-batch-completed").json()
    (automation,) = _automations_of(api, publish["id"])
    assert automation["trigger"]["expect"] == ["scenario.upscale.batch.completed"]
    assert automation["actions"][0]["parameters"] == {"outputs": "{{ event.payload.outputs }}"}

    # Deploying wrote nothing into the project.
    assert hashlib.sha256((REPO / "prefect.yaml").read_bytes()).hexdigest() == before
    assert not (REPO / ".prefect").exists()
