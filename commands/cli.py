"""``scenario-upscale``: the demo, the emulator, upscaling, serving the deployments, the doctor,
and the local scale-out stack.

The commands that run flows import the Prefect layer only when called, so the engine itself
(and ``scenario-upscale emulator``) never loads Prefect.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

# Loaded for the type of --profile (typer reads the Literal's names as the choices).
from scenario_upscale.emulator.profiles import ProfileName

T = TypeVar("T")

app = typer.Typer(
    help="Upscale images with Scenario through Prefect flows, or try it all on a local emulator.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def demo(
    images: Annotated[int, typer.Option(min=1, max=200, help="Sample images to generate.")] = 12,
    inputs: Annotated[Path, typer.Option(help="Where the sample images are written.")] = Path(
        "demo-input"
    ),
    output: Annotated[Path, typer.Option(help="Where the upscaled images land.")] = Path(
        "upscaled"
    ),
    job_seconds: Annotated[
        float, typer.Option(min=0, help="How long each emulated job runs.")
    ] = 2.0,
) -> None:
    """Run a real upscale batch (two models) against the embedded Scenario emulator."""
    from commands.demo import run_demo

    raise typer.Exit(run_demo(images, inputs, output, job_seconds))


@app.command()
def emulator(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8765,
    api_key: Annotated[str, typer.Option(help="The API key clients must send.")] = "emulator-key",
    api_secret: Annotated[
        str, typer.Option(help="The API secret clients must send.")
    ] = "emulator-secret",
    job_seconds: Annotated[float, typer.Option(min=0, help="Duration of each job.")] = 2.0,
    concurrency_limit: Annotated[int, typer.Option(min=1, help="Team ceiling (429).")] = 8,
    profile: Annotated[
        ProfileName,
        typer.Option(
            envvar="SCENARIO_EMULATOR_PROFILE",
            help="Which plausible reading of the real API to play (see emulator/profiles.py).",
        ),
    ] = "default",
) -> None:
    """Serve the Scenario emulator in the foreground (Ctrl+C stops it)."""
    from pydantic import SecretStr

    from scenario_upscale.emulator import EmulatorConfig
    from scenario_upscale.emulator.server import serve

    config = EmulatorConfig(
        api_key=api_key,
        api_secret=SecretStr(api_secret),
        job_duration_s=job_seconds,
        concurrency_limit=concurrency_limit,
        profile=profile,
    )
    typer.echo(
        f"Scenario emulator listening on http://127.0.0.1:{port}/v1"
        f" (key {api_key}, profile {profile})"
    )
    serve("127.0.0.1", port, config)


def _parameters(values: list[str]) -> dict[str, object]:
    parsed: dict[str, object] = {}
    for value in values:
        name, sep, raw = value.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{value!r} is not NAME=VALUE", param_hint="--param")
        try:
            parsed[name] = json.loads(raw)  # 4 → 4, true → True, "4x" stays a string
        except json.JSONDecodeError:
            parsed[name] = raw
    return parsed


def _budget(value: float | None) -> float | None:
    if value is not None and value < 0:
        raise typer.BadParameter(
            f"got {value:g}; give the most creative units the batch may cost (0 or more), "
            "or leave it out for no limit"
        )
    return value


@app.command()
def upscale(
    inputs: Annotated[list[str], typer.Argument(help="Files, folders, globs, URLs or asset ids.")],
    target: Annotated[str, typer.Option(help="Output folder or fsspec URL.")] = "upscaled",
    model: Annotated[str, typer.Option(help="Scenario model id.")] = "model_upscale-v3",
    param: Annotated[
        list[str] | None, typer.Option(help="Model input as NAME=VALUE (repeatable).")
    ] = None,
    credentials_block: Annotated[
        str, typer.Option(help="Saved ScenarioCredentials block name.")
    ] = "scenario",
    max_creative_units: Annotated[
        float | None,
        typer.Option(callback=_budget, help="Refuse to start above this dry-run total."),
    ] = None,
) -> None:
    """Run the upscale-batch flow on INPUTS with one model.

    Ctrl-C cancels the run as the Prefect UI's Cancel does: no new job, no more polling, and
    the jobs already submitted (which Scenario cannot cancel) are reported; a second Ctrl-C
    stops at once.

    Exit codes:
    0 completed: every input upscaled (or already done);
    3 partially completed: some inputs failed, the others are in the target;
    1 failed: every input failed, or bad input stopped it before any spending;
    130 cancelled (Ctrl-C, the UI or the API): rerun the same command to collect what it paid;
    2 bad command-line options.
    """
    from commands.prefect_runtime import prefect_api

    with prefect_api() as api:
        import asyncio

        from flows.upscale import upscale_batch
        from scenario_upscale.batch import UpscaleSpec

        state = asyncio.run(
            _cancelled_by_ctrl_c(
                lambda: upscale_batch(
                    inputs=inputs,
                    target=target,
                    upscales=[UpscaleSpec(model_id=model, parameters=_parameters(param or []))],
                    credentials_block=credentials_block,
                    max_creative_units=max_creative_units,
                    return_state=True,
                )
            )
        )
        typer.echo(f"{state.name}: {state.message}")
        typer.echo(api.view_hint(state.state_details.flow_run_id or ""))
    raise typer.Exit(exit_code(state.name, state.is_completed(), state.is_cancelled()))


async def _cancelled_by_ctrl_c(start: Callable[[], Awaitable[T]]) -> T:
    """``start()`` awaited with Ctrl-C pulling the runs' cancel switch (see flows.cancellation);
    a second Ctrl-C raises KeyboardInterrupt at once, as Python's own handler does."""
    import asyncio
    import signal

    from flows.cancellation import cancel_switch

    loop = asyncio.get_running_loop()
    with cancel_switch() as switch:

        def first_ctrl_c() -> None:
            loop.remove_signal_handler(signal.SIGINT)  # back to KeyboardInterrupt
            typer.echo(
                "Cancelling: no new job will be submitted; jobs already submitted finish on "
                "Scenario and stay paid for (Ctrl-C again to stop at once).",
                err=True,
            )
            switch.pull()

        loop.add_signal_handler(signal.SIGINT, first_ctrl_c)
        try:
            return await start()
        finally:
            loop.remove_signal_handler(signal.SIGINT)


#: ``upscale``'s exit code when the run ended "Partially completed" (some inputs failed).
PARTIAL_EXIT_CODE = 3
#: ``upscale``'s exit code when the run was cancelled (128 + SIGINT, as shells report Ctrl-C).
CANCELLED_EXIT_CODE = 130


def exit_code(state_name: str | None, completed: bool, cancelled: bool = False) -> int:
    """0 completed, 3 partially completed (a FAILED-type state by that name, see
    ``flows.states``), 130 cancelled, 1 anything else (Failed, Over budget, Crashed)."""
    if cancelled:
        return CANCELLED_EXIT_CODE
    if state_name == "Partially completed":
        return PARTIAL_EXIT_CODE
    return 0 if completed else 1


_VERDICT_STYLE = {"ok": "green", "note": "yellow", "FAIL": "bold red", "skipped": "dim"}


def _doctor_settings(
    block: str | None,
    api_key: str | None,
    api_secret: str | None,
    base_url: str | None,
    project_id: str | None,
) -> dict[str, object]:
    """Credentials for the doctor: a saved block, or key, secret, base URL and project.

    Either way they go through ``ScenarioCredentials``, so a base URL is checked as the block
    checks it; the key and secret stay ``SecretStr`` until the doctor builds its clients.
    """
    import asyncio
    from typing import cast

    from pydantic import ValidationError

    from blocks.credentials import ScenarioCredentials

    if block is not None:
        from commands.prefect_runtime import prefect_api

        with prefect_api(ui=False):
            try:
                saved = cast(ScenarioCredentials, asyncio.run(ScenarioCredentials.aload(block)))
            except ValueError as error:
                raise typer.BadParameter(
                    f"no ScenarioCredentials block named {block!r} ({error})", param_hint="--block"
                ) from None
        fields: dict[str, object] = saved.model_dump(include={"api_key", "api_secret", "base_url"})
        fields["project_id"] = saved.project_id
    elif api_key and api_secret:
        fields = {"api_key": api_key, "api_secret": api_secret}
    else:
        raise typer.BadParameter(
            "give --block NAME, or --api-key and --api-secret "
            "(or SCENARIO_API_KEY and SCENARIO_API_SECRET)",
            param_hint="--block / --api-key / --api-secret",
        )
    fields.update({k: v for k, v in (("base_url", base_url), ("project_id", project_id)) if v})
    try:
        credentials = ScenarioCredentials.model_validate(fields)
    except ValidationError as error:
        raise typer.BadParameter(error.errors()[0]["msg"]) from None
    return {
        "api_key": credentials.api_key,
        "api_secret": credentials.api_secret,
        "base_url": credentials.base_url,
        "project_id": credentials.project_id,
        "timeout_s": credentials.timeout_s,
    }


@app.command()
def doctor(
    block: Annotated[
        str | None,
        typer.Option(help="Saved ScenarioCredentials block to check (instead of key and secret)."),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="SCENARIO_API_KEY", show_default=False, help="Scenario API key."),
    ] = None,
    api_secret: Annotated[
        str | None,
        typer.Option(
            envvar="SCENARIO_API_SECRET", show_default=False, help="The API key's secret."
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(envvar="SCENARIO_BASE_URL", help="API base URL (default: Scenario's)."),
    ] = None,
    project_id: Annotated[
        str | None, typer.Option(envvar="SCENARIO_PROJECT_ID", help="Scenario project id.")
    ] = None,
    model: Annotated[str, typer.Option(help="Image upscale model to probe.")] = (
        "model_upscale-v3"
    ),
    submit: Annotated[
        bool, typer.Option(help="Also run ONE real job (spends creative units).")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask before the real job.")] = False,
    max_creative_units: Annotated[
        float, typer.Option(help="Refuse a real job priced above this (creative units).")
    ] = 2.0,
    json_path: Annotated[
        Path, typer.Option("--json", help="Where the findings are written as JSON.")
    ] = Path("scenario-doctor.json"),
) -> None:
    """Check your Scenario account before a first real batch: which answers the API gives.

    Spends nothing unless --submit; with it, one job of at most --max-creative-units.
    Exit code 0: the engine copes with everything seen; 1: it does not (or a check failed).
    """
    import asyncio

    from rich.console import Console
    from rich.markup import escape

    from scenario_upscale.doctor import Check, DoctorSettings, run_doctor, write_findings

    if max_creative_units <= 0:
        raise typer.BadParameter(
            f"must be above 0, got {max_creative_units:g}", param_hint="--max-creative-units"
        )
    settings = DoctorSettings.model_validate(
        {
            **_doctor_settings(block, api_key, api_secret, base_url, project_id),
            "model_id": model,
            "submit": submit,
            "max_creative_units": max_creative_units,
        }
    )
    console = Console(highlight=False, soft_wrap=True)

    def report(check: Check) -> None:
        style = _VERDICT_STYLE[check.verdict]
        console.print(f"[{style}]{check.verdict:<7}[/] {check.step}: {escape(check.message)}")

    def confirm(cost: float) -> bool:
        return yes or typer.confirm(
            f"Submit one real job of {model} for {cost:g} creative units?", default=False
        )

    findings = asyncio.run(run_doctor(settings, confirm=confirm, report=report))
    write_findings(findings, json_path)
    console.print()
    if findings.behaviours:
        console.print("Behaviours this API shows:")
        for seen in findings.behaviours:
            verdict = "[green]engine copes[/]" if seen.engine_copes else "[bold red]NOT handled[/]"
            console.print(
                f"  {seen.behaviour}: {escape(seen.evidence)} -> {verdict} ({escape(seen.how)})"
            )
    else:
        console.print("Behaviours this API shows: none beyond what the engine assumes.")
    hold = findings.assumptions_hold
    console.print(
        "[green]The engine's assumptions hold.[/]"
        if hold
        else "[bold red]The engine's assumptions do NOT all hold (see above).[/]"
    )
    console.print(f"Findings written to {escape(str(json_path))}")
    raise typer.Exit(0 if hold else 1)


def _env(name: str) -> str:
    # Every serve option can come from the environment, as in a container or a systemd unit.
    return f"SCENARIO_UPSCALE_{name}"


_AS_DEPLOYED = "Default: as in prefect.yaml."


def _json_object(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise typer.BadParameter(
            f"{value!r} is not a JSON object such as '{{\"upscaleFactor\": 4}}'",
            param_hint="--parameters",
        )
    return parsed


@app.command()
def serve(
    source: Annotated[
        str | None,
        typer.Option(
            envvar=_env("SOURCE"),
            help=f"What the nightly run watches: folder, glob or fsspec URL. {_AS_DEPLOYED}",
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            envvar=_env("TARGET"),
            help=f"Output folder or fsspec URL of every deployment. {_AS_DEPLOYED}",
        ),
    ] = None,
    published: Annotated[
        str | None,
        typer.Option(
            envvar=_env("PUBLISHED"),
            help=f"Where publish-upscaled writes thumbnails. {_AS_DEPLOYED}",
        ),
    ] = None,
    staging: Annotated[
        str | None,
        typer.Option(
            envvar=_env("STAGING"), help=f"Where asset-pipeline ingests to. {_AS_DEPLOYED}"
        ),
    ] = None,
    credentials_block: Annotated[
        str | None,
        typer.Option(
            envvar=_env("CREDENTIALS_BLOCK"),
            help=f"Saved ScenarioCredentials block name. {_AS_DEPLOYED}",
        ),
    ] = None,
    cron: Annotated[
        str | None,
        typer.Option(
            envvar=_env("CRON"), help=f"Schedule of the nightly run (cron). {_AS_DEPLOYED}"
        ),
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option(envvar=_env("TIMEZONE"), help=f"Time zone of --cron. {_AS_DEPLOYED}"),
    ] = None,
    interval: Annotated[
        float | None,
        typer.Option(
            min=1,
            envvar=_env("INTERVAL"),
            help="Seconds between recurring runs, instead of --cron.",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            envvar=_env("MODEL"),
            help=f"Scenario upscale model id. {_AS_DEPLOYED}",
        ),
    ] = None,
    parameters: Annotated[
        str | None,
        typer.Option(
            envvar=_env("PARAMETERS"),
            help="Model parameters as JSON, e.g. '{\"upscaleFactor\": 4}'. Default: as in "
            "prefect.yaml, or {} (the model's own defaults) when --model is given.",
        ),
    ] = None,
    prefetch_seconds: Annotated[
        float,
        typer.Option(
            min=0,
            envvar=_env("PREFETCH_SECONDS"),
            help="Start a scheduled run's process this early; keep it below --interval minus "
            "a run's length, or the nightly's overlap guard cancels runs.",
        ),
    ] = 10.0,
) -> None:
    """Serve every deployment from this process until Ctrl+C or SIGTERM.

    The deployments of prefect.yaml, with the options given here in place of its values.
    """
    upscale_parameters = _json_object(parameters)
    from deployments.definitions import DeploymentSettings
    from deployments.serve import serve_deployments
    from scenario_upscale.batch import UpscaleSpec

    given: dict[str, Any] = {
        "source": source,
        "target": target,
        "published": published,
        "staging": staging,
        "credentials_block": credentials_block,
        "cron": cron,
        "timezone": timezone,
        "interval_s": interval,
    }
    settings = replace(DeploymentSettings(), **{k: v for k, v in given.items() if v is not None})
    if model is not None or upscale_parameters is not None:
        # The deployed parameters go with the deployed model: a --model gets its own defaults.
        (deployed,) = settings.upscales
        spec = UpscaleSpec(
            model_id=model or deployed.model_id,
            parameters=upscale_parameters if upscale_parameters is not None else {},
        )
        settings = replace(settings, upscales=(spec,))
    from commands.demo import local_emulator

    with local_emulator(settings.credentials_block, typer.echo):
        serve_deployments(settings, prefetch_seconds)


@app.command()
def stack(
    workers: Annotated[int, typer.Option(min=1, help="Process workers of the pool.")] = 2,
    runs_per_worker: Annotated[
        int, typer.Option(min=1, help="Flow runs (shards) one worker runs at once.")
    ] = 2,
    folder: Annotated[
        Path | None,
        typer.Option(help="Where the database, Prefect home and logs live (default: a temp dir)."),
    ] = None,
) -> None:
    """Run PostgreSQL, a Prefect server on it, a process work pool and N workers in the
    foreground (Ctrl+C stops them all); prints the PREFECT_API_URL to use."""
    import signal
    import tempfile

    from commands.stack import STACK_DEPLOYMENTS, LocalStack

    with contextlib.ExitStack() as cleanup:
        root = folder or Path(cleanup.enter_context(tempfile.TemporaryDirectory()))
        # Ctrl+C and SIGTERM both end the wait below and stop the stack on the way out.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        typer.echo(f"Starting PostgreSQL, a Prefect server and {workers} worker(s) in {root}")
        local = cleanup.enter_context(LocalStack(root, workers, runs_per_worker=runs_per_worker))
        typer.echo(f"export PREFECT_API_URL={local.server.api_url}")
        typer.echo(f"Work pool {local.pool!r}, deployments: {', '.join(STACK_DEPLOYMENTS)}")
        typer.echo(f"Logs in {root / 'logs'}; Ctrl+C stops everything.")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
        typer.echo("Stopping the workers, the server and PostgreSQL")


if __name__ == "__main__":
    app()
