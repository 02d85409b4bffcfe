"""The README's main job: a real upscale batch through ``upscale_batch`` against the emulator.

Everything is real but Scenario's cloud: the flow, the Prefect server that records it, the HTTP
API (the embedded emulator on 127.0.0.1, which really resizes images and charges emulated
creative units), the downloads and the files left in the output folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast
from urllib.parse import SplitResult, urlsplit

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from commands.prefect_runtime import PrefectAPI, prefect_api

if TYPE_CHECKING:  # Prefect is imported only once its server is starting (see run_demo).
    from scenario_upscale.batch import BatchReport
    from scenario_upscale.batch import Progress as BatchProgress
    from scenario_upscale.emulator import EmulatorServer

T = TypeVar("T")
DEMO_BLOCK = "scenario"
"""The demo's block takes the default name, so serving afterwards finds it (``local_emulator``)."""
FALLBACK_DEMO_BLOCK = "scenario-emulator"
"""Used instead when a ``scenario`` block already points elsewhere: real credentials stay."""
LOOPBACK = ("127.0.0.1", "localhost")
DEMO_UPSCALES = (
    ("model_upscale-v3", {"upscaleFactor": 4}),
    ("model_seedvr-2-upscale-image", {"upscaleFactor": 2}),
)


def run_demo(images: int, inputs: Path, output: Path, job_seconds: float) -> int:
    """Generate samples, start the emulator, run ``upscale_batch``, print what happened.

    Returns the process exit code: 0 when every input was upscaled.
    """
    # Piped output (CI logs, `| tee`) gets a readable width instead of rich's 80 columns.
    console = Console() if sys.stdout.isatty() else Console(width=130)
    started = time.monotonic()
    stack = contextlib.ExitStack()
    try:
        setup = _Setup(stack, images, inputs, job_seconds)
        with console.status("Starting Prefect (a local server, recorded in your Prefect home)…"):
            # Entered before Prefect is imported: the server starts while Prefect loads, and
            # the emulator and the samples are readied while it boots.
            api_context = prefect_api(meanwhile=setup.run)
            api = api_context.__enter__()
        stack.callback(_stop_prefect, console, api_context)
        console.print(f"Prefect API: {api.api_url} ({api.source})")
        console.print(f"{len(setup.sources)} sample images in [bold]{inputs}/[/]")
        console.print(f"Scenario emulator: {setup.emulator.base_url}")
        return _run(console, api, setup.emulator, inputs, output, started)
    finally:
        stack.close()


def _stop_prefect(console: Console, api_context: AbstractContextManager[PrefectAPI]) -> None:
    with console.status("Stopping…"):
        api_context.__exit__(None, None, None)


class _Setup:
    """What the demo needs besides Prefect: the embedded emulator running (stopped by
    ``stack``) and the sample images written."""

    def __init__(
        self, stack: contextlib.ExitStack, images: int, inputs: Path, job_seconds: float
    ) -> None:
        self.stack, self.images, self.inputs, self.job_seconds = stack, images, inputs, job_seconds
        self.sources: list[Path] = []

    def run(self) -> None:
        import flows.upscale  # noqa: F401  (loaded now, while the server boots, not after it)
        from scenario_upscale.emulator import EmulatorConfig, EmulatorServer
        from scenario_upscale.samples import write_samples

        config = EmulatorConfig(job_duration_s=self.job_seconds)
        self.emulator = self.stack.enter_context(EmulatorServer(config))
        self.sources = write_samples(self.inputs, self.images)


def _run(
    console: Console,
    api: PrefectAPI,
    emulator: EmulatorServer,
    inputs: Path,
    output: Path,
    started: float,
) -> int:
    from blocks.credentials import ScenarioCredentials
    from flows.reporting import watching_progress
    from flows.states import BatchIncomplete
    from flows.upscale import upscale_batch
    from scenario_upscale.batch import BatchReport, UpscaleSpec

    block = _demo_block_name()
    ScenarioCredentials(
        api_key=emulator.api_key, api_secret=emulator.api_secret, base_url=emulator.base_url
    ).save(block, overwrite=True)
    upscales = [UpscaleSpec(model_id=m, parameters=p) for m, p in DEMO_UPSCALES]
    bar = Progress(
        TextColumn("[bold]Upscaling"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[cu]:g} CU"),
        TimeElapsedColumn(),
        console=console,
    )
    task_id = bar.add_task("jobs", total=None, cu=0.0)

    def show(p: BatchProgress) -> None:
        bar.update(task_id, total=p.total, completed=p.done, cu=p.creative_units)

    with bar, watching_progress(show):
        state = asyncio.run(
            as_coroutine(
                upscale_batch(
                    inputs=str(inputs),
                    target=str(output),
                    upscales=upscales,
                    credentials_block=block,
                    return_state=True,
                )
            )
        )
    stats = emulator.stats()
    report = state.result(raise_on_failure=False)
    if isinstance(report, BatchIncomplete):  # some inputs failed: the report is still shown
        report = report.report
    if not isinstance(report, BatchReport):
        console.print(f"[red]The batch failed:[/] {state.message}")
        return 1
    _print_report(console, report)
    console.print(
        f"{state.name}: {report.summary()} (emulator: {stats.jobs_created} jobs, "
        f"{stats.creative_units_charged:g} CU charged) in {time.monotonic() - started:.1f} s"
    )
    console.print(f"Upscaled images are in [bold]{output}/[/]")
    console.print(api.view_hint(state.state_details.flow_run_id or ""))
    return 0 if report.ok else 1


def _points_at_loopback(base_url: str) -> bool:
    return urlsplit(base_url).hostname in LOOPBACK


def _demo_block_name() -> str:
    """``scenario`` unless a block of that name points at something other than this machine."""
    from blocks.credentials import ScenarioCredentials

    try:
        existing = cast(ScenarioCredentials, ScenarioCredentials.load(DEMO_BLOCK))
    except ValueError:  # Prefect: "Unable to find block document named ..."
        return DEMO_BLOCK
    return DEMO_BLOCK if _points_at_loopback(existing.base_url) else FALLBACK_DEMO_BLOCK


@contextmanager
def local_emulator(block_name: str, say: Callable[[str], None]) -> Iterator[None]:
    """While serving: the embedded emulator, if the block points at one on this machine that
    is not running (the demo's, which stopped with it), on the port the block names.

    The demo's emulator takes the emulator's default key and secret, so a new one on the same
    port accepts the block as it is; nothing reads the block's secret here.
    """
    from prefect.settings import PREFECT_API_URL

    from blocks.credentials import ScenarioCredentials
    from scenario_upscale.emulator import EmulatorConfig, EmulatorServer

    if not PREFECT_API_URL.value():
        yield  # no server to read the block from (loading it would start a temporary one)
        return
    try:
        block = cast(ScenarioCredentials, ScenarioCredentials.load(block_name))
    except ValueError:
        yield  # serving reports the missing block in Prefect's words when a run loads it
        return
    address = urlsplit(block.base_url)
    if not _points_at_loopback(block.base_url) or address.port is None or _answers(address):
        yield
        return
    with EmulatorServer(EmulatorConfig(), port=address.port) as emulator:
        say(
            f"Started the embedded Scenario emulator at {emulator.base_url}: the "
            f"{block_name!r} block points at it (saved by `scenario-upscale demo`)."
        )
        yield


def _answers(address: SplitResult) -> bool:
    try:
        with socket.create_connection((address.hostname or "127.0.0.1", address.port or 80), 1):
            return True
    except OSError:
        return False


async def as_coroutine(awaitable: Awaitable[T]) -> T:
    """``asyncio.run`` wants a coroutine; Prefect types a flow call as an awaitable."""
    return await awaitable


def _print_report(console: Console, report: BatchReport) -> None:
    table = Table(title="Results", show_lines=False)
    for column in ("input", "model", "status", "size", "CU", "output"):
        table.add_column(column, overflow="fold")
    for r in report.results:
        size = (
            f"{r.input_width}x{r.input_height} → {r.output_width}x{r.output_height}"
            if r.output_width
            else ""
        )
        cu = f"{r.creative_units:g}" if r.creative_units is not None else ""
        output = Path(r.outputs[0]).name if r.outputs else (r.error or "")
        status = r.status if r.status in ("success", "skipped") else f"[red]{r.status}[/]"
        table.add_row(
            Path(r.source).name, r.model_id.removeprefix("model_"), status, size, cu, output
        )
    console.print(table)
