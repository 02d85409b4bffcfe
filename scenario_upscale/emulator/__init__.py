"""A Scenario-compatible HTTP server (FastAPI + uvicorn) for demos, tests and benchmarks.

It is an independent reading of ``scenario-api.md`` and imports nothing from the engine.

The names are loaded on first use (PEP 562): the command line reads the profile names
(``profiles``) without loading FastAPI and the routes (~1 s).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_MODULE_OF = {
    "EmulatorApp": "app",
    "create_app": "app",
    "EmulatorConfig": "config",
    "EmulatorServer": "server",
    "serve": "server",
    "EmulatorStats": "stats",
    "InputCharges": "stats",
}
"""The module of each public name, for ``__getattr__`` (the imports above are for type checkers)."""


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # looked up once
    return value
