"""Cancelling a batch from where a user starts and cancels it: the command line cancelled from
the Prefect API (as the UI and ``prefect flow-run cancel`` do), a served deployment, and Ctrl-C.

Each run gets more inputs than it may have jobs in flight and jobs that last far longer than the
test, so a run that ignored the cancel would go on submitting and polling for a minute. Once its
jobs are in flight (and the next inputs wait for a slot, so no submit is half done), the run is
cancelled, and the test checks what the user is promised:

* no request reaches Scenario (the emulator) later than ``CANCEL_WINDOW_S`` after the cancel;
* the run ends Cancelled;
* an artifact and an event give the jobs submitted and the creative units committed, equal to
  what the emulator charged, and say how a rerun collects them.

The emulator is this module's own, started in this process, and records when each request
arrived (``RecordingEmulatorApp``). "No request after the window" compares the emulator's clock
with the moment the test sent the cancel, two readings of one machine's clock: a property of the
order of events, not a limit on how fast anything runs. A loaded machine could still delay a
request that was sent in time (the emulator's thread stamps it when it gets to it), so the check
allows ``LOAD_MARGIN_S`` more; a run that ignores the cancel sends requests for a minute, far past
it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import httpx
import pytest
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
)
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments import run_deployment
from prefect.events.filters import (
    EventFilter,
    EventNameFilter,
    EventOccurredFilter,
    EventRelatedFilter,
)
from prefect.exceptions import ObjectNotFound
from prefect.states import Cancelling
from starlette.types import Receive, Scope, Send

import flows.cancellation
from blocks.credentials import ScenarioCredentials
from commands.cli import CANCELLED_EXIT_CODE
from commands.prefect_runtime import stop_process_group
from deployments.definitions import ALL_DEPLOYMENTS, UPSCALE_ON_DEMAND
from flows.cancellation import BATCH_CANCELLED, CANCELLED_ARTIFACT_KEY, cancel_switch
from flows.options import DEFAULT_CONCURRENCY_LIMIT
from flows.upscale import upscale_batch
from scenario_upscale.emulator import EmulatorConfig, EmulatorServer
from scenario_upscale.emulator.app import EmulatorApp
from tests.prefect_server import PrefectTestServer
from tests.support import serving, write_images

pytestmark = pytest.mark.prefect_server

REPO = Path(__file__).parents[2]
CLI = [sys.executable, "-m", "commands.cli"]
CANCEL_WINDOW_S = 2.0
"""The promise: no submit and no poll later than this after a cancel reached the run."""
LOAD_MARGIN_S = 2.0
"""What a loaded machine may add to a request's arrival stamp (see the module docstring)."""
JOB_S = 120.0
"""Emulated job duration: no job ends while a test runs, so a run that ignored the cancel
would keep polling them, and keep its other inputs waiting to be submitted."""
IN_FLIGHT = 4
"""The runs' ceiling of jobs in flight (their global concurrency limit's slots)."""
INPUTS = 7
PATIENCE_S = 120.0
"""How long a wait may take before the test calls it stuck: generous for a loaded machine."""
T = TypeVar("T")


class RecordingEmulatorApp(EmulatorApp):
    """The emulator, also noting when each request arrived (its own clock, ``time.time()``)."""

    def __init__(self, config: EmulatorConfig) -> None:
        super().__init__(config)
        self.arrivals: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope["path"]).startswith("/v1/"):
            with self._lock:
                self.arrivals.append((time.time(), f"{scope['method']} {scope['path']}"))
        await super().__call__(scope, receive, send)

    def since(self, moment: float) -> list[str]:
        """The requests that arrived after ``moment``, with their delay after it."""
        with self._lock:
            return [f"+{at - moment:.2f} s {what}" for at, what in self.arrivals if at > moment]


@pytest.fixture(scope="module")
def slow_emulator() -> Iterator[tuple[EmulatorServer, RecordingEmulatorApp]]:
    server = EmulatorServer()
    recording = RecordingEmulatorApp(EmulatorConfig(job_duration_s=JOB_S, concurrency_limit=16))
    server.app = recording
    with server:
        yield server, recording


@dataclass(frozen=True)
class Setup:
    emulator: EmulatorServer
    recording: RecordingEmulatorApp
    client: PrefectClient
    block: str
    limit: str


@pytest.fixture
async def setup(
    prefect_client_settings: PrefectTestServer,
    slow_emulator: tuple[EmulatorServer, RecordingEmulatorApp],
) -> AsyncIterator[Setup]:
    """A reset emulator, a credentials block for it, and a concurrency limit of ``IN_FLIGHT``."""
    emulator, recording = slow_emulator
    emulator.reset()
    block = f"cancel-{uuid.uuid4().hex[:8]}"
    await ScenarioCredentials(
        api_key=emulator.api_key,
        api_secret=emulator.api_secret,
        base_url=emulator.base_url,
    ).asave(block)
    async with get_client() as client, team_limit(client, DEFAULT_CONCURRENCY_LIMIT) as limit:
        yield Setup(emulator, recording, client, block, limit)


@contextlib.asynccontextmanager
async def team_limit(client: PrefectClient, name: str) -> AsyncIterator[str]:
    """The global concurrency limit ``name`` at ``IN_FLIGHT`` slots, as it was afterwards (the
    command line has no option for another limit, and other tests share this one)."""
    try:
        before: int | None = (await client.read_global_concurrency_limit_by_name(name)).limit
    except ObjectNotFound:
        before = None
        await client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=name, limit=IN_FLIGHT)
        )
    await client.update_global_concurrency_limit(
        name, GlobalConcurrencyLimitUpdate(limit=IN_FLIGHT)
    )
    try:
        yield name
    finally:
        if before is None:
            await client.delete_global_concurrency_limit_by_name(name)
        else:
            await client.update_global_concurrency_limit(
                name, GlobalConcurrencyLimitUpdate(limit=before)
            )


async def eventually(
    check: Callable[[], Awaitable[T | None]], what: str, alive: Callable[[], str | None]
) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after PATIENCE_S,
    or at once when ``alive()`` says the process running the batch is gone (and why)."""
    deadline = time.monotonic() + PATIENCE_S
    while True:
        if value := await check():
            return value
        if gone := alive():
            pytest.fail(f"while waiting for {what}: {gone}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {PATIENCE_S:g} s waiting for {what}")
        await asyncio.sleep(0.2)


async def jobs_in_flight(setup: Setup) -> bool:
    return setup.emulator.stats().jobs_created >= IN_FLIGHT


def answers_recorded(target: Path) -> Callable[[], Awaitable[bool]]:
    """The run has the answers of its IN_FLIGHT submits (its journal says "submitted"): the
    emulator counts a job when it creates it, the client a moment later, when the answer is in."""

    async def check() -> bool:
        journal = target / ".scenario-upscale" / "journal.jsonl"
        lines = journal.read_text().splitlines() if journal.exists() else []
        return sum('"kind":"submitted"' in line for line in lines) >= IN_FLIGHT

    return check


async def running_run_of(setup: Setup) -> FlowRun | None:
    runs = await setup.client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))
        )
    )
    return next((r for r in runs if r.parameters.get("credentials_block") == setup.block), None)


def late_requests(setup: Setup, cancelled_at: float) -> Callable[[], str | None]:
    """What reached Scenario later than the promise allows after ``cancelled_at``, if anything:
    checked while the run winds down too, so a run that ignores the cancel fails fast."""

    def late() -> str | None:
        found = setup.recording.since(cancelled_at + CANCEL_WINDOW_S + LOAD_MARGIN_S)
        return f"requests reached Scenario after the cancel: {found}" if found else None

    return late


async def assert_cancelled_and_reported(setup: Setup, run_id: UUID, cancelled_at: float) -> None:
    """The promise to the user, after the run ended: see the module docstring."""
    run = await setup.client.read_flow_run(run_id)
    assert run.state is not None and run.state.type == StateType.CANCELLED, run.state
    assert late_requests(setup, cancelled_at)() is None
    charged = setup.emulator.stats()
    assert charged.jobs_created == IN_FLIGHT, charged
    figures = (
        f"Cancelled: {IN_FLIGHT} job(s) submitted, "
        f"{charged.creative_units_charged:g} creative units committed"
    )
    artifacts = await setup.client.read_artifacts(
        artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[CANCELLED_ARTIFACT_KEY]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]),
        )
    )
    assert len(artifacts) == 1, artifacts
    markdown = str(artifacts[0].data)
    assert figures in markdown
    assert "Scenario cannot cancel upscale jobs" in markdown
    assert "to collect their outputs without paying again" in markdown

    async def cancelled_event() -> list[Any]:
        page = await setup.client.read_events(
            filter=EventFilter(
                occurred=EventOccurredFilter(
                    since=datetime.now(UTC) - timedelta(minutes=10),
                    until=datetime.now(UTC) + timedelta(minutes=1),
                ),
                event=EventNameFilter(name=[BATCH_CANCELLED]),
                related=EventRelatedFilter(id=[f"prefect.flow-run.{run_id}"]),
            ),
            limit=5,
        )
        return list(page.events)

    (event,) = await eventually(cancelled_event, "the cancelled event", lambda: None)
    assert event.resource.id == f"scenario.upscale.batch.{run_id}"
    assert event.payload["jobs_submitted"] == IN_FLIGHT
    assert event.payload["creative_units"] == charged.creative_units_charged
    assert "Rerun with the same inputs, target and models" in event.payload["message"]


# -- the command line -----------------------------------------------------------------------------


@dataclass
class CliRun:
    process: subprocess.Popen[str]
    output: Path

    def gone(self) -> str | None:
        if self.process.poll() is None:
            return None
        return f"the command exited ({self.process.returncode}):\n{self.output.read_text()}"

    async def finish(self, late: Callable[[], str | None]) -> tuple[int, str]:
        """The exit code and output, once it exited; ``late`` fails the test before that."""

        async def exited() -> int | None:
            return self.process.poll()

        await eventually(exited, "the command to exit", late)
        return self.process.returncode, self.output.read_text()


@pytest.fixture
def start_cli(
    setup: Setup, prefect_client_settings: PrefectTestServer, tmp_path: Path
) -> Iterator[Callable[[], CliRun]]:
    started: list[subprocess.Popen[str]] = []

    def start() -> CliRun:
        write_images(tmp_path / "in", INPUTS)
        output = tmp_path / "cli.log"
        with output.open("w") as out:
            process = subprocess.Popen(
                [
                    *CLI,
                    "upscale",
                    str(tmp_path / "in"),
                    *("--target", str(tmp_path / "out"), "--credentials-block", setup.block),
                ],
                env=prefect_client_settings.env,
                cwd=tmp_path,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        started.append(process)
        return CliRun(process, output)

    yield start
    for process in started:
        stop_process_group(process, timeout=10)


async def test_a_cli_run_cancelled_from_the_api_stops_and_reports_its_spend(
    setup: Setup, start_cli: Callable[[], CliRun], tmp_path: Path
) -> None:
    cli = start_cli()
    await eventually(lambda: jobs_in_flight(setup), f"{IN_FLIGHT} jobs in flight", cli.gone)
    await eventually(answers_recorded(tmp_path / "out"), "their submits answered", cli.gone)
    run = await eventually(lambda: running_run_of(setup), "the run", cli.gone)

    cancelled_at = time.time()
    # What `prefect flow-run cancel` and the UI's Cancel do.
    await setup.client.set_flow_run_state(run.id, Cancelling())
    code, output = await cli.finish(late_requests(setup, cancelled_at))

    assert code == CANCELLED_EXIT_CODE, output
    assert f"Cancelled: {IN_FLIGHT} job(s) submitted" in output
    await assert_cancelled_and_reported(setup, run.id, cancelled_at)
    limit = await setup.client.read_global_concurrency_limit_by_name(setup.limit)
    assert limit.active_slots == 0  # given back: the next run need not wait for a lease


async def test_ctrl_c_cancels_a_cli_run_and_reports_its_spend(
    setup: Setup, start_cli: Callable[[], CliRun], tmp_path: Path
) -> None:
    cli = start_cli()
    await eventually(lambda: jobs_in_flight(setup), f"{IN_FLIGHT} jobs in flight", cli.gone)
    await eventually(answers_recorded(tmp_path / "out"), "their submits answered", cli.gone)
    run = await eventually(lambda: running_run_of(setup), "the run", cli.gone)

    cancelled_at = time.time()
    cli.process.send_signal(signal.SIGINT)
    code, output = await cli.finish(late_requests(setup, cancelled_at))

    assert code == CANCELLED_EXIT_CODE, output
    assert "Cancelling: no new job will be submitted" in output
    assert f"Cancelled: {IN_FLIGHT} job(s) submitted" in output
    assert re.search(rf"/runs/flow-run/{run.id}", output), output
    await assert_cancelled_and_reported(setup, run.id, cancelled_at)
    limit = await setup.client.read_global_concurrency_limit_by_name(setup.limit)
    assert limit.active_slots == 0


# -- a served deployment --------------------------------------------------------------------------


async def test_a_deployment_run_cancelled_from_the_api_stops_and_reports_its_spend(
    setup: Setup, prefect_server: PrefectTestServer, tmp_path: Path
) -> None:
    images = write_images(tmp_path / "in", INPUTS)
    with serving(
        ["--credentials-block", setup.block, "--target", str(tmp_path / "out")],
        api_url=prefect_server.api_url,
        env=prefect_server.env,
        cwd=REPO,
        log=tmp_path / "serve.log",
        deployments=ALL_DEPLOYMENTS,
        automations={"upscale-on-asset-uploaded", "publish-on-batch-completed"},
        timeout_s=PATIENCE_S,
    ) as served:
        run = await run_deployment(
            UPSCALE_ON_DEMAND,
            parameters={
                "inputs": [str(p) for p in images],
                "target": str(tmp_path / "out"),
                "credentials_block": setup.block,
                "advanced": {"concurrency_limit": setup.limit},
            },
            timeout=0,
        )

        def serve_gone() -> str | None:
            if served.process.poll() is None:
                return None
            return f"serve exited:\n{served.log_tail()}"

        def late_or_gone() -> str | None:
            return late_requests(setup, cancelled_at)() or serve_gone()

        await eventually(lambda: jobs_in_flight(setup), f"{IN_FLIGHT} jobs in flight", serve_gone)
        cancelled_at = time.time()
        await setup.client.set_flow_run_state(run.id, Cancelling())

        async def final() -> FlowRun | None:
            now = await setup.client.read_flow_run(run.id)
            return now if now.state is not None and now.state.is_final() else None

        await eventually(final, "the run to end", late_or_gone)
        await assert_cancelled_and_reported(setup, run.id, cancelled_at)
        limit = await setup.client.read_global_concurrency_limit_by_name(setup.limit)
        assert limit.active_slots == 0, served.log_tail()


# -- in this process --------------------------------------------------------------------------


async def logged(setup: Setup, run_id: UUID, message: str) -> None:
    """Waits for ``message`` among the logs of the run (they reach the server in batches)."""

    async def found() -> bool:
        logs = await setup.client.read_logs(
            LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id]))
        )
        return any(log.message == message for log in logs)

    await eventually(found, f"the run to log {message!r}", lambda: None)


async def test_a_state_read_that_fails_neither_stops_nor_cancels_the_run(
    setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup.emulator.configure(job_duration_s=0.2)
    failed: list[UUID] = []

    def flaky_client() -> PrefectClient:
        client = get_client()
        read = client.read_flow_run

        async def first_read_fails(flow_run_id: UUID) -> FlowRun:
            if not failed:
                failed.append(flow_run_id)
                raise httpx.ConnectError("All connection attempts failed")
            return await read(flow_run_id)

        monkeypatch.setattr(client, "read_flow_run", first_read_fails)
        return client

    monkeypatch.setattr(flows.cancellation, "get_client", flaky_client)
    write_images(tmp_path / "in", 2)
    state = await upscale_batch(
        inputs=str(tmp_path / "in"),
        target=str(tmp_path / "out"),
        credentials_block=setup.block,
        return_state=True,
    )

    assert state.is_completed(), state.message
    assert failed == [state.state_details.flow_run_id]

    await logged(
        setup,
        failed[0],
        "Could not read this run's state to see whether it was cancelled (All connection "
        "attempts failed); trying again every 0.5 s",
    )


async def test_a_run_that_cannot_watch_its_state_goes_on_and_says_so(
    setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup.emulator.configure(job_duration_s=0.2)

    def no_client() -> PrefectClient:
        raise RuntimeError("no Prefect API here")

    monkeypatch.setattr(flows.cancellation, "get_client", no_client)
    write_images(tmp_path / "in", 1)
    state = await upscale_batch(
        inputs=str(tmp_path / "in"),
        target=str(tmp_path / "out"),
        credentials_block=setup.block,
        return_state=True,
    )

    assert state.is_completed(), state.message
    assert state.state_details.flow_run_id is not None
    await logged(
        setup,
        state.state_details.flow_run_id,
        "This run stopped watching for a cancel from the UI or the API (no Prefect API here); "
        "it goes on",
    )


async def test_a_cancel_switch_pulled_before_the_run_got_going_still_cancels_it(
    setup: Setup, tmp_path: Path
) -> None:
    write_images(tmp_path / "in", 2)
    with cancel_switch() as switch:
        switch.pull()  # Ctrl-C while the command was still starting the run
        state = await upscale_batch(
            inputs=str(tmp_path / "in"),
            target=str(tmp_path / "out"),
            credentials_block=setup.block,
            return_state=True,
        )

    assert state.is_cancelled(), state
    assert state.message is not None
    assert state.message.startswith("Cancelled: 0 job(s) submitted, 0 creative units committed.")
    assert setup.emulator.stats().jobs_created == 0
