"""``scenario-upscale doctor`` against the emulator as a real server, under every profile.

The command runs in-process (typer's CliRunner) except where a test must talk to it while it
waits at its confirmation prompt, where it runs as a user runs it: a subprocess.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from pydantic import SecretStr
from typer.testing import CliRunner, Result

from blocks.credentials import ScenarioCredentials
from commands.cli import app
from scenario_upscale.doctor import Check, DoctorSettings, run_doctor
from scenario_upscale.emulator import EmulatorServer
from scenario_upscale.emulator.profiles import PROFILE_NAMES
from tests.integration.test_cli import run_cli
from tests.prefect_server import PrefectTestServer

PROJECT = "proj_emulator"  # the emulator's project (EmulatorConfig.project_id)


def credentials(emulator: EmulatorServer) -> list[str]:
    return [
        "--api-key",
        emulator.api_key,
        "--api-secret",
        emulator.api_secret,
        "--base-url",
        emulator.base_url,
    ]


def doctor(
    emulator: EmulatorServer, tmp_path: Path, *args: str, project: str | None = PROJECT
) -> tuple[Result, dict[str, Any]]:
    """Run the doctor; return its result and the findings it wrote."""
    report = tmp_path / "doctor.json"
    options = [*credentials(emulator), "--json", str(report), *args]
    if project is not None:
        options += ["--project-id", project]
    result = CliRunner().invoke(app, ["doctor", *options], env=_NO_SCENARIO_ENV)
    findings = json.loads(report.read_text()) if report.exists() else {}
    return result, findings


# Options must come from the test, not from the machine's environment.
_NO_SCENARIO_ENV: dict[str, str | None] = {
    name: None
    for name in (
        "SCENARIO_API_KEY",
        "SCENARIO_API_SECRET",
        "SCENARIO_BASE_URL",
        "SCENARIO_PROJECT_ID",
    )
}


def flat(output: str) -> str:
    """Typer's error panel without its frame and line breaks."""
    return " ".join(output.replace("│", " ").split())


def behaviours(findings: dict[str, Any]) -> list[str]:
    return sorted(b["behaviour"] for b in findings["behaviours"])


def _png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), (1, 2, 3)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def occupy_slots(emulator: EmulatorServer, count: int) -> None:
    """Submit ``count`` jobs directly, so the team's ceiling is full while they run."""
    auth = (emulator.api_key, emulator.api_secret)
    query = {"projectId": PROJECT}
    with httpx.Client(base_url=emulator.base_url, auth=auth, params=query) as api:
        upload = api.post("/assets", json={"name": "slot.png", "image": _png()})
        asset = upload.raise_for_status().json()["asset"]["id"]
        for _ in range(count):
            api.post("/generate/custom/model_upscale-v3", json={"image": asset}).raise_for_status()


# -- under every profile ----------------------------------------------------------------------

PLAIN_PROFILES = [p for p in PROFILE_NAMES if p != "ceiling-no-retry-hint"]


@pytest.mark.parametrize("profile", PLAIN_PROFILES)
def test_doctor_names_exactly_the_behaviours_of_each_profile(
    fresh_emulator: EmulatorServer, tmp_path: Path, profile: str
) -> None:
    fresh_emulator.configure(profile=profile)
    result, findings = doctor(fresh_emulator, tmp_path, "--submit", "--yes")
    expected = [] if profile == "default" else [profile]
    assert behaviours(findings) == expected, result.output
    for name in expected:
        assert f"  {name}: " in result.output
    # One real job, paid once.
    stats = fresh_emulator.stats()
    assert stats.jobs_created == 1
    assert stats.creative_units_charged == findings["creative_units_spent"] == 1.0
    assert findings["submitted"] and findings["job_id"]
    if profile == "normalised-echo":
        assert "upscaleFactor: sent 2, echoed 2.0; jobType 'upscale'" in result.output
    # The engine copes with every plausible answer, and the doctor says so.
    assert all(b["engine_copes"] for b in findings["behaviours"]), result.output
    assert findings["assumptions_hold"] is True
    assert result.exit_code == 0, result.output


def test_under_the_default_profile_every_assumption_holds(
    fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    result, findings = doctor(fresh_emulator, tmp_path, "--submit", "--yes")
    assert result.exit_code == 0, result.output
    assert findings["assumptions_hold"] is True
    assert [c["verdict"] for c in findings["checks"]] == ["ok"] * 10
    assert "none beyond what the engine assumes" in result.output
    assert "The engine's assumptions hold." in result.output
    written = (tmp_path / "doctor.json").read_text()
    for secret in (fresh_emulator.api_secret, fresh_emulator.api_key):
        assert secret not in result.output
        assert secret not in written


def test_sparse_listing_pages_are_noted_with_the_early_statuses(
    fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    fresh_emulator.configure(profile="sparse-pages")
    occupy_slots(fresh_emulator, 3)  # more jobs than a page holds
    result, findings = doctor(fresh_emulator, tmp_path, "--submit", "--yes")
    assert result.exit_code == 0, result.output
    [seen] = findings["behaviours"]
    assert seen["behaviour"] == "sparse-pages" and seen["engine_copes"]
    assert seen["evidence"].startswith("the job went through pending")
    assert " pages short or empty with a next token" in seen["evidence"]
    listing = next(c for c in findings["checks"] if c["step"] == "listing")
    assert listing["verdict"] == "note"
    assert {"jobs": 0, "next_token": True} in listing["seen"]["pages"]


def test_a_full_ceiling_without_retry_hint_is_waited_out(
    fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    """The doctor waits at its prompt while the test fills the ceiling of 3, then submits."""
    fresh_emulator.configure(profile="ceiling-no-retry-hint")
    report = tmp_path / "doctor.json"
    command = [sys.executable, "-m", "commands.cli", "doctor", "--submit"]
    command += [*credentials(fresh_emulator), "--project-id", PROJECT, "--json", str(report)]
    env = {k: v for k, v in os.environ.items() if k not in _NO_SCENARIO_ENV}
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdin is not None and process.stdout is not None
    seen = b""
    try:
        while b"creative units? [y/N]" not in seen:
            chunk = os.read(process.stdout.fileno(), 4096)
            assert chunk, seen.decode()
            seen += chunk
        # Long jobs for the slots (each job keeps the duration it started with), short for ours.
        fresh_emulator.configure(job_duration_s=4.0)
        occupy_slots(fresh_emulator, 3)
        fresh_emulator.configure(job_duration_s=0.3)
        rest, _ = process.communicate(b"y\n", timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    output = (seen + rest).decode()
    findings = json.loads(report.read_text())
    assert behaviours(findings) == ["ceiling-no-retry-hint"], output
    assert fresh_emulator.stats().rate_limited >= 1
    submit = next(c for c in findings["checks"] if c["step"] == "submit")
    assert submit["verdict"] == "ok" and "after" in submit["message"]
    assert all(c["action_limit"] == 3 for c in submit["seen"]["ceilings"])
    assert fresh_emulator.stats().jobs_created == 4  # the 3 slots and the doctor's one
    assert findings["assumptions_hold"] is True
    assert process.returncode == 0, output


# -- spending ---------------------------------------------------------------------------------


def test_without_submit_nothing_is_charged(fresh_emulator: EmulatorServer, tmp_path: Path) -> None:
    result, findings = doctor(fresh_emulator, tmp_path)
    assert result.exit_code == 0, result.output
    assert "nothing submitted, nothing spent" in result.output
    stats = fresh_emulator.stats()
    assert stats.jobs_created == 0 and stats.creative_units_charged == 0
    assert stats.dry_runs == 1
    assert findings["submitted"] is False


def test_a_price_above_the_limit_is_refused_and_charges_nothing(
    fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    result, _ = doctor(fresh_emulator, tmp_path, "--submit", "--yes", "--max-creative-units", "0.5")
    assert result.exit_code == 1
    assert (
        "one job of model_upscale-v3 costs 1 creative units, above --max-creative-units 0.5: "
        "nothing was submitted" in result.output
    )
    assert fresh_emulator.stats().creative_units_charged == 0


def test_a_declined_confirmation_submits_nothing(
    fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    report = tmp_path / "doctor.json"
    args = ["doctor", *credentials(fresh_emulator), "--submit", "--json", str(report)]
    result = CliRunner().invoke(app, args, input="n\n", env=_NO_SCENARIO_ENV)
    assert "for 1 creative units? [y/N]" in result.output
    assert "not confirmed: nothing submitted, nothing spent" in result.output
    assert result.exit_code == 0
    assert fresh_emulator.stats().jobs_created == 0


# -- credentials from a saved block -----------------------------------------------------------


async def test_a_saved_block_is_checked(
    prefect_client_settings: PrefectTestServer, fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    await ScenarioCredentials(
        api_key=fresh_emulator.api_key,
        api_secret=fresh_emulator.api_secret,
        base_url=fresh_emulator.base_url,
        project_id=PROJECT,
    ).asave("doctor-check", overwrite=True)
    env = {k: v for k, v in prefect_client_settings.env.items() if k not in _NO_SCENARIO_ENV}
    done = run_cli("doctor", "--block", "doctor-check", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing submitted, nothing spent" in done.stdout
    findings = json.loads((tmp_path / "scenario-doctor.json").read_text())
    assert findings["project_id"] == PROJECT and findings["base_url"] == fresh_emulator.base_url
    for secret in (fresh_emulator.api_secret, fresh_emulator.api_key):
        assert secret not in done.stdout + done.stderr
    missing = run_cli("doctor", "--block", "no-such-block", env=env, cwd=tmp_path)
    assert missing.returncode == 2
    assert "no ScenarioCredentials block named 'no-such-block'" in flat(missing.stderr)


# -- failures and their messages ---------------------------------------------------------------


def test_bad_credentials_give_a_clear_error(fresh_emulator: EmulatorServer, tmp_path: Path) -> None:
    wrong = "not-the-secret-42"
    report = tmp_path / "doctor.json"
    args = ["doctor", "--api-key", fresh_emulator.api_key, "--base-url", fresh_emulator.base_url]
    result = CliRunner().invoke(
        app,
        [*args, "--json", str(report)],
        env={**_NO_SCENARIO_ENV, "SCENARIO_API_SECRET": wrong},
    )
    assert result.exit_code == 1
    assert "the API refused the key and secret (HTTP 401: Unauthorized)" in result.output
    assert wrong not in result.output and wrong not in report.read_text()


def test_missing_credentials_are_a_bad_option(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["doctor"], env=_NO_SCENARIO_ENV)
    assert result.exit_code == 2
    assert "give --block NAME, or --api-key and --api-secret" in flat(result.output)


def test_a_base_url_that_is_not_http_is_a_bad_option(tmp_path: Path) -> None:
    args = ["doctor", "--api-key", "k", "--api-secret", "s", "--base-url", "ftp://host/v1"]
    result = CliRunner().invoke(app, args, env=_NO_SCENARIO_ENV)
    assert result.exit_code == 2
    assert "base_url must be an http:// or https:// URL" in flat(result.output)


def test_a_limit_of_zero_is_a_bad_option(fresh_emulator: EmulatorServer, tmp_path: Path) -> None:
    result, _ = doctor(fresh_emulator, tmp_path, "--max-creative-units", "0")
    assert result.exit_code == 2
    assert "must be above 0, got 0" in flat(result.output)


def test_a_strict_project_api_without_project_says_to_set_one(
    fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    fresh_emulator.configure(profile="strict-project")
    result, findings = doctor(fresh_emulator, tmp_path, project=None)
    assert result.exit_code == 1
    assert "the API refused a request without a project (HTTP 400: projectId is required)" in (
        result.output
    )
    assert "set the project id (--project-id, or the block's project_id)" in result.output
    assert behaviours(findings) == ["strict-project"]


def test_a_project_not_the_keys_is_a_failure_with_advice(
    fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    fresh_emulator.configure(profile="strict-project")
    result, _ = doctor(fresh_emulator, tmp_path, project="proj_someone-else")
    assert result.exit_code == 1
    assert "the API refused project 'proj_someone-else' (HTTP 403" in result.output
    assert "use the id of the project the API key was created in" in result.output


def test_an_unknown_model_says_to_pick_another(
    fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    result, _ = doctor(fresh_emulator, tmp_path, "--model", "model_nope")
    assert result.exit_code == 1
    assert "GET /models/model_nope answered HTTP 404" in result.output
    assert "pick an image upscale model your plan can use (--model)" in result.output


def test_a_video_model_is_refused(fresh_emulator: EmulatorServer, tmp_path: Path) -> None:
    result, _ = doctor(fresh_emulator, tmp_path, "--model", "model_seedvr-2-upscale-video")
    assert result.exit_code == 1
    assert "model_seedvr-2-upscale-video takes a video, not an image" in result.output


def test_an_unreachable_api_is_named(tmp_path: Path) -> None:
    args = ["doctor", "--api-key", "k", "--api-secret", "s", "--json", str(tmp_path / "d.json")]
    result = CliRunner().invoke(
        app, [*args, "--base-url", "http://127.0.0.1:9/v1"], env=_NO_SCENARIO_ENV
    )
    assert result.exit_code == 1
    assert "GET /jobs: no answer from the API (ConnectError)" in result.output


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ("/v1/assets", "POST /assets answered HTTP 503"),
        ("/v1/generate/custom/{modelId}", "the dry run answered HTTP 503, not 269 or 200"),
    ],
)
def test_a_failed_upload_or_dry_run_stops_before_any_spend(
    fresh_emulator: EmulatorServer, tmp_path: Path, route: str, message: str
) -> None:
    fresh_emulator.configure(fault_routes=[route], fail_next_n_posts=1)
    result, _ = doctor(fresh_emulator, tmp_path, "--submit", "--yes")
    assert result.exit_code == 1
    assert message in result.output
    assert fresh_emulator.stats().creative_units_charged == 0


def test_a_lost_submit_answer_is_not_sent_again(
    fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    fresh_emulator.configure(drop_generate_after_commit=1)
    result, _ = doctor(fresh_emulator, tmp_path, "--submit", "--yes")
    assert result.exit_code == 1
    assert "a job may have been created and charged" in result.output
    assert "look at your jobs (GET /v1/jobs) before running the doctor again" in result.output
    assert fresh_emulator.stats().jobs_created == 1


def test_a_failed_job_is_reported_with_its_error(
    fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    fresh_emulator.configure(fail_next_n_jobs=1)
    result, _ = doctor(fresh_emulator, tmp_path, "--submit", "--yes")
    assert result.exit_code == 1
    assert "ended failure: Upscale failed" in result.output


# -- the engine side, called directly ----------------------------------------------------------


def settings_for(emulator: EmulatorServer, **overrides: Any) -> DoctorSettings:
    return DoctorSettings(
        api_key=SecretStr(emulator.api_key),
        api_secret=SecretStr(emulator.api_secret),
        base_url=emulator.base_url,
        project_id=PROJECT,
        submit=True,
        **overrides,
    )


async def test_a_ceiling_that_stays_full_fails_without_submitting(
    fresh_emulator: EmulatorServer,
) -> None:
    fresh_emulator.configure(profile="ceiling-no-retry-hint", job_duration_s=60.0)
    occupy_slots(fresh_emulator, 3)
    checks: list[Check] = []
    settings = settings_for(fresh_emulator, ceiling_wait_s=0)
    findings = await run_doctor(settings, confirm=lambda cost: True, report=checks.append)
    assert checks[-1].verdict == "FAIL"
    assert checks[-1].message.startswith(
        "the team's concurrency ceiling stayed full for 0 s (HTTP 429: Too many concurrent"
    )
    assert checks[-1].message.endswith("nothing was submitted")
    assert not findings.submitted and fresh_emulator.stats().jobs_created == 3


async def test_a_job_past_its_deadline_is_reported(fresh_emulator: EmulatorServer) -> None:
    fresh_emulator.configure(job_duration_s=60.0)
    checks: list[Check] = []
    settings = settings_for(fresh_emulator, job_deadline_s=0.01)
    await run_doctor(settings, confirm=lambda cost: True, report=checks.append)
    assert checks[-1].step == "polling" and checks[-1].verdict == "FAIL"
    assert " still queued after 0.01 s" in checks[-1].message
