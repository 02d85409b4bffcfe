"""Deployments of the Scenario upscale flows: on demand, scheduled, event-triggered, chained.

* ``definitions``: the deployments, built once (names, schedules, triggers, event contracts).
* ``serve``: serves them; ``prefect.yaml`` deploys the same ones to a work pool with
  ``prefect deploy --all``.

No flow or task is defined here: they all live in ``flows/``. See the "Deployments" section of
README.md.
"""
