"""The Prefect block that holds Scenario API credentials and builds the engine's client."""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlsplit

import httpx
from prefect.blocks.abstract import CredentialsBlock
from pydantic import ConfigDict, Field, HttpUrl, SecretStr, field_validator

from scenario_upscale.api import DEFAULT_BASE_URL, ScenarioClient
from scenario_upscale.retry import RetryPolicy


class ScenarioCredentials(CredentialsBlock):
    """Scenario API key and secret, plus where and how to reach the API.

    Scenario authenticates with HTTP Basic auth built from an API key and its secret (create them
    in the Scenario web app, under your project's API keys). Both are stored as secrets: Prefect
    shows them as ``********`` in the UI, the CLI and the API, and only :meth:`get_client` reads
    them.

    On a self-hosted (open-source) Prefect server, block secrets are encrypted at rest but
    readable by anyone who can reach the server's API (``include_secrets=true``): protect the
    server, or use Prefect Cloud.

    Attributes:
        api_key: The Scenario API key.
        api_secret: The secret that goes with ``api_key``.
        base_url: The API's base URL, ``https://api.cloud.scenario.com/v1`` unless you point it at
            a Scenario emulator or a proxy.
        project_id: The Scenario project to work in (sent as ``?projectId=``); leave it empty for
            the key's default project.
        timeout_s: Seconds before a single HTTP request times out.

    Example:
        Save the block once (or create it in the Prefect UI), then load it in flows:

        ```python
        from blocks import ScenarioCredentials

        ScenarioCredentials(api_key="api_...", api_secret="...", project_id="proj_...").save(
            "scenario"
        )

        credentials = ScenarioCredentials.load("scenario")
        async with credentials.get_client() as client:
            model = await client.get_model("model_upscale-v3")
        ```

        In async code, use ``await ScenarioCredentials.aload("scenario")`` and
        ``await credentials.asave("scenario")``.
    """

    _block_type_name: ClassVar[str | None] = "Scenario Credentials"
    _block_type_slug: ClassVar[str | None] = "scenario-credentials"
    _logo_url: ClassVar[HttpUrl | None] = HttpUrl(
        "https://cdn.cloud.scenario.com/static/scenario-logo.png"
    )
    _documentation_url: ClassVar[HttpUrl | None] = HttpUrl(
        "https://docs.scenario.com/docs/key-concepts-terminology"
    )
    _description: ClassVar[str | None] = (
        "Scenario API key and secret, base URL and project, used by the Scenario upscale flows "
        "to authenticate with the Scenario API."
    )

    # pydantic puts the whole input in some errors (a missing field shows every field given, the
    # key and secret included); our own messages name the bad value where it is safe to.
    model_config = ConfigDict(hide_input_in_errors=True)

    # The key is a SecretStr too, although on its own it cannot authenticate: the key and the
    # secret together form the Basic-auth credential, so a leaked key is half of one, and the
    # key names the team that gets billed. The usability cost is small: the block's name, not
    # the key, is what users pick in the UI, and rotating a key means re-entering both anyway.
    api_key: SecretStr = Field(
        title="API key",
        description="Your Scenario API key (Scenario web app > project settings > API keys).",
    )
    api_secret: SecretStr = Field(
        title="API secret",
        description="The secret shown once when the API key was created.",
    )
    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        title="API base URL",
        description=(
            "Where the Scenario API lives. Keep the default unless you use a Scenario emulator "
            "(e.g. http://127.0.0.1:8765/v1) or a proxy."
        ),
    )
    project_id: str | None = Field(
        default=None,
        title="Project ID",
        description="Scenario project to use (sent as projectId). Empty: the key's default.",
    )
    timeout_s: float = Field(
        default=60.0,
        gt=0,
        title="Request timeout (seconds)",
        description="Seconds before a single API request times out.",
    )

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        url = value.strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"base_url must be an http:// or https:// URL such as {DEFAULT_BASE_URL!r}, "
                f"got {value!r}"
            )
        if parts.username is not None or parts.password is not None:
            # Not echoed: this field is not secret, so the whole URL would be shown everywhere.
            raise ValueError(
                "base_url must not contain a user name or password; "
                "put the credentials in api_key and api_secret"
            )
        if parts.query or parts.fragment:
            raise ValueError(f"base_url must not have a query string or fragment, got {value!r}")
        return url.rstrip("/")

    @field_validator("project_id")
    @classmethod
    def _empty_project_is_none(cls, value: str | None) -> str | None:
        # The UI form sends "" for a cleared field; an empty projectId would be sent as-is.
        return (value.strip() or None) if value is not None else None

    def get_client(
        self,
        *,
        retry: RetryPolicy | None = None,
        strict_responses: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 20,
    ) -> ScenarioClient:
        """A new :class:`~scenario_upscale.api.ScenarioClient` for these credentials.

        Use it as an async context manager so its connections are closed.

        Args:
            retry: How idempotent calls retry transient failures (the client's default if None).
            strict_responses: Validate every answer strictly against the SDK's models.
            transport: An httpx transport (tests, custom networking).
            max_connections: Connection pool size.

        Returns:
            A client; nothing is sent until its first call.

        Example:
            ```python
            async with ScenarioCredentials.load("scenario").get_client() as client:
                job = await client.get_job("job_...")
            ```
        """
        return ScenarioClient(
            api_key=self.api_key.get_secret_value(),
            api_secret=self.api_secret.get_secret_value(),
            base_url=self.base_url,
            project_id=self.project_id,
            timeout_s=self.timeout_s,
            retry=retry,
            strict_responses=strict_responses,
            transport=transport,
            max_connections=max_connections,
        )
