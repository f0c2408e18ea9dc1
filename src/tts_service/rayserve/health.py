"""A replica's health, from its scheduler's state, for Serve's periodic health check.

Serve calls the check every few seconds; one that raises marks the replica unhealthy, and
Serve stops it and starts a new one. A replica is healthy while it can do what it was
admitted for: the service finished starting (default voice loaded and warmed), the
scheduler has not stopped, and every worker thread is alive (a worker survives any
exception, so a dead one means something the process cannot recover from).
"""

from __future__ import annotations

from typing import Protocol


class SchedulerState(Protocol):
    @property
    def workers(self) -> int: ...
    @property
    def live_workers(self) -> int: ...
    @property
    def stopped(self) -> bool: ...


class ServiceState(Protocol):
    @property
    def ready(self) -> bool: ...
    @property
    def scheduler(self) -> SchedulerState: ...


class ReplicaUnhealthy(RuntimeError):
    """Raised by the health check: Serve replaces the replica."""


def problem(service: ServiceState) -> str | None:
    """Why the replica cannot serve, or None when it can."""
    scheduler = service.scheduler
    if scheduler.stopped:
        return "the scheduler has stopped"
    if not service.ready:
        return "the service has not finished starting (default voice not loaded)"
    dead = scheduler.workers - scheduler.live_workers
    if dead > 0:
        return f"{dead} of {scheduler.workers} worker threads are no longer running"
    return None


def check(service: ServiceState) -> None:
    reason = problem(service)
    if reason is not None:
        raise ReplicaUnhealthy(reason)
