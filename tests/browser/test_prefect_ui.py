"""The flows as a person sees them in the Prefect UI, in a real browser (Chromium).

A served ``upscale-batch`` deployment is run from its Custom run form (a model from the list,
one of its parameters, the budget); the run completes and its artifacts page renders the
results, with every image on it loaded. The screenshots the README shows are taken here.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Browser, Page
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.settings import PREFECT_API_URL, temporary_settings

from blocks.credentials import ScenarioCredentials
from commands.prefect_runtime import stop_process_group
from deployments.definitions import UPSCALE_ON_DEMAND
from flows.reporting import RESULTS_ARTIFACT_KEY
from scenario_upscale.emulator import EmulatorConfig, EmulatorServer
from tests.browser.conftest import UIServer
from tests.support import write_images

pytestmark = pytest.mark.browser
T = TypeVar("T")

README_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
"""Where the README's screenshots come from: written there with ``SCENARIO_UPSCALE_SCREENSHOTS=1``
(else into the test's temporary folder, so a test run leaves the checkout clean)."""
PATIENCE_S = 120.0
"""Generous: a loaded machine must pass; nothing here measures speed."""
CLICK_AGAIN_S = 30.0
"""How long a click on Submit may go without a run before it is made again."""

_SERVE = """
import sys
from flows.upscale import upscale_batch
inputs, target, name = sys.argv[1:4]
upscale_batch.serve(name=name, parameters={"inputs": inputs, "target": target})
"""


def _poll(what: str, check: Any, timeout: float = PATIENCE_S, seen: Callable[[], str] = str) -> Any:
    """``check()`` once it is truthy; else fail after ``timeout``, saying what ``seen()`` says."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}. {seen()}"
        time.sleep(0.5)
    return found


def _on_screen(page: Page) -> str:
    """The page's address and visible text (a form's errors, a toast), for a failure message."""
    return f"The page at {page.url} shows: {page.inner_text('body')[:2000]!r}"


def _prefect(ui_server: UIServer, call: Callable[[], T]) -> T:
    """``call`` against the UI's server, in a thread: Playwright's loop holds this one."""

    def run() -> T:
        with temporary_settings(updates={PREFECT_API_URL: ui_server.api_url}):
            return call()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(contextvars.copy_context().run, run).result()


@pytest.fixture(scope="module")
def served(ui_server: UIServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The emulator, the default ``scenario`` block pointing at it, and ``upscale-batch``
    served (its deployment's inputs: a folder of three sprites); yields the output folder."""
    work = tmp_path_factory.mktemp("ui")
    write_images(work / "in", 3, size=(64, 48))
    with EmulatorServer(EmulatorConfig(job_duration_s=0.2)) as emulator:
        block = ScenarioCredentials(
            api_key=emulator.api_key, api_secret=emulator.api_secret, base_url=emulator.base_url
        )
        _prefect(ui_server, lambda: block.save("scenario", overwrite=True))
        name = UPSCALE_ON_DEMAND.split("/")[1]
        serve = subprocess.Popen(
            [sys.executable, "-c", _SERVE, str(work / "in"), str(work / "out"), name],
            env=ui_server.env,
            cwd=work,
            stdout=(work / "serve.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield work / "out"
        finally:
            stop_process_group(serve)


def _deployment_id(ui_server: UIServer) -> str:
    async def read() -> str | None:
        async with get_client() as client:
            try:
                return str((await client.read_deployment_by_name(UPSCALE_ON_DEMAND)).id)
            except Exception:
                return None

    return str(
        _poll("the served deployment", lambda: _prefect(ui_server, lambda: asyncio.run(read())))
    )


def _runs(ui_server: UIServer, deployment_id: str) -> list[FlowRun]:
    async def read() -> list[FlowRun]:
        async with get_client() as client:
            return await client.read_flow_runs(
                deployment_filter=DeploymentFilter(
                    id=DeploymentFilterId(any_=[uuid.UUID(deployment_id)])
                )
            )

    return _prefect(ui_server, lambda: asyncio.run(read()))


def _ended(run: FlowRun) -> bool:
    return run.state is not None and run.state.is_final()


def _submitted(page: Page, ui_server: UIServer, deployment_id: str) -> FlowRun:
    """Submit the form: the run it created (the first, if a second click made two).

    The click is made again while, after ``CLICK_AGAIN_S``, no run exists and the form is still
    shown: twice in about fifteen runs on a loaded machine the page stayed on the form after the
    click and no run was created (the UI is Prefect's; why was not seen).
    """
    submit = page.get_by_role("button", name="Submit")
    deadline = time.monotonic() + PATIENCE_S
    while True:
        submit.click()
        try:
            runs: list[FlowRun] = _poll(
                "the run from the form",
                lambda: _runs(ui_server, deployment_id),
                timeout=CLICK_AGAIN_S,
                seen=lambda: _on_screen(page),
            )
        except AssertionError:
            if time.monotonic() > deadline or not page.url.endswith("/run"):
                raise
            continue
        return min(runs, key=lambda r: str(r.created))  # ISO dates: in time order


def _field(page: Page, label: str) -> Any:
    """The input of the form's field titled ``label`` (the innermost one: fields nest)."""
    title = page.locator(".schema-form-property__label", has_text=label)
    return page.locator(".schema-form-property", has=title).last.locator("input").first


def test_a_run_from_the_form_completes_and_its_artifacts_show(
    browser: Browser, ui_server: UIServer, served: Path, tmp_path: Path
) -> None:
    shots = README_SCREENSHOTS if os.environ.get("SCENARIO_UPSCALE_SCREENSHOTS") else tmp_path
    deployment_id = _deployment_id(ui_server)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{ui_server.url}/deployments/deployment/{deployment_id}/run")

    # The model from the list, one of its parameters, the budget.
    page.get_by_role("button", name="Scenario models").click()
    page.get_by_role("button", name="Upscale V3 (1-16x)").click()
    _field(page, "Upscale factor (1-16)").fill("3")
    _field(page, "Budget in creative units").fill("500")
    shots.mkdir(parents=True, exist_ok=True)
    page.get_by_role("button", name="Scenario models").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "custom-run-form.png"))
    run = _submitted(page, ui_server, deployment_id)
    done = _poll(
        "the run to end",
        lambda: next(
            (r for r in _runs(ui_server, deployment_id) if r.id == run.id and _ended(r)), None
        ),
    )
    assert done.state.is_completed(), (done.state.name, done.state.message)
    assert done.parameters["model"]["scenario"]["upscaleFactor"] == 3
    assert done.parameters["max_creative_units"] == 500
    outputs = sorted(p.name for p in served.glob("*.png"))
    assert len(outputs) == 3 and all("@upscale-v3x3." in o for o in outputs), outputs

    page.goto(f"{ui_server.url}/runs/flow-run/{run.id}")
    page.get_by_text("Artifacts", exact=True).first.click()
    page.get_by_text(RESULTS_ARTIFACT_KEY, exact=True).first.wait_for(timeout=PATIENCE_S * 1000)
    page.screenshot(path=str(shots / "run-artifacts.png"))
    page.get_by_text(RESULTS_ARTIFACT_KEY, exact=True).first.click()
    page.wait_for_url("**/artifacts/artifact/**", timeout=PATIENCE_S * 1000)
    page.wait_for_load_state("networkidle")
    # Every picture in the artifact loads (inline data: thumbnails; file:// ones would not).
    images = page.locator("img[src^='data:']")
    _poll(
        "the artifact's before/after pictures to load (one pair per output)",
        lambda: (
            images.count() >= 2 * len(outputs)
            and all(
                images.nth(i).evaluate("i => i.complete && i.naturalWidth > 0")
                for i in range(images.count())
            )
        ),
    )
    page.screenshot(path=str(shots / "results-artifact.png"), full_page=True)
