"""Named profiles: plausible answers of the real API where the contract says INFERRED.

A profile only switches behaviours (the table in ``coord/PROFILES.md``); every fault knob still
works under every profile. The routes, the middleware and the CDN read :func:`behaviour_of`
instead of testing profile names, so what each profile changes is stated once, here.

Readings of the spec where it left a choice open (the most plausible real-API behaviour):

- ``transformed-urls``: every asset JSON the API renders (reads, bulk reads and the upload
  answer) points at ``/_cdn-transform/{id}``, a rendition cached after its first download. PNG is
  re-encoded at another compression level with a text chunk, JPEG/WebP at another quality (same
  pixel size), other images get a text chunk as PNG would not keep their format, and videos are
  re-encoded at the same size and frame rate (same frames). ``POST /v1/assets/{id}/download``
  keeps serving the original: it is the explicit "give me the file" link.
- ``ceiling-no-retry-hint``: the ceiling is ``min(concurrency_limit, 3)``, so the knob can still
  lower it; the 429 names the ceiling in force.
- ``dry-run-200`` and ``dry-run-with-job`` also answer 200 to an upload dry run (cost only: an
  upload has no job). The fake job of ``dry-run-with-job`` is ``success`` with no asset, and its
  ``metadata.input`` is the echo the profile would give a real job (verbatim).
- ``normalised-echo``: keys follow the model's ``inputs[]`` order (the server builds the input from
  the schema); every integer (also inside arrays) becomes a float; the job runs with that input.
- ``gateway-limits``: the cap fronts ``/v1`` only (the fake S3 part PUTs are not behind the API
  gateway); ``Content-Length`` is trusted when present, otherwise the body is counted.
- ``sparse-pages``: the first page holds jobs, the next one is empty with a token, and so on; the
  last page (no token) holds the last jobs. The official SDK's auto-pager stops at the first
  empty page, so a client has to follow the token itself. Jobs go ``pending`` ->
  ``warming-up`` -> ``queued`` -> ``in-progress``, the two new phases taken from the queued share
  of the job duration, so a job lasts as long as before.
- ``strict-project``: the check runs after authentication (a bad key is still a 401); an empty
  ``projectId=`` counts as missing. These bodies, like the gateway 413, are exactly
  ``{"error": ...}`` (API Gateway and authorizer answers carry no ``traceId``).
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict

ProfileName = Literal[
    "default",
    "transformed-urls",
    "ceiling-no-retry-hint",
    "dry-run-200",
    "dry-run-with-job",
    "normalised-echo",
    "gateway-limits",
    "sparse-pages",
    "strict-project",
]
PROFILE_NAMES: tuple[ProfileName, ...] = get_args(ProfileName)

# The dry-run answer of the documented legacy routes (contract §2).
DRY_RUN_269 = 269
# An API-gateway body cap (contract §9): 6 MB in decimal bytes, as gateways count.
GATEWAY_BODY_LIMIT = 6_000_000
PLAN_CEILING = 3
SPARSE_PAGE_SIZE = 2


class Behaviour(BaseModel):
    """What the emulator does differently; the defaults are today's (the ``default`` profile)."""

    model_config = ConfigDict(frozen=True)

    # Asset URLs serve a transformed rendition unless ``originalAssets=true``.
    transformed_urls: bool = False
    # The team ceiling can be no higher than this; None = concurrency_limit alone.
    ceiling_cap: int | None = None
    # 429 on submit carries ``remainingSeconds``.
    retry_hint: bool = True
    dry_run_status: int = DRY_RUN_269
    # A generate dry run answers a (not real) job next to the cost.
    dry_run_job: bool = False
    # ``metadata.input`` gets defaults, floats and schema order.
    normalised_echo: bool = False
    job_type: Literal["custom", "upscale"] = "custom"
    # Bodies larger than this are refused before any route runs; None = no gateway cap.
    gateway_body_limit: int | None = None
    # Job listings: at most this many per page, and every other page empty; None = pageSize.
    sparse_page_size: int | None = None
    # Jobs start ``pending`` and pass through ``warming-up``.
    warm_up_statuses: bool = False
    # Every /v1 request must name the emulator's project in ``?projectId=``.
    require_project_id: bool = False


PROFILES: dict[ProfileName, Behaviour] = {
    "default": Behaviour(),
    "transformed-urls": Behaviour(transformed_urls=True),
    "ceiling-no-retry-hint": Behaviour(ceiling_cap=PLAN_CEILING, retry_hint=False),
    "dry-run-200": Behaviour(dry_run_status=200),
    "dry-run-with-job": Behaviour(dry_run_status=200, dry_run_job=True),
    "normalised-echo": Behaviour(normalised_echo=True, job_type="upscale"),
    "gateway-limits": Behaviour(gateway_body_limit=GATEWAY_BODY_LIMIT),
    "sparse-pages": Behaviour(sparse_page_size=SPARSE_PAGE_SIZE, warm_up_statuses=True),
    "strict-project": Behaviour(require_project_id=True),
}


def behaviour_of(profile: ProfileName) -> Behaviour:
    return PROFILES[profile]


# ``?dryRun=true|api``, and a bare ``?dryRun`` (or ``dryRun=``), which is "present" (contract §2).
DRY_RUN_VALUES = ("", "true", "api")


def is_dry_run(value: str | None) -> bool:
    return value in DRY_RUN_VALUES
