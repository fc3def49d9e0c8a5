"""Settings: defaults, environment, YAML file, clusters, and errors an operator can act on."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.cli import main
from bot.config import ConfigError, Settings, load_settings

ENV_VARS = (
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_API_URL",
    "PROMETHEUS_URL",
    "ALERTMANAGER_URL",
    "DATABASE_URL",
    "VLLM_CHATOPS_ALERTS_TOKEN",
    "VLLM_CHATOPS_DEFAULT_CHANNEL",
    "VLLM_CHATOPS_CONFIG",
    "VLLM_CHATOPS_RUNBOOKS_DIR",
    "VLLM_CHATOPS_DIAGNOSIS_WINDOW",
    "VLLM_CHATOPS_QUERY_TIMEOUT",
    "VLLM_CHATOPS_SCALE_HEADROOM",
    "VLLM_CHATOPS_RECORDING_RULES",
    "VLLM_CHATOPS_LOG_FORMAT",
    "VLLM_CHATOPS_CLUSTERS",
    "VLLM_CHATOPS_THRESHOLDS",
    "VLLM_CHATOPS_ROUTES",
    "VLLM_CHATOPS_ACTION_TTL",
    "VLLM_CHATOPS_VERIFY_AFTER",
    "VLLM_CHATOPS_POLICY",
    "VLLM_CHATOPS_RESOLVED_ALERT_RETENTION_DAYS",
)
# Settings reads the environment case-insensitively; fields without a conventional name
# read VLLM_CHATOPS_<FIELD> (JSON): clear every spelling so the host cannot leak in.
FIELD_NAMES = tuple(Settings.model_fields)
FIELDS = (
    "action_request_ttl_s",
    "alertmanager_url",
    "alerts_token",
    "canary",
    "clusters",
    "database_url",
    "default_channel",
    "diagnosis_window",
    "labels",
    "log_format",
    "policy",
    "prometheus_url",
    "query_timeout_s",
    "recording_rules",
    "resolved_alert_retention_days",
    "routes",
    "runbooks_dir",
    "scale_headroom",
    "slack_api_url",
    "slack_app_token",
    "slack_bot_token",
    "slack_signing_secret",
    "thresholds",
    "verification_delay_s",
)
CLUSTER_FIELDS = (
    "name",
    "prometheus_url",
    "alertmanager_url",
    "kube_context",
    "in_cluster",
    "kube_api_url",
    "kube_token",
    "labels",
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    names = {n.lower() for n in (*ENV_VARS, *FIELD_NAMES)}
    names |= {f"vllm_chatops_{n}" for n in FIELD_NAMES}
    for key in list(os.environ):
        if key.lower() in names or key in ("FORCE_COLOR", "TTY_COMPATIBLE"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, text: str, name: str = "vllm-chatops.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def plain(settings: Settings, field: str) -> str | None:
    raw = getattr(settings, field)
    if raw is None:
        return None
    if isinstance(raw, SecretStr):
        return raw.get_secret_value()
    return str(raw)


def config_error(path: Path | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    return str(caught.value)


# --- sources ------------------------------------------------------------------------------


def test_field_list_is_what_these_tests_cover() -> None:
    assert tuple(sorted(FIELD_NAMES)) == FIELDS


def test_defaults() -> None:
    settings = load_settings()
    assert settings.slack_bot_token is None
    assert settings.slack_app_token is None
    assert settings.slack_signing_secret is None
    assert str(settings.slack_api_url) == "https://slack.com/api/"
    assert str(settings.prometheus_url) == "http://127.0.0.1:9090/"
    assert str(settings.alertmanager_url) == "http://127.0.0.1:9093/"
    assert settings.database_url == "sqlite:///vllm-chatops.db"
    assert settings.alerts_token is None
    assert settings.default_channel is None
    assert settings.clusters == []


@pytest.mark.parametrize(
    ("env", "field", "raw", "expected"),
    [
        ("SLACK_BOT_TOKEN", "slack_bot_token", "xoxb-1-2-abc", "xoxb-1-2-abc"),
        ("SLACK_APP_TOKEN", "slack_app_token", "xapp-1-A1-xyz", "xapp-1-A1-xyz"),
        ("SLACK_SIGNING_SECRET", "slack_signing_secret", "8f742231b10e", "8f742231b10e"),
        (
            "SLACK_API_URL",
            "slack_api_url",
            "http://127.0.0.1:8055/api/",
            "http://127.0.0.1:8055/api/",
        ),
        (
            "PROMETHEUS_URL",
            "prometheus_url",
            "http://prom.monitoring:9090",
            "http://prom.monitoring:9090/",
        ),
        (
            "ALERTMANAGER_URL",
            "alertmanager_url",
            "https://am.example.com",
            "https://am.example.com/",
        ),
        (
            "DATABASE_URL",
            "database_url",
            "postgresql+psycopg://bot@db/chatops",
            "postgresql+psycopg://bot@db/chatops",
        ),
        ("VLLM_CHATOPS_ALERTS_TOKEN", "alerts_token", "s3cret-alerts", "s3cret-alerts"),
        ("VLLM_CHATOPS_DEFAULT_CHANNEL", "default_channel", "C0123ABCD", "C0123ABCD"),
        (
            "VLLM_CHATOPS_RESOLVED_ALERT_RETENTION_DAYS",
            "resolved_alert_retention_days",
            "90",
            "90",
        ),
    ],
)
def test_each_environment_variable_is_read(
    monkeypatch: pytest.MonkeyPatch, env: str, field: str, raw: str, expected: str
) -> None:
    assert plain(load_settings(), field) != expected
    monkeypatch.setenv(env, raw)
    assert plain(load_settings(), field) == expected


def test_secrets_are_secret_strings() -> None:
    settings = load_settings()
    assert settings.slack_bot_token is None
    settings = Settings(slack_bot_token="xoxb-hidden")
    assert "xoxb-hidden" not in repr(settings)
    assert "xoxb-hidden" not in str(settings.slack_bot_token)


FILE = """\
slack_bot_token: xoxb-from-file
prometheus_url: http://prom.file:9090
database_url: sqlite:////var/lib/chatops/state.db
default_channel: "#vllm-oncall"
"""


@pytest.mark.parametrize("as_path", [True, False])
def test_yaml_file_given_by_argument(tmp_path: Path, as_path: bool) -> None:
    path = write(tmp_path, FILE)
    settings = load_settings(path if as_path else str(path))
    assert plain(settings, "slack_bot_token") == "xoxb-from-file"
    assert str(settings.prometheus_url) == "http://prom.file:9090/"
    assert settings.database_url == "sqlite:////var/lib/chatops/state.db"
    assert settings.default_channel == "#vllm-oncall"
    assert str(settings.alertmanager_url) == "http://127.0.0.1:9093/"  # default kept


def test_yaml_file_given_by_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_CHATOPS_CONFIG", str(write(tmp_path, FILE)))
    settings = load_settings()
    assert str(settings.prometheus_url) == "http://prom.file:9090/"
    assert settings.default_channel == "#vllm-oncall"


def test_argument_wins_over_the_config_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = write(tmp_path, "prometheus_url: http://prom.other:9090\n", "other.yaml")
    monkeypatch.setenv("VLLM_CHATOPS_CONFIG", str(other))
    settings = load_settings(write(tmp_path, FILE))
    assert str(settings.prometheus_url) == "http://prom.file:9090/"


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "# nothing set yet\n"))
    assert settings == load_settings()
    assert settings.database_url == "sqlite:///vllm-chatops.db"


@pytest.mark.parametrize(
    ("env", "raw", "field", "expected"),
    [
        ("PROMETHEUS_URL", "http://prom.env:9090", "prometheus_url", "http://prom.env:9090/"),
        ("SLACK_BOT_TOKEN", "xoxb-from-env", "slack_bot_token", "xoxb-from-env"),
        (
            "DATABASE_URL",
            "postgresql://bot@db/chatops",
            "database_url",
            "postgresql://bot@db/chatops",
        ),
        ("VLLM_CHATOPS_DEFAULT_CHANNEL", "C0ENV", "default_channel", "C0ENV"),
    ],
)
def test_environment_overrides_the_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: str,
    raw: str,
    field: str,
    expected: str,
) -> None:
    path = write(tmp_path, FILE)
    from_file = load_settings(path)
    assert plain(from_file, field) != expected
    monkeypatch.setenv(env, raw)
    settings = load_settings(path)
    assert plain(settings, field) == expected
    for other in ("prometheus_url", "slack_bot_token", "database_url", "default_channel"):
        if other != field:  # the rest still comes from the file
            assert plain(settings, other) == plain(from_file, other)


# --- clusters -----------------------------------------------------------------------------

CLUSTERS = """\
prometheus_url: http://prom.shared:9090
alertmanager_url: http://am.shared:9093
clusters:
  - name: gpu-east
    prometheus_url: http://prom.east:9090
    kube_context: east-admin
  - name: gpu-west
    alertmanager_url: http://am.west:9093
    in_cluster: true
  - name: lab.1
"""


def test_several_clusters(tmp_path: Path) -> None:
    clusters = load_settings(write(tmp_path, CLUSTERS)).clusters
    assert [c.name for c in clusters] == ["gpu-east", "gpu-west", "lab.1"]
    east, west, lab = clusters
    assert str(east.prometheus_url) == "http://prom.east:9090/"
    assert east.alertmanager_url is None
    assert (east.kube_context, east.in_cluster) == ("east-admin", False)
    assert (west.kube_context, west.in_cluster) == (None, True)
    assert str(west.alertmanager_url) == "http://am.west:9093/"
    assert (lab.prometheus_url, lab.kube_context, lab.in_cluster) == (None, None, False)


def test_effective_clusters_inherit_the_top_level_urls(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, CLUSTERS))
    east, west, lab = settings.effective_clusters()
    assert str(east.prometheus_url) == "http://prom.east:9090/"
    assert str(east.alertmanager_url) == "http://am.shared:9093/"
    assert str(west.prometheus_url) == "http://prom.shared:9090/"
    assert str(west.alertmanager_url) == "http://am.west:9093/"
    assert str(lab.prometheus_url) == "http://prom.shared:9090/"
    assert str(lab.alertmanager_url) == "http://am.shared:9093/"
    assert east.kube_context == "east-admin" and west.in_cluster is True
    assert settings.clusters[1].prometheus_url is None, "the settings themselves are untouched"


def test_no_clusters_means_one_implicit_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMETHEUS_URL", "http://prom.env:9090")
    [default] = load_settings().effective_clusters()
    assert default.name == "default"
    assert str(default.prometheus_url) == "http://prom.env:9090/"
    assert str(default.alertmanager_url) == "http://127.0.0.1:9093/"
    assert (default.kube_context, default.in_cluster) == (None, False)


# --- errors -------------------------------------------------------------------------------


def test_bad_url_in_the_file_names_the_key_and_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "prometheus_url: prom-without-scheme\n")
    message = config_error(path)
    assert str(path) in message
    assert "prometheus_url" in message
    assert "PROMETHEUS_URL" in message
    assert "prom-without-scheme" in message
    assert "Fix:" in message


def test_bad_url_in_the_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_API_URL", "slack dot com")
    message = config_error()
    assert "slack_api_url" in message
    assert "SLACK_API_URL" in message
    assert "slack dot com" in message


def test_unknown_key_is_rejected_with_the_known_keys_listed(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, "promethus_url: http://prom:9090\n"))
    assert "unknown setting 'promethus_url'" in message
    assert "fix its spelling" in message
    known = message.split("known:", 1)[1]
    for field in FIELDS:
        assert field in known


def test_unknown_cluster_key_lists_the_cluster_keys(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, "clusters:\n  - name: a\n    kubecontext: x\n"))
    assert "clusters.0.kubecontext" in message
    known = message.split("known:", 1)[1]
    for field in CLUSTER_FIELDS:
        assert field in known
    assert "slack_bot_token" not in known


def test_duplicate_cluster_names_are_rejected(tmp_path: Path) -> None:
    text = "clusters:\n  - name: gpu-east\n  - name: gpu-west\n  - name: gpu-east\n"
    message = config_error(write(tmp_path, text))
    assert "cluster names must be unique" in message
    assert "repeated: gpu-east" in message
    assert "gpu-west," not in message.split("repeated:", 1)[1]


def test_duplicate_cluster_error_names_clusters_and_hides_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-must-not-leak")
    text = "slack_signing_secret: also-secret\nclusters:\n  - name: a\n  - name: a\n"
    message = config_error(write(tmp_path, text))
    assert "xoxb-must-not-leak" not in message
    assert "also-secret" not in message
    assert "'clusters'" in message


def test_kube_context_and_in_cluster_are_exclusive(tmp_path: Path) -> None:
    text = (
        "clusters:\n  - name: ok\n  - name: both\n    kube_context: admin\n    in_cluster: true\n"
    )
    message = config_error(write(tmp_path, text))
    assert "clusters.1" in message
    assert "kube_context" in message and "in_cluster" in message
    assert "not several" in message
    assert "clusters.0" not in message


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("clusters:\n  - name: Gpu East\n", "clusters.0.name"),
        (
            "clusters:\n  - name: ok\n  - name: b\n    prometheus_url: prom:9090\n",
            "clusters.1.prometheus_url",
        ),
        ("clusters:\n  - name: a\n    in_cluster: maybe\n", "clusters.0.in_cluster"),
        ("clusters:\n  - prometheus_url: http://p:9090\n", "clusters.0.name"),
        ("clusters: gpu-east\n", "clusters"),
    ],
)
def test_bad_cluster_entries_name_the_path(tmp_path: Path, text: str, where: str) -> None:
    message = config_error(write(tmp_path, text))
    assert f"- {where}:" in message
    assert f"Fix: set key '{where}' in the config file" in message


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    message = config_error(missing)
    assert str(missing) in message
    assert "does not exist" in message
    assert "--config" in message and "VLLM_CHATOPS_CONFIG" in message


def test_missing_file_named_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_CHATOPS_CONFIG", str(tmp_path / "gone.yaml"))
    message = config_error()
    assert "gone.yaml" in message and "does not exist" in message


@pytest.mark.parametrize("text", ["- prometheus_url: http://p:9090\n", "just a string\n", "42\n"])
def test_yaml_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    message = config_error(path)
    assert str(path) in message
    assert "must hold a mapping" in message


def test_invalid_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "prometheus_url: [http://p:9090\nclusters: {\n")
    message = config_error(path)
    assert str(path) in message
    assert "is not valid YAML" in message
    assert "line" in message  # PyYAML says where


def test_non_string_keys_are_a_config_error(tmp_path: Path) -> None:
    config_error(write(tmp_path, "1: x\n"))


@pytest.mark.parametrize("url", ["mysql://bot@db/chatops", "sqlite.db", "postgres://db/x"])
def test_bad_database_url_scheme(tmp_path: Path, url: str) -> None:
    message = config_error(write(tmp_path, f"database_url: {url}\n"))
    assert "database_url" in message and "DATABASE_URL" in message
    assert repr(url) in message
    assert "sqlite|postgresql" in message  # the accepted schemes


def test_bad_database_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "redis://cache:6379/0")
    message = config_error()
    assert "environment variable DATABASE_URL" in message
    assert "redis://cache:6379/0" in message


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///relative.db",
        "sqlite:////abs/path.db",
        "postgresql://u:p@h:5432/d",
        "postgresql+psycopg://u@h/d",
        "sqlite+pysqlite:///x.db",
    ],
)
def test_good_database_urls(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    assert load_settings().database_url == url


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = "prometheus_url: nope\ndatabase_url: mysql://x\nslack_bot: x\n"
    message = config_error(write(tmp_path, text))
    assert len([line for line in message.splitlines() if line.startswith("- ")]) == 3


# --- `vllm-chatops config check` ---------------------------------------------------------


def run_check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["--config", str(path), "config", "check"])
    out, err = capsys.readouterr()
    return code, ANSI.sub("", out), ANSI.sub("", err)


def test_config_check_fails_with_exit_2_and_names_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_check(write(tmp_path, "alertmanager_url: am-without-scheme\n"), capsys)
    assert code == 2
    assert out == ""
    assert "configuration error" in err
    assert "alertmanager_url" in err and "ALERTMANAGER_URL" in err


def test_config_check_missing_file_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_check(tmp_path / "absent.yaml", capsys)
    assert code == 2
    assert "absent.yaml" in err and "does not exist" in err


def test_config_check_prints_settings_with_secrets_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "slack_bot_token": "xoxb-file-token-1234567890",
        "slack_signing_secret": "signing-secret-abcdef",
    }
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-env-token-0987654321")
    monkeypatch.setenv("VLLM_CHATOPS_ALERTS_TOKEN", "alerts-token-fedcba")
    text = "".join(f"{k}: {v}\n" for k, v in secrets.items()) + CLUSTERS
    code, out, err = run_check(write(tmp_path, text), capsys)
    assert code == 0, err
    for secret in (*secrets.values(), "xapp-env-token-0987654321", "alerts-token-fedcba"):
        assert secret not in out
    data = json.loads(out)
    for field in ("slack_bot_token", "slack_app_token", "slack_signing_secret", "alerts_token"):
        assert data[field] == "**********", field
    assert data["prometheus_url"] == "http://prom.shared:9090/"
    assert [c["name"] for c in data["clusters"]] == ["gpu-east", "gpu-west", "lab.1"]
    assert data["clusters"][1]["prometheus_url"] == "http://prom.shared:9090/"  # inherited


def test_config_check_shows_the_implicit_default_cluster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_check(write(tmp_path, "default_channel: C0TEST\n"), capsys)
    assert code == 0
    data = json.loads(out)
    assert data["default_channel"] == "C0TEST"
    assert data["slack_bot_token"] is None
    assert [c["name"] for c in data["clusters"]] == ["default"]


def test_config_check_prints_values_that_look_like_markup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_check(write(tmp_path, "slack_api_url: '[/x]'\n"), capsys)
    assert code == 2
    assert "[/x]" in err


# --- diagnosis settings ------------------------------------------------------------------


def test_diagnosis_settings_from_file_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        "diagnosis_window: 10m\nquery_timeout_s: 5\nthresholds:\n"
        "  kv_cache_usage: {warn: 0.8, crit: 0.9}\n  ttft_p99: {slo_s: 1.5}\n",
    )
    monkeypatch.setenv("VLLM_CHATOPS_RECORDING_RULES", "true")
    monkeypatch.setenv("VLLM_CHATOPS_SCALE_HEADROOM", "0.5")
    settings = load_settings(path)
    assert settings.diagnosis_window == "10m"
    assert settings.query_timeout_s == 5
    assert settings.recording_rules is True
    assert settings.scale_headroom == 0.5
    assert settings.thresholds == {
        "kv_cache_usage": {"warn": 0.8, "crit": 0.9},
        "ttft_p99": {"slo_s": 1.5},
    }


def test_clusters_from_the_environment_need_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLUSTERS", '[{"name": "ignored"}]')
    assert load_settings().clusters == []
    monkeypatch.setenv("VLLM_CHATOPS_CLUSTERS", '[{"name": "gpu-east"}]')
    assert [c.name for c in load_settings().clusters] == ["gpu-east"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("thresholds:\n  kv_cache: {warn: 1}\n", "unknown check 'kv_cache'; known:"),
        (
            "thresholds:\n  kv_cache_usage: {warning: 1}\n",
            "no parameter 'warning'; known: crit, warn",
        ),
        ("diagnosis_window: 5 minutes\n", "diagnosis_window"),
        ("query_timeout_s: 0\n", "query_timeout_s"),
    ],
)
def test_bad_diagnosis_settings_name_the_fix(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in config_error(write(tmp_path, text))


def test_alert_routes_first_match_then_default(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "default_channel: C-DEFAULT\nroutes:\n"
        "  - {match: {severity: critical, namespace: prod}, channel: C-PAGE}\n"
        "  - {match: {cluster: '~gpu-.*'}, channel: C-GPU}\n",
    )
    settings = load_settings(path)
    assert settings.channel_for({"severity": "critical", "namespace": "prod"}) == "C-PAGE"
    assert settings.channel_for({"severity": "warning", "cluster": "gpu-east"}) == "C-GPU"
    assert settings.channel_for({"cluster": "cpu-east"}) == "C-DEFAULT"


def test_bad_route_regex_is_a_config_error(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, "routes:\n  - {match: {pod: '~(['}, channel: C1}\n"))
    assert "routes.0.match" in message and "invalid regex" in message


def test_label_conventions_per_cluster_win_over_the_global_ones(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "labels: {cluster_label: k8s_cluster}\n"
        "clusters:\n"
        "  - {name: a, labels: {gpu_workload_labels: exported}}\n"
        "  - {name: b}\n"
    )
    settings = load_settings(path)
    assert settings.conventions("a").gpu_label("pod") == "exported_pod"
    assert settings.conventions("b").cluster_label == "k8s_cluster"
    assert settings.conventions(None).gpu_workload_labels == "auto"
    path.write_text("labels: {gpu_workload_labels: exporter}\n")
    with pytest.raises(ConfigError, match=r"labels\.gpu_workload_labels"):
        load_settings(path)
