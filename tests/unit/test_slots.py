"""Jobs in flight under the team's concurrency ceiling: learnt from 429s and waited out."""

from __future__ import annotations

import asyncio
import contextlib

from scenario_upscale.slots import JobSlots


async def test_slots_block_at_the_limit_and_free_on_release() -> None:
    slots = JobSlots(2)
    await slots.acquire()
    await slots.acquire()
    third = asyncio.ensure_future(slots.acquire())
    await asyncio.sleep(0)
    assert not third.done()
    slots.release(ended=True)
    async with asyncio.timeout(10):
        await third
    assert slots.in_flight == 2 and slots.ended == 1


async def test_the_limit_comes_down_to_the_ceiling_the_api_names() -> None:
    slots = JobSlots(8)
    slots.lower(3)
    assert slots.limit == 3
    slots.lower(5)  # never back up within a run
    assert slots.limit == 3
    slots.lower(0)  # a nonsense ceiling changes nothing
    assert slots.limit == 3


async def test_without_a_named_ceiling_the_jobs_in_flight_are_the_room() -> None:
    slots = JobSlots(8)
    for _ in range(2):
        await slots.acquire()
    slots.lower(None)
    assert slots.limit == 2
    empty = JobSlots(8)
    empty.lower(None)  # none of ours in flight: another client holds the slots
    assert empty.limit == 8


async def test_a_refused_submit_waits_for_one_of_our_jobs_to_end() -> None:
    slots = JobSlots(3)
    await slots.acquire()  # one job of ours in flight
    waiting = asyncio.ensure_future(slots.wait_for_room(backoff_s=0.0, max_wait_s=600))
    await asyncio.sleep(0.01)
    assert not waiting.done()  # no backoff: it waits for the job, however long
    await slots.acquire()
    slots.release()  # a submit that created nothing is not a job ending
    await asyncio.sleep(0.01)
    assert not waiting.done()
    slots.release(ended=True)
    async with asyncio.timeout(10):
        await waiting


async def test_with_none_of_ours_in_flight_a_refused_submit_backs_off() -> None:
    slots = JobSlots(3)
    async with asyncio.timeout(10):
        await slots.wait_for_room(backoff_s=0.01, max_wait_s=600)


async def test_the_wait_for_one_of_ours_is_capped() -> None:
    slots = JobSlots(3)
    await slots.acquire()
    async with asyncio.timeout(10):
        await slots.wait_for_room(backoff_s=0.0, max_wait_s=0.01)


class _Ceiling:
    """A shared ceiling of ``free`` slots, as a runner would hand one to ``JobSlots.sharing``."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.room = asyncio.Event()

    async def take(self) -> None:
        while self.free == 0:
            self.room.clear()
            await self.room.wait()
        self.free -= 1

    def give_back(self) -> None:
        self.free += 1
        self.room.set()


async def test_while_sharing_each_slot_is_also_taken_from_the_shared_ceiling() -> None:
    slots, ceiling = JobSlots(4), _Ceiling(1)
    with slots.sharing(ceiling):
        await slots.acquire()
        assert ceiling.free == 0
        second = asyncio.ensure_future(slots.acquire())  # another run holds the rest
        await asyncio.sleep(0)
        assert not second.done()
        slots.release(ended=True)  # a job ended: its slot goes back to the shared ceiling
        async with asyncio.timeout(10):
            await second
    assert slots.in_flight == 1 and ceiling.free == 0


async def test_a_submit_cancelled_while_waiting_for_the_shared_ceiling_frees_its_own_slot() -> None:
    slots, ceiling = JobSlots(4), _Ceiling(0)
    with slots.sharing(ceiling):
        waiting = asyncio.ensure_future(slots.acquire())
        await asyncio.sleep(0)
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
    assert slots.in_flight == 0 and ceiling.free == 0
