"""Scale-out: one sharded batch with 1, 2 and 4 workers against the physical limit ⌈N/C⌉·d.

One ``LocalStack`` (PostgreSQL, a Prefect server on it, the process pool), each worker running
one shard at a time; workers are added between the runs (1, then 2, then 4). The emulator runs
in this process with a ceiling of C jobs of d seconds, shared by all shards through the team's
global concurrency limit (C slots). Each run is the ``upscale-sharded`` flow in a fresh driver
process against the stack, on N new inputs into a new target, in shards of ⌈N/4⌉ inputs, so
four workers can take one shard each. **wall** is the flow call, timed in the driver after its
imports and the credentials block; **limit** is ⌈N/C⌉·d: no number of workers beats it, since
the ceiling is the team's. Flow-run start-up on a worker (a Python process importing Prefect
and the flows) is part of the wall, as it would be on real workers.

    scripts/uv run --frozen python bench/scale_out.py [--inputs 400] [--ceiling 8] [--job-seconds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from commands.stack import LocalStack
from scenario_upscale.emulator import EmulatorConfig, EmulatorServer
from scenario_upscale.samples import write_samples

LIMIT_NAME = "bench-team-jobs"


def drive(about: dict[str, str | int]) -> None:
    """In the driver process: save the block and the limit, then time the sharded flow."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    from blocks.credentials import ScenarioCredentials
    from flows.sharded import upscale_sharded

    async def run() -> float:
        credentials = ScenarioCredentials(
            api_key=str(about["key"]), api_secret=str(about["secret"]), base_url=str(about["url"])
        )
        await credentials.save("bench", overwrite=True)
        async with get_client() as client:
            if LIMIT_NAME not in {g.name for g in await client.read_global_concurrency_limits()}:
                await client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=LIMIT_NAME, limit=int(about["ceiling"]))
                )
        started = time.monotonic()
        report = await upscale_sharded(
            inputs=str(about["inputs"]),
            target=str(about["target"]),
            credentials_block="bench",
            concurrency_limit=LIMIT_NAME,
            max_concurrency=int(about["ceiling"]),
            shard_inputs=int(about["shard_inputs"]),
            poll_s=1.0,
        )
        wall = time.monotonic() - started
        assert report.ok, report.summary()
        return wall

    print(json.dumps({"wall": asyncio.run(run())}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=400)
    parser.add_argument("--ceiling", type=int, default=8)
    parser.add_argument("--job-seconds", type=float, default=2.0)
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive(json.loads(args.drive))
        return
    n, c, d = args.inputs, args.ceiling, args.job_seconds
    limit = math.ceil(n / c) * d
    config = EmulatorConfig(job_duration_s=d, concurrency_limit=c)
    print(f"N={n} inputs, C={c}, d={d:g} s: limit ⌈N/C⌉·d = {limit:.0f} s")
    with tempfile.TemporaryDirectory() as tmp, EmulatorServer(config) as emulator:
        root = Path(tmp)
        with LocalStack(root / "stack", workers=1, runs_per_worker=1) as stack:
            for workers in (1, 2, 4):
                while len(stack.workers) < workers:
                    stack.start_worker(f"worker-{len(stack.workers) + 1}")
                emulator.reset()
                inputs = root / f"in-{workers}"
                write_samples(inputs, n, seed=workers)
                about = {
                    "key": emulator.api_key,
                    "secret": emulator.api_secret,
                    "url": emulator.base_url,
                    "ceiling": c,
                    "inputs": str(inputs),
                    "target": str(root / f"out-{workers}"),
                    "shard_inputs": math.ceil(n / 4),
                }
                command = [sys.executable, __file__, "--drive", json.dumps(about)]
                done = subprocess.run(
                    command, env=stack.env, capture_output=True, text=True, check=True
                )
                wall = json.loads(done.stdout.strip().splitlines()[-1])["wall"]
                stats = emulator.stats()
                print(
                    f"{workers} worker(s): wall {wall:6.1f} s = {wall / limit:4.2f} x limit; "
                    f"{stats.jobs_created} jobs, {stats.rate_limited} refused by the ceiling",
                    flush=True,
                )


if __name__ == "__main__":
    main()
