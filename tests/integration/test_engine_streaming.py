"""The engine streams from the upload on, and prices a batch with one dry run per price class.

Run against the emulator as a real server. The order of requests is read from the client's side
(a transport that records each request as it is sent), the counts from the emulator's stats.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image

from scenario_upscale.api import ScenarioClient
from scenario_upscale.batch import UpscaleSpec, run_batch
from scenario_upscale.emulator import EmulatorServer
from scenario_upscale.errors import BudgetExceeded
from scenario_upscale.params import build_body
from tests.support import FAST_POLL

SUBMIT = "POST /v1/generate/custom/model_upscale-v3"
UPLOAD = "POST /v1/assets"  # small images go as base64 through this route


class RecordingTransport(httpx.AsyncBaseTransport):
    """Sends through a real transport; remembers each request as it goes out, in order."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.sent: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        dry = "?dryRun" if "dryRun" in request.url.query.decode() else ""
        self.sent.append(f"{request.method} {request.url.path}{dry}")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _two_sizes(folder: Path, each: int) -> None:
    """``each`` distinct PNGs of 40x30 and ``each`` of 24x24: two price classes."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(each):
        Image.new("RGB", (40, 30), (i, 90, 160)).save(folder / f"wide{i:02d}.png")
        Image.new("RGB", (24, 24), (i, 30, 60)).save(folder / f"square{i:02d}.png")


async def test_the_first_submit_goes_out_before_the_last_upload(
    make_client: Callable[..., ScenarioClient], fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    _two_sizes(tmp_path / "in", 12)  # two price classes: two inputs uploaded for dry runs
    transport = RecordingTransport()
    async with make_client(transport=transport) as client:
        report = await run_batch(
            client, str(tmp_path / "in"), str(tmp_path / "out"), max_concurrency=2, poll=FAST_POLL
        )
    assert report.count("success") == 24
    sent = transport.sent
    uploads = [n for n, r in enumerate(sent) if r == UPLOAD]
    submits = [n for n, r in enumerate(sent) if r == SUBMIT]
    assert len(uploads) == len(submits) == 24
    # Uploads run a bounded window ahead of the submits, not the whole batch before them.
    assert submits[0] < uploads[-1]
    assert sum(1 for u in uploads if u < submits[0]) <= 24 // 2


async def test_one_dry_run_per_price_class_and_each_input_priced(
    client: ScenarioClient, fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    _two_sizes(tmp_path / "in", 4)
    report = await run_batch(client, str(tmp_path / "in"), str(tmp_path / "out"), poll=FAST_POLL)
    stats = fresh_emulator.stats()
    assert report.count("success") == 8
    assert stats.dry_runs == 2  # one per (model, parameters, size), not one per input
    assert stats.jobs_created == 8 and stats.requests[UPLOAD] == 8  # each input uploaded once
    # Each job cost what its class's dry run said.
    assert report.creative_units == pytest.approx(stats.creative_units_charged)


async def test_a_budget_below_the_classes_total_stops_before_any_job(
    client: ScenarioClient, fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    _two_sizes(tmp_path / "in", 3)
    spec = UpscaleSpec(model_id="model_upscale-v3", parameters={"upscaleFactor": 2})
    with pytest.raises(BudgetExceeded, match=r"the batch of 6 job\(s\) would cost") as refused:
        await run_batch(
            client,
            str(tmp_path / "in"),
            str(tmp_path / "out"),
            [spec],
            max_creative_units=0.01,
            poll=FAST_POLL,
        )
    stats = fresh_emulator.stats()
    assert stats.jobs_created == 0 and stats.creative_units_charged == 0
    assert stats.dry_runs == 2
    assert stats.requests[UPLOAD] == 2  # only the input each class was priced on
    # The total is each class's price times the inputs in it.
    assert refused.value.total > 0
    assert refused.value.total == pytest.approx(
        3 * (await _price(client, tmp_path / "in" / "wide00.png"))
        + 3 * (await _price(client, tmp_path / "in" / "square00.png"))
    )


async def _price(client: ScenarioClient, path: Path) -> float:
    model = await client.get_model("model_upscale-v3")
    data = await asyncio.to_thread(path.read_bytes)
    asset = await client.upload(data, name=path.name, mime_type="image/png", kind="image")
    price = await client.price(model.id, build_body(model, asset, {"upscaleFactor": 2}))
    return price.creative_units
