"""Jobs in flight, kept under the team's concurrency ceiling as the API reveals it.

Scenario refuses a submit above the team's ceiling with a 429 that names the limit
(``details.actionLimit``) and sometimes, not always, a ``remainingSeconds``; an immediate resend
repeats the error (contract §9), and the ceiling depends on the plan, so it can be below any
default of ours. ``JobSlots`` starts at the caller's ``max_concurrency``, comes down to what a
429 says, and lets a refused submit wait for one of our own jobs to end before it tries again.
Written here because asyncio's semaphores cannot lower their count while permits are out.

Several runs of one team (shards of a batch, on other machines too) share one ceiling. The
runner can hand ``JobSlots`` a ``SharedCeiling`` (``sharing``): then each slot is also taken
from it before a submit and given back to it when the job ends, so the runs together keep about
the ceiling's worth of jobs in flight, each as many as it has work for, instead of each holding
its whole share for the whole run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Protocol

log = logging.getLogger("scenario_upscale.slots")


class SharedCeiling(Protocol):
    """Slots of a ceiling shared with other runs, one per job (the runner's, e.g. a Prefect
    global concurrency limit)."""

    async def take(self) -> None:
        """Wait until one slot is free and take it."""
        ...

    def give_back(self) -> None:
        """Give one slot back, without waiting."""
        ...


class JobSlots:
    """At most ``limit`` of our jobs in flight; the limit only ever comes down.

    A slot is taken before a submit and given back when the job ends (``release(ended=True)``)
    or when the submit created nothing (``release()``).

    Example:
        >>> async def submit_one(slots, send):
        ...     await slots.acquire()
        ...     job = await send()  # the slot is given back when the job ends
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.in_flight = 0
        self.ended = 0
        """How many of our jobs have ended so far."""
        self._changed = asyncio.Event()
        self._shared: SharedCeiling | None = None

    @contextlib.contextmanager
    def sharing(self, ceiling: SharedCeiling) -> Iterator[None]:
        """Within this block every slot is also a slot of ``ceiling``.

        Enter it before the first ``acquire``; the runner gives back whatever is still taken
        from ``ceiling`` when it closes that ceiling.
        """
        self._shared = ceiling
        try:
            yield
        finally:
            self._shared = None

    def _notify(self) -> None:
        # Wake every waiter once; each checks again whether its condition now holds.
        self._changed.set()
        self._changed = asyncio.Event()

    async def acquire(self) -> None:
        """Wait for a free slot and take it."""
        while self.in_flight >= self.limit:
            await self._changed.wait()
        self.in_flight += 1
        if self._shared is not None:
            try:
                await self._shared.take()
            except BaseException:
                self.in_flight -= 1
                self._notify()
                raise

    def release(self, *, ended: bool = False) -> None:
        """Give a slot back; ``ended`` when it is because one of our jobs reached its end."""
        self.in_flight -= 1
        if ended:
            self.ended += 1
        if self._shared is not None:
            self._shared.give_back()
        self._notify()

    def lower(self, ceiling: int | None) -> None:
        """Take in what a 429 said: the team's ceiling when it names one (``actionLimit``),
        else that the jobs we have in flight are all the room there is now."""
        limit = ceiling if ceiling is not None else self.in_flight
        if 1 <= limit < self.limit:
            log.info("Scenario's concurrency ceiling: at most %d job(s) in flight from now", limit)
            self.limit = limit

    async def wait_for_room(self, backoff_s: float, max_wait_s: float) -> None:
        """After a refused submit (its slot given back): wait until one of our jobs ends.

        With none of ours in flight, the slots are held by another client of the team and
        nothing of ours will tell us when one frees up: wait ``backoff_s`` instead. Either way
        at most ``max_wait_s``, in case a slot freed elsewhere first.
        """
        if self.in_flight == 0:
            await asyncio.sleep(min(backoff_s, max_wait_s))
            return
        seen = self.ended
        try:
            async with asyncio.timeout(max_wait_s):
                while self.ended == seen:
                    await self._changed.wait()
        except TimeoutError:
            return
