"""A connection's idleness: the quiet clock, and busy work that holds it off."""

from __future__ import annotations

import asyncio
import time

from tts_service.wyoming.idleness import until_idle

LIMIT = 0.05


async def test_a_quiet_connection_is_idle_after_the_limit() -> None:
    began = time.monotonic()
    await asyncio.wait_for(until_idle(LIMIT, lambda: began, lambda: False), 5)
    assert time.monotonic() - began >= LIMIT


async def test_something_heard_restarts_the_clock() -> None:
    began = time.monotonic()
    heard = [began]

    async def hear_later() -> None:
        await asyncio.sleep(LIMIT / 2)
        heard.append(time.monotonic())

    talker = asyncio.create_task(hear_later())
    await asyncio.wait_for(until_idle(LIMIT, lambda: heard[-1], lambda: False), 5)
    await talker
    assert time.monotonic() - heard[-1] >= LIMIT
    assert len(heard) == 2


async def test_busy_work_is_no_idleness() -> None:
    began = time.monotonic()
    busy = [True]
    watch = asyncio.create_task(until_idle(LIMIT, lambda: began, lambda: busy[0]))
    await asyncio.sleep(LIMIT * 3)
    assert not watch.done()
    busy[0] = False
    await asyncio.wait_for(watch, 5)
