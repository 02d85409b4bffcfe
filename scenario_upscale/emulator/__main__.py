"""``python -m scenario_upscale.emulator --port 8765 --api-key K --api-secret S``."""

from __future__ import annotations

import argparse
import sys

from pydantic import SecretStr

from .config import EmulatorConfig
from .server import serve


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scenario_upscale.emulator",
        description="Run a local Scenario API emulator (upscale models, jobs, assets, uploads).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", default="emulator-key")
    parser.add_argument("--api-secret", default="emulator-secret")
    parser.add_argument("--job-duration", type=float, default=2.0, help="seconds per job")
    parser.add_argument("--concurrency-limit", type=int, default=8)
    parser.add_argument("--url-ttl", type=float, default=3600.0, help="signed URL lifetime (s)")
    parser.add_argument("--latency", type=float, default=0.0, help="added to every API call (s)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = EmulatorConfig(
        api_key=args.api_key,
        api_secret=SecretStr(args.api_secret),
        job_duration_s=args.job_duration,
        concurrency_limit=args.concurrency_limit,
        url_ttl_s=args.url_ttl,
        latency_s=args.latency,
        seed=args.seed,
    )
    print(f"Scenario emulator listening on http://{args.host}:{args.port}/v1", flush=True)
    try:
        serve(args.host, args.port, config)
    except KeyboardInterrupt:  # pragma: no cover - interactive stop
        sys.exit(0)


if __name__ == "__main__":
    main()
