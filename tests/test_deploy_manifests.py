"""deploy/kubernetes: every overlay renders, validates against the Kubernetes schemas
(kubernetes-validate, strict), passes checkov with each skipped check explained in the
manifest, and says what the README says: Socket Mode by default, the checklist's probes,
a locked-down pod, one replica on SQLite or two on PostgreSQL, and a pod that would start.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped, unused-ignore]
import pytest
from deploy_helpers import (
    BASE,
    CUSTOM_GROUP,
    DEPLOY,
    MONITORING,
    OVERLAYS,
    REPO,
    SECRET_EXAMPLE,
    Doc,
    bot_container,
    checkov,
    documents,
    find,
    kinds,
    kustomize_build,
    load,
    render,
)

from bot.app import require_serving_settings
from bot.config import Settings, load_settings

K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
BOT_ENV_PREFIXES = ("SLACK_", "VLLM_CHATOPS_", "DATABASE_URL", "PROMETHEUS_URL", "ALERTMANAGER_URL")


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Doc]]:
    return {overlay: render(overlay) for overlay in OVERLAYS}


def _pod(docs: list[Doc]) -> Doc:
    spec: Doc = find(docs, "Deployment", "vllm-chatops")["spec"]["template"]["spec"]
    return spec


# --- rendering and schemas -------------------------------------------------------------


def test_overlays_render_the_same_bot_in_one_namespace(rendered: dict[str, list[Doc]]) -> None:
    common = [
        "ClusterRole",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "Namespace",
        "NetworkPolicy",
        "Service",
        "ServiceAccount",
    ]
    assert kinds(rendered["ha-postgresql"]) == sorted([*common, "PodDisruptionBudget"])
    assert kinds(rendered["single-sqlite"]) == sorted([*common, "PersistentVolumeClaim"])
    assert kinds(rendered["http-ingress"]) == sorted([*common, "Ingress", "PodDisruptionBudget"])
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    for docs in rendered.values():
        for doc in docs:
            if doc["kind"] not in cluster_scoped:
                assert doc["metadata"]["namespace"] == "vllm-chatops", doc["metadata"]
        # the RBAC that tests/test_deploy_rbac.py checks is what every overlay applies
        rbac = [d for d in docs if d["kind"].startswith("ClusterRole")]
        assert [_without_namespace_noise(d) for d in rbac] == [
            _without_namespace_noise(d) for d in load(BASE / "rbac.yaml")
        ]


def _without_namespace_noise(doc: Doc) -> Doc:
    return {k: v for k, v in doc.items() if k != "metadata"} | {"name": doc["metadata"]["name"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_the_kubernetes_schemas(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    for doc in rendered[overlay]:
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_the_secret_example_and_the_monitoring_objects_validate() -> None:
    for doc in load(SECRET_EXAMPLE):
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
    custom = documents(kustomize_build(MONITORING))
    assert kinds(custom) == ["PrometheusRule", "ServiceMonitor"]
    for doc in custom:
        # no stock schema for prometheus-operator's kinds: test_deploy_monitoring.py checks
        # their content (promtool, the Service they scrape)
        assert doc["apiVersion"] == f"{CUSTOM_GROUP}/v1"
        with pytest.raises(kubernetes_validate.SchemaNotFoundError):
            kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)


def test_strict_validation_catches_a_misspelt_field(rendered: dict[str, list[Doc]]) -> None:
    """The validator is not a no-op: a typo in the Deployment fails it."""
    broken = copy.deepcopy(find(rendered["ha-postgresql"], "Deployment"))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)


# --- checkov ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkov_report(
    rendered: dict[str, list[Doc]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """One checkov run over every rendered overlay, the monitoring objects and the Secret."""
    tool = checkov()
    folder = tmp_path_factory.mktemp("checkov")
    files = [folder / "secret.example.yaml", folder / "monitoring.yaml"]
    files[0].write_text(SECRET_EXAMPLE.read_text())
    files[1].write_text(kustomize_build(MONITORING))
    for overlay in OVERLAYS:
        path = folder / f"{overlay}.yaml"
        path.write_text(kustomize_build(DEPLOY / "overlays" / overlay))
        files.append(path)
    done = subprocess.run(
        [tool, "--framework", "kubernetes", "--output", "json", "--skip-download"]
        + [arg for path in files for arg in ("--file", str(path))],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=folder,
    )
    assert done.stdout.strip(), done.stderr
    report = json.loads(done.stdout)
    assert isinstance(report, dict), report  # one framework: one report
    yield report


def _skip_annotations(docs: list[Doc]) -> dict[str, str]:
    """checkov.io/skipN annotations: check id → reason."""
    found: dict[str, str] = {}
    for doc in docs:
        for key, value in (doc["metadata"].get("annotations") or {}).items():
            if key.startswith("checkov.io/skip"):
                check, _, reason = str(value).partition("=")
                found[check] = reason
    return found


def test_checkov_passes_and_every_skip_says_why(
    checkov_report: dict[str, Any], rendered: dict[str, list[Doc]]
) -> None:
    summary = checkov_report["summary"]
    failed = [
        f"{c['check_id']} {c['check_name']} on {c['resource']} ({Path(c['file_path']).name})"
        for c in checkov_report["results"].get("failed_checks", [])
    ]
    assert failed == [], failed
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 100, summary  # it did look at the manifests
    skipped = checkov_report["results"].get("skipped_checks", [])
    declared = _skip_annotations([d for docs in rendered.values() for d in docs])
    for check in skipped:
        reason = check["check_result"].get("suppress_comment") or ""
        assert len(reason.split()) >= 5, f"{check['check_id']}: give the reason in the manifest"
        assert declared.get(check["check_id"]) == reason
    assert {c["check_id"] for c in skipped} == set(declared)


# --- what the README promises ----------------------------------------------------------


def test_socket_mode_is_the_default_and_http_mode_exposes_only_slack_events(
    rendered: dict[str, list[Doc]],
) -> None:
    for overlay in ("ha-postgresql", "single-sqlite"):
        assert "Ingress" not in kinds(rendered[overlay])
    secret = find(load(SECRET_EXAMPLE), "Secret")["stringData"]
    assert "SLACK_APP_TOKEN" in secret and "SLACK_SIGNING_SECRET" not in secret
    service = find(rendered["ha-postgresql"], "Service")
    assert service["spec"]["type"] == "ClusterIP"
    ingress = find(rendered["http-ingress"], "Ingress")
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert [(p["path"], p["pathType"]) for p in paths] == [("/slack/events", "Exact")]
    backend = paths[0]["backend"]["service"]
    assert backend == {"name": service["metadata"]["name"], "port": {"name": "http"}}
    assert ingress["spec"]["tls"], "Slack only calls https URLs"


def test_probes_follow_the_checklist_on_what_the_bot_serves(
    rendered: dict[str, list[Doc]],
) -> None:
    container = bot_container(rendered["ha-postgresql"])
    assert container["args"] == ["serve", "--host", "0.0.0.0", "--port", "3000"]
    assert container["ports"] == [{"name": "http", "containerPort": 3000, "protocol": "TCP"}]
    probes = {
        name: (container[name]["httpGet"]["path"], container[name]["httpGet"]["port"])
        for name in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes == {
        "startupProbe": ("/healthz", "http"),
        "livenessProbe": ("/healthz", "http"),
        "readinessProbe": ("/readyz", "http"),
    }
    startup = container["startupProbe"]
    # the start-up budget covers Slack's auth.test with its retries (~45 s) and the schema
    assert startup["failureThreshold"] * startup["periodSeconds"] >= 90
    for name in probes:
        # the startup probe protects the others; no initialDelaySeconds guesswork
        assert "initialDelaySeconds" not in container[name]
        assert container[name]["timeoutSeconds"] >= 1


def test_the_pod_is_locked_down(rendered: dict[str, list[Doc]]) -> None:
    for docs in rendered.values():
        pod = _pod(docs)
        container = bot_container(docs)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["privileged"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["runAsUser"] >= 10000
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) == {"cpu", "memory"}
        # writable: /tmp only (and the SQLite volume in that overlay)
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert mounts["/etc/vllm-chatops"]["readOnly"] is True
        assert set(mounts) <= {"/etc/vllm-chatops", "/tmp", "/var/lib/vllm-chatops"}
    namespace = find(rendered["ha-postgresql"], "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_ha_is_two_replicas_kept_through_disruptions(rendered: dict[str, list[Doc]]) -> None:
    for overlay in ("ha-postgresql", "http-ingress"):
        docs = rendered[overlay]
        deployment = find(docs, "Deployment")
        assert deployment["spec"]["replicas"] == 2
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        pdb = find(docs, "PodDisruptionBudget")
        assert pdb["spec"]["minAvailable"] == 1
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert find(docs, "Service")["spec"]["selector"].items() <= labels.items()
        policy = find(docs, "NetworkPolicy")["spec"]
        assert policy["podSelector"]["matchLabels"].items() <= labels.items()
        assert policy["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]


def test_single_replica_keeps_sqlite_on_a_persistent_volume(
    rendered: dict[str, list[Doc]],
) -> None:
    docs = rendered["single-sqlite"]
    deployment = find(docs, "Deployment")
    # SQLite takes one writer: one pod, never two during a rollout
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert "PodDisruptionBudget" not in kinds(docs)  # minAvailable 1 of 1 blocks drains
    container = bot_container(docs)
    env = {e["name"]: e["value"] for e in container["env"]}
    database = Path(env["DATABASE_URL"].removeprefix("sqlite:///"))
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert database.parent == Path(mounts["state"])
    claim = find(docs, "PersistentVolumeClaim")
    volumes = {v["name"]: v for v in _pod(docs)["volumes"]}
    assert volumes["state"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pod_would_start_with_the_example_secret(
    rendered: dict[str, list[Doc]], overlay: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The environment the pod gets (Deployment env over the Secret) and the mounted config
    file load as settings that `serve` accepts."""
    docs = rendered[overlay]
    container = bot_container(docs)
    secret = find(load(SECRET_EXAMPLE), "Secret")
    assert container["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]
    env: dict[str, str] = dict(secret["stringData"])
    env.update({e["name"]: e["value"] for e in container["env"]})  # env wins over envFrom
    known = {a for f in Settings.model_fields.values() for a in _aliases(f) if a.isupper()}
    assert set(secret["stringData"]) <= known, "a Secret key the bot does not read"
    # the config file: the ConfigMap's key, mounted where VLLM_CHATOPS_CONFIG points
    config_map = find(docs, "ConfigMap")
    volumes = {v["name"]: v for v in _pod(docs)["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
    mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "config")
    config_path = Path(env.pop("VLLM_CHATOPS_CONFIG"))
    assert config_path.parent == Path(mount)
    local = tmp_path / config_path.name
    local.write_text(config_map["data"][config_path.name])
    assert local.read_text() == (BASE / "config.yaml").read_text()
    for name in list(os.environ):
        if name.startswith(BOT_ENV_PREFIXES):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(local)
    require_serving_settings(settings)
    assert settings.slack_app_token is not None, "Socket Mode"
    assert [c.in_cluster for c in settings.effective_clusters()] == [True]
    scheme = "sqlite" if overlay == "single-sqlite" else "postgresql"
    assert settings.database_url.startswith(scheme)


def _aliases(field: Any) -> list[str]:
    alias = field.validation_alias
    return [a for a in getattr(alias, "choices", []) if isinstance(a, str)]


def _readme_site_overlay() -> str:
    """The `site/kustomization.yaml` the README's Deploy section tells people to write."""
    text = (REPO / "README.md").read_text()
    after = text.split("\n`site/kustomization.yaml` (", 1)[1]
    return after.split("```yaml\n", 1)[1].split("```", 1)[0]


def test_the_readme_site_overlay_sets_the_image_and_the_settings(tmp_path: Path) -> None:
    shutil.copytree(REPO / "deploy", tmp_path / "deploy")
    site = tmp_path / "site"
    site.mkdir()
    (site / "kustomization.yaml").write_text(_readme_site_overlay())
    config = (BASE / "config.yaml").read_text().replace("#inference-oncall", "#gpu-incidents")
    (site / "config.yaml").write_text(config)
    docs = documents(kustomize_build(site))
    assert bot_container(docs)["image"] == "registry.example.com/vllm-chatops:0.1.0"
    (config_map,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert config_map["data"]["config.yaml"] == config
    volumes = {v["name"]: v for v in _pod(docs)["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
