"""``scenario-upscale``: the demo, the emulator, and upscaling from the command line.

The commands that run flows import the Prefect layer only when called, so the engine itself
(and ``scenario-upscale emulator``) never loads Prefect.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

# Loaded for the type of --profile (typer reads the Literal's names as the choices).
from scenario_upscale.emulator.profiles import ProfileName

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


if __name__ == "__main__":
    app()
