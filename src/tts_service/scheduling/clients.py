"""Fairness between clients, not only between requests.

A client (an HTTP remote address, one WebSocket or Wyoming connection) that holds many
requests would, under request-level fairness alone, get a share of the CPU per request:
ten requests from one script would make another client's single request wait behind ten
sentences. Each client instead has a virtual time that grows by one per sentence it is
served; the policy serves the client with the least, then picks among that client's
requests. A client that arrives (or comes back) starts at the least virtual time of the
clients already active, so it neither waits behind their history nor jumps it.

Not thread-safe by itself: the scheduler calls it under its lock.
"""

from __future__ import annotations

from collections.abc import Iterable


class ClientShares:
    def __init__(self) -> None:
        self._served: dict[str, float] = {}  # virtual time of each client with requests
        self._requests: dict[str, int] = {}

    def requests(self, client: str) -> int:
        """Requests the client holds now."""
        return self._requests.get(client, 0)

    def joined(self, client: str) -> None:
        """The client was admitted one more request."""
        held = self._requests.get(client, 0)
        if held == 0:
            self._served[client] = min(self._served.values(), default=0.0)
        self._requests[client] = held + 1

    def left(self, client: str) -> None:
        """One of the client's requests finished, however it ended."""
        held = self._requests.get(client, 0) - 1
        if held > 0:
            self._requests[client] = held
        else:
            self._requests.pop(client, None)
            self._served.pop(client, None)

    def charge(self, client: str, sentences: float = 1.0) -> None:
        if client in self._served:
            self._served[client] += sentences

    def least_served(self, clients: Iterable[str]) -> str | None:
        """Among `clients`, the one served least so far; ties go to the one holding fewer
        requests (a newcomer starts level with the others), then to the first given."""
        return min(
            clients,
            key=lambda client: (self._served.get(client, 0.0), self._requests.get(client, 0)),
            default=None,
        )

    def __len__(self) -> int:
        return len(self._requests)
