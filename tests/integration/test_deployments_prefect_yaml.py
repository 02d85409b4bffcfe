"""``prefect.yaml``: generated from the definitions, deployed with ``prefect deploy --all``
against the session server, and equal to what ``scenario-upscale serve`` registers.

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
from typer.testing import CliRunner

from deployments import generate
from deployments.definitions import ALL_DEPLOYMENTS, ASSET_UPLOADED
from tests.prefect_server import PrefectTestServer
from tests.support import serving

pytestmark = pytest.mark.prefect_server

REPO = Path(__file__).parents[2]
POOL = "scenario-upscale"
AUTOMATIONS = {"upscale-on-asset-uploaded", "publish-on-batch-completed"}


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
    # A new connection per request: the server closes one left idle through `prefect deploy`
    # (uvicorn's 5 s keep-alive), and a request racing that close was reset (seen once).
    no_keep_alive = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=prefect_server.api_url, timeout=10, limits=no_keep_alive) as client:
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
        _delete_deployments(api)
        api.delete(f"/work_pools/{POOL}")


def _delete_deployments(api: httpx.Client) -> None:
    """Delete the project's deployments and the automations their triggers made."""
    for name in ALL_DEPLOYMENTS:
        found = api.get(f"/deployments/name/{name}")
        if found.status_code == 200:
            deployment_id = found.json()["id"]
            for automation in _automations_of(api, deployment_id):
                api.delete(f"/automations/{automation['id']}")
            api.delete(f"/deployments/{deployment_id}")


def _automations_of(api: httpx.Client, deployment_id: str) -> list[dict[str, Any]]:
    automations: list[dict[str, Any]] = api.post("/automations/filter", json={}).json()
    return [
        a
        for a in automations
        if any(action.get("deployment_id") == deployment_id for action in a["actions"])
    ]


def _trigger(automation: dict[str, Any]) -> dict[str, Any]:
    trigger, (action,) = automation["trigger"], automation["actions"]
    return {
        "name": automation["name"],
        "enabled": automation["enabled"],
        **{k: trigger[k] for k in ("expect", "match", "posture", "threshold", "within")},
        "parameters": action["parameters"],
    }


def _declared(api: httpx.Client, name: str) -> dict[str, Any]:
    """What a deployment does, whoever registered it: prefect deploy or serve."""
    deployment = api.get(f"/deployments/name/{name}").json()
    return {
        "description": deployment["description"],
        "entrypoint": deployment["entrypoint"],
        "tags": deployment["tags"],
        "parameters": deployment["parameters"],
        "schedules": [(s["schedule"], s["active"]) for s in deployment["schedules"]],
        "concurrency_limit": (deployment["global_concurrency_limit"] or {}).get("limit"),
        "collision_strategy": (deployment["concurrency_options"] or {}).get("collision_strategy"),
        "triggers": [_trigger(a) for a in _automations_of(api, deployment["id"])],
    }


def test_prefect_yaml_is_generated_from_the_definitions() -> None:
    assert (REPO / "prefect.yaml").read_text(encoding="utf-8") == generate.render(), (
        "prefect.yaml differs from deployments/definitions.py: run `python -m deployments.generate`"
    )


def test_generate_writes_prefect_yaml_and_check_names_a_stale_one(tmp_path: Path) -> None:
    output = tmp_path / "prefect.yaml"
    runner = CliRunner()
    missing = runner.invoke(generate.app, ["--output", str(output), "--check"])
    assert missing.exit_code == 1
    assert f"{output} is not what deployments/definitions.py declares" in missing.output
    assert "run `python -m deployments.generate`" in missing.output

    assert runner.invoke(generate.app, ["--output", str(output)]).exit_code == 0
    assert output.read_text(encoding="utf-8") == generate.render()
    assert runner.invoke(generate.app, ["--output", str(output), "--check"]).exit_code == 0

    output.write_text(generate.render().replace("upscaleFactor: 2", "upscaleFactor: 4"))
    stale = runner.invoke(generate.app, ["--output", str(output), "--check"])
    assert stale.exit_code == 1 and "is not what" in stale.output


def test_prefect_deploy_all_validates_and_creates_every_deployment(
    deployed: str, api: httpx.Client, prefect_server: PrefectTestServer, tmp_path: Path
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

    # Served from the project folder with no options, the same deployments, field for field.
    deployed_view = {name: _declared(api, name) for name in ALL_DEPLOYMENTS}
    _delete_deployments(api)
    with serving(
        [],
        api_url=prefect_server.api_url,
        env=prefect_server.env,
        cwd=REPO,
        log=tmp_path / "serve.log",
        deployments=ALL_DEPLOYMENTS,
        automations=AUTOMATIONS,
        timeout_s=120,
    ):
        served_view = {name: _declared(api, name) for name in ALL_DEPLOYMENTS}
    assert served_view == deployed_view
