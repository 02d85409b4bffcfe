"""A typed async client for the part of the Scenario API an upscale needs.

It wraps the official SDK (``scenario_sdk.AsyncScenario``) with the SDK's own retries switched off,
because the SDK retries ``POST /generate/custom`` without an idempotency key and could pay for a job
twice (contract §5). Our policy instead: reads are retried with backoff and jitter; a submit is
never retried blindly — when its answer is lost we look for the job in ``GET /v1/jobs`` first.

Example:
    >>> async def main() -> None:
    ...     async with ScenarioClient(api_key="k", api_secret="s") as client:
    ...         model = await client.get_model("model_upscale-v3")
"""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, Self

import httpx
import scenario_sdk
from scenario_sdk import AsyncScenario

from scenario_upscale.errors import (
    InvalidInput,
    ScenarioAPIError,
    ScenarioAuthError,
    ScenarioBadRequest,
    ScenarioConnectionError,
    ScenarioError,
    ScenarioNotFound,
    ScenarioProjectRefused,
    ScenarioRateLimited,
    ScenarioServerError,
    SubmitFailed,
)
from scenario_upscale.models import Asset, Job, ModelSpec, Price, SubmittedJob, Upload
from scenario_upscale.params import echo_matches, file_input, is_number
from scenario_upscale.retry import (
    ImportWait,
    LostSubmit,
    LostSubmitRetry,
    NotYet,
    RetryPolicy,
    retry,
)
from scenario_upscale.transport import AiohttpTransportAsHttpx, CookielessClient

DEFAULT_BASE_URL = "https://api.cloud.scenario.com/v1"
BASE64_UPLOAD_LIMIT = int(3.5 * 1024 * 1024)
"""Images below this many raw bytes go through ``POST /assets`` as base64; the rest through
``/uploads``. Base64 grows a body by a third, and an API gateway commonly caps bodies at 6 MB;
Scenario's own Blender add-on sends base64 only up to 3.5 MB (contract §9)."""
MULTIPART_PART_SIZE = 32 * 1024 * 1024


SEND_SLICE = 1024 * 1024
"""Bytes of an upload part read and handed to httpx at a time: a part is never held whole."""


class Readable(Protocol):
    """What an upload reads a file through (a binary file, or anything with these two)."""

    def read(self, size: int = -1, /) -> bytes: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...


async def _part_slices(data: Readable, start: int, length: int) -> AsyncIterator[bytes]:
    """``length`` bytes of ``data`` from ``start``, read slice by slice as httpx sends them."""
    await asyncio.to_thread(data.seek, start)
    left = length
    while left > 0:
        piece = await asyncio.to_thread(data.read, min(SEND_SLICE, left))
        if not piece:
            raise ValueError(f"upload: the data ended {left} bytes before its declared size")
        left -= len(piece)
        yield piece


DRY_RUN_STATUSES = frozenset({200, 269})
"""269 on the legacy routes (Scenario's spec), 200 on ``/generate/custom`` (contract §2)."""
ASSET_BULK_LIMIT = 200
"""Asset ids per ``POST /assets/get-bulk`` (the SDK's documented limit)."""
MAX_LIST_PAGES = 10_000
"""A listing that still has a next page after this many is broken; we stop rather than loop."""

log = logging.getLogger("scenario_upscale.api")


def iso_utc(moment: datetime) -> str:
    """The API's time format: UTC, milliseconds, ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def error_fields(body: object) -> tuple[str | None, str | None, dict[str, object]]:
    """Reason, trace id and details from an error body of any of the shapes Scenario uses."""
    if not isinstance(body, dict):
        return (body if isinstance(body, str) and body else None), None, {}
    reason = next(
        (str(body[k]) for k in ("reason", "message", "error", "detail") if body.get(k)), None
    )
    trace = body.get("traceId") or body.get("trace_id")
    details = body.get("details")
    return reason, (str(trace) if trace else None), (details if isinstance(details, dict) else {})


def retry_after_of(body: object, headers: httpx.Headers) -> float | None:
    """The wait a 429 names: ``remainingSeconds`` in its body, else a ``Retry-After`` header."""
    if isinstance(body, dict) and isinstance(body.get("remainingSeconds"), int | float):
        return float(body["remainingSeconds"])
    header = headers.get("retry-after")
    try:
        return float(header) if header is not None else None
    except ValueError:
        return None


def translate_error(operation: str, error: Exception) -> ScenarioError:
    """Turn an SDK or httpx exception into ours, keeping the API's words and never the request.

    The SDK exceptions hold the request, and the request holds the ``Authorization`` header; ours
    copy only the status, the API's message, its trace id and its details.
    """
    if isinstance(error, scenario_sdk.APIStatusError):
        response = error.response
        reason, trace, details = error_fields(error.body)
        reason = reason or response.reason_phrase or "no reason given"
        trace = trace or response.headers.get("x-trace-id")
        status = error.status_code
        kwargs: dict[str, Any] = {"trace_id": trace, "details": details}
        if status == 429:
            return ScenarioRateLimited(
                operation,
                status,
                reason,
                retry_after=retry_after_of(error.body, response.headers),
                **kwargs,
            )
        cls: type[ScenarioAPIError] = ScenarioAPIError
        if status in (400, 422):
            cls = ScenarioBadRequest
        elif status in (401, 403):
            cls = ScenarioAuthError
        elif status == 404:
            cls = ScenarioNotFound
        elif status >= 500:
            cls = ScenarioServerError
        return cls(operation, status, reason, **kwargs)
    if isinstance(error, scenario_sdk.APITimeoutError | httpx.TimeoutException):
        return ScenarioConnectionError(operation, "timed out")
    if isinstance(error, scenario_sdk.APIConnectionError | httpx.TransportError):
        cause = error.__cause__ or error
        return ScenarioConnectionError(operation, f"{type(cause).__name__}: {cause}")
    if isinstance(error, scenario_sdk.APIResponseValidationError):
        return ScenarioError(f"{operation}: the API's answer did not match its schema: {error}")
    return ScenarioError(f"{operation}: {type(error).__name__}: {error}")


def _job_from_api(data: dict[str, Any], creative_units: float | None = None) -> Job:
    try:
        return _job_fields(data, creative_units)
    except (KeyError, TypeError, ValueError) as error:
        raise ScenarioError(
            f"a job in the API's answer could not be read ({type(error).__name__}: {error})"
        ) from None


def _job_fields(data: dict[str, Any], creative_units: float | None) -> Job:
    metadata = data.get("metadata") or {}
    billing = data.get("billing") or {}
    return Job(
        # contract §7.3: some docs show ``id`` instead of ``jobId``.
        job_id=data.get("jobId") or data["id"],
        job_type=data.get("jobType"),
        status=str(data.get("status", "pending")),
        progress=float(data.get("progress") or 0.0),
        asset_ids=list(metadata.get("assetIds") or []),
        error=metadata.get("error") or data.get("error"),
        hint=metadata.get("hint"),
        input=dict(metadata.get("input") or {}),
        created_at=data.get("createdAt"),
        updated_at=data.get("updatedAt"),
        creative_units=billing.get("cuCost", creative_units),
        refund_disabled=bool(billing.get("disableRefund", False)),
    )


def _asset_from_api(data: dict[str, Any]) -> Asset:
    props = data.get("properties") or {}
    return Asset(
        id=data["id"],
        url=data["url"],
        mime_type=data.get("mimeType", "application/octet-stream"),
        kind=data.get("kind", "image"),
        status=data.get("status", "success"),
        width=props.get("width"),
        height=props.get("height"),
        size=props.get("size"),
    )


def _as_dict(sdk_model: Any) -> dict[str, Any]:
    result: dict[str, Any] = sdk_model.to_dict(mode="json", warnings=False)
    return result


def _answer(operation: str, raw: Any) -> dict[str, Any]:
    """The JSON object of a raw SDK answer, read without building the SDK's models.

    Used on the calls made for every job (submit, status, listing, asset reads, uploads): the
    SDK's model tree costs milliseconds of CPU per answer, more than the rest of a job's work.
    """
    try:
        data = raw.http_response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ScenarioError(f"{operation}: the API's answer is not a JSON object")
    return data


def read_dry_run(status: int, body: object) -> Price:
    """The price in a dry run's answer, whichever plausible shape the API gives it.

    Scenario's spec answers a dry run with HTTP 269 and a cost-only body on the legacy routes;
    ``/generate/custom`` is documented with 200 only, and the SDK types its answer as a job
    response (contract §2). So 269 and 200 are both read, with or without a ``job`` key. A
    ``job`` in a dry-run answer is never a submitted job: it is only a last place to find the
    cost (``job.billing.cuCost``) when ``creativeUnitsCost`` is missing.

    Raises:
        ScenarioError: another status, or no cost in the body; the message names both.

    Example:
        >>> read_dry_run(200, {"job": {"jobId": "job_1"}, "creativeUnitsCost": 4}).creative_units
        4.0
    """
    if status not in DRY_RUN_STATUSES:
        raise ScenarioError(f"the dry run answered HTTP {status}, not 269 or 200 with a price")
    if not isinstance(body, dict):
        raise ScenarioError(f"the dry run answered HTTP {status} without a JSON object")
    cost = body.get("creativeUnitsCost")
    job = body.get("job")
    if not is_number(cost) and isinstance(job, dict) and isinstance(job.get("billing"), dict):
        cost = job["billing"].get("cuCost")
    if not is_number(cost):
        keys = ", ".join(sorted(body)) or "none"
        raise ScenarioError(
            f"the dry run answered HTTP {status} without creativeUnitsCost (keys: {keys})"
        )
    details = body.get("costDetails")
    details = details if isinstance(details, dict) else {}
    discount = body.get("creativeUnitsDiscount")
    return Price(
        creative_units=float(cost),
        discount=float(discount) if is_number(discount) else 0.0,
        details={k: float(v) for k, v in details.items() if is_number(v)},
    )


class ScenarioClient:
    """Async client for models, assets, uploads, generate/custom and jobs.

    Args:
        api_key: The project's API key.
        api_secret: The matching secret. Only the SDK sees it; it never reaches a log or error.
        base_url: ``https://api.cloud.scenario.com/v1``, or an emulator's URL.
        project_id: Sent as ``?projectId=`` on every call when set.
        timeout_s: Per-request timeout; a submit that times out is reconciled, not resent.
        retry: How idempotent calls retry transient failures.
        strict_responses: Validate every answer strictly against the SDK's models (tests use this
            to hold the emulator to the SDK's schema; production tolerates API drift).
        transport: An httpx transport, the seam for tests and custom networking.
        max_connections: Connection pool size shared by all concurrent calls.
    """

    def __init__(
        self,
        *,
        api_key: str,
        api_secret: str,
        base_url: str = DEFAULT_BASE_URL,
        project_id: str | None = None,
        timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
        strict_responses: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 20,
    ) -> None:
        if not api_key or not api_secret:
            raise ScenarioAuthError("configure client", 401, "an API key and secret are required")
        self.base_url = base_url.rstrip("/")
        self.project_id = project_id
        self.retry = retry or RetryPolicy()
        self._strict = strict_responses
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=20)
        timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
        self._http = CookielessClient(
            timeout=timeout,
            limits=limits,
            transport=transport or AiohttpTransportAsHttpx(limits=limits),
        )
        self._sdk = AsyncScenario(
            api_key=api_key,
            api_secret=api_secret,
            base_url=self.base_url,
            max_retries=0,
            timeout=timeout,
            http_client=self._http,
            _strict_response_validation=strict_responses,
        )
        # Signed URLs (CDN downloads, presigned part uploads) must not carry our credentials.
        self.cdn = CookielessClient(
            timeout=timeout,
            limits=limits,
            transport=transport or AiohttpTransportAsHttpx(limits=limits),
            follow_redirects=True,
        )
        self._models: dict[str, ModelSpec] = {}

    def __repr__(self) -> str:
        return f"ScenarioClient(base_url={self.base_url!r}, project_id={self.project_id!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._sdk.close()
        await self._http.aclose()
        await self.cdn.aclose()

    @property
    def _project(self) -> Any:
        return self.project_id if self.project_id else scenario_sdk.omit

    def _raw(self, call: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
        """``call`` (a ``with_raw_response`` call) whose answer is also parsed by the SDK's
        models when ``strict_responses``, so tests still hold every answer to its schema."""

        async def checked() -> Any:
            raw = await call()
            if self._strict:
                await raw.parse()
            return raw

        return checked

    async def _once(self, operation: str, call: Callable[[], Any]) -> Any:
        try:
            return await call()
        except (scenario_sdk.APIError, httpx.HTTPError) as error:
            raise self._about_base_url(
                self._about_project(translate_error(operation, error))
            ) from error

    def _about_base_url(self, error: ScenarioError) -> ScenarioError:
        """No answer, or a 404 from a base URL without ``/v1``: name the URL and the fix.

        Both are what a wrong ``base_url`` looks like (nothing listening there, or the API's
        root rather than its ``/v1``); the bare "All connection attempts failed" or "Not Found"
        would name neither.
        """
        if isinstance(error, ScenarioConnectionError) and error.cause != "timed out":
            return ScenarioConnectionError(
                error.operation,
                f"{error.cause}; check base_url {self.base_url!r}: is the API up there, and can "
                f"this machine reach it? (Scenario's is {DEFAULT_BASE_URL})",
            )
        if isinstance(error, ScenarioNotFound) and not self.base_url.endswith("/v1"):
            error.args = (
                f"{error.args[0]}; base_url {self.base_url!r} does not end in /v1: the API "
                f"is under /v1 (Scenario's is {DEFAULT_BASE_URL})",
            )
        return error

    def _about_project(self, error: ScenarioError) -> ScenarioError:
        """A 400/403 that speaks of the project is about ``projectId``: say which and what to do.

        ``projectId`` asserts ownership (contract §1): a wrong one is refused on every call, so
        the first call of a run fails with this rather than with a bare "forbidden".
        """
        if (
            isinstance(error, ScenarioAPIError)
            and error.status_code in (400, 403)
            and "project" in error.reason.lower()
        ):
            return ScenarioProjectRefused(
                error.operation,
                error.status_code,
                error.reason,
                project_id=self.project_id,
                trace_id=error.trace_id,
                details=error.details,
            )
        return error

    async def _read(self, operation: str, call: Callable[[], Any]) -> Any:
        """An idempotent call: retried on timeouts, 5xx and 429 as the read policy says."""
        return await retry(lambda: self._once(operation, call), self.retry)

    # -- models ---------------------------------------------------------------------------------

    async def get_model(self, model_id: str) -> ModelSpec:
        """The model and its ``inputs[]`` (``GET /models/{modelId}``), fetched once per client."""
        if model_id not in self._models:
            response = await self._read(
                f"GET /models/{model_id}",
                lambda: self._sdk.models.retrieve(model_id, project_id=self._project),
            )
            self._models[model_id] = ModelSpec.model_validate(_as_dict(response.model))
        return self._models[model_id]

    # -- assets and uploads ---------------------------------------------------------------------

    async def upload(
        self,
        data: bytes | Readable,
        *,
        name: str,
        mime_type: str,
        kind: str,
        size: int | None = None,
    ) -> str:
        """Upload bytes, or ``size`` bytes read from a binary file, as an asset; return its id.

        Images under ``BASE64_UPLOAD_LIMIT`` (3.5 MiB) go as base64 through ``POST /assets``;
        larger images and every video through the multipart ``/uploads`` flow (contract §3.1,
        §3.2, §9), which reads a file one part at a time, so memory stays flat in file size.
        """
        if isinstance(data, bytes):
            size = len(data)
            data = io.BytesIO(data)  # shares the bytes, no copy
        elif size is None:
            raise ValueError("upload: give the size of a file to upload")
        if kind == "image" and size < BASE64_UPLOAD_LIMIT:
            raw_bytes = await asyncio.to_thread(data.read, size)
            encoded = base64.b64encode(raw_bytes).decode("ascii")
            # Retried: a lost answer at worst leaves a duplicate asset, which costs nothing.
            raw = await self._read(
                "POST /assets",
                self._raw(
                    lambda: self._sdk.assets.with_raw_response.upload(
                        name=name, image=encoded, project_id=self._project
                    )
                ),
            )
            try:
                return str(_answer("POST /assets", raw)["asset"]["id"])
            except (KeyError, TypeError):
                raise ScenarioError("POST /assets: the answer names no asset id") from None
        return await self._upload_multipart(data, size, name=name, mime_type=mime_type, kind=kind)

    async def _upload_multipart(
        self, data: Readable, size: int, *, name: str, mime_type: str, kind: str
    ) -> str:
        parts = max(1, math.ceil(size / MULTIPART_PART_SIZE))
        created = await self._once(
            "POST /uploads",
            lambda: self._sdk.uploads.create(
                file_name=name,
                content_type=mime_type,
                kind=kind,  # type: ignore[arg-type]
                parts=parts,
                file_size=size,
                project_id=self._project,
            ),
        )
        upload = created.upload
        for part in sorted(upload.parts or [], key=lambda p: p.number):
            start = (int(part.number) - 1) * MULTIPART_PART_SIZE
            length = min(MULTIPART_PART_SIZE, size - start)
            # Each attempt reads its part again, slice by slice (a retry seeks back to it).
            await self._read(
                f"PUT upload part {int(part.number)}",
                functools.partial(self._put_part, part.url, data, start, length, mime_type),
            )
        await self._once(
            f"POST /uploads/{upload.id}/action",
            lambda: self._sdk.uploads.trigger_action(
                upload.id, action="complete", project_id=self._project
            ),
        )
        return await self._wait_for_upload(upload.id)

    async def _put_part(
        self, url: str, data: Readable, start: int, length: int, mime_type: str
    ) -> None:
        # The length is declared so httpx sends the streamed slices as one plain body.
        response = await self.cdn.put(
            url,
            content=_part_slices(data, start, length),
            headers={"Content-Type": mime_type, "Content-Length": str(length)},
        )
        if response.status_code >= 500:
            raise ScenarioServerError("PUT upload part", response.status_code, response.text)
        if response.status_code >= 400:
            raise ScenarioAPIError("PUT upload part", response.status_code, response.text)

    async def get_upload(self, upload_id: str) -> Upload:
        response = await self._read(
            f"GET /uploads/{upload_id}",
            lambda: self._sdk.uploads.retrieve(upload_id, project_id=self._project),
        )
        u = response.upload
        return Upload(id=u.id, status=u.status, asset_id=u.entity_id, error=u.error_message)

    async def _wait_for_upload(self, upload_id: str, timeout_s: float = 600.0) -> str:
        async def imported() -> str:
            upload = await self.get_upload(upload_id)
            if upload.status == "failed":
                raise InvalidInput(f"upload {upload_id} was refused: {upload.error}")
            if upload.asset_id and upload.status in ("imported", "complete"):
                return upload.asset_id
            raise NotYet(upload_id)

        try:
            return await retry(imported, ImportWait(timeout_s))
        except NotYet:
            raise ScenarioError(f"upload {upload_id} not imported after {timeout_s:g} s") from None

    async def get_asset(self, asset_id: str) -> Asset:
        """``GET /assets/{assetId}``: the asset with a freshly signed ``url`` to its original.

        ``originalAssets=true``: without it the URL may serve a transformed rendition (contract
        §9), whose bytes are not the ones ``properties`` describe.
        """
        response = await self._read(
            f"GET /assets/{asset_id}",
            lambda: self._sdk.assets.retrieve(
                asset_id, original_assets=True, project_id=self._project
            ),
        )
        return _asset_from_api(_as_dict(response.asset))

    async def get_assets(self, asset_ids: Iterable[str]) -> list[Asset]:
        """Many assets, originals asked for, ``ASSET_BULK_LIMIT`` per ``POST /assets/get-bulk``
        (a read, so retried)."""
        ids = list(asset_ids)
        assets: list[Asset] = []
        for start in range(0, len(ids), ASSET_BULK_LIMIT):
            chunk = ids[start : start + ASSET_BULK_LIMIT]

            async def bulk(chunk: list[str] = chunk) -> Any:
                return await self._sdk.assets.with_raw_response.get_bulk(
                    asset_ids=chunk, original_assets=True, project_id=self._project
                )

            answer = _answer(
                "POST /assets/get-bulk", await self._read("POST /assets/get-bulk", self._raw(bulk))
            )
            assets += [_asset_from_api(a) for a in answer.get("assets") or []]
        return assets

    async def fresh_download_url(self, asset_id: str) -> str:
        """A new signed URL for the original file (``POST /assets/{id}/download``)."""
        response = await self._read(
            f"POST /assets/{asset_id}/download",
            lambda: self._sdk.assets.download.request(asset_id, project_id=self._project),
        )
        return str(response.url)

    # -- generate -------------------------------------------------------------------------------

    async def price(self, model_id: str, body: dict[str, Any]) -> Price:
        """The creative-unit cost of a job, from a dry run (nothing runs or is charged).

        The answer is read raw (see ``read_dry_run``): a cost-only body has no ``job`` key,
        although the SDK's model requires one.
        """
        operation = f"POST /generate/custom/{model_id}?dryRun"

        async def dry_run() -> Any:
            return await self._sdk.generate.with_raw_response.run_model(
                model_id, body=body, dry_run="true", project_id=self._project
            )

        raw = await self._read(operation, dry_run)
        try:
            payload: object = raw.http_response.json()
        except ValueError:
            payload = raw.http_response.text
        try:
            return read_dry_run(raw.status_code, payload)
        except ScenarioError as error:
            raise ScenarioError(f"{operation}: {error}") from None

    async def submit(
        self,
        model_id: str,
        body: dict[str, Any],
        *,
        exclude_job_ids: Iterable[str] = (),
        reconcile_attempts: int = 6,
        lost: LostSubmitRetry | None = None,
    ) -> SubmittedJob:
        """Submit a job, paying for it at most once.

        A POST that got no answer (timeout, dropped connection, 5xx) may still have created the
        job. Before sending it again we list the jobs created since just before the POST and look
        for one that echoes this request (``find_job``); only if none turns up is it resent.

        A 429 created nothing and is raised at once as ``ScenarioRateLimited``: an immediate
        resend only repeats it (contract §9), and when to try again depends on the caller's own
        jobs in flight (the batch waits for one of them to end, see ``batch.py``).

        Args:
            model_id: The model to run.
            body: The validated flat body of model inputs.
            exclude_job_ids: Jobs already claimed by other inputs with an identical body.
            reconcile_attempts: How many lost answers in a row to reconcile before giving up.
            lost: The lost-answer count of this input, when the caller submits it more than
                once (after a 429); else one of ``reconcile_attempts`` for this call.
        """
        operation = f"POST /generate/custom/{model_id}"
        claimed = set(exclude_job_ids)
        rule = lost or LostSubmitRetry(self.retry, reconcile_attempts)

        async def once() -> SubmittedJob:
            rule.tries += 1
            # A margin for clock skew between us and the API server.
            since = datetime.now(UTC) - timedelta(minutes=2)
            try:
                response = await self._once(
                    operation,
                    self._raw(
                        lambda: self._sdk.generate.with_raw_response.run_model(
                            model_id, body=body, project_id=self._project
                        )
                    ),
                )
            except (ScenarioConnectionError, ScenarioServerError) as error:
                log.warning("%s got no usable answer (%s); looking for the job", operation, error)
                found = await self.find_job(model_id, body, created_after=since, exclude=claimed)
                if found is None:
                    raise LostSubmit(str(error)) from error
                log.info("%s: found job %s created by the lost request", operation, found.job_id)
                return SubmittedJob(job=found, creative_units=found.creative_units, reconciled=True)
            data = _answer(operation, response)
            cost = data.get("creativeUnitsCost")
            if not isinstance(data.get("job"), dict):
                raise ScenarioError(f"{operation}: the answer has no job")
            return SubmittedJob(
                job=_job_from_api(data["job"], cost),
                creative_units=float(cost) if cost is not None else None,
            )

        try:
            return await retry(once, rule)
        except LostSubmit as gone:
            raise SubmitFailed(
                f"{operation}: {gone}; no job was created for this input "
                f"after {rule.tries} tries, so nothing was charged"
            ) from gone.__cause__

    async def find_job(
        self,
        model_id: str,
        body: dict[str, Any],
        *,
        created_after: datetime,
        exclude: Iterable[str] = (),
        settle_s: float = 1.0,
    ) -> Job | None:
        """Find a job created after ``created_after`` that echoes this request.

        Matched on the model, the input asset and our parameters as a subset of the echo once
        the model's defaults are filled in (``params.echo_matches``); not on the job type, which
        is not confirmed for a custom upscale, so the listing is not filtered by type. Listing
        twice, ``settle_s`` apart, covers a job whose creation was still being committed when
        the first listing ran.
        """
        model = await self.get_model(model_id)
        asset_id = str(body[file_input(model).name])
        excluded = set(exclude)
        for pass_number in range(2):
            async for job in self.list_jobs(created_after=created_after):
                if (
                    job.job_id not in excluded
                    and (job.created_at is None or job.created_at >= created_after)
                    and echo_matches(
                        job.input, model=model, input_asset_id=asset_id, parameters=body
                    )
                ):
                    return job
            if pass_number == 0:
                await asyncio.sleep(settle_s)
        return None

    # -- jobs -----------------------------------------------------------------------------------

    async def get_job(self, job_id: str) -> Job:
        """``GET /jobs/{jobId}``."""
        operation = f"GET /jobs/{job_id}"
        raw = await self._read(
            operation,
            self._raw(
                lambda: self._sdk.jobs.with_raw_response.retrieve(job_id, project_id=self._project)
            ),
        )
        job = _answer(operation, raw).get("job")
        if not isinstance(job, dict):
            raise ScenarioError(f"{operation}: the answer has no job")
        return _job_from_api(job)

    async def list_jobs(
        self,
        *,
        created_after: datetime | None = None,
        updated_after: datetime | None = None,
        status: str | None = None,
        job_types: Sequence[str] = (),
        page_size: int = 100,
    ) -> AsyncIterator[Job]:
        """Every job matching the filters, following ``nextPaginationToken`` to the end.

        The API sorts by creation date unless a status or type filter is given, and then by
        update date: ``createdAfter`` is only allowed in the first case and ``updatedAfter`` only
        in the second (the SDK's ``job_list_params``). One type is sent as ``type``, several as
        ``types`` (which overrides ``type``: never both). Pages may be short, or empty, while a
        token is set (contract §2): we keep going, up to ``MAX_LIST_PAGES`` pages.

        Raises:
            ValueError: a filter combination the API refuses.
            ScenarioError: the listing hands back a token already followed, or never ends.
        """
        by_update = status is not None or bool(job_types)
        if created_after is not None and by_update:
            raise ValueError("created_after cannot be combined with status or job_types")
        if updated_after is not None and not by_update:
            raise ValueError("updated_after needs a status or job_types filter")
        query: dict[str, Any] = {"page_size": page_size}
        if created_after is not None:
            query["created_after"] = iso_utc(created_after)
        if updated_after is not None:
            query["updated_after"] = iso_utc(updated_after)
        if status is not None:
            query["status"] = status
        types = sorted(set(job_types))
        if len(types) == 1:
            query["type"] = types[0]
        elif types:
            query["types"] = types
        followed: set[str] = set()
        token: str | None = None
        for _ in range(MAX_LIST_PAGES):
            page_query = {**query, "pagination_token": token} if token else query

            async def page(page_query: dict[str, Any] = page_query) -> Any:
                return await self._sdk.jobs.with_raw_response.list(
                    project_id=self._project, **page_query
                )

            answer = _answer("GET /jobs", await self._read("GET /jobs", self._raw(page)))
            for job in answer.get("jobs") or []:
                yield _job_from_api(job)
            token = answer.get("nextPaginationToken")
            if not token:
                return
            if token in followed:
                raise ScenarioError("GET /jobs: the listing handed back a page token twice")
            followed.add(token)
        raise ScenarioError(f"GET /jobs: the listing still had a next page after {MAX_LIST_PAGES}")
