"""How fast and how quietly can one command run a Prefect flow on this machine?

Runs a trivial async flow (12 tasks via ``asyncio.gather``) in a fresh Python subprocess per
measurement, for each way of providing a Prefect API, on a fresh ``PREFECT_HOME`` ("first run":
the database is created and migrated) and again on the same home ("next run"):

  ephemeral          Prefect's default without PREFECT_API_URL: a temporary server per process.
  ephemeral-tuned    the same with analytics off, server logging CRITICAL, console WARNING,
                     start-up timeout 90 s (settings only, no code).
  own-server         commands.prefect_runtime.prefect_api() entered after `import prefect`
                     (starts `prefect server start` itself, output to a log file).
  own-server-early   prefect_api() entered before Prefect is imported, as the CLI does: the
                     server boots while Prefect is imported.
  running-server     reference, not a one-command option: PREFECT_API_URL of a server that
                     was started (untimed) before.

Columns: seconds from ``Popen`` to the flow body's first line, seconds to process exit, the
ratio of each to ``ephemeral``, lines printed besides the benchmark's own, and how many of them
contain Traceback / "Error flushing" / CancelledError / ERROR.

    python3 -m uv run --frozen python bench/prefect_startup.py [--repeat N] [--only NAME ...]

Everything lives in a temporary directory (``HOME`` and ``PREFECT_HOME`` point there; the port
is a free one, never 4200), removed at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from commands.prefect_runtime import LocalPrefectServer, find_free_port  # noqa: E402

N_TASKS = 12
NOISE = ("Traceback", "Error flushing", "CancelledError", "ERROR")

CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    sys.path.insert(0, sys.argv[1])
    mode = sys.argv[2]

    def define():
        from prefect import flow, task

        @task
        async def job(i: int) -> int:
            await asyncio.sleep(0.01)
            return 2 * i

        @flow
        async def demo(n: int) -> int:
            print(f"BENCH_FLOW_START {time.time():.3f}", flush=True)
            return sum(await asyncio.gather(*[job(i) for i in range(n)]))

        return demo

    if mode == "plain":
        demo = define()
        print(f"BENCH_RESULT {asyncio.run(demo(int(sys.argv[3])))}", flush=True)
    else:
        if mode == "runtime-eager":
            import prefect.main  # noqa: F401  (what a CLI importing its flows at the top does)
        from commands.prefect_runtime import prefect_api

        with prefect_api() as api:
            demo = define()
            print(f"BENCH_RESULT {asyncio.run(demo(int(sys.argv[3])))}", flush=True)
            print(f"BENCH_SOURCE {api.source}", flush=True)
    """
)


@dataclass(frozen=True)
class Option:
    name: str
    mode: str
    env: dict[str, str] = field(default_factory=dict)
    needs_server: bool = False


OPTIONS = [
    Option("ephemeral", "plain"),
    Option(
        "ephemeral-tuned",
        "plain",
        {
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
            "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        },
    ),
    Option("own-server", "runtime-eager"),
    Option("own-server-early", "runtime-lazy"),
    Option("running-server", "plain", needs_server=True),
]


@dataclass
class Run:
    flow_start: float
    total: float
    lines: list[str]

    @property
    def noise(self) -> int:
        return sum(any(word in line for word in NOISE) for line in self.lines)


class OptionFailed(Exception):
    """A run exited non-zero or never reached the flow body (e.g. a start-up timeout)."""


def run_once(option: Option, home: Path, tmp: Path, api_url: str | None) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        {
            "HOME": str(tmp),
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_API_PORT": str(find_free_port()),
            **option.env,
        }
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO), option.mode, str(N_TASKS)],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    total = time.time() - t0
    out = (proc.stdout + proc.stderr).splitlines()
    starts = [float(line.split()[1]) for line in out if line.startswith("BENCH_FLOW_START")]
    if proc.returncode or not starts:
        raise OptionFailed(f"exit {proc.returncode}:\n" + "\n".join(out[-15:]))
    lines = [line for line in out if line.strip() and not line.startswith("BENCH_")]
    return Run(starts[0] - t0, total, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="next-run samples (median)")
    parser.add_argument("--only", nargs="*", choices=[o.name for o in OPTIONS])
    parser.add_argument("--show-output", action="store_true", help="print each option's lines")
    args = parser.parse_args()
    options = [o for o in OPTIONS if not args.only or o.name in args.only]

    results: dict[str, tuple[Run, list[Run]]] = {}
    with tempfile.TemporaryDirectory(prefix="prefect-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for option in options:
            home = tmp / option.name
            server = None
            if option.needs_server:
                server = LocalPrefectServer(home, log_file=tmp / f"{option.name}.log")
                server.start()
                server.wait_until_healthy(120)
            try:
                api_url = server.api_url if server else None
                first = run_once(option, home, tmp, api_url)
                print(f"{option.name:17} first {first.flow_start:5.1f} s", end="", flush=True)
                nexts = [run_once(option, home, tmp, api_url) for _ in range(args.repeat)]
                print(f"  next {statistics.median(r.flow_start for r in nexts):5.1f} s", flush=True)
            except OptionFailed as failure:
                # A loaded machine can time out Prefect's ephemeral server: report, go on.
                print(f"{option.name:17} FAILED ({failure})", flush=True)
                continue
            finally:
                if server:
                    server.stop()
            results[option.name] = (first, nexts)
            if args.show_output:
                for line in first.lines + nexts[0].lines:
                    print(f"    | {line}")

    base = results.get("ephemeral")
    print()
    print(
        f"Trivial async flow, {N_TASKS} tasks via asyncio.gather; seconds from Popen "
        f"(median of {args.repeat} for 'next'); ratio = option / ephemeral; 2 cores"
    )
    header = (
        f"{'option':17} | {'first: flow starts':>18} | {'exit':>5} | "
        f"{'next: flow starts':>17} | {'exit':>5} | {'lines':>5} | {'noise':>5}"
    )
    print(header)
    print("-" * len(header))
    for name, (first, nexts) in results.items():
        n_start = statistics.median(r.flow_start for r in nexts)
        n_total = statistics.median(r.total for r in nexts)

        def ratio(value: float, ref: float | None) -> str:
            return f"({value / ref:4.2f}x)" if ref else ""

        b_first = base[0] if base else None
        b_next = base[1] if base else None
        f_ratio = ratio(first.flow_start, b_first.flow_start if b_first else None)
        n_ratio = ratio(
            n_start, statistics.median(r.flow_start for r in b_next) if b_next else None
        )
        lines = max(len(first.lines), *(len(r.lines) for r in nexts))
        noise = max(first.noise, *(r.noise for r in nexts))
        print(
            f"{name:17} | {first.flow_start:5.1f} {f_ratio:>12} | {first.total:5.1f} | "
            f"{n_start:5.1f} {n_ratio:>11} | {n_total:5.1f} | {lines:5d} | {noise:5d}"
        )


if __name__ == "__main__":
    main()
