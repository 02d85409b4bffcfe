"""scenario-upscale's engine: upscale images and videos with Scenario's API, without Prefect.

Example:
    >>> async def main() -> None:
    ...     async with ScenarioClient(api_key="k", api_secret="s") as client:
    ...         report = await run_batch(client, "art/*.png", "out/", [UpscaleSpec()])
    ...         print(report.summary())

The names (``__init__.pyi``) are loaded on first use, by ``lazy_loader``: importing one module
of the package, as the command line does for the emulator's profile names, does not load the
whole engine and the official SDK with it (~2 s, which ``scenario-upscale demo`` spent before it
could start its Prefect server).
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
