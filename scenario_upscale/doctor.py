"""``scenario-upscale doctor``: which of the plausible answers does *this* Scenario account give?

Where the API contract is unconfirmed, the emulator can give several plausible answers (its
profiles, named in ``Behaviour``). The doctor asks the live API once, in order: auth and project,
one model and its ``inputs[]``, a tiny upload and a large-body probe, the dry run; then, only when
asked to spend, one real job of the cheapest upscale: its submit, its polling, the listing and
echo that reconciliation relies on, and its download with and without originals.

Two readings of each answer:
- the *wire*, read here with raw httpx (statuses, body shapes and byte counts that the SDK and our
  client hide or reject), which names the behaviours the API shows;
- the *engine's own code* (dry-run reader, reconciliation search, listing, collect) run on the same
  account, which says whether the engine copes with them.

Nothing here prints: checks are reported through a callback, so the command layer owns the
terminal. Secrets are read in one place (``_Session.open``) and never reach a check or the JSON.

Example:
    >>> async def main() -> None:
    ...     settings = DoctorSettings(api_key=SecretStr("k"), api_secret=SecretStr("s"))
    ...     findings = await run_doctor(settings, confirm=lambda cost: False, report=print)
    ...     write_findings(findings, Path("scenario-doctor.json"))
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import httpx
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, SecretStr, computed_field

from scenario_upscale.api import (
    BASE64_UPLOAD_LIMIT,
    DEFAULT_BASE_URL,
    ScenarioClient,
    read_dry_run,
)
from scenario_upscale.errors import ScenarioError, ScenarioRateLimited
from scenario_upscale.models import ModelSpec, terminal_outcome
from scenario_upscale.params import build_body, file_input
from scenario_upscale.retry import RetryPolicy
from scenario_upscale.storage import download

Behaviour = Literal[
    "transformed-urls",
    "ceiling-no-retry-hint",
    "dry-run-200",
    "dry-run-with-job",
    "normalised-echo",
    "gateway-limits",
    "sparse-pages",
    "strict-project",
]
"""The non-default emulator profiles (``coord/PROFILES.md``): one plausible answer each."""

Verdict = Literal["ok", "note", "FAIL", "skipped"]

DEFAULT_MODEL = "model_upscale-v3"
"""Scenario's own upscaler, the engine's default model. Prices follow output pixels (contract
§6.3): on the doctor's 64x48 image an upscaler costs about its per-job minimum."""
WRONG_PROJECT = "proj_scenario-doctor-not-yours"
LARGE_PROBE_BYTES = 5_000_000
"""Raw size of the large-body probe: ~6.7 MB of base64, above a common 6 MB gateway cap."""
TINY_SIZE = (64, 48)
DRY_RUN_STATUS = 269
"""The dry-run status the engine was first written for (the emulator's default)."""
_SCALE_INPUTS = ("upscaleFactor", "scaleFactor", "factor")
_LIST_PAGE_SIZE = 2
"""Small pages, so that even a few recent jobs show how the API pages them."""
_MAX_PAGES = 50


class DoctorSettings(BaseModel):
    """Where to probe, with what credentials, and how much the doctor may spend."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    api_key: SecretStr
    api_secret: SecretStr
    base_url: str = DEFAULT_BASE_URL
    project_id: str | None = None
    model_id: str = DEFAULT_MODEL
    submit: bool = False
    max_creative_units: float = Field(default=2.0, gt=0)
    timeout_s: float = Field(default=60.0, gt=0)
    job_deadline_s: float = Field(default=900.0, gt=0)
    """How long the submitted job may take before the doctor stops polling it."""
    ceiling_wait_s: float = Field(default=900.0, ge=0)
    """How long to wait for a free slot when the team's concurrency ceiling answers 429."""


class Check(BaseModel):
    """One line of the report: a step, its verdict and what was seen."""

    step: str
    verdict: Verdict
    message: str
    seen: dict[str, Any] = Field(default_factory=dict)


class Observation(BaseModel):
    """A behaviour the API showed, and whether the engine's own code coped with it."""

    behaviour: Behaviour
    evidence: str
    engine_copes: bool
    how: str


class Findings(BaseModel):
    """Everything the doctor found, as written to ``scenario-doctor.json``."""

    base_url: str
    project_id: str | None
    model_id: str
    submitted: bool = False
    job_id: str | None = None
    creative_units_spent: float = 0.0
    checks: list[Check] = Field(default_factory=list)
    behaviours: list[Observation] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def assumptions_hold(self) -> bool:
        """No check failed and the engine coped with every behaviour seen."""
        return all(c.verdict != "FAIL" for c in self.checks) and all(
            b.engine_copes for b in self.behaviours
        )

    def behaviour_names(self) -> list[Behaviour]:
        return [b.behaviour for b in self.behaviours]


def write_findings(findings: Findings, path: Path) -> None:
    """Write the findings as indented JSON (no secret is ever part of them)."""
    path.write_text(findings.model_dump_json(indent=2) + "\n", encoding="utf-8")


class _Stop(Exception):
    """A check failed in a way the later checks depend on."""


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _reason(response: httpx.Response) -> str:
    """The API's own words for an error, whichever key it uses (contract §5)."""
    body = _json(response)
    if isinstance(body, dict):
        for key in ("reason", "message", "error", "detail"):
            if body.get(key):
                return str(body[key])
    return response.text[:200] or response.reason_phrase


def _png(size: tuple[int, int], *, noise: bool) -> bytes:
    """A PNG; random pixels do not compress, so its size is about ``width * height * 3``."""
    if noise:
        image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    else:
        image = Image.new("RGB", size, (40, 120, 200))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _decoded_size(data: bytes) -> tuple[int, int] | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # a full decode: a truncated file fails here, not only its header
            return image.size
    except (OSError, ValueError):
        return None


class _Session:
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
            raise _Stop(
                f"{method} /{path}: no answer from the API ({type(error).__name__})"
            ) from None

    def check(self, step: str, verdict: Verdict, message: str, **seen: Any) -> Check:
        result = Check(step=step, verdict=verdict, message=message, seen=seen)
        self.findings.checks.append(result)
        self.report(result)
        return result

    def fail(self, step: str, message: str, **seen: Any) -> _Stop:
        self.check(step, "FAIL", message, **seen)
        return _Stop(message)

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


# -- 1. auth and project ----------------------------------------------------------------------


async def probe_auth(s: _Session) -> None:
    """A cheap authenticated GET with the user's project, then one with a project not theirs."""
    step = "auth and project"
    mine = await s.call("GET", "jobs", params={"pageSize": 1})
    if mine.status_code == 401:
        raise s.fail(
            step,
            f"the API refused the key and secret (HTTP 401: {_reason(mine)}); check the API key "
            "and its secret (Scenario web app > project settings > API keys)",
            status=401,
        )
    if mine.status_code in (400, 403):
        if s.settings.project_id:
            advice = (
                f"the API refused project {s.settings.project_id!r} (HTTP {mine.status_code}: "
                f"{_reason(mine)}); use the id of the project the API key was created in "
                "(proj_…, in the Scenario web app's project settings)"
            )
        else:
            advice = (
                f"the API refused a request without a project (HTTP {mine.status_code}: "
                f"{_reason(mine)}); set the project id (--project-id, or the block's project_id)"
            )
            s.observe(
                "strict-project",
                f"HTTP {mine.status_code} without projectId",
                copes=False,
                how="the engine sends projectId only when one is configured: configure it",
            )
        raise s.fail(step, advice, status=mine.status_code)
    if mine.status_code != 200:
        raise s.fail(step, f"GET /jobs answered HTTP {mine.status_code}: {_reason(mine)}")
    other = await s.call("GET", "jobs", project=WRONG_PROJECT, params={"pageSize": 1})
    if other.status_code in (400, 403, 404):
        s.observe(
            "strict-project",
            f"a project not ours answered HTTP {other.status_code}: {_reason(other)}",
            copes=True,
            how=(
                "the engine sends the configured projectId on every call, and yours was accepted"
                if s.settings.project_id
                else "the engine sends no projectId when none is configured, which was accepted"
            ),
        )
        s.check(
            step,
            "note",
            "authenticated; the API enforces project ownership",
            wrong=other.status_code,
        )
    else:
        s.check(
            step, "ok", "authenticated; a projectId not ours is ignored", wrong=other.status_code
        )


# -- 2. the model -----------------------------------------------------------------------------


def _scale_parameters(model: ModelSpec) -> dict[str, Any]:
    """The model's numeric scale input at its default: a number sent, to see how it is echoed."""
    for name in _SCALE_INPUTS:
        spec = model.input(name)
        if spec is not None and spec.type == "number" and isinstance(spec.default, int | float):
            return {name: int(spec.default) if float(spec.default).is_integer() else spec.default}
    return {}


async def probe_model(s: _Session) -> None:
    step = "model and inputs[]"
    model_id = s.settings.model_id
    response = await s.call("GET", f"models/{model_id}")
    if response.status_code != 200:
        raise s.fail(
            step,
            f"GET /models/{model_id} answered HTTP {response.status_code}: {_reason(response)}; "
            "pick an image upscale model your plan can use (--model)",
        )
    body = _json(response)
    raw = body.get("model") if isinstance(body, dict) else None
    if not isinstance(raw, dict) or not isinstance(raw.get("inputs"), list):
        raise s.fail(step, f"GET /models/{model_id} has no model.inputs[] list")
    model = ModelSpec.model_validate(raw)
    try:
        carrier = file_input(model)
    except ScenarioError as error:
        raise s.fail(step, str(error)) from None
    if (carrier.kind or "image") != "image":
        raise s.fail(step, f"{model_id} takes a {carrier.kind}, not an image: pick an image model")
    s.model = model
    s.check(
        step,
        "ok",
        f"{model_id}: {len(model.inputs)} inputs, the image goes in {carrier.name!r}",
        inputs=[i.name for i in model.inputs],
    )


# -- 3. uploads -------------------------------------------------------------------------------


async def _upload(s: _Session, name: str, data: bytes) -> httpx.Response:
    payload = {"name": name, "image": base64.b64encode(data).decode("ascii"), "hide": True}
    return await s.call("POST", "assets", json_body=payload)


def _largest_engine_body() -> int:
    """The largest JSON body the engine's base64 upload sends (base64 is 4/3 of the bytes)."""
    return (BASE64_UPLOAD_LIMIT + 2) // 3 * 4 + 1024


async def probe_uploads(s: _Session) -> None:
    step = "uploads"
    tiny = await _upload(s, "scenario-doctor.png", _png(TINY_SIZE, noise=False))
    body = _json(tiny)
    if tiny.status_code != 200 or not isinstance(body, dict) or "asset" not in body:
        raise s.fail(step, f"POST /assets answered HTTP {tiny.status_code}: {_reason(tiny)}")
    s.input_asset = str(body["asset"]["id"])
    side = math.isqrt(LARGE_PROBE_BYTES // 3) + 1
    large_data = _png((side, side), noise=True)
    large = await _upload(s, "scenario-doctor-large.png", large_data)
    sent = len(large.request.content)
    if large.status_code == 413:
        largest = _largest_engine_body()
        s.observe(
            "gateway-limits",
            f"a {sent / 1e6:.1f} MB base64 body was refused with HTTP 413",
            copes=largest < sent,
            how=(
                f"the engine sends base64 only below {BASE64_UPLOAD_LIMIT / 2**20:.1f} MiB raw "
                f"(bodies up to {largest / 1e6:.1f} MB) and multipart above"
            ),
        )
        s.check(step, "note", f"tiny upload ok; a {sent / 1e6:.1f} MB body is refused (413)")
    elif large.status_code == 200:
        s.check(step, "ok", f"tiny upload ok; a {sent / 1e6:.1f} MB base64 body is accepted")
    else:
        s.check(
            step,
            "note",
            f"tiny upload ok; the {sent / 1e6:.1f} MB probe answered HTTP {large.status_code}: "
            f"{_reason(large)}",
        )


# -- 4. the dry run ---------------------------------------------------------------------------


async def probe_dry_run(s: _Session) -> None:
    step = "dry run"
    assert s.model is not None and s.input_asset is not None
    s.body = build_body(s.model, s.input_asset, _scale_parameters(s.model))
    response = await s.call(
        "POST",
        f"generate/custom/{s.settings.model_id}",
        params={"dryRun": "true"},
        json_body=s.body,
    )
    payload = _json(response)
    try:
        # The engine's own reader, on the live answer: if it reads the cost, the engine copes.
        s.cost = read_dry_run(response.status_code, payload).creative_units
    except ScenarioError as error:
        message = f"{error}; the API said: {_reason(response)}"
        raise s.fail(step, message, status=response.status_code) from None
    with_job = isinstance(payload, dict) and "job" in payload
    how = "the engine's dry-run reader (api.read_dry_run) reads the cost from this answer"
    # dry-run-200 is the cost-only answer with 200; a job key is the other reading, whatever the
    # status (PROFILES.md).
    if with_job:
        evidence = f"the dry run answered HTTP {response.status_code} with a job key"
        s.observe("dry-run-with-job", evidence, copes=True, how=how)
    elif response.status_code == 200:
        s.observe("dry-run-200", "the dry run answered HTTP 200", copes=True, how=how)
    shape = "with a job" if with_job else "cost only"
    verdict: Verdict = "ok" if response.status_code == DRY_RUN_STATUS and not with_job else "note"
    s.check(
        step,
        verdict,
        f"HTTP {response.status_code}, {shape}: one job costs {s.cost:g} creative units",
        status=response.status_code,
        job_key=with_job,
        creative_units=s.cost,
    )


# -- 5. submit (only with --submit) -----------------------------------------------------------


# A submit without a usable answer may still have created (and charged) its job: never resend.
_MAY_EXIST = (
    "a job may have been created and charged: look at your jobs (GET /v1/jobs) before running "
    "the doctor again"
)


def _retry_hint(response: httpx.Response) -> float | None:
    body = _json(response)
    if isinstance(body, dict) and isinstance(body.get("remainingSeconds"), int | float):
        return float(body["remainingSeconds"])
    header = response.headers.get("retry-after")
    try:
        return float(header) if header is not None else None
    except ValueError:
        return None


async def probe_submit(s: _Session) -> None:
    """One real job; a 429 is waited out (it created nothing), any other failure stops."""
    step = "submit"
    path = f"generate/custom/{s.settings.model_id}"
    deadline = time.monotonic() + s.settings.ceiling_wait_s
    ceilings: list[dict[str, Any]] = []
    wait = 1.0
    while True:
        s.submitted_at = datetime.now(UTC)
        try:
            response = await s.call("POST", path, json_body=s.body)
        except _Stop as lost:
            raise s.fail(step, f"{lost}; {_MAY_EXIST}") from None
        if response.status_code != 429:
            break
        body = _json(response)
        details = body.get("details") if isinstance(body, dict) else None
        # Read as the engine reads it, so the limit reported is the one the engine would learn.
        refused = ScenarioRateLimited(
            f"POST /{path}",
            429,
            _reason(response),
            details=details if isinstance(details, dict) else None,
            retry_after=_retry_hint(response),
        )
        hint = refused.retry_after
        ceilings.append({"retry_hint_s": hint, "action_limit": refused.action_limit})
        if time.monotonic() > deadline:
            raise s.fail(
                step,
                f"the team's concurrency ceiling stayed full for {s.settings.ceiling_wait_s:g} s "
                f"(HTTP 429: {_reason(response)}); nothing was submitted",
            )
        await asyncio.sleep(hint if hint is not None else wait)
        wait = min(wait * 2, 15.0)
    _note_ceiling(s, ceilings)
    payload = _json(response)
    if response.status_code >= 500:
        raise s.fail(
            step,
            f"the submit answered HTTP {response.status_code}: {_reason(response)}; {_MAY_EXIST}",
        )
    if response.status_code != 200 or not isinstance(payload, dict) or "job" not in payload:
        raise s.fail(step, f"the submit answered HTTP {response.status_code}: {_reason(response)}")
    s.job = payload["job"]
    s.findings.submitted = True
    s.findings.job_id = str(s.job.get("jobId") or s.job.get("id"))
    cost = payload.get("creativeUnitsCost", s.cost)
    s.findings.creative_units_spent = float(cost) if isinstance(cost, int | float) else 0.0
    waited = f" after {len(ceilings)} 429s" if ceilings else ""
    s.check(step, "ok", f"job {s.findings.job_id} submitted{waited}", ceilings=ceilings)


def _note_ceiling(s: _Session, ceilings: list[dict[str, Any]]) -> None:
    silent = [c for c in ceilings if c["retry_hint_s"] is None]
    if not silent:
        return
    named = next((c["action_limit"] for c in silent if c["action_limit"] is not None), None)
    room = (
        f"to the limit the 429 names ({named})"
        if named is not None
        else "to the jobs it has in flight (backing off when none of its own is running)"
    )
    s.observe(
        "ceiling-no-retry-hint",
        f"HTTP 429 without remainingSeconds or Retry-After (details.actionLimit: {named})",
        copes=True,
        how=f"the engine lowers its jobs in flight {room} and submits again when one ends",
    )


# -- 6. polling -------------------------------------------------------------------------------


async def probe_polling(s: _Session) -> None:
    step = "polling"
    job_id = s.findings.job_id
    seen = [str(s.job.get("status"))]
    deadline = time.monotonic() + s.settings.job_deadline_s
    interval = 0.2
    while terminal_outcome(seen[-1]) is None:
        if time.monotonic() > deadline:
            raise s.fail(
                step, f"job {job_id} still {seen[-1]} after {s.settings.job_deadline_s:g} s"
            )
        await asyncio.sleep(interval)
        interval = min(interval * 1.5, 3.0)
        response = await s.call("GET", f"jobs/{job_id}")
        if response.status_code != 200:
            continue  # a 404 right after submit, or a transient error: the deadline bounds it
        body = _json(response)
        if not isinstance(body, dict) or not isinstance(body.get("job"), dict):
            continue
        s.job = body["job"]
        status = str(s.job.get("status"))
        if status != seen[-1]:
            seen.append(status)
    early = [status for status in seen if status in ("pending", "warming-up")]
    if early:
        s.observe(
            "sparse-pages",
            f"the job went through {', '.join(dict.fromkeys(early))}",
            copes=True,
            how="the engine treats every status but success, failure and canceled as running",
        )
    if terminal_outcome(seen[-1]) != "success":
        error = (s.job.get("metadata") or {}).get("error")
        raise s.fail(step, f"job {job_id} ended {seen[-1]}: {error}", statuses=seen)
    s.check(step, "note" if early else "ok", " → ".join(seen), statuses=seen)


# -- 7. listing and echo ----------------------------------------------------------------------


async def probe_listing(s: _Session) -> None:
    """``GET /v1/jobs`` page by page, as reconciliation lists them."""
    step = "listing"
    since = s.submitted_at - timedelta(minutes=2)
    query: dict[str, Any] = {"pageSize": _LIST_PAGE_SIZE, "createdAfter": _iso(since)}
    pages: list[dict[str, Any]] = []
    found = False
    token: str | None = None
    while len(pages) < _MAX_PAGES:
        params = {**query, "paginationToken": token} if token else query
        response = await s.call("GET", "jobs", params=params)
        if response.status_code != 200:
            raise s.fail(
                step, f"GET /jobs answered HTTP {response.status_code}: {_reason(response)}"
            )
        body = _json(response)
        jobs = body.get("jobs") or []
        token = body.get("nextPaginationToken") or None
        pages.append({"jobs": len(jobs), "next_token": token is not None})
        found = found or any(j.get("jobId") == s.findings.job_id for j in jobs)
        if not token:
            break
    sparse = [p for p in pages if p["next_token"] and p["jobs"] < _LIST_PAGE_SIZE]
    engine_found = await _engine_lists(s, since)
    if sparse:
        s.observe(
            "sparse-pages",
            f"{len(sparse)} of {len(pages)} pages short or empty with a next token",
            copes=engine_found,
            how="the engine's listing follows every token"
            + ("" if engine_found else ", but it did not find the job"),
        )
    if not found:
        raise s.fail(step, f"job {s.findings.job_id} is not in GET /jobs", pages=pages)
    s.check(
        step, "ok" if not sparse else "note", f"found the job over {len(pages)} pages", pages=pages
    )


async def _engine_lists(s: _Session, since: datetime) -> bool:
    try:
        async for job in s.engine.list_jobs(created_after=since, page_size=_LIST_PAGE_SIZE):
            if job.job_id == s.findings.job_id:
                return True
    except ScenarioError:
        return False
    return False


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _echo_differences(body: dict[str, Any], echo: dict[str, Any]) -> str:
    """A short account of how an echo differs from the body sent."""
    added = [k for k in echo if k not in body]
    missing = [k for k in body if k not in echo]
    retyped = [k for k in body if k in echo and json.dumps(echo[k]) != json.dumps(body[k])]
    parts = []
    if added:
        parts.append(
            f"{len(added)} inputs added ({', '.join(added[:3])}{', …' * (len(added) > 3)})"
        )
    if missing:
        parts.append(f"left out: {', '.join(missing)}")
    parts += [f"{k}: sent {json.dumps(body[k])}, echoed {json.dumps(echo[k])}" for k in retyped]
    if not parts and list(echo) != list(body):
        parts.append("keys reordered")
    return "; ".join(parts) or "the echo is the body sent"


async def probe_echo(s: _Session) -> None:
    """Whether ``metadata.input`` and ``jobType`` are what reconciliation expects."""
    step = "echo"
    raw = (s.job.get("metadata") or {}).get("input")
    echo: dict[str, Any] = raw if isinstance(raw, dict) else {}
    job_type = s.job.get("jobType")
    # json.dumps tells 2 from 2.0 and sees the key order: "verbatim" is byte for byte.
    verbatim = json.dumps(echo) == json.dumps(s.body)
    try:
        match = await s.engine.find_job(
            s.settings.model_id, s.body, created_after=s.submitted_at - timedelta(minutes=2)
        )
    except ScenarioError as error:
        raise s.fail(step, f"the engine's reconciliation search failed: {error}") from None
    copes = match is not None and match.job_id == s.findings.job_id
    if not verbatim or job_type != "custom":
        s.observe(
            "normalised-echo",
            f"{_echo_differences(s.body, echo)}; jobType {job_type!r}",
            copes=copes,
            how="the engine's reconciliation search "
            + (
                "finds the job"
                if copes
                else "does not find the job: a lost submit would be paid twice"
            ),
        )
    verdict: Verdict = "ok" if verbatim and job_type == "custom" else "note"
    found = "reconciliation finds it" if copes else "reconciliation does NOT find it"
    s.check(
        step,
        verdict,
        f"jobType {job_type!r}, echo {'verbatim' if verbatim else 'normalised'}; {found}",
        echo=echo,
    )


# -- 8. download ------------------------------------------------------------------------------


def _expected_size(s: _Session) -> tuple[int, int] | None:
    assert s.model is not None
    factor = next(
        (s.body[n] for n in _SCALE_INPUTS if isinstance(s.body.get(n), int | float)), None
    )
    if factor is None:
        return None
    return round(TINY_SIZE[0] * factor), round(TINY_SIZE[1] * factor)


async def _fetch_output(s: _Session, asset_id: str, original: bool) -> dict[str, Any]:
    params = {"originalAssets": "true"} if original else None
    response = await s.call("GET", f"assets/{asset_id}", params=params)
    if response.status_code != 200:
        raise _Stop(
            f"GET /assets/{asset_id} answered HTTP {response.status_code}: {_reason(response)}"
        )
    asset = _json(response)["asset"]
    got = await s.cdn.get(asset["url"])
    if got.status_code != 200:
        raise _Stop(f"the CDN answered HTTP {got.status_code} for {asset_id}")
    return {
        "announced": (asset.get("properties") or {}).get("size"),
        "bytes": len(got.content),
        "pixels": _decoded_size(got.content),
    }


async def _engine_collects(s: _Session, asset_id: str) -> tuple[bool, str]:
    """Whether the engine's own collect (asset read + checked download) gets the output."""
    with tempfile.TemporaryDirectory(prefix="scenario-doctor-") as folder:
        try:
            asset = await s.engine.get_asset(asset_id)
            await download(
                s.engine.cdn,
                asset,
                str(Path(folder) / "output"),
                refresh_url=s.engine.fresh_download_url,
            )
        except ScenarioError as error:
            return False, f"the engine's collect failed: {error}"
    return True, "the engine's collect downloads and checks it"


async def probe_download(s: _Session) -> None:
    step = "download"
    outputs = (s.job.get("metadata") or {}).get("assetIds") or []
    if not outputs:
        raise s.fail(step, f"job {s.findings.job_id} succeeded without output assets")
    asset_id = str(outputs[0])
    try:
        plain = await _fetch_output(s, asset_id, original=False)
        original = await _fetch_output(s, asset_id, original=True)
    except _Stop as error:
        raise s.fail(step, str(error)) from None
    expected = _expected_size(s)
    seen = {"default_url": plain, "original": original, "expected_pixels": expected}
    for label, got in (("default URL", plain), ("original", original)):
        if got["pixels"] is None or (expected is not None and tuple(got["pixels"]) != expected):
            raise s.fail(
                step, f"the {label} does not decode to {expected}: {got['pixels']}", **seen
            )
    if plain["bytes"] != plain["announced"]:
        copes, how = await _engine_collects(s, asset_id)
        s.observe(
            "transformed-urls",
            f"the default URL served {plain['bytes']} bytes for properties.size "
            f"{plain['announced']}; the original served {original['bytes']}",
            copes=copes,
            how=how,
        )
    if original["bytes"] != original["announced"]:
        raise s.fail(
            step,
            f"even originalAssets=true served {original['bytes']} bytes, not properties.size "
            f"{original['announced']}",
            **seen,
        )
    verdict: Verdict = "ok" if plain["bytes"] == plain["announced"] else "note"
    sizes = (
        f"default URL {plain['bytes']} bytes, original {original['bytes']} bytes "
        f"(properties.size {plain['announced']}), both {plain['pixels']} px"
    )
    s.check(step, verdict, sizes, **seen)


# -- the whole visit --------------------------------------------------------------------------


async def run_doctor(
    settings: DoctorSettings,
    *,
    confirm: Callable[[float], bool],
    report: Callable[[Check], None],
) -> Findings:
    """Run the checks in order; stop at the first failure that the next ones depend on.

    Args:
        settings: Credentials, model, and whether (and how much) to spend.
        confirm: Asked with the dry-run price before the one real submit; False skips it.
        report: Called with each check as soon as it is decided.

    Returns:
        The findings; ``assumptions_hold`` says whether the engine copes with this account.
    """
    findings = Findings(
        base_url=settings.base_url, project_id=settings.project_id, model_id=settings.model_id
    )
    async with _Session(settings, report, findings) as session:
        try:
            for probe in (probe_auth, probe_model, probe_uploads, probe_dry_run):
                await probe(session)
            if await _may_submit(session, confirm):
                for probe in (
                    probe_submit,
                    probe_polling,
                    probe_listing,
                    probe_echo,
                    probe_download,
                ):
                    await probe(session)
        except _Stop as stop:
            if not findings.checks or findings.checks[-1].verdict != "FAIL":
                session.check("stopped", "FAIL", str(stop))
    return findings


async def _may_submit(s: _Session, confirm: Callable[[float], bool]) -> bool:
    step = "spend"
    cost = s.cost if s.cost is not None else 0.0
    if not s.settings.submit:
        s.check(step, "skipped", "nothing submitted, nothing spent (--submit runs one real job)")
        return False
    if cost > s.settings.max_creative_units:
        raise s.fail(
            step,
            f"one job of {s.settings.model_id} costs {cost:g} creative units, above "
            f"--max-creative-units {s.settings.max_creative_units:g}: nothing was submitted",
        )
    if not confirm(cost):
        s.check(step, "skipped", "not confirmed: nothing submitted, nothing spent")
        return False
    limit = s.settings.max_creative_units
    s.check(
        step, "ok", f"one job at {cost:g} creative units (limit {limit:g})", creative_units=cost
    )
    return True
