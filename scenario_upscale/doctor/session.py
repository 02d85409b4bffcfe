"""The doctor's live conversation with the API: the raw wire client, the engine's client, and
what each check learnt for the next. The only place the secret is read."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import httpx
from PIL import Image

from scenario_upscale.api import ScenarioClient, error_fields
from scenario_upscale.doctor.findings import (
    Behaviour,
    Check,
    DoctorSettings,
    Findings,
    Observation,
    Verdict,
)
from scenario_upscale.models import ModelSpec
from scenario_upscale.retry import RetryPolicy


class Stop(Exception):
    """A check failed in a way the later checks depend on."""


def json_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def reason_of(response: httpx.Response) -> str:
    """The API's own words for an error, whichever key it uses (contract §5)."""
    reason, _, _ = error_fields(json_of(response))
    return reason or response.text[:200] or response.reason_phrase


def png(size: tuple[int, int], *, noise: bool) -> bytes:
    """A PNG; random pixels do not compress, so its size is about ``width * height * 3``."""
    if noise:
        image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    else:
        image = Image.new("RGB", size, (40, 120, 200))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def decoded_size(data: bytes) -> tuple[int, int] | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # a full decode: a truncated file fails here, not only its header
            return image.size
    except (OSError, ValueError):
        return None


class Session:
    """The live conversation: the wire client, the engine's client, and what was learnt."""

    def __init__(
        self, settings: DoctorSettings, report: Callable[[Check], None], findings: Findings
    ) -> None:
        self.settings = settings
        self.report = report
        self.findings = findings
        self.model: ModelSpec | None = None
        self.input_asset: str | None = None
        self.body: dict[str, Any] = {}
        self.cost: float | None = None
        self.job: dict[str, Any] = {}
        self.submitted_at = datetime.now(UTC)
        self._wire: httpx.AsyncClient | None = None
        self._cdn: httpx.AsyncClient | None = None
        self._engine: ScenarioClient | None = None

    async def __aenter__(self) -> Self:
        self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for client in (self._wire, self._cdn):
            if client is not None:
                await client.aclose()
        if self._engine is not None:
            await self._engine.aclose()

    def open(self) -> None:
        """The only place the secret is read: for the wire's Basic auth and the engine client."""
        key = self.settings.api_key.get_secret_value()
        secret = self.settings.api_secret.get_secret_value()
        timeout = httpx.Timeout(self.settings.timeout_s, connect=min(10.0, self.settings.timeout_s))
        self._wire = httpx.AsyncClient(
            base_url=self.settings.base_url.rstrip("/") + "/",
            auth=httpx.BasicAuth(key, secret),
            timeout=timeout,
        )
        # Signed CDN URLs must not carry our credentials (contract §3.11).
        self._cdn = httpx.AsyncClient(timeout=timeout, follow_redirects=True)
        self._engine = ScenarioClient(
            api_key=key,
            api_secret=secret,
            base_url=self.settings.base_url,
            project_id=self.settings.project_id,
            timeout_s=self.settings.timeout_s,
            retry=RetryPolicy(attempts=3, base_delay_s=0.5, max_delay_s=5.0),
        )

    @property
    def engine(self) -> ScenarioClient:
        assert self._engine is not None
        return self._engine

    @property
    def cdn(self) -> httpx.AsyncClient:
        assert self._cdn is not None
        return self._cdn

    async def call(
        self,
        method: str,
        path: str,
        *,
        project: str | None = None,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
    ) -> httpx.Response:
        """One API request; ``projectId`` is the configured one unless ``project`` overrides it."""
        assert self._wire is not None
        query = dict(params or {})
        project_id = project or self.settings.project_id
        if project_id:
            query["projectId"] = project_id
        try:
            return await self._wire.request(method, path, params=query, json=json_body)
        except httpx.TransportError as error:
            raise Stop(
                f"{method} /{path}: no answer from the API ({type(error).__name__})"
            ) from None

    def check(self, step: str, verdict: Verdict, message: str, **seen: Any) -> Check:
        result = Check(step=step, verdict=verdict, message=message, seen=seen)
        self.findings.checks.append(result)
        self.report(result)
        return result

    def fail(self, step: str, message: str, **seen: Any) -> Stop:
        self.check(step, "FAIL", message, **seen)
        return Stop(message)

    def observe(self, behaviour: Behaviour, evidence: str, *, copes: bool, how: str) -> None:
        """Record a behaviour; a second sign of one already seen adds to its evidence."""
        seen = self.findings.behaviours
        index = next((i for i, b in enumerate(seen) if b.behaviour == behaviour), None)
        if index is None:
            seen.append(
                Observation(behaviour=behaviour, evidence=evidence, engine_copes=copes, how=how)
            )
            return
        earlier = seen[index]
        seen[index] = Observation(
            behaviour=behaviour,
            evidence=f"{earlier.evidence}; {evidence}",
            engine_copes=earlier.engine_copes and copes,
            how=earlier.how if earlier.how == how else f"{earlier.how}; {how}",
        )
