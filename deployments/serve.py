"""Serve every deployment from this process: ``python -m deployments.serve``.

The same deployments as ``prefect.yaml``, run here instead of on a work pool: handy on a laptop,
for a demo, and in tests. Runs until interrupted (Ctrl-C or SIGTERM); on the way out Prefect
pauses the schedules so nothing piles up while nobody serves them.

Example:
    ```bash
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    python -m deployments.serve --source incoming/ --target upscaled/ --cron "0 2 * * *"
    python -m deployments.serve --source s3://drop/in/ --target s3://drop/out/ \\
        --model model_upscale-v3 --parameters '{"upscaleFactor": 4}'
    ```

Every option also reads an environment variable (``SCENARIO_UPSCALE_SOURCE``, ...).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence

from deployments.definitions import DeploymentSettings, build_deployments
from scenario_upscale.batch import UpscaleSpec

ENV_PREFIX = "SCENARIO_UPSCALE_"


def _env(name: str, default: str) -> str:
    return os.environ.get(ENV_PREFIX + name, default)


def parse_command_line(argv: Sequence[str] | None = None) -> tuple[DeploymentSettings, float]:
    """Deployment settings and the runner's prefetch seconds, from the command line.

    Options not given fall back to ``SCENARIO_UPSCALE_*`` variables, then to the defaults.

    Example:
        >>> settings, prefetch = parse_command_line(["--source", "in", "--interval", "30"])
        >>> settings.interval_s, prefetch
        (30.0, 10.0)
    """
    defaults = DeploymentSettings()
    parser = argparse.ArgumentParser(
        prog="python -m deployments.serve", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--source",
        default=_env("SOURCE", defaults.source),
        help="what the nightly run watches (folder, glob, fsspec URL)",
    )
    parser.add_argument(
        "--target",
        default=_env("TARGET", defaults.target),
        help="output folder or fsspec URL of every deployment",
    )
    parser.add_argument(
        "--published",
        default=_env("PUBLISHED", defaults.published),
        help="where publish-upscaled writes thumbnails",
    )
    parser.add_argument(
        "--staging",
        default=_env("STAGING", defaults.staging),
        help="where asset-pipeline ingests to",
    )
    parser.add_argument(
        "--credentials-block",
        default=_env("CREDENTIALS_BLOCK", defaults.credentials_block),
        help="name of the saved ScenarioCredentials block",
    )
    parser.add_argument(
        "--cron",
        default=_env("CRON", defaults.cron),
        help="schedule of the nightly run (cron syntax)",
    )
    parser.add_argument("--timezone", default=_env("TIMEZONE", defaults.timezone))
    parser.add_argument(
        "--interval",
        type=float,
        default=_env("INTERVAL", "") or None,
        help="seconds between recurring runs, instead of --cron",
    )
    parser.add_argument(
        "--model", default=_env("MODEL", "model_upscale-v3"), help="Scenario upscale model id"
    )
    parser.add_argument(
        "--parameters",
        default=_env("PARAMETERS", "{}"),
        help="model parameters as JSON, e.g. '{\"upscaleFactor\": 4}'",
    )
    parser.add_argument(
        "--prefetch-seconds",
        type=float,
        default=float(_env("PREFETCH_SECONDS", "10")),
        help="start a scheduled run's process this early (Prefect's default: "
        "10); keep it below the --interval minus a run's length, or the "
        "recurring run's overlap guard cancels runs",
    )
    args = parser.parse_args(argv)
    try:
        parameters = json.loads(args.parameters)
    except json.JSONDecodeError as error:
        parser.error(f"--parameters is not JSON: {error}")
    settings = DeploymentSettings(
        source=args.source,
        target=args.target,
        published=args.published,
        staging=args.staging,
        credentials_block=args.credentials_block,
        cron=args.cron,
        timezone=args.timezone,
        interval_s=float(args.interval) if args.interval else None,
        upscales=(UpscaleSpec(model_id=args.model, parameters=parameters),),
    )
    return settings, args.prefetch_seconds


def main(argv: Sequence[str] | None = None) -> None:
    """Build the deployments from the command line and serve them until stopped."""
    settings, prefetch_seconds = parse_command_line(argv)
    # Flow runs start in subprocesses that inherit this environment. Persisted results let a
    # run_deployment caller read a run's return value (asset-pipeline reads upscale-batch's
    # BatchReport); prefect.yaml sets the same variable for work pool runs.
    os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "true")
    from prefect import serve

    serve(*build_deployments(settings), prefetch_seconds=prefetch_seconds)


if __name__ == "__main__":
    main()
