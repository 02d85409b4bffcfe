"""Serve every deployment from this process: what ``scenario-upscale serve`` runs.

The same deployments as ``prefect.yaml``, run here instead of on a work pool: handy on a laptop,
for a demo, and in tests. Runs until interrupted (Ctrl-C or SIGTERM); on the way out Prefect
pauses the schedules so nothing piles up while nobody serves them.
"""

from __future__ import annotations

import os

from prefect import serve

from deployments.definitions import DeploymentSettings, build_deployments


def serve_deployments(settings: DeploymentSettings, prefetch_seconds: float) -> None:
    """Build the deployments with ``settings`` and serve them until stopped.

    Args:
        settings: Locations, schedule, model and credentials of the deployments.
        prefetch_seconds: Start a scheduled run's process this early.
    """
    # Flow runs start in subprocesses that inherit this environment. Persisted results let a
    # run_deployment caller read a run's return value (asset-pipeline reads upscale-batch's
    # BatchReport); prefect.yaml sets the same variable for work pool runs.
    os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "true")
    serve(*build_deployments(settings), prefetch_seconds=prefetch_seconds)
