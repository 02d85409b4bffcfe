"""Jobs in flight under the team's concurrency ceiling: learnt from 429s and waited out."""

from __future__ import annotations

import asyncio

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
