"""The team's concurrency ceiling shared for real: a slot of the global concurrency limit per job.

Every run (a shard of a batch, on any worker) takes one slot of the limit just before a submit
and gives it back when that job ends, so concurrent runs together keep about the ceiling's
worth of jobs in flight, each as many as it has work for. Before, a run took all its slots at
once for its whole life, and a second run waited for the first one to finish.

A slot given back is first offered to this run's own next submit for ``HANDOVER_S``: a batch
refills the slot of a finished job at once, without a release and a take on the server (two
round trips of ~40-50 ms, and a take sent before the release landed was refused and waited).
Only a slot nobody here wants in that window goes back to the limit, where the other runs
waiting for one take it; so a run with more work keeps its slots until its work runs out.

Submits waiting at the same moment (a batch starting, its shards all ramping up) are served by
one take of as many slots (at most ``MAX_SLOTS_PER_TAKE``) under one lease: a batch of 1000 took
its first 50 slots one request at a time, most answered "busy" by a SQLite server that was
writing the run's new task runs, and its first jobs waited ~3 s. So a run also takes the slots
its first submits need (``reserve``) in one request before its shards' tasks start, while the
server is calm; if the limit has not that much room, its submits take theirs as they come.
A lease goes back whole, once
none of its slots is in use: jobs give back slots of the emptiest lease and submits take from
the fullest, so at most one lease at a time holds slots nobody uses.

Lease calls are asked again 50 ms after a "busy" answer instead of after Prefect's client's own
2 s, then 4 s: a SQLite-backed server answers 503 at once while another write holds its database
(``SQLITE_BUSY_SNAPSHOT``), which the flow's own task runs, logs and artifacts make likely just
when a batch takes its first slots (measured: the demo's first take waited 2 s, in 3 runs of 3).
The client's retries are kept (its count, its jitter); only the wait is the server's to say,
through the ``Retry-After`` a response hook gives a bare 503. A server still busy after those
(a flood of writes: 1000 inputs in one run did it) is asked again every 0.5 s, a take like a
full limit and a release in the background, for as long as a lease lasts.

Each lease (``SLOT_LEASE_S``) is renewed in one loop for all of them while the run lives: the
slots of a killed run come back when its leases run out.

Written on the client's lease calls rather than ``prefect.concurrency.asyncio.concurrency``:
that context manager starts a renewal thread per acquisition and, when the limit is full, sleeps
for the server's ``Retry-After``; a run holding tens of slots wants one renewal loop, and a
waiting submit wants to try again as soon as one of its own slots comes back. Takes from the
server are serialized within a run, as Prefect's own acquisition service does, so a run asks
the server once at a time instead of all its submits polling at once. Measured against the
stack's PostgreSQL-backed server on a loaded 2-core machine: ~40-50 ms per take, and four takes
at once were no faster per slot (the server is the limit, not the round trip); see README,
"Scaling out".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
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

MAX_SLOTS_PER_TAKE = 16
"""The most slots one take asks for (the submits waiting at that moment, up to this)."""
HANDOVER_S = 0.05
"""How long a slot given back waits for this run's next submit before it is released: a
submit waiting for a slot takes it on the event loop's next turns."""

BUSY_RETRY_AFTER_S = "0.05"
"""When a lease call is asked again after the server said it was busy (and said no more)."""
_BUSY = (502, 503)  # what the server answers while its database is busy
_LOCKED = 423  # what the server answers while the limit is full
_GONE = (404, 410)  # a lease released (or expired) before its renewal


async def _busy_is_asked_soon(response: httpx.Response) -> None:
    """An httpx response hook: a 503 without ``Retry-After`` is asked again after 50 ms."""
    if response.status_code == 503 and "Retry-After" not in response.headers:
        response.headers["Retry-After"] = BUSY_RETRY_AFTER_S


@dataclass
class _Lease:
    """Slots of the limit taken in one request, given back together."""

    id: UUID
    slots: int
    in_use: int = 0


class TeamSlots:
    """One run's slots of the global concurrency limit ``name``: one slot per job in flight.

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
        self.leases: dict[UUID, _Lease] = {}
        """The leases this run holds now; their slots not in use wait for its next submits."""
        self._wanted = 0
        self._taking = asyncio.Lock()
        self._given_back = asyncio.Event()
        self._releasing: set[asyncio.Task[None]] = set()
        self._stack = contextlib.AsyncExitStack()
        self._client: PrefectClient | None = None

    async def __aenter__(self) -> Self:
        self._client = await self._stack.enter_async_context(
            get_client(httpx_settings={"event_hooks": {"response": [_busy_is_asked_soon]}})
        )
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
            leases, self.leases = list(self.leases), {}
            await asyncio.gather(*(self._release(lease) for lease in leases))
        finally:
            await self._stack.aclose()

    @property
    def client(self) -> PrefectClient:
        assert self._client is not None, "enter TeamSlots first"
        return self._client

    @property
    def in_use(self) -> int:
        """Slots held by this run's jobs in flight."""
        return sum(lease.in_use for lease in self.leases.values())

    async def reserve(self, slots: int) -> None:
        """Take ``slots`` at once for this run's next submits, in one lease; none if the limit
        has not that much room (each submit then takes its own, waiting if need be)."""
        if slots < 1:
            return
        async with self._taking:
            try:
                await self._new_lease(slots)
            except httpx.HTTPStatusError as error:
                if error.response.status_code not in (_LOCKED, *_BUSY):
                    raise

    async def take(self) -> None:
        """Take one slot, waiting as long as the limit is full."""
        self._wanted += 1
        try:
            async with self._taking:
                await self._take()
        finally:
            self._wanted -= 1

    async def _take(self) -> None:
        started: float | None = None
        busy_since: float | None = None
        reported = False
        one_at_a_time = False
        while True:
            if (room := self._fullest_with_room()) is not None:
                room.in_use += 1
                break
            self._given_back.clear()
            wanted = 1 if one_at_a_time else min(self._wanted, MAX_SLOTS_PER_TAKE)
            try:
                lease = await self._new_lease(wanted)
            except httpx.HTTPStatusError as error:
                if error.response.status_code in _BUSY:
                    # Still busy after the client's quick retries (a flood of writes on
                    # SQLite): asked again like a full limit, for as long as a lease lasts.
                    busy_since = busy_since or time.monotonic()
                    if time.monotonic() - busy_since > SLOT_LEASE_S:
                        raise
                    await self._wait_for_room(self.retry_s)
                    continue
                if error.response.status_code != _LOCKED:
                    raise
                if wanted > 1:
                    one_at_a_time = True  # fewer than that are free: one may be
                    continue
                if started is None:
                    started = time.monotonic()
                if not reported and not self.in_use:
                    reported = await self._report_waiting()
                retry_after = float(error.response.headers.get("Retry-After", self.retry_s))
                await self._wait_for_room(min(retry_after, self.retry_s))
                continue
            lease.in_use = 1
            break
        if reported and started is not None:
            self.logger.info(
                "Got 1 slot(s) of %r after %.0f s", self.name, time.monotonic() - started
            )
            self.waiting(None)

    async def _new_lease(self, slots: int) -> _Lease:
        """``slots`` of the limit taken in one request, under a lease now this run's."""
        response = await self.client.increment_concurrency_slots_with_lease(
            names=[self.name], slots=slots, mode="concurrency", lease_duration=SLOT_LEASE_S
        )
        granted = ConcurrencyLimitWithLeaseResponse.model_validate(response.json())
        lease = self.leases[granted.lease_id] = _Lease(granted.lease_id, slots)
        return lease

    def _fullest_with_room(self) -> _Lease | None:
        with_room = [lease for lease in self.leases.values() if lease.in_use < lease.slots]
        return max(with_room, key=lambda lease: lease.in_use, default=None)

    def give_back(self) -> None:
        """Give one slot back (its job ended, or its submit created nothing): to this run's
        next submit if one comes within ``HANDOVER_S``, else, once none of its lease's slots
        is in use, to the limit."""
        used = [lease for lease in self.leases.values() if lease.in_use > 0]
        if not used:
            return
        emptiest = min(used, key=lambda lease: lease.in_use)
        emptiest.in_use -= 1
        if emptiest.in_use == 0:
            asyncio.get_running_loop().call_later(HANDOVER_S, self._release_if_unused, emptiest)
        self._given_back.set()

    def _release_if_unused(self, lease: _Lease) -> None:
        if lease.in_use > 0 or self.leases.get(lease.id) is not lease:
            return  # taken again by a submit, or given back already
        del self.leases[lease.id]
        releasing = asyncio.ensure_future(self._release(lease.id))
        self._releasing.add(releasing)
        releasing.add_done_callback(self._released)

    def _released(self, releasing: asyncio.Task[None]) -> None:
        self._releasing.discard(releasing)
        self._given_back.set()  # the limit has room now: a take refused meanwhile tries again

    async def _release(self, lease: UUID) -> None:
        """Give ``lease`` back, asking a busy server again until the lease would have run out
        by itself anyway. A lease that ran out already (a stalled loop) has nothing to give."""
        deadline = time.monotonic() + SLOT_LEASE_S
        while True:
            try:
                await self.client.release_concurrency_slots_with_lease(lease_id=lease)
                return
            except httpx.HTTPStatusError as error:
                if error.response.status_code not in _BUSY or time.monotonic() > deadline:
                    return
            await asyncio.sleep(self.retry_s)

    async def _wait_for_room(self, timeout_s: float) -> None:
        # Cleared before the refused take: a slot that came back since then ends this wait.
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
