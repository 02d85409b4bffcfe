"""``scenario-upscale``: the demo, the emulator, upscaling and serving the deployments.

The commands that run flows import the Prefect layer only when called, so the engine itself
(and ``scenario-upscale emulator``) never loads Prefect.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

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
    from flows.demo import run_demo

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
    )
    typer.echo(f"Scenario emulator listening on http://127.0.0.1:{port}/v1 (key {api_key})")
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
        float | None, typer.Option(help="Refuse to start above this dry-run total.")
    ] = None,
) -> None:
    """Run the upscale-batch flow on INPUTS with one model."""
    from flows.prefect_runtime import prefect_api

    with prefect_api() as api:
        import asyncio

        from flows.demo import as_coroutine
        from flows.upscale import upscale_batch
        from scenario_upscale.batch import UpscaleSpec

        state = asyncio.run(
            as_coroutine(
                upscale_batch(
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
    raise typer.Exit(0 if state.is_completed() else 1)


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
    serve_deployments(settings, prefetch_seconds)


if __name__ == "__main__":
    app()
