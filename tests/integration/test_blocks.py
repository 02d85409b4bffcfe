"""ScenarioCredentials against a real Prefect server and the Scenario emulator.

What a user does: register the block type, save credentials, load them in a flow, talk to the API.
And what nobody must see: the key and secret in the API's default answers, the CLI, or an error.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import traceback
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from blocks import ScenarioCredentials
from scenario_upscale.emulator import EmulatorServer
from scenario_upscale.errors import ScenarioAuthError

if TYPE_CHECKING:
    from tests.prefect_server import PrefectTestServer

pytestmark = pytest.mark.prefect_server

REPO = Path(__file__).parents[2]
SLUG = "scenario-credentials"
MASK = "********"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def prefect_cli(server: PrefectTestServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prefect", *args],
        cwd=REPO,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def secret_credentials(emulator: EmulatorServer) -> ScenarioCredentials:
    return ScenarioCredentials(
        api_key=emulator.api_key,
        api_secret=emulator.api_secret,
        base_url=emulator.base_url + "/",
        project_id="proj_blocks",
        timeout_s=5,
    )


def test_register_with_the_cli(prefect_server: PrefectTestServer) -> None:
    proc = prefect_cli(prefect_server, "block", "register", "-m", "blocks.credentials")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Successfully registered 1 block" in proc.stdout, proc.stdout

    # The package form the README shows registers the same single block type.
    proc = prefect_cli(prefect_server, "block", "register", "-m", "blocks")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Successfully registered 1 block" in proc.stdout, proc.stdout

    response = httpx.get(f"{prefect_server.api_url}/block_types/slug/{SLUG}", timeout=10)
    response.raise_for_status()
    block_type = response.json()
    assert block_type["name"] == "Scenario Credentials"
    assert block_type["documentation_url"] == (
        "https://docs.scenario.com/docs/key-concepts-terminology"
    )
    assert block_type["logo_url"].startswith("https://")
    assert block_type["description"]

    schemas = httpx.post(
        f"{prefect_server.api_url}/block_schemas/filter",
        json={"block_schemas": {"block_type_id": {"any_": [block_type["id"]]}}},
        timeout=10,
    )
    schemas.raise_for_status()
    assert [s["fields"]["secret_fields"] for s in schemas.json()] == [["api_key", "api_secret"]]


async def test_save_and_load_round_trip(
    prefect_client_settings: PrefectTestServer, fresh_emulator: EmulatorServer
) -> None:
    name = unique("roundtrip")
    saved = secret_credentials(fresh_emulator)
    await saved.asave(name)

    loaded = await ScenarioCredentials.aload(name)
    assert loaded.model_dump() == saved.model_dump()
    assert loaded.api_key.get_secret_value() == fresh_emulator.api_key
    assert loaded.api_secret.get_secret_value() == fresh_emulator.api_secret
    assert loaded.base_url == fresh_emulator.base_url  # stored without the trailing slash
    assert loaded.project_id == "proj_blocks"
    assert loaded.timeout_s == 5

    # Overwriting needs overwrite=True, as for any block: a second save must not clobber silently.
    with pytest.raises(ValueError, match="already in use"):
        await saved.asave(name)


async def test_server_masks_secrets_unless_asked_and_the_open_source_caveat(
    prefect_client_settings: PrefectTestServer, fresh_emulator: EmulatorServer
) -> None:
    from prefect.client.orchestration import get_client

    name = unique("masked")
    await secret_credentials(fresh_emulator).asave(name)
    key, secret = fresh_emulator.api_key, fresh_emulator.api_secret

    async with get_client() as prefect:
        document = await prefect.read_block_document_by_name(
            name, block_type_slug=SLUG, include_secrets=False
        )
    assert document.data["api_key"] == MASK
    assert document.data["api_secret"] == MASK
    assert document.data["base_url"] == fresh_emulator.base_url

    url = f"{prefect_client_settings.api_url}/block_types/slug/{SLUG}/block_documents/name/{name}"
    async with httpx.AsyncClient(timeout=10) as http:
        default = await http.get(url)
        revealed = await http.get(url, params={"include_secrets": "true"})
    default.raise_for_status()
    assert default.json()["data"]["api_secret"] == MASK
    assert secret not in default.text
    assert key not in default.text

    # The caveat the README documents: the open-source server has no authentication, so anyone
    # who reaches its API can ask for the plaintext. If Prefect ever changes this, update the
    # README's "Security" note along with this assertion.
    revealed.raise_for_status()
    assert revealed.json()["data"]["api_secret"] == secret
    assert revealed.json()["data"]["api_key"] == key


async def test_cli_inspect_does_not_show_the_secret(
    prefect_client_settings: PrefectTestServer, fresh_emulator: EmulatorServer
) -> None:
    name = unique("inspect")
    await secret_credentials(fresh_emulator).asave(name)

    proc = await asyncio.to_thread(
        prefect_cli, prefect_client_settings, "block", "inspect", f"{SLUG}/{name}"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    output = proc.stdout + proc.stderr
    assert name in output
    assert "api_secret" in output
    assert MASK in output
    assert fresh_emulator.api_secret not in output
    assert fresh_emulator.api_key not in output


async def test_loaded_block_talks_to_the_emulator(
    prefect_client_settings: PrefectTestServer, fresh_emulator: EmulatorServer
) -> None:
    name = unique("client")
    await secret_credentials(fresh_emulator).asave(name)

    loaded = await ScenarioCredentials.aload(name)
    async with loaded.get_client(strict_responses=True) as client:
        model = await client.get_model("model_upscale-v3")
    assert model.id == "model_upscale-v3"


async def test_wrong_secret_raises_auth_error_without_the_secret(
    prefect_client_settings: PrefectTestServer, fresh_emulator: EmulatorServer
) -> None:
    wrong = "wrong-secret-" + uuid.uuid4().hex
    name = unique("wrong")
    await ScenarioCredentials(
        api_key=fresh_emulator.api_key, api_secret=wrong, base_url=fresh_emulator.base_url
    ).asave(name)

    loaded = await ScenarioCredentials.aload(name)
    async with loaded.get_client() as client:
        with pytest.raises(ScenarioAuthError) as caught:
            await client.get_model("model_upscale-v3")

    error = caught.value
    assert error.status_code == 401
    assert str(error).startswith("GET /models/model_upscale-v3 failed with HTTP 401: ")
    basic = base64.b64encode(f"{fresh_emulator.api_key}:{wrong}".encode()).decode()
    # The whole printed traceback, chained SDK exception included.
    printed = "".join(traceback.format_exception(error))
    for text in (str(error), repr(error), printed):
        assert wrong not in text
        assert basic not in text
