"""Deployments of the Scenario upscale flows: on demand, scheduled, event-triggered, chained.

* ``definitions``: the deployments, built once (names, schedules, triggers, event contracts).
* ``serve``: ``python -m deployments.serve`` serves them; ``prefect.yaml`` deploys the same ones
  to a work pool with ``prefect deploy --all``.
* ``pipeline``: the flows they add (``upscale-new-assets``, ``publish-upscaled``,
  ``asset-pipeline``).
* ``watermark``: "new since the last successful run" for the recurring deployment.

See the "Deployments" section of README.md.
"""
