"""Prefect blocks for the Scenario upscale flows.

Register them with a Prefect server (once per server, so they appear in the UI)::

    prefect block register -m blocks
"""

from blocks.credentials import ScenarioCredentials

__all__ = ["ScenarioCredentials"]
