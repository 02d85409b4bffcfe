"""The checks of the one real job (only with ``--submit``): its submit, polling, the listing and
echo that reconciliation relies on, and its download with and without originals."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from scenario_upscale.api import iso_utc, retry_after_of
from scenario_upscale.doctor.findings import (
    LIST_PAGE_SIZE,
    MAX_PAGES,
    SCALE_INPUTS,
    TINY_SIZE,
    Verdict,
)
from scenario_upscale.doctor.session import Session, Stop, decoded_size, json_of, reason_of
from scenario_upscale.errors import ScenarioError, ScenarioRateLimited
from scenario_upscale.models import terminal_outcome
from scenario_upscale.storage import download

# -- 5. submit (only with --submit) -----------------------------------------------------------


# A submit without a usable answer may still have created (and charged) its job: never resend.
_MAY_EXIST = (
    "a job may have been created and charged: look at your jobs (GET /v1/jobs) before running "
    "the doctor again"
)


async def probe_submit(s: Session) -> None:
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
        except Stop as lost:
            raise s.fail(step, f"{lost}; {_MAY_EXIST}") from None
        if response.status_code != 429:
            break
        body = json_of(response)
        details = body.get("details") if isinstance(body, dict) else None
        # Read as the engine reads it, so the limit reported is the one the engine would learn.
        refused = ScenarioRateLimited(
            f"POST /{path}",
            429,
            reason_of(response),
            details=details if isinstance(details, dict) else None,
            retry_after=retry_after_of(json_of(response), response.headers),
        )
        hint = refused.retry_after
        ceilings.append({"retry_hint_s": hint, "action_limit": refused.action_limit})
        if time.monotonic() > deadline:
            raise s.fail(
                step,
                f"the team's concurrency ceiling stayed full for {s.settings.ceiling_wait_s:g} s "
                f"(HTTP 429: {reason_of(response)}); nothing was submitted",
            )
        await asyncio.sleep(hint if hint is not None else wait)
        wait = min(wait * 2, 15.0)
    _note_ceiling(s, ceilings)
    payload = json_of(response)
    if response.status_code >= 500:
        raise s.fail(
            step,
            f"the submit answered HTTP {response.status_code}: {reason_of(response)}; {_MAY_EXIST}",
        )
    if response.status_code != 200 or not isinstance(payload, dict) or "job" not in payload:
        raise s.fail(
            step, f"the submit answered HTTP {response.status_code}: {reason_of(response)}"
        )
    s.job = payload["job"]
    s.findings.submitted = True
    s.findings.job_id = str(s.job.get("jobId") or s.job.get("id"))
    cost = payload.get("creativeUnitsCost", s.cost)
    s.findings.creative_units_spent = float(cost) if isinstance(cost, int | float) else 0.0
    waited = f" after {len(ceilings)} 429s" if ceilings else ""
    s.check(step, "ok", f"job {s.findings.job_id} submitted{waited}", ceilings=ceilings)


def _note_ceiling(s: Session, ceilings: list[dict[str, Any]]) -> None:
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


async def probe_polling(s: Session) -> None:
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
        body = json_of(response)
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


async def probe_listing(s: Session) -> None:
    """``GET /v1/jobs`` page by page, as reconciliation lists them."""
    step = "listing"
    since = s.submitted_at - timedelta(minutes=2)
    query: dict[str, Any] = {"pageSize": LIST_PAGE_SIZE, "createdAfter": iso_utc(since)}
    pages: list[dict[str, Any]] = []
    found = False
    token: str | None = None
    while len(pages) < MAX_PAGES:
        params = {**query, "paginationToken": token} if token else query
        response = await s.call("GET", "jobs", params=params)
        if response.status_code != 200:
            raise s.fail(
                step, f"GET /jobs answered HTTP {response.status_code}: {reason_of(response)}"
            )
        body = json_of(response)
        jobs = body.get("jobs") or []
        token = body.get("nextPaginationToken") or None
        pages.append({"jobs": len(jobs), "next_token": token is not None})
        found = found or any(j.get("jobId") == s.findings.job_id for j in jobs)
        if not token:
            break
    sparse = [p for p in pages if p["next_token"] and p["jobs"] < LIST_PAGE_SIZE]
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


async def _engine_lists(s: Session, since: datetime) -> bool:
    try:
        async for job in s.engine.list_jobs(created_after=since, page_size=LIST_PAGE_SIZE):
            if job.job_id == s.findings.job_id:
                return True
    except ScenarioError:
        return False
    return False


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


async def probe_echo(s: Session) -> None:
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


def _expected_size(s: Session) -> tuple[int, int] | None:
    assert s.model is not None
    factor = next((s.body[n] for n in SCALE_INPUTS if isinstance(s.body.get(n), int | float)), None)
    if factor is None:
        return None
    return round(TINY_SIZE[0] * factor), round(TINY_SIZE[1] * factor)


async def _fetch_output(s: Session, asset_id: str, original: bool) -> dict[str, Any]:
    params = {"originalAssets": "true"} if original else None
    response = await s.call("GET", f"assets/{asset_id}", params=params)
    if response.status_code != 200:
        raise Stop(
            f"GET /assets/{asset_id} answered HTTP {response.status_code}: {reason_of(response)}"
        )
    asset = json_of(response)["asset"]
    got = await s.cdn.get(asset["url"])
    if got.status_code != 200:
        raise Stop(f"the CDN answered HTTP {got.status_code} for {asset_id}")
    return {
        "announced": (asset.get("properties") or {}).get("size"),
        "bytes": len(got.content),
        "pixels": decoded_size(got.content),
    }


async def _engine_collects(s: Session, asset_id: str) -> tuple[bool, str]:
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


async def probe_download(s: Session) -> None:
    step = "download"
    outputs = (s.job.get("metadata") or {}).get("assetIds") or []
    if not outputs:
        raise s.fail(step, f"job {s.findings.job_id} succeeded without output assets")
    asset_id = str(outputs[0])
    try:
        plain = await _fetch_output(s, asset_id, original=False)
        original = await _fetch_output(s, asset_id, original=True)
    except Stop as error:
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
