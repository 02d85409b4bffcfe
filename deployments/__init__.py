"""Deployments of the Scenario upscale flows: on demand, scheduled, event-triggered, chained.

* ``definitions``: the deployments, built once (names, schedules, triggers, event contracts).
* ``serve``: serves them from one process (``scenario-upscale serve``).
* ``generate``: writes them into ``prefect.yaml`` (``python -m deployments.generate``), which
  ``prefect deploy --all`` deploys to a work pool.

No flow or task is defined here: they all live in ``flows/``. See the "Deployments" section of
README.md.
"""
