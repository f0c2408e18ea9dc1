"""Serve's options come from the service's own settings: a replica's workers follow the CPUs
Ray reserves for it, Serve's max_ongoing_requests is the replica's admission capacity, the
drain time is Serve's graceful shutdown, and the shipped Serve config is valid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from tts_service.cli import build_parser, main, ray_settings_from
from tts_service.config import RaySettings, Settings
from tts_service.rayserve import deployment
from tts_service.rayserve.plan import PlanError, plan, replica_settings
from tts_service.service import TTSService

ROOT = Path(__file__).resolve().parents[3]
SERVE_CONFIG = ROOT / "deploy" / "ray" / "serve.yaml"


def test_workers_follow_the_replicas_cpus() -> None:
    one = replica_settings(Settings(), RaySettings(cpus_per_replica=1))
    four = replica_settings(Settings(threads_per_worker=2), RaySettings(cpus_per_replica=4))
    assert (one.cores, one.worker_count) == (1, 1)
    assert (four.cores, four.worker_count) == (4, 2)


def test_solo_first_sentence_uses_the_replicas_cpus_not_the_machines() -> None:
    assert replica_settings(Settings(), RaySettings(cpus_per_replica=1)).solo_threads is None
    assert replica_settings(Settings(), RaySettings(cpus_per_replica=3)).solo_threads == 3


def test_max_ongoing_requests_is_the_replicas_admission_capacity() -> None:
    """The router's count and the scheduler's capacity are one number, read from each side."""
    for ray_settings in (RaySettings(), RaySettings(cpus_per_replica=2, queued_per_worker=5)):
        replica = plan(Settings(), ray_settings, cluster_cpus=8)
        capacity = TTSService(replica.settings).scheduler.stats()["capacity_requests"]
        assert replica.options["max_ongoing_requests"] == capacity
    assert plan(Settings(), RaySettings(queued_per_worker=3), 8).max_ongoing_requests == 4


def test_an_explicit_queue_size_wins() -> None:
    replica = plan(Settings(max_queued_requests=10), RaySettings(), cluster_cpus=2)
    assert replica.settings.max_queued_requests == 10
    assert replica.max_ongoing_requests == 11


def test_autoscaling_and_shutdown_options() -> None:
    ray_settings = RaySettings(cpus_per_replica=2, min_replicas=2, target_ongoing_per_worker=3)
    options = plan(Settings(drain_seconds=12), ray_settings, cluster_cpus=9).options
    assert options["ray_actor_options"] == {"num_cpus": 2}
    assert options["autoscaling_config"] == {
        "min_replicas": 2,
        "max_replicas": 4,  # 9 CPUs hold four 2-CPU replicas
        "initial_replicas": 2,
        "target_ongoing_requests": 6.0,  # 2 workers x 3
        "upscale_delay_s": 30.0,
        "downscale_delay_s": 600.0,
    }
    assert options["graceful_shutdown_timeout_s"] == 12
    assert options["backpressure_config"] == {"status_code": 503, "retry_after_s": 2.0}
    assert options["max_queued_requests"] == 64


def test_max_replicas_is_at_least_min_replicas() -> None:
    scaling = plan(Settings(), RaySettings(min_replicas=3), cluster_cpus=1).options
    assert scaling["autoscaling_config"]["max_replicas"] == 3


@pytest.mark.parametrize(
    ("settings", "ray_settings", "reason"),
    [
        (Settings(workers=3), RaySettings(cpus_per_replica=1), "workers follow its CPUs"),
        (Settings(wyoming_uri="tcp://127.0.0.1:10200"), RaySettings(), "Wyoming"),
        (Settings(), RaySettings(min_replicas=2, initial_replicas=1), "outside"),
    ],
)
def test_settings_that_cannot_run_on_serve_are_refused(
    settings: Settings, ray_settings: RaySettings, reason: str
) -> None:
    with pytest.raises(PlanError, match=reason):
        plan(settings, ray_settings, cluster_cpus=4)


def test_ray_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_RAY_MIN_REPLICAS", "2")
    monkeypatch.setenv("TTS_RAY_RETRY_AFTER", "7")
    args = build_parser().parse_args(["serve", "--ray", "--ray-min-replicas", "3"])
    ray_settings = ray_settings_from(args)
    assert args.ray and ray_settings.min_replicas == 3 and ray_settings.retry_after == 7


def _serve_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(SERVE_CONFIG.read_text(encoding="utf-8"))
    return config


def test_the_shipped_serve_config_is_valid_and_consistent() -> None:
    config = _serve_config()
    ServeDeploySchema.model_validate(config)  # Serve's own schema for `serve run/deploy`
    (app,) = config["applications"]
    assert app["import_path"] == "tts_service.rayserve.deployment:build"
    assert app["route_prefix"] == "/"
    # The replicas' Host check follows the proxy's bind address.
    assert app["args"]["service"]["host"] == config["http_options"]["host"]
    assert config["http_options"]["port"] == Settings().port


def test_the_builder_derives_the_deployment_from_the_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(deployment, "cluster_cpus", lambda: 8.0)
    args = _serve_config()["applications"][0]["args"]
    application = deployment.build(args)
    bound = application._bound_deployment  # what `serve run` would deploy
    expected = plan(Settings(**args["service"]), RaySettings(**args["ray"]), 8.0)
    assert bound.max_ongoing_requests == expected.max_ongoing_requests
    assert bound.ray_actor_options["num_cpus"] == args["ray"]["cpus_per_replica"]
    with pytest.raises(ValueError, match="unknown application args"):
        deployment.build({"services": {}})


def test_serve_ray_refuses_impossible_settings_before_starting_ray(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--ray", "--wyoming-uri", "tcp://127.0.0.1:10200"]) == 2
    assert "Wyoming is not served through Ray Serve" in capsys.readouterr().err
    assert main(["serve", "--ray", "--ray-min-replicas", "0"]) == 2
    assert "invalid Ray configuration" in capsys.readouterr().err


def test_cores_setting_sizes_the_default_workers_and_stays_unset_when_derived() -> None:
    assert Settings(cores=4, threads_per_worker=2).worker_count == 2
    assert Settings(cores=3).solo_threads == 3
    # A derived worker count is not a chosen one: the Ray plan may size it from the CPUs.
    assert "workers" not in Settings().model_fields_set
    assert "workers" in Settings(workers=2).model_fields_set
