"""Fairness between clients, not only between requests: least attained service.

A client (an HTTP remote address, one WebSocket or Wyoming connection) that holds many
requests would, under request-level fairness alone, get a share of the CPU per request:
ten requests from one script would make another client's single request wait behind ten
sentences. Each client instead has an attained service that grows by one per sentence it
is served; the policy serves the client with the least, then picks among that client's
requests.

A newcomer has attained nothing, so its first sentence is next however many clients are
active (issue 18: "starting level with the least served client" made a one-line request
wait for a round of every other client's sentences, 25x its time alone at 12 clients).
Two rules keep that from being gamed or from starving anyone:
- Attained service decays with a half-life of a few seconds, and is remembered after a
  client's last request ends (until it has decayed to nothing): a client that sends its
  next request at once, or reconnects, is no newcomer; one that was quiet for a while is.
- Decay also bounds how far apart two active clients can drift: a long-running stream's
  history is worth a few seconds of service, so a new long client overtakes it for about
  that long (its reader has sentences buffered ahead), never for its whole history.
Among clients with equal attained service (all newcomers), the one with the least work
left goes first: a one-sentence request before a 20-sentence one.

Not thread-safe by itself: the scheduler calls it under its lock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable

HALF_LIFE = 2.0
"""Seconds for a client's attained service to halve."""
FORGOTTEN = 0.01
"""Attained service (sentences) below which a client that holds no request is dropped."""
MAX_REMEMBERED = 4096
"""Clients remembered without a request before the forgotten ones are swept out."""


class ClientShares:
    def __init__(
        self, half_life: float = HALF_LIFE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._half_life = half_life
        self._clock = clock
        self._served: dict[str, tuple[float, float]] = {}  # client -> (attained, as of when)
        self._requests: dict[str, int] = {}

    def attained(self, client: str, now: float | None = None) -> float:
        """The client's attained service now, decayed."""
        value, at = self._served.get(client, (0.0, 0.0))
        if value == 0.0:
            return 0.0
        now = self._clock() if now is None else now
        return value * math.exp2(-(now - at) / self._half_life)

    def requests(self, client: str) -> int:
        """Requests the client holds now."""
        return self._requests.get(client, 0)

    def joined(self, client: str) -> None:
        """The client was admitted one more request."""
        self._requests[client] = self._requests.get(client, 0) + 1
        if len(self._served) > MAX_REMEMBERED:
            self._forget()

    def left(self, client: str) -> None:
        """One of the client's requests finished, however it ended. Its attained service
        stays, decaying, so that coming straight back makes it no newcomer."""
        held = self._requests.get(client, 0) - 1
        if held > 0:
            self._requests[client] = held
        else:
            self._requests.pop(client, None)

    def charge(self, client: str, sentences: float = 1.0) -> None:
        now = self._clock()
        self._served[client] = (self.attained(client, now) + sentences, now)

    def least_served(
        self, clients: Iterable[str], work_left: Callable[[str], float] | None = None
    ) -> str | None:
        """Among `clients`, the one with the least attained service; ties (to a hundredth
        of a sentence) go to the least `work_left`, then to the one holding fewer
        requests, then to the first given."""
        now = self._clock()
        return min(
            clients,
            key=lambda client: (
                round(self.attained(client, now), 2),
                work_left(client) if work_left is not None else 0.0,
                self._requests.get(client, 0),
            ),
            default=None,
        )

    def _forget(self) -> None:
        """Drop the clients that hold no request and whose history has decayed away."""
        now = self._clock()
        idle = sorted((self.attained(c, now), c) for c in self._served if c not in self._requests)
        excess = len(self._served) - MAX_REMEMBERED
        for n, (attained, client) in enumerate(idle):
            # Past the bound even after decay (a flood of addresses): the least served go.
            if attained < FORGOTTEN or n < excess:
                del self._served[client]

    @property
    def remembered(self) -> int:
        """Clients whose attained service is kept (bounded by MAX_REMEMBERED + active)."""
        return len(self._served)

    def __len__(self) -> int:
        return len(self._requests)
