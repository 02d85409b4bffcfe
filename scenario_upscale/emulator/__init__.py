"""A Scenario-compatible HTTP server (FastAPI + uvicorn) for demos, tests and benchmarks.

It is an independent reading of ``scenario-api.md`` and imports nothing from the engine.
"""

from .app import EmulatorApp, create_app
from .config import EmulatorConfig
from .server import EmulatorServer, serve
from .stats import EmulatorStats, InputCharges

__all__ = [
    "EmulatorApp",
    "EmulatorConfig",
    "EmulatorServer",
    "EmulatorStats",
    "InputCharges",
    "create_app",
    "serve",
]
