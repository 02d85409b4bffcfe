"""The team's concurrency ceiling shared for real: a slot of the global concurrency limit per job.

Every run (a shard of a batch, on any worker) takes one slot of the limit just before a submit
and gives it back the moment that job ends, so concurrent runs together keep about the ceiling's
worth of jobs in flight, each as many as it has work for. Before, a run took all its slots at
once for its whole life, and a second run waited for the first one to finish.

Each slot is a lease of its own (``SLOT_LEASE_S``), renewed in one loop for all of them while
the run lives: the slots of a killed run come back when their leases run out.

Written on the client's lease calls rather than ``prefect.concurrency.asyncio.concurrency``:
that context manager starts a renewal thread per acquisition and, when the limit is full, sleeps
for the server's ``Retry-After``; a run holding tens of slots wants one renewal loop, and a
waiting submit wants to try again as soon as one of its own jobs ends. Takes are serialized
within a run, as Prefect's own acquisition service does, so a run asks the server one slot at a
time instead of all its submits polling at once. Measured against the stack's PostgreSQL-backed
server on a loaded 2-core machine: ~40-50 ms per take, and four takes at once were no faster per
slot (the server is the limit, not the round trip); see README, "Scaling out".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self
from uuid import UUID

import httpx
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.responses import ConcurrencyLimitWithLeaseResponse

SLOT_LEASE_S = 60.0
"""How long the team's slots stay taken after their holder stopped renewing them (it was killed):
the shortest lease Prefect's server grants (its default is 300 s). A live run renews its leases
every ``SLOT_LEASE_S / 4``; a killed one's slots come back after this, plus the server's sweep
for expired leases (``PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS``, 15 s by default)."""

_LOCKED = 423  # what the server answers while the limit is full
_GONE = (404, 410)  # a lease released (or expired) before its renewal


class TeamSlots:
    """One run's slots of the global concurrency limit ``name``: one lease per job in flight.

    Args:
        name: The global concurrency limit (it must exist: ``flows.upscale.team_ceiling``).
        waiting: Told why the run waits while it holds no slot at all (None once it has one).
        logger: The run's logger.
        retry_s: How often a full limit is asked again, at most (sooner when one of this run's
            own slots comes back).

    Example:
        >>> async with TeamSlots("scenario-team-jobs", progress.waiting, logger) as team:
        ...     await team.take()  # before a submit
        ...     team.give_back()  # when its job ended
    """

    def __init__(
        self,
        name: str,
        waiting: Callable[[str | None], None],
        logger: logging.Logger | logging.LoggerAdapter[Any],
        *,
        retry_s: float = 0.5,
    ) -> None:
        self.name = name
        self.waiting = waiting
        self.logger = logger
        self.retry_s = retry_s
        self.leases: list[UUID] = []
        """The leases this run holds now, one slot each."""
        self._taking = asyncio.Lock()
        self._given_back = asyncio.Event()
        self._releasing: set[asyncio.Task[None]] = set()
        self._stack = contextlib.AsyncExitStack()
        self._client: PrefectClient | None = None

    async def __aenter__(self) -> Self:
        self._client = await self._stack.enter_async_context(get_client())
        renewing = asyncio.create_task(self._renew_forever())
        self._stack.callback(renewing.cancel)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await asyncio.gather(*self._releasing, return_exceptions=True)
            leases, self.leases = self.leases, []
            await asyncio.gather(*(self._release(lease) for lease in leases))
        finally:
            await self._stack.aclose()

    @property
    def client(self) -> PrefectClient:
        assert self._client is not None, "enter TeamSlots first"
        return self._client

    async def take(self) -> None:
        """Take one slot, waiting as long as the limit is full."""
        async with self._taking:
            started: float | None = None
            reported = False
            while True:
                try:
                    response = await self.client.increment_concurrency_slots_with_lease(
                        names=[self.name], slots=1, mode="concurrency", lease_duration=SLOT_LEASE_S
                    )
                except httpx.HTTPStatusError as error:
                    if error.response.status_code != _LOCKED:
                        raise
                    if started is None:
                        started = time.monotonic()
                    if not reported and not self.leases:
                        reported = await self._report_waiting()
                    retry_after = float(error.response.headers.get("Retry-After", self.retry_s))
                    await self._wait_for_room(min(retry_after, self.retry_s))
                    continue
                granted = ConcurrencyLimitWithLeaseResponse.model_validate(response.json())
                self.leases.append(granted.lease_id)
                if reported and started is not None:
                    self.logger.info(
                        "Got 1 slot(s) of %r after %.0f s", self.name, time.monotonic() - started
                    )
                    self.waiting(None)
                return

    def give_back(self) -> None:
        """Give one slot back (its job ended, or its submit created nothing)."""
        if not self.leases:
            return
        lease = self.leases.pop()
        releasing = asyncio.ensure_future(self._release(lease))
        self._releasing.add(releasing)
        releasing.add_done_callback(self._releasing.discard)
        self._given_back.set()

    async def _release(self, lease: UUID) -> None:
        # A lease that ran out already (a stalled loop) has nothing left to release.
        with contextlib.suppress(httpx.HTTPStatusError):
            await self.client.release_concurrency_slots_with_lease(lease_id=lease)

    async def _wait_for_room(self, timeout_s: float) -> None:
        self._given_back.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._given_back.wait()

    async def _report_waiting(self) -> bool:
        limit = await self.client.read_global_concurrency_limit_by_name(self.name)
        if limit.active_slots < limit.limit:
            return False  # freed meanwhile: the next try takes it
        reason = (
            f"1 slot(s) of the team's concurrency limit {self.name!r}: {limit.active_slots} of "
            f"{limit.limit} are held by other runs. The slots of a run that was killed come back "
            f"once its lease of {SLOT_LEASE_S:.0f} s runs out."
        )
        self.logger.warning("Waiting for %s", reason)
        self.waiting(reason)
        return True

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(SLOT_LEASE_S / 4)
            for lease in list(self.leases):
                if lease not in self.leases:
                    continue  # given back while this loop renewed the others
                try:
                    await self.client.renew_concurrency_lease(
                        lease_id=lease, lease_duration=SLOT_LEASE_S
                    )
                except httpx.HTTPError as error:
                    status = getattr(getattr(error, "response", None), "status_code", None)
                    if status in _GONE and lease not in self.leases:
                        continue  # released while it was being renewed: nothing to renew
                    self.logger.warning("Could not renew a slot of %r: %s", self.name, error)
