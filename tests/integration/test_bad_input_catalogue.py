"""The bad-input catalogue: every way a user can get a batch wrong is refused before a credit is
spent, and the error says what is wrong in words (the field or location, the value, what is
allowed or what to do).

One table, three ways in: the engine (``run_batch``), the flows (``upscale_batch`` on the test
Prefect server) and the command line (``scenario-upscale upscale`` through typer's CliRunner).
Each case runs against the shared emulator server and checks the message, then that the
emulator created no job and charged nothing. In ``expect`` and in the inputs, targets and base
URLs, ``{tmp}`` is the case's folder, ``{base}`` the emulator's ``…/v1``, ``{root}`` the
emulator without ``/v1`` and ``{dead}`` a URL where nothing listens.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.exceptions import ObjectNotFound
from typer.testing import CliRunner

from blocks.credentials import ScenarioCredentials
from commands.cli import app
from commands.prefect_runtime import find_free_port
from flows.options import AdvancedSettings
from flows.pipeline import asset_pipeline, upscale_new_assets
from flows.upscale import upscale_batch, upscale_image
from flows.upscale_models import OtherModel
from scenario_upscale.api import ScenarioClient
from scenario_upscale.batch import UpscaleSpec, run_batch
from scenario_upscale.emulator import EmulatorServer
from scenario_upscale.errors import ScenarioError
from tests.prefect_server import PrefectTestServer
from tests.support import FAST_POLL, write_images, write_mp4

Layer = Literal["engine", "flow", "cli"]


@dataclass
class Case:
    layer: Layer
    expect: list[str]
    model_id: str = "model_upscale-v3"
    parameters: dict[str, Any] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=lambda: ["good.png"])
    client: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    target: str = "{tmp}/out"
    #: CLI: the exit code; also the extra command-line arguments.
    exit_code: int = 1
    args: list[str] = field(default_factory=list)
    #: Flows: which one (they all refuse through ``upscale-batch``'s checks or their own).
    flow: str = "upscale-batch"
    #: Emulator settings for this case (e.g. a profile); the next case's reset undoes them.
    emulator: dict[str, Any] = field(default_factory=dict)


def _engine(cases: dict[str, Case]) -> dict[str, Case]:
    return {f"engine: {name}": case for name, case in cases.items()}


CASES: dict[str, Case] = {
    # -- the engine: parameters against the model's own inputs -----------------------------------
    **_engine(
        {
            "unknown model": Case("engine", ["model_nope", "404"], model_id="model_nope"),
            "factor above max": Case(
                "engine", ["'upscaleFactor'", "got 17", "<= 16"], parameters={"upscaleFactor": 17}
            ),
            "factor below min": Case(
                "engine", ["'upscaleFactor'", ">= 1"], parameters={"upscaleFactor": 0}
            ),
            "factor as text": Case(
                "engine", ["'upscaleFactor'", "a number"], parameters={"upscaleFactor": "4"}
            ),
            "factor as boolean": Case(
                "engine", ["'upscaleFactor'", "a number"], parameters={"upscaleFactor": True}
            ),
            "wrong input name": Case(
                "engine", ["'scale'", "upscaleFactor"], parameters={"scale": 2}
            ),
            "file input given as a parameter": Case(
                "engine", ["'image'", "source"], parameters={"image": "x"}
            ),
            "image input on an imageUrl model": Case(
                "engine",
                ["'image'", "'imageUrl'"],
                model_id="model_seedvr-2-upscale-image",
                parameters={"image": "asset_x"},
            ),
            "value not allowed": Case(
                "engine",
                ["'upscaleFactor'", "'2x'", "'4x'"],
                model_id="model_topaz-image-upscale",
                parameters={"upscaleFactor": "3x"},
            ),
            "number not in the allowed set": Case(
                "engine",
                ["'scaleFactor'", "2, 4, 8, 16"],
                model_id="model_clarity-pro-upscaler",
                parameters={"scaleFactor": 3},
            ),
            "style not allowed": Case(
                "engine", ["'style'", "'anime'"], parameters={"style": "watercolor"}
            ),
            "refused by the API at the dry run": Case(
                "engine",
                ["dryRun failed with HTTP 400", "exceeds"],
                parameters={"upscaleFactor": 16},
                inputs=["big.png"],
            ),
            # -- inputs ---------------------------------------------------------------------------
            "missing file": Case(
                "engine", ["missing.png", "does not exist"], inputs=["missing.png"]
            ),
            "not an image": Case("engine", ["notes.png", "not an image"], inputs=["notes.png"]),
            "empty file": Case("engine", ["empty.png", "empty"], inputs=["empty.png"]),
            "empty folder": Case("engine", ["has no image or video files"], inputs=["nothing/"]),
            "video to an image model": Case(
                "engine", ["upscales images", "clip.mp4 is a video"], inputs=["clip.mp4"]
            ),
            "unknown asset id": Case(
                "engine", ["asset_doesnotexist", "404"], inputs=["asset_doesnotexist"]
            ),
            # -- empty sets and duplicates --------------------------------------------------------
            "empty input list": Case(
                "engine", ["no inputs given", "at least one file, folder"], inputs=[]
            ),
            "blank input": Case("engine", ["input ''", "is blank"], inputs=[""]),
            "the same missing file twice": Case(
                "engine", ["missing.png", "does not exist"], inputs=["missing.png", "missing.png"]
            ),
            "the same bad file twice is one result": Case(
                "engine", ["notes.png", "not an image"], inputs=["notes.png", "notes.png"]
            ),
            # -- http inputs ----------------------------------------------------------------------
            "http input where nothing listens": Case(
                "engine",
                ["'{dead}/a.png'", "no answer", "check the URL"],
                inputs=["{dead}/a.png"],
            ),
            "http input not found": Case(
                "engine",
                ["'{root}/nothing.png'", "HTTP 404", "check the URL"],
                inputs=["{root}/nothing.png"],
            ),
            "malformed http input": Case(
                "engine", ["'http://[::1/a.png'", "InvalidURL"], inputs=["http://[::1/a.png"]
            ),
            # -- credentials and base URL ---------------------------------------------------------
            "bad credentials": Case("engine", ["HTTP 401"], client={"api_secret": "wrong-secret"}),
            "unknown API key": Case("engine", ["HTTP 401"], client={"api_key": "key-nope"}),
            "no credentials": Case(
                "engine", ["API key and secret are required"], client={"api_key": ""}
            ),
            "no secret": Case(
                "engine", ["API key and secret are required"], client={"api_secret": ""}
            ),
            "project id not the key's": Case(
                "engine",
                ["'proj_other'", "project id of the project your API key belongs to"],
                client={"project_id": "proj_other"},
                emulator={"profile": "strict-project"},
            ),
            "project id required and missing": Case(
                "engine",
                ["HTTP 400", "the API wants a project id"],
                emulator={"profile": "strict-project"},
            ),
            "base URL where nothing listens": Case(
                "engine",
                ["'{dead}/v1'", "got no answer", "check base_url", "api.cloud.scenario.com/v1"],
                client={"base_url": "{dead}/v1"},
            ),
            "base URL without /v1": Case(
                "engine",
                ["'{root}'", "HTTP 404", "does not end in /v1"],
                client={"base_url": "{root}"},
            ),
            # -- target ---------------------------------------------------------------------------
            "target with an unknown protocol": Case(
                "engine", ["'foo://out'", "unknown protocol 'foo://'"], target="foo://out"
            ),
            "s3 target without s3fs": Case(
                "engine", ["'s3://bucket/out'", "not installed", "s3fs"], target="s3://bucket/out"
            ),
            "gs target without gcsfs": Case(
                "engine", ["'gs://bucket/out'", "not installed", "gcsfs"], target="gs://bucket/out"
            ),
            "target is a file": Case(
                "engine", ["good.png'", "is a file", "give a folder"], target="{tmp}/good.png"
            ),
            "target under a file": Case(
                "engine", ["good.png/out'", "cannot be written"], target="{tmp}/good.png/out"
            ),
            # -- budget and concurrency -----------------------------------------------------------
            "budget below the dry-run price": Case(
                "engine",
                ["above the budget of 0.5", "nothing was submitted"],
                options={"max_creative_units": 0.5},
            ),
            "budget zero": Case(
                "engine", ["above the budget of 0;"], options={"max_creative_units": 0}
            ),
            "budget negative": Case(
                "engine",
                ["run_batch", "'max_creative_units'", "got -1", ">= 0"],
                options={"max_creative_units": -1},
            ),
            "max_concurrency zero": Case(
                "engine",
                ["'max_concurrency'", "got 0", ">= 1", "jobs in flight"],
                options={"max_concurrency": 0},
            ),
            "max_concurrency negative": Case(
                "engine", ["'max_concurrency'", "got -3", ">= 1"], options={"max_concurrency": -3}
            ),
            "shard_size zero": Case(
                "engine", ["'shard_size'", "got 0", ">= 1"], options={"shard_size": 0}
            ),
        }
    ),
    # -- the flow: its own parameters, checked before the team's limit is touched ---------------
    "flow: max_concurrency zero": Case(
        "flow",
        ["upscale-batch", "'max_concurrency'", "got 0", ">= 1"],
        options={"max_concurrency": 0},
    ),
    "flow: max_concurrency negative": Case(
        "flow", ["'max_concurrency'", "got -2", ">= 1"], options={"max_concurrency": -2}
    ),
    "flow: shard_size zero": Case(
        "flow", ["'shard_size'", "got 0", ">= 1"], options={"shard_size": 0}
    ),
    "flow: budget negative": Case(
        "flow", ["'max_creative_units'", "got -5", ">= 0"], options={"max_creative_units": -5}
    ),
    "flow: deadline zero": Case(
        "flow",
        ["'job_deadline_minutes'", "got 0", "> 0", "give up waiting"],
        options={"job_deadline_minutes": 0},
    ),
    "flow: deadline negative": Case(
        "flow", ["'job_deadline_minutes'", "got -1", "> 0"], options={"job_deadline_minutes": -1}
    ),
    "flow: empty input list": Case("flow", ["no inputs given"], inputs=[]),
    "flow: missing file": Case("flow", ["missing.png", "does not exist"], inputs=["missing.png"]),
    "flow: factor above max": Case(
        "flow", ["'upscaleFactor'", "got 17", "<= 16"], parameters={"upscaleFactor": 17}
    ),
    "flow: unknown protocol target": Case(
        "flow", ["'foo://out'", "unknown protocol"], target="foo://out"
    ),
    "flow: s3 target without s3fs": Case(
        "flow", ["'s3://bucket/out'", "s3fs"], target="s3://bucket/out"
    ),
    "flow: bad credentials": Case("flow", ["HTTP 401"], client={"api_secret": "wrong-secret"}),
    "flow: project id not the key's": Case(
        "flow",
        ["'proj_other'", "leave it empty"],
        client={"project_id": "proj_other"},
        emulator={"profile": "strict-project"},
    ),
    "flow: base URL without /v1": Case(
        "flow", ["'{root}'", "does not end in /v1"], client={"base_url": "{root}"}
    ),
    "flow: budget below the dry-run price": Case(
        "flow", ["above the budget of 0.5"], options={"max_creative_units": 0.5}
    ),
    "flow: new assets with max_concurrency zero": Case(
        "flow",
        ["upscale-new-assets", "'max_concurrency'", "got 0", ">= 1"],
        options={"max_concurrency": 0},
        flow="upscale-new-assets",
    ),
    "flow: new assets with a negative budget": Case(
        "flow",
        ["upscale-new-assets", "'max_creative_units'", "got -1", ">= 0"],
        options={"max_creative_units": -1},
        flow="upscale-new-assets",
    ),
    "flow: new assets into an unknown protocol": Case(
        "flow", ["'foo://out'", "unknown protocol"], target="foo://out", flow="upscale-new-assets"
    ),
    "flow: asset pipeline with a negative budget": Case(
        "flow",
        ["asset-pipeline", "'max_creative_units'", "got -2", ">= 0"],
        options={"max_creative_units": -2},
        flow="asset-pipeline",
    ),
    "flow: one image that is missing": Case(
        "flow", ["missing.png", "does not exist"], inputs=["missing.png"], flow="upscale-image"
    ),
    "flow: one image with a factor above max": Case(
        "flow",
        ["'upscaleFactor'", "got 17"],
        parameters={"upscaleFactor": 17},
        flow="upscale-image",
    ),
    # -- the command line -----------------------------------------------------------------------
    "cli: negative budget": Case(
        "cli",
        ["'--max-creative-units'", "got -1", "0 or more"],
        exit_code=2,
        args=["--max-creative-units", "-1"],
    ),
    "cli: param without a value": Case(
        "cli", ["'upscaleFactor' is not NAME=VALUE"], exit_code=2, args=["--param", "upscaleFactor"]
    ),
    "cli: no inputs": Case("cli", ["Missing argument 'inputs'"], inputs=[], exit_code=2),
    "cli: missing file": Case(
        "cli", ["Failed", "missing.png", "does not exist"], inputs=["missing.png"]
    ),
    "cli: factor above max": Case(
        "cli", ["'upscaleFactor'", "got 17"], args=["--param", "upscaleFactor=17"]
    ),
    "cli: unknown model": Case("cli", ["model_nope", "404"], args=["--model", "model_nope"]),
    "cli: unknown protocol target": Case(
        "cli", ["'foo://out'", "unknown protocol"], target="foo://out"
    ),
    "cli: budget below the dry-run price": Case(
        "cli", ["above the budget of 0.5"], args=["--max-creative-units", "0.5"]
    ),
}


# -- the fixtures every case shares -----------------------------------------------------------


@dataclass(frozen=True)
class Where:
    """The case's folder and the URLs its placeholders stand for."""

    tmp: Path
    emulator: EmulatorServer
    dead: str

    def fill(self, text: str) -> str:
        root = self.emulator.base_url.removesuffix("/v1")
        return text.format(tmp=self.tmp, base=self.emulator.base_url, root=root, dead=self.dead)

    def inputs(self, case: Case) -> list[str]:
        return [
            self.fill(i)
            if i.startswith(("asset_", "{")) or "://" in i or not i
            else str(self.tmp / i)
            for i in case.inputs
        ]

    def case(self, name: str) -> Case:
        """The case, with the emulator set up for it."""
        case = CASES[name]
        if case.emulator:
            self.emulator.configure(**case.emulator)
        return case

    def client(self, case: Case) -> dict[str, Any]:
        return {k: self.fill(v) if isinstance(v, str) else v for k, v in case.client.items()}


@pytest.fixture(scope="module")
def dead_url() -> str:
    """A URL on 127.0.0.1 where nothing listens."""
    return f"http://127.0.0.1:{find_free_port()}"


@pytest.fixture
def where(fresh_emulator: EmulatorServer, tmp_path: Path, dead_url: str) -> Where:
    write_images(tmp_path, 1)
    (tmp_path / "tile00.png").rename(tmp_path / "good.png")
    Image.new("RGB", (1200, 1000)).save(tmp_path / "big.png")
    (tmp_path / "notes.png").write_text("not really a picture")
    (tmp_path / "empty.png").write_bytes(b"")
    write_mp4(tmp_path / "clip.mp4")
    (tmp_path / "nothing").mkdir()
    return Where(tmp_path, fresh_emulator, dead_url)


def _nothing_paid(case: Case, where: Where, message: str) -> None:
    for fragment in case.expect:
        assert where.fill(fragment) in message, message
    assert where.emulator.api_secret not in message
    stats = where.emulator.stats()
    assert stats.jobs_created == 0
    assert stats.creative_units_charged == 0
    out = where.tmp / "out"
    assert not out.exists() or not any(out.glob("*.png"))


def _named(layer: Layer) -> list[str]:
    return [name for name, case in CASES.items() if case.layer == layer]


def test_the_catalogue_covers_at_least_forty_cases_in_every_layer() -> None:
    assert len(CASES) >= 40
    assert all(_named(layer) for layer in ("engine", "flow", "cli"))


# -- the engine ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", _named("engine"))
async def test_the_engine_refuses_before_paying(
    name: str, make_client: Callable[..., ScenarioClient], where: Where
) -> None:
    case = where.case(name)
    spec = UpscaleSpec(model_id=case.model_id, parameters=case.parameters)
    try:
        async with make_client(**where.client(case)) as client:
            report = await run_batch(
                client,
                where.inputs(case),
                where.fill(case.target),
                [spec],
                poll=FAST_POLL,
                **case.options,
            )
    except ScenarioError as error:
        message = str(error)
    else:
        # A bad input file fails that input alone; the batch says why.
        [result] = report.results
        assert result.status == "invalid", result
        message = result.error or ""
    _nothing_paid(case, where, message)


# -- the flows ----------------------------------------------------------------------------------


async def _block(where: Where, case: Case) -> str:
    name = f"catalogue-{uuid.uuid4().hex[:8]}"
    settings: dict[str, Any] = {
        "api_key": where.emulator.api_key,
        "api_secret": where.emulator.api_secret,
        "base_url": where.emulator.base_url,
        "timeout_s": 10,
    }
    await ScenarioCredentials(**(settings | where.client(case))).asave(name)
    return name


async def _run_flow(case: Case, where: Where, block: str, limit: str) -> State[Any]:
    """The case's flow with its inputs, target, model and options; its final state."""
    target = where.fill(case.target)
    spec = UpscaleSpec(model_id=case.model_id, parameters=case.parameters)
    if case.flow == "upscale-image":
        [source] = where.inputs(case)
        return await upscale_image(
            source,
            target,
            model=OtherModel(model_id=case.model_id, parameters=case.parameters),
            credentials_block=block,
            return_state=True,
            **case.options,
        )
    if case.flow == "upscale-new-assets":
        return await upscale_new_assets(
            str(where.tmp),
            target,
            upscales=[spec],
            credentials_block=block,
            concurrency_limit=limit,
            return_state=True,
            **case.options,
        )
    if case.flow == "asset-pipeline":
        return await asset_pipeline(
            str(where.tmp / "good.png"),
            staging=str(where.tmp / "staging"),
            target=target,
            published=str(where.tmp / "published"),
            upscales=[spec],
            credentials_block=block,
            return_state=True,
            **case.options,
        )
    options = dict(case.options)
    knobs = {k: options.pop(k) for k in AdvancedSettings.model_fields if k in options}
    return await upscale_batch(
        inputs=where.inputs(case),
        target=target,
        upscales=[spec],
        credentials_block=block,
        advanced=AdvancedSettings(concurrency_limit=limit, **knobs),
        return_state=True,
        **options,
    )


@pytest.mark.prefect_server
@pytest.mark.parametrize("name", _named("flow"))
async def test_the_flow_refuses_before_paying(
    name: str, prefect_client_settings: PrefectTestServer, where: Where
) -> None:
    case = where.case(name)
    limit = f"catalogue-{uuid.uuid4().hex[:8]}"
    state = await _run_flow(case, where, await _block(where, case), limit)
    assert state.is_failed(), state
    message = state.message or ""
    _nothing_paid(case, where, message)
    if "max_concurrency" in case.options:
        # A bad value never reaches the team's concurrency limit (0 slots would stop every run).
        async with get_client() as prefect:
            with pytest.raises(ObjectNotFound):
                await prefect.read_global_concurrency_limit_by_name(limit)


# -- the command line ---------------------------------------------------------------------------


@pytest.mark.prefect_server
@pytest.mark.parametrize("name", _named("cli"))
def test_the_command_line_refuses_before_paying(
    name: str, prefect_client_settings: PrefectTestServer, where: Where
) -> None:
    case = where.case(name)
    block = asyncio.run(_block(where, case))
    arguments = [*where.inputs(case), "--target", where.fill(case.target)]
    arguments += ["--credentials-block", block, *case.args]
    done = CliRunner().invoke(app, ["upscale", *arguments])
    assert done.exit_code == case.exit_code, done.output
    # Typer draws usage errors in a box, wrapped to the terminal's width.
    _nothing_paid(case, where, " ".join(done.output.replace("│", " ").split()))
