"""Deployments of the Scenario upscale flows: on demand, scheduled, event-triggered, chained.

* ``definitions``: the deployments, built once (names, schedules, triggers, event contracts).
* ``serve``: serves them from one process (``scenario-upscale serve``).
* ``generate``: writes them into ``prefect.yaml`` (``python -m deployments.generate``), which
  ``prefect deploy --all`` deploys to a work pool.
* ``pipeline``: the flows they add (``upscale-new-assets``, ``publish-upscaled``,
  ``asset-pipeline``).
* ``watermark``: "new since the last successful run" for the recurring deployment.

See the "Deployments" section of README.md.
"""
