"""Loopback source addresses, one per simulated client.

The server tells HTTP clients apart by their remote address (a client's requests share one
client's share of the workers), so a bench client that stands for a user of its own binds
its sockets to an address of its own. On Linux every address in 127.0.0.0/8 is this machine.
"""

from __future__ import annotations

import ipaddress

_BASE = int(ipaddress.IPv4Address("127.0.0.0"))
_PER_BLOCK = 254
"""Usable last octets in each 127.a.b.0/24: 1 to 254 (0 and 255 are left alone)."""
CAPACITY = 256 * 256 * _PER_BLOCK - 1
"""How many client addresses there are: 127.0.0.1, the bench's own, is not one of them."""


def loopback_address(index: int) -> str:
    """The `index`-th client address: 0 -> 127.0.0.2, 252 -> 127.0.0.254, 253 -> 127.0.1.1."""
    if not 0 <= index < CAPACITY:
        raise ValueError(f"client address index must be within 0..{CAPACITY - 1}, got {index}")
    block, octet = divmod(index + 1, _PER_BLOCK)
    return str(ipaddress.IPv4Address(_BASE + 256 * block + octet + 1))


class Addresses:
    """Hands out each client address once in a run, so no client inherits another's past
    (the scheduler weighs a client's attained service)."""

    def __init__(self) -> None:
        self._next = 0

    def take(self) -> str:
        address = loopback_address(self._next)
        self._next += 1
        return address

    def take_many(self, count: int) -> list[str]:
        return [self.take() for _ in range(count)]

    @property
    def taken(self) -> int:
        return self._next
