"""Status aliases, error translation and the retry policy: pure logic."""

from __future__ import annotations

import contextlib
import random

import httpx
import pytest
import scenario_sdk

from scenario_upscale.api import translate_error
from scenario_upscale.errors import (
    JobFailed,
    JobTimedOut,
    ScenarioAuthError,
    ScenarioBadRequest,
    ScenarioConnectionError,
    ScenarioNotFound,
    ScenarioRateLimited,
    ScenarioServerError,
)
from scenario_upscale.models import terminal_outcome
from scenario_upscale.retry import (
    CeilingNeverOpened,
    CeilingWait,
    DownloadRetry,
    ImportWait,
    LostSubmit,
    LostSubmitRetry,
    NotYet,
    RetryNow,
    RetryPolicy,
    RetryRule,
    Transient,
    retry,
)
from scenario_upscale.slots import JobSlots


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("success", "success"),
        ("succeeded", "success"),
        ("completed", "success"),
        ("failure", "failure"),
        ("failed", "failure"),
        ("error", "failure"),
        ("canceled", "canceled"),
        ("cancelled", "canceled"),
        ("CANCELED", "canceled"),
        ("queued", None),
        ("pending", None),
        ("warming-up", None),
        ("in-progress", None),
        ("finalizing", None),
        ("processing", None),
        ("something-new", None),
    ],
)
def test_terminal_statuses_and_their_aliases(status: str, outcome: str | None) -> None:
    assert terminal_outcome(status) == outcome


def _status_error(status: int, body: object, headers: dict[str, str] | None = None) -> Exception:
    request = httpx.Request(
        "GET", "https://api.example/v1/jobs/x", headers={"Authorization": "Basic c2VjcmV0"}
    )
    response = httpx.Response(status, json=body, headers=headers, request=request)
    client = scenario_sdk.Scenario(api_key="k", api_secret="s")
    return client._make_status_error_from_response(response)


@pytest.mark.parametrize(
    ("status", "body", "cls", "reason"),
    [
        (400, {"reason": "Invalid upscaleFactor"}, ScenarioBadRequest, "Invalid upscaleFactor"),
        (401, {"message": "Unauthorized"}, ScenarioAuthError, "Unauthorized"),
        (403, {"error": "plan too low", "traceId": "t-1"}, ScenarioAuthError, "plan too low"),
        (404, {"detail": "Job not found"}, ScenarioNotFound, "Job not found"),
        (503, {"reason": "busy"}, ScenarioServerError, "busy"),
        (
            429,
            {"reason": "ceiling", "remainingSeconds": 7, "details": {"actionLimit": 4}},
            ScenarioRateLimited,
            "ceiling",
        ),
    ],
)
def test_api_errors_keep_the_apis_words_and_never_the_credentials(
    status: int, body: dict[str, object], cls: type[Exception], reason: str
) -> None:
    error = translate_error("GET /jobs/{jobId}", _status_error(status, body))
    assert isinstance(error, cls)
    assert reason in str(error) and f"HTTP {status}" in str(error)
    assert "c2VjcmV0" not in repr(vars(error))
    if status == 403:
        assert "trace id t-1" in str(error)
    if isinstance(error, ScenarioRateLimited):
        assert error.retry_after == 7 and error.action_limit == 4


def test_retry_after_header_is_used_when_the_body_has_no_remaining_seconds() -> None:
    error = translate_error("POST x", _status_error(429, {"message": "slow"}, {"Retry-After": "3"}))
    assert isinstance(error, ScenarioRateLimited) and error.retry_after == 3


def test_transport_errors_become_connection_errors() -> None:
    request = httpx.Request("POST", "https://api.example/v1/generate/custom/m")
    timeout = translate_error("POST", scenario_sdk.APITimeoutError(request=request))
    assert isinstance(timeout, ScenarioConnectionError) and "timed out" in str(timeout)
    dropped = translate_error("POST", httpx.RemoteProtocolError("peer closed", request=request))
    assert isinstance(dropped, ScenarioConnectionError) and "RemoteProtocolError" in str(dropped)


def test_backoff_is_capped_full_jitter() -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=4.0)
    rng = random.Random(1)
    delays = [policy.delay(n, rng) for n in range(1, 12) for _ in range(50)]
    assert all(0 <= d <= 4.0 for d in delays)
    assert max(delays) > 3.0  # the cap is reached, not just the first step


def test_what_is_retried() -> None:
    policy = RetryPolicy(max_server_wait_s=10)
    assert policy.wait_for(ScenarioServerError("op", 502, "bad gateway"), 1) is not None
    assert policy.wait_for(ScenarioConnectionError("op", "timed out"), 1) is not None
    assert policy.wait_for(ScenarioBadRequest("op", 400, "bad"), 1) is None
    assert policy.wait_for(ScenarioNotFound("op", 404, "gone"), 1) is None
    waited = policy.wait_for(ScenarioRateLimited("op", 429, "x", retry_after=30), 1)
    assert waited is not None and 10 <= waited <= 10.25  # the server's wait, capped


def test_job_errors_read_well() -> None:
    failed = JobFailed("job_1", "failure", "GPU out of memory", "Try a smaller factor")
    assert str(failed) == (
        "job job_1 ended with status 'failure': GPU out of memory. Hint: Try a smaller factor"
    )
    assert "no reason given" in str(JobFailed("job_2", "canceled", None, None))
    late = JobTimedOut([f"job_{i}" for i in range(7)], 30)
    assert str(late).startswith("7 job(s) still running after 30 s: job_0, job_1")
    assert "…" in str(late) and "rerun to collect" in str(late)


async def _count_tries(rule: RetryRule, errors: list[Exception]) -> int:
    tries = 0

    async def call() -> str:
        nonlocal tries
        tries += 1
        if tries <= len(errors):
            raise errors[tries - 1]
        return "ok"

    with contextlib.suppress(Exception):
        await retry(call, rule)
    return tries


async def test_one_loop_applies_each_failure_kinds_policy() -> None:
    fast = RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=0.001)
    server = ScenarioServerError("op", 503, "busy")
    assert await _count_tries(fast, [server] * 5) == 3  # reads: gives up after ``attempts``
    assert await _count_tries(fast, [ScenarioBadRequest("op", 400, "bad")]) == 1
    # Downloads: a fresh URL is tried at once; a bug is not retried.
    assert await _count_tries(DownloadRetry(fast, fresh_urls=2), [RetryNow()]) == 2
    assert await _count_tries(DownloadRetry(fast), [ValueError("a bug")]) == 1
    lost = LostSubmitRetry(fast, attempts=2)
    assert await _count_tries(lost, [LostSubmit("timed out")] * 3) == 2


async def test_an_upload_is_awaited_until_its_deadline() -> None:
    assert await _count_tries(ImportWait(60, first_s=0.001), [NotYet("u")] * 3) == 4
    assert await _count_tries(ImportWait(0, first_s=0.001), [NotYet("u")] * 3) == 1


async def test_a_download_outlasts_transient_faults_until_its_budget_of_time() -> None:
    quick = RetryPolicy(base_delay_s=0.001, max_delay_s=0.001)
    # Many more transient failures than the four tries of old: all outlasted within the budget.
    cut = [Transient("cut short")] * 12
    assert await _count_tries(DownloadRetry(quick, budget_s=60), cut) == 13
    # A spent budget gives up without sleeping past it.
    assert await _count_tries(DownloadRetry(quick, budget_s=0), cut) == 1
    # A fresh URL is tried at once, a bounded number of times: asking again is no remedy.
    assert await _count_tries(DownloadRetry(quick, fresh_urls=3), [RetryNow()] * 5) == 3


async def test_urls_that_expire_during_backoff_waits_do_not_use_up_the_fresh_urls() -> None:
    # The fault soak's pattern: a cut transfer, a backoff wait longer than the URL lives, an
    # expired URL, a fresh one, another cut transfer... All within the budget of time.
    quick = RetryPolicy(base_delay_s=0.001, max_delay_s=0.001)
    flaky = [Transient("cut short"), RetryNow()] * 6
    assert await _count_tries(DownloadRetry(quick, budget_s=60, fresh_urls=2), flaky) == 13
    # Fresh URLs that expire one after another still give up after ``fresh_urls``.
    expiring = [Transient("cut short"), RetryNow(), RetryNow(), RetryNow()]
    assert await _count_tries(DownloadRetry(quick, budget_s=60, fresh_urls=2), expiring) == 3


async def test_ceiling_waits_are_not_lost_answers() -> None:
    """Lost answers count in a row for one input; a 429 in between resets, never adds."""
    quick = RetryPolicy(base_delay_s=0.001, max_delay_s=0.001, max_server_wait_s=0.001)
    lost = LostSubmitRetry(quick, attempts=3)
    ceiling = CeilingWait(JobSlots(2), quick, "tile.png", lost=lost)
    full = ScenarioRateLimited("POST /generate", 429, "too many", retry_after=0.001)
    # Two lost answers then the ceiling, five times over: never three lost in a row. Lost
    # answers go through ``lost``, the ceiling through ``ceiling``, as ``Submitter`` and
    # ``ScenarioClient.submit`` compose them.
    errors: list[Exception] = ([LostSubmit("502")] * 2 + [full]) * 5
    sent = 0

    async def submit() -> str:
        nonlocal sent

        async def post() -> str:
            nonlocal sent
            sent += 1
            if sent <= len(errors):
                raise errors[sent - 1]
            return "job"

        return await retry(post, lost)

    assert await retry(submit, ceiling) == "job"
    assert sent == 16


async def test_a_ceiling_that_never_opens_fails_after_its_own_budget() -> None:
    quick = RetryPolicy(base_delay_s=0.001, max_delay_s=0.001, max_server_wait_s=0.001)
    ceiling = CeilingWait(JobSlots(2), quick, "tile.png", budget_s=0.05)
    full = ScenarioRateLimited("POST /generate", 429, "too many", retry_after=0.001)

    async def refused() -> str:
        raise full

    with pytest.raises(
        CeilingNeverOpened,
        match=r"tile\.png: the team's concurrency ceiling stayed full for 0 s, so no job was "
        r"submitted and nothing was charged; rerun when the team's other jobs have ended",
    ):
        await retry(refused, ceiling)
