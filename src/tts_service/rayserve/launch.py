"""`tts-service serve --ray`: the service on Ray Serve with one command.

Without an address (`--ray-address`, else `RAY_ADDRESS`) it starts a new local Ray on this
machine (a laptop, one VM); with one it joins that cluster. It starts Serve's proxy on the
service's host and port, deploys the application `plan` describes, and runs until SIGTERM
or SIGINT, when it deletes the application (Serve drains each replica within the drain
time) and, if it started Ray, stops Serve and Ray.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType

from tts_service.config import RaySettings, Settings
from tts_service.rayserve.plan import ReplicaPlan, plan, replica_settings
from tts_service.rayserve.proxy import PROXY_CALLBACK

log = logging.getLogger(__name__)

PROXY_CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"


# Ray resolves a node address of 127.0.0.1 to the machine's network address, except where
# it believes it runs a single-machine cluster (its Windows and macOS default), which this
# switch selects: a local Ray then talks to itself over loopback only.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def ray_address(ray_settings: RaySettings) -> str:
    """The cluster to join; "local" starts a new Ray even where a `ray start` cluster runs
    on this machine."""
    return ray_settings.address or os.environ.get("RAY_ADDRESS") or "local"


def ray_environment(settings: Settings, ray_settings: RaySettings) -> None:
    """What Ray reads from the environment, set before it is first imported (it reads some
    at import): no usage reports, our proxy middleware and the stall timeout it enforces,
    and for a local Ray, loopback only. A cluster across machines is started with
    `ray start` and joined by address."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault(PROXY_CALLBACK_ENV, PROXY_CALLBACK)
    os.environ["TTS_STALL_TIMEOUT"] = str(settings.stall_timeout)
    if ray_address(ray_settings) == "local":
        os.environ.setdefault(LOOPBACK_ENV, "0")


def serve_on_ray(settings: Settings, ray_settings: RaySettings) -> int:
    replica_settings(settings, ray_settings)  # a PlanError before Ray starts, not after
    ray_environment(settings, ray_settings)
    import ray
    from ray import serve

    from tts_service.rayserve.deployment import application, cluster_cpus

    address = ray_address(ray_settings)
    local = address == "local"
    ray.init(
        address=address,
        num_cpus=(ray_settings.num_cpus or settings.core_count) if local else None,
        include_dashboard=False if local else None,
        logging_level=logging.WARNING,
    )
    try:
        announce(f"Ray cluster at {ray.get_runtime_context().gcs_address}")
        replica_plan = plan(settings, ray_settings, cluster_cpus())
        serve.start(http_options={"host": settings.host, "port": settings.port})
        serve.run(
            application(replica_plan),
            name=ray_settings.app_name,
            route_prefix="/",
            blocking=False,
        )
        announce(describe(settings, replica_plan))
        wait_for_signal()
        announce(f"stopping: replicas drain for up to {settings.drain_seconds:g} s")
        serve.delete(ray_settings.app_name)
        if local:
            serve.shutdown()  # type: ignore[no-untyped-call]
    finally:
        ray.shutdown()
    return 0


def describe(settings: Settings, replica_plan: ReplicaPlan) -> str:
    scaling = replica_plan.options["autoscaling_config"]
    return (
        f"serving http://{settings.host}:{settings.port} through Ray Serve: "
        f"{scaling['min_replicas']}-{scaling['max_replicas']} replicas of "
        f"{replica_plan.settings.worker_count} worker(s), "
        f"at most {replica_plan.max_ongoing_requests} ongoing requests each"
    )


def announce(message: str) -> None:
    """What the command is doing, whatever the log level (like a server's start line)."""
    print(f"tts-service: {message}", file=sys.stderr, flush=True)


def wait_for_signal() -> None:
    stop = threading.Event()

    def handle(sig: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handle)
    stop.wait()
