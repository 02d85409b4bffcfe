"""ScenarioCredentials without a Prefect server: masking, validation, and the client it builds."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from blocks import ScenarioCredentials
from scenario_upscale.api import DEFAULT_BASE_URL
from scenario_upscale.errors import ScenarioAuthError

KEY = "key-visible-ABC123"
SECRET = "secret-visible-XYZ789"


def make(**overrides: Any) -> ScenarioCredentials:
    options: dict[str, Any] = {"api_key": KEY, "api_secret": SECRET}
    options.update(overrides)
    return ScenarioCredentials(**options)


def assert_no_secret(text: str) -> None:
    assert KEY not in text
    assert SECRET not in text


# --- masking -------------------------------------------------------------------------------


def test_repr_str_and_dumps_mask_key_and_secret() -> None:
    creds = make(project_id="proj_1")
    for text in (
        repr(creds),
        str(creds),
        f"{creds}",
        str(creds.model_dump()),
        str(creds.model_dump(mode="json")),
        creds.model_dump_json(),
    ):
        assert_no_secret(text)
        assert "proj_1" in text  # the non-secret fields are still there
    assert creds.model_dump(mode="json")["api_secret"] == "**********"
    assert creds.model_dump(mode="json")["api_key"] == "**********"


def test_validation_errors_never_echo_the_inputs() -> None:
    # pydantic's default "missing" error prints every field given, the key included.
    with pytest.raises(ValidationError) as caught:
        ScenarioCredentials(api_key=KEY)  # type: ignore[call-arg]
    assert "api_secret" in str(caught.value)
    assert "Field required" in str(caught.value)
    assert_no_secret(str(caught.value))
    assert_no_secret(repr(caught.value))

    with pytest.raises(ValidationError) as caught:
        make(base_url="not a url", timeout_s=-1)
    assert_no_secret(str(caught.value))


def test_only_get_client_reads_the_secrets() -> None:
    source = (Path(__file__).parents[2] / "blocks" / "credentials.py").read_text()
    assert len(re.findall(r"get_secret_value\(\)", source)) == 2  # api_key, api_secret
    get_client = source[source.index("def get_client") :]
    assert get_client.count("get_secret_value()") == 2


# --- validation ----------------------------------------------------------------------------


def test_defaults() -> None:
    creds = make()
    assert creds.base_url == DEFAULT_BASE_URL
    assert creds.project_id is None
    assert creds.timeout_s == 60.0


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("https://api.cloud.scenario.com/v1/", "https://api.cloud.scenario.com/v1"),
        ("http://127.0.0.1:8765/v1//", "http://127.0.0.1:8765/v1"),
        ("  https://proxy.example.com/scenario/v1  ", "https://proxy.example.com/scenario/v1"),
        ("HTTPS://API.example.com/v1", "HTTPS://API.example.com/v1"),
    ],
)
def test_base_url_is_normalised(given: str, stored: str) -> None:
    assert make(base_url=given).base_url == stored


@pytest.mark.parametrize(
    "bad",
    ["api.cloud.scenario.com/v1", "ftp://api.cloud.scenario.com/v1", "https://", "", "/v1"],
)
def test_bad_base_url_is_rejected_with_a_clear_message(bad: str) -> None:
    with pytest.raises(ValidationError) as caught:
        make(base_url=bad)
    message = str(caught.value)
    assert "base_url must be an http:// or https:// URL such as " in message
    assert repr(DEFAULT_BASE_URL) in message
    assert f"got {bad!r}" in message


def test_base_url_with_query_is_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        make(base_url="https://api.cloud.scenario.com/v1?projectId=p")
    assert "base_url must not have a query string or fragment, got " in str(caught.value)
    assert "'https://api.cloud.scenario.com/v1?projectId=p'" in str(caught.value)


def test_base_url_with_credentials_is_rejected_without_echoing_them() -> None:
    with pytest.raises(ValidationError) as caught:
        make(base_url=f"https://{KEY}:{SECRET}@api.cloud.scenario.com/v1")
    assert "base_url must not contain a user name or password; put the credentials in " in str(
        caught.value
    )
    assert_no_secret(str(caught.value))


@pytest.mark.parametrize(("given", "stored"), [("", None), ("  ", None), (" proj_1 ", "proj_1")])
def test_empty_project_id_from_the_ui_form_means_none(given: str, stored: str | None) -> None:
    assert make(project_id=given).project_id == stored


@pytest.mark.parametrize("bad", [0, -5])
def test_timeout_must_be_positive(bad: float) -> None:
    with pytest.raises(ValidationError, match="greater than 0"):
        make(timeout_s=bad)


def test_block_type_metadata_and_ui_schema() -> None:
    assert ScenarioCredentials.get_block_type_name() == "Scenario Credentials"
    assert ScenarioCredentials.get_block_type_slug() == "scenario-credentials"
    assert str(ScenarioCredentials._logo_url).startswith("https://")
    assert str(ScenarioCredentials._documentation_url) == (
        "https://docs.scenario.com/docs/key-concepts-terminology"
    )
    schema = ScenarioCredentials.model_json_schema()
    assert schema["secret_fields"] == ["api_key", "api_secret"]
    assert schema["required"] == ["api_key", "api_secret"]
    for name, prop in schema["properties"].items():
        assert prop.get("title"), name
        assert prop.get("description"), name
    assert schema["properties"]["api_secret"]["format"] == "password"
    assert schema["properties"]["api_key"]["format"] == "password"


# --- get_client ----------------------------------------------------------------------------


def test_get_client_uses_the_blocks_settings() -> None:
    creds = make(base_url="http://emu.test/v1/", project_id="proj_1", timeout_s=7)
    client = creds.get_client(max_connections=3)
    assert client.base_url == "http://emu.test/v1"
    assert client.project_id == "proj_1"
    assert client._http.timeout.read == 7.0
    assert repr(client) == "ScenarioClient(base_url='http://emu.test/v1', project_id='proj_1')"
    assert_no_secret(repr(client))
    assert_no_secret(str(client))


async def test_get_client_authenticates_with_the_key_and_secret() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(401, json={"reason": "Invalid API key or secret"})

    creds = make(base_url="http://emu.test/v1", project_id="proj_1")
    async with creds.get_client(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(ScenarioAuthError) as caught:
            await client.get_model("model_upscale-v3")

    (request,) = requests
    assert str(request.url) == "http://emu.test/v1/models/model_upscale-v3?projectId=proj_1"
    expected = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {expected}"
    error = caught.value
    assert (
        str(error) == "GET /models/model_upscale-v3 failed with HTTP 401: Invalid API key or secret"
    )
    for text in (str(error), repr(error)):
        assert_no_secret(text)
        assert expected not in text
