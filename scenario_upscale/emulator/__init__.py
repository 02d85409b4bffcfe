"""A Scenario-compatible HTTP server (FastAPI + uvicorn) for demos, tests and benchmarks.

It is an independent reading of ``scenario-api.md`` and imports nothing from the engine.

The names (``__init__.pyi``) are loaded on first use, by ``lazy_loader``: the command line
reads the profile names (``profiles``) without loading FastAPI and the routes (~1 s).
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
