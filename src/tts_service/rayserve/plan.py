"""What Ray Serve is told, derived from the service's own settings.

Serve's router counts ongoing requests per replica and sends a request only to a replica
below its `max_ongoing_requests`; beyond that it waits at the proxy (at most
`max_queued_requests`, then 503). So the router's count must be the replica's own
admission capacity (workers + queued requests): with more, Serve would hand a replica
requests its scheduler refuses while another replica idles; with fewer, requests would wait
at the proxy, in arrival order and outside the scheduler's fairness, while a replica has
room. Pure functions: no Ray import, so the plan is tested without a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tts_service.config import RaySettings, Settings

DEPLOYMENT_NAME = "TTSReplica"
# Serve polls a draining replica's ongoing requests this often.
DRAIN_POLL_SECONDS = 1.0


class PlanError(ValueError):
    """Settings that cannot run on Ray Serve, with the reason."""


@dataclass(frozen=True)
class ReplicaPlan:
    """One replica's service settings and the Serve deployment options that go with them."""

    settings: Settings
    options: dict[str, Any]

    @property
    def max_ongoing_requests(self) -> int:
        value: int = self.options["max_ongoing_requests"]
        return value


def replica_settings(settings: Settings, ray: RaySettings) -> Settings:
    """The service settings of one replica: its cores are the CPUs Ray reserves for it,
    its workers follow them, its queue is sized per worker."""
    if settings.wyoming_uri:
        raise PlanError(
            "Wyoming is not served through Ray Serve (its proxy speaks HTTP and gRPC only): "
            "run `tts-service serve --wyoming-uri ...` on the node Home Assistant talks to"
        )
    workers = max(1, ray.cpus_per_replica // settings.threads_per_worker)
    explicit = settings.model_fields_set
    if "workers" in explicit and settings.worker_count != workers:
        raise PlanError(
            f"with Ray, a replica's workers follow its CPUs: {ray.cpus_per_replica} CPU(s) at "
            f"{settings.threads_per_worker} thread(s) per worker give {workers} worker(s), "
            f"not {settings.worker_count}; set --ray-cpus-per-replica instead of --workers"
        )
    update: dict[str, Any] = {"cores": ray.cpus_per_replica, "workers": workers}
    if "max_queued_requests" not in explicit:
        update["max_queued_requests"] = ray.queued_per_worker * workers
    return settings.model_copy(update=update)


def admission_capacity(settings: Settings) -> int:
    """Requests one replica's scheduler admits at once (as its `capacity_requests`)."""
    return settings.worker_count + settings.max_queued_requests


def autoscaling(settings: Settings, ray: RaySettings, max_replicas: int) -> dict[str, Any]:
    """Serve's autoscaling config: replicas follow ongoing requests, `target_ongoing_per_worker`
    per worker of a replica."""
    low = ray.min_replicas
    high = max(low, max_replicas)
    initial = ray.initial_replicas if ray.initial_replicas is not None else low
    if not low <= initial <= high:
        raise PlanError(f"initial replicas {initial} are outside {low}..{high}")
    return {
        "min_replicas": low,
        "max_replicas": high,
        "initial_replicas": initial,
        "target_ongoing_requests": settings.worker_count * ray.target_ongoing_per_worker,
        "upscale_delay_s": ray.upscale_delay,
        "downscale_delay_s": ray.downscale_delay,
    }


def default_max_replicas(ray: RaySettings, cluster_cpus: float) -> int:
    """As many replicas as the cluster's CPUs hold (at least `min_replicas`)."""
    return max(ray.min_replicas, int(cluster_cpus // ray.cpus_per_replica))


def plan(settings: Settings, ray: RaySettings, cluster_cpus: float) -> ReplicaPlan:
    replica = replica_settings(settings, ray)
    max_replicas = ray.max_replicas or default_max_replicas(ray, cluster_cpus)
    options: dict[str, Any] = {
        "name": DEPLOYMENT_NAME,
        "ray_actor_options": {"num_cpus": ray.cpus_per_replica},
        "max_ongoing_requests": admission_capacity(replica),
        "max_queued_requests": ray.max_queued_requests,
        "backpressure_config": {"status_code": 503, "retry_after_s": ray.retry_after},
        "autoscaling_config": autoscaling(replica, ray, max_replicas),
        # A replica being removed gets no new requests and is stopped once its ongoing
        # ones end, or after the drain time (as SIGTERM gives the plain server).
        "graceful_shutdown_timeout_s": replica.drain_seconds,
        "graceful_shutdown_wait_loop_s": DRAIN_POLL_SECONDS,
        "health_check_period_s": ray.health_check_period,
        "health_check_timeout_s": ray.health_check_timeout,
    }
    return ReplicaPlan(replica, options)
