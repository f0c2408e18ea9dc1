"""The Kubernetes manifests agree with each other and with the service: probes hit routes the
app serves on the port it listens on, the grace period outlasts the drain, CPU requests match
the workers, the autoscalers' targets make sense for those workers, and the RayService runs
the Serve application this package builds. A change on one side only fails here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from tts_service.api import create_app
from tts_service.config import RaySettings, Settings
from tts_service.metrics import Metrics
from tts_service.rayserve.plan import plan
from tts_service.rayserve.proxy import PROXY_CALLBACK
from tts_service.service import TTSService

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
LABEL = "app.kubernetes.io/name"


def documents() -> dict[tuple[str, str], dict[str, Any]]:
    """Every manifest by (kind, file stem); every file must parse."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(KUBE.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            assert isinstance(doc, dict) and {"apiVersion", "kind", "metadata"} <= doc.keys()
            found[(doc["kind"], path.stem)] = doc
    return found


@pytest.fixture(scope="module")
def docs() -> dict[tuple[str, str], dict[str, Any]]:
    return documents()


@pytest.fixture(scope="module")
def container(docs: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    (only,) = docs[("Deployment", "deployment")]["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: str(item["value"]) for item in container.get("env", [])}


def pod_settings(container: dict[str, Any]) -> Settings:
    """The service's settings as the pod's environment makes them."""
    names = {f"TTS_{name.upper()}": name for name in Settings.model_fields}
    values = {names[key]: value for key, value in env_of(container).items() if key in names}
    return Settings(**values)


def cpus(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def test_every_manifest_parses_and_names_a_known_kind(docs: dict[Any, Any]) -> None:
    kinds = {kind for kind, _ in docs}
    assert {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"} <= kinds
    assert {"ConfigMap", "RayService"} <= kinds


def test_probes_hit_the_apps_routes_on_its_port(container: dict[str, Any]) -> None:
    settings = pod_settings(container)
    (port,) = container["ports"]
    assert port["containerPort"] == settings.port == Settings().port
    assert settings.host == "0.0.0.0"  # reachable from the kubelet and the Service
    routes = create_app(Settings(ui=False)).openapi()["paths"]
    probes = {name: container[name]["httpGet"] for name in ("livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/ping"
    assert probes["readinessProbe"]["path"] == "/health"  # 503 while starting or draining
    for probe in (*probes.values(), container["startupProbe"]["httpGet"]):
        assert probe["path"] in routes and probe["port"] == port["name"]


def test_grace_period_outlasts_prestop_and_drain(
    docs: dict[Any, Any], container: dict[str, Any]
) -> None:
    spec = docs[("Deployment", "deployment")]["spec"]["template"]["spec"]
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = pod_settings(container).drain_seconds
    assert drain == Settings().drain_seconds
    assert spec["terminationGracePeriodSeconds"] >= float(pre_stop[1]) + drain + 5


def test_cpu_requests_equal_the_workers(container: dict[str, Any]) -> None:
    settings = pod_settings(container)
    resources = container["resources"]
    threads = settings.worker_count * settings.threads_per_worker
    assert cpus(resources["requests"]["cpu"]) == threads
    # The cgroup limit is what the default worker count reads: the same number.
    assert cpus(resources["limits"]["cpu"]) == threads
    assert Settings(cores=int(cpus(resources["limits"]["cpu"]))).worker_count == threads


def test_selectors_match_the_pods(docs: dict[Any, Any]) -> None:
    deployment = docs[("Deployment", "deployment")]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    assert docs[("Service", "service")]["spec"]["selector"] == labels
    assert docs[("PodDisruptionBudget", "pdb")]["spec"]["selector"]["matchLabels"] == labels
    (port,) = docs[("Service", "service")]["spec"]["ports"]
    assert port["targetPort"] == "http" and port["port"] == Settings().port


def test_autoscalers_target_the_deployment_sensibly(
    docs: dict[Any, Any], container: dict[str, Any]
) -> None:
    minimum = docs[("PodDisruptionBudget", "pdb")]["spec"]["minAvailable"]
    for stem in ("hpa", "hpa-prometheus"):
        spec = docs[("HorizontalPodAutoscaler", stem)]["spec"]
        assert spec["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": docs[("Deployment", "deployment")]["metadata"]["name"],
        }
        # Room for a voluntary disruption at the smallest size.
        assert spec["minReplicas"] > minimum and spec["maxReplicas"] > spec["minReplicas"]
    (cpu,) = docs[("HorizontalPodAutoscaler", "hpa")]["spec"]["metrics"]
    assert 0 < cpu["resource"]["target"]["averageUtilization"] < 100  # 100 = all workers busy


def test_the_prometheus_variant_uses_a_metric_the_service_exports(
    docs: dict[Any, Any], container: dict[str, Any]
) -> None:
    (metric,) = docs[("HorizontalPodAutoscaler", "hpa-prometheus")]["spec"]["metrics"]
    name = metric["pods"]["metric"]["name"]
    assert name == "tts_queued_requests"
    metrics = Metrics()
    metrics.watch(TTSService(Settings()))
    assert re.search(rf"^{name} ", metrics.render().decode(), re.MULTILINE)
    # A pod whose queue holds more requests than it has workers is behind.
    target = float(metric["pods"]["target"]["averageValue"])
    assert target == pod_settings(container).worker_count
    rules = yaml.safe_load(docs[("ConfigMap", "prometheus-adapter-rules")]["data"]["config.yaml"])
    (rule,) = rules["rules"]
    assert rule["seriesQuery"].startswith(name + "{") and rule["name"]["as"] == name


def test_the_rayservice_runs_this_packages_serve_application(docs: dict[Any, Any]) -> None:
    spec = docs[("RayService", "rayservice")]["spec"]
    config = yaml.safe_load(spec["serveConfigV2"])
    ServeDeploySchema.model_validate(config)
    (app,) = config["applications"]
    assert app["import_path"] == "tts_service.rayserve.deployment:build"
    assert app["args"]["service"]["host"] == config["http_options"]["host"] == "0.0.0.0"
    settings, ray_settings = Settings(**app["args"]["service"]), RaySettings(**app["args"]["ray"])
    cluster = spec["rayClusterConfig"]
    (workers,) = cluster["workerGroupSpecs"]
    pod_cpus = float(workers["rayStartParams"]["num-cpus"])
    (worker,) = workers["template"]["spec"]["containers"]
    assert cpus(worker["resources"]["requests"]["cpu"]) == pod_cpus
    assert pod_cpus % ray_settings.cpus_per_replica == 0  # replicas fill a pod exactly
    # Enough worker pods for the most replicas Serve may ask for.
    per_pod = pod_cpus // ray_settings.cpus_per_replica
    assert ray_settings.max_replicas is not None
    assert workers["maxReplicas"] * per_pod >= ray_settings.max_replicas
    drain = plan(settings, ray_settings, pod_cpus).options["graceful_shutdown_timeout_s"]
    assert workers["template"]["spec"]["terminationGracePeriodSeconds"] > drain
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
    for pod in (head, worker):
        env = env_of(pod)
        assert env["RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"] == PROXY_CALLBACK
        assert {"name": "serve", "containerPort": config["http_options"]["port"]} in pod["ports"]
    version = cluster["rayVersion"]
    assert f"rayproject/ray:{version}-" in (ROOT / "deploy" / "ray" / "Dockerfile").read_text()
    pin = re.search(r'"ray\[serve\]>=([\d.]+)', (ROOT / "pyproject.toml").read_text())
    assert pin is not None and version.startswith(pin.group(1))
