"""When a connection counts as idle: nothing heard or written for a time, with nothing of
its own under way (a slow answer is no idleness)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until_idle(
    limit: float, quiet_since: Callable[[], float], busy: Callable[[], bool]
) -> None:
    """Return once `limit` seconds have passed since `quiet_since()` and nothing is `busy()`.

    Both are asked again at every wake-up: the clock restarts whenever the connection hears
    or writes something."""
    while True:
        left = quiet_since() + limit - time.monotonic()
        if left <= 0 and not busy():
            return
        # While busy, look again later: its end is a write, which restarts the clock.
        await asyncio.sleep(left if left > 0 else limit)
