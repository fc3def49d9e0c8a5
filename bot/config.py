"""Settings: environment variables plus an optional YAML file.

Precedence, highest first: environment variables, the YAML file (``--config PATH`` or
``VLLM_CHATOPS_CONFIG``), built-in defaults. Unknown keys in the file are rejected so a
typo fails at start instead of being silently ignored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.access import Policy
from bot.models import LabelMatchers, labels_match

CONFIG_ENV_VAR = "VLLM_CHATOPS_CONFIG"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_DATABASE_URL = "sqlite:///vllm-chatops.db"


def _env(*names: str) -> AliasChoices:
    """Accept the YAML key (the field name) and the listed environment variable names."""
    return AliasChoices(*names)


LABEL_NAME_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"


class LabelConventions(BaseModel):
    """How the monitoring stack labels the series the checks read (per cluster or global).

    ``gpu_workload_labels``: which labels of DCGM series name the workload using a GPU —
    ``plain`` (``pod``/``namespace``/``container``: dcgm-exporter scraped with
    ``honor_labels: true``), ``exported`` (``exported_pod``/…: the kube-prometheus-stack
    ServiceMonitor default ``honorLabels: false``, where ``pod``/``namespace`` name the
    exporter's own pod) or ``auto`` (detected from the data at each diagnosis).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    cluster_label: str = Field(
        default="cluster",
        pattern=LABEL_NAME_PATTERN,
        description="The label that names the cluster (federated or multi-cluster stores).",
    )
    gpu_workload_labels: Literal["auto", "plain", "exported"] = "auto"
    node_label: str | None = Field(
        default=None,
        pattern=LABEL_NAME_PATTERN,
        description="DCGM's node label; default: `Hostname` or `hostname`, whichever is set.",
    )
    # What a diagnosis found in the data (not configuration): whether series carry the
    # cluster label at all, and whether the GPU form was detected rather than configured.
    cluster_in_data: bool | None = Field(default=None, exclude=True)
    detected: bool = Field(default=False, exclude=True)

    def gpu_label(self, name: str) -> str:
        """The label holding the workload's ``name`` (pod, namespace, container) on GPUs."""
        return f"exported_{name}" if self.gpu_workload_labels == "exported" else name

    def describe(self) -> str:
        pod, namespace = self.gpu_label("pod"), self.gpu_label("namespace")
        how = "detected" if self.detected else "configured"
        if self.gpu_workload_labels == "auto":
            how = "not detected: no DCGM series"
        node = self.node_label or "Hostname|hostname"
        cluster = self.cluster_label
        if self.cluster_in_data is False:
            cluster += " (absent from the data)"
        return (
            f"GPU workload labels {namespace}/{pod} ({how}); node label {node}; "
            f"cluster label {cluster}"
        )


class ClusterConfig(BaseModel):
    """One Kubernetes cluster the bot serves, with the Prometheus that watches it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$")
    prometheus_url: HttpUrl | None = Field(
        default=None, description="Defaults to the top-level prometheus_url."
    )
    alertmanager_url: HttpUrl | None = Field(
        default=None, description="Defaults to the top-level alertmanager_url."
    )
    kube_context: str | None = Field(
        default=None, description="kubeconfig context; None with in_cluster=false = current."
    )
    in_cluster: bool = Field(
        default=False, description="Use the pod's service account instead of a kubeconfig."
    )
    kube_api_url: HttpUrl | None = Field(
        default=None, description="An API server URL with kube_token (instead of kubeconfig)."
    )
    kube_token: SecretStr | None = None
    labels: LabelConventions | None = Field(
        default=None, description="Label conventions of this cluster's series; default: global."
    )

    @model_validator(mode="after")
    def _one_way_to_reach_kubernetes(self) -> Self:
        ways = [bool(self.kube_context), self.in_cluster, self.kube_api_url is not None]
        if sum(ways) > 1:
            raise ValueError(
                "set one of kube_context, in_cluster: true or kube_api_url (+ kube_token), "
                "not several (in_cluster uses the pod's service account)"
            )
        return self


class Route(BaseModel):
    """Alerts whose labels match go to ``channel`` (first matching route wins)."""

    model_config = ConfigDict(extra="forbid")

    match: LabelMatchers = Field(
        default_factory=dict, description="label → exact value, or ~regex for the whole value"
    )
    channel: str = Field(min_length=1)


GateMetric = Literal[
    "error_rate", "ttft_p99", "tpot_p99", "throughput", "kv_usage", "gpu_memory_leak"
]
DURATION_PATTERN = r"^\d+(s|m|h)$"


class CanaryGate(BaseModel):
    """One canary gate: the newest revision's number against a ceiling, or against the
    previous revision's number over the same window."""

    model_config = ConfigDict(extra="forbid")

    metric: GateMetric
    max: float | None = Field(default=None, description="the new revision's ceiling")
    max_ratio: float | None = Field(default=None, gt=0, description="new <= ratio x previous")
    min_ratio: float | None = Field(default=None, gt=0, description="new >= ratio x previous")
    max_increase: float | None = Field(default=None, description="new - previous <= this")

    @model_validator(mode="after")
    def _has_a_bound(self) -> Self:
        if (self.max, self.max_ratio, self.min_ratio, self.max_increase) == (None,) * 4:
            raise ValueError(f"gate {self.metric}: set max, max_ratio, min_ratio or max_increase")
        return self


class CanaryPhase(BaseModel):
    """A step of the rollout: the new revision's share of traffic, how long its gates
    must hold, and which gates (by metric)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    traffic_percent: int = Field(ge=1, le=100)
    duration: str = Field(pattern=DURATION_PATTERN)
    gates: list[GateMetric] = Field(min_length=1)


class CanaryRollback(BaseModel):
    """When to go back at once (the checklist: errors above 1 % or latency above 2x SLO,
    acted on within a minute), read over ``window``."""

    model_config = ConfigDict(extra="forbid")

    error_rate: float = Field(default=0.01, gt=0, le=1)
    slo_factor: float = Field(default=2.0, gt=0)
    ttft_slo_s: float = Field(default=2.0, gt=0)
    tpot_slo_s: float = Field(default=0.1, gt=0)
    window: str = Field(default="1m", pattern=DURATION_PATTERN)


_BASE_GATES: tuple[GateMetric, ...] = ("error_rate", "ttft_p99", "tpot_p99", "gpu_memory_leak")


def _default_gates() -> list[CanaryGate]:
    return [
        CanaryGate(metric="error_rate", max=0.001),
        CanaryGate(metric="ttft_p99", max_ratio=1.1),
        CanaryGate(metric="tpot_p99", max_ratio=1.1),
        CanaryGate(metric="throughput", min_ratio=0.9),
        CanaryGate(metric="kv_usage", max_increase=0.1),
        CanaryGate(metric="gpu_memory_leak", max_increase=256.0),  # MiB per hour
    ]


def _default_phases() -> list[CanaryPhase]:
    every: list[GateMetric] = [*_BASE_GATES, "throughput", "kv_usage"]
    return [
        CanaryPhase(name="canary", traffic_percent=5, duration="1h", gates=list(_BASE_GATES)),
        CanaryPhase(
            name="progressive-25", traffic_percent=25, duration="30m", gates=list(_BASE_GATES)
        ),
        CanaryPhase(name="progressive-50", traffic_percent=50, duration="30m", gates=every),
        CanaryPhase(name="full", traffic_percent=100, duration="30m", gates=every),
    ]


class CanarySettings(BaseModel):
    """Canary gates and phases; the defaults are the production checklist's."""

    model_config = ConfigDict(extra="forbid")

    window: str = Field(
        default="10m",
        pattern=DURATION_PATTERN,
        description="window both revisions are read over (a gate waits until it is filled)",
    )
    gates: list[CanaryGate] = Field(default_factory=_default_gates)
    phases: list[CanaryPhase] = Field(default_factory=_default_phases, min_length=1)
    rollback: CanaryRollback = Field(default_factory=CanaryRollback)
    evaluate_every_s: int = Field(
        default=30, ge=5, le=60, description="how often a watched canary's gates are read"
    )
    auto_rollback_namespaces: list[str] = Field(
        default_factory=list,
        description="namespaces (fnmatch patterns) where a watched canary whose rollback "
        "trigger trips is rolled back by the bot at once, audited as the bot; elsewhere the "
        "rollback is proposed to a person",
    )
    min_requests: int = Field(
        default=200,
        ge=0,
        description="requests each revision must have served in the window before its p99 "
        "is judged (a p99 of fewer is little more than the slowest request)",
    )

    @model_validator(mode="after")
    def _phases_name_configured_gates(self) -> Self:
        metrics = [g.metric for g in self.gates]
        repeated = sorted({m for m in metrics if metrics.count(m) > 1})
        if repeated:
            raise ValueError(f"canary gates: one gate a metric; repeated: {', '.join(repeated)}")
        for phase in self.phases:
            missing = sorted(set(phase.gates) - set(metrics))
            if missing:
                raise ValueError(
                    f"canary phase {phase.name}: no gate configured for {', '.join(missing)}"
                )
        return self

    def gate(self, metric: str) -> CanaryGate | None:
        return next((g for g in self.gates if g.metric == metric), None)


class Settings(BaseSettings):
    """Everything the bot reads at start. See README.md, 'Configuration reference'."""

    model_config = SettingsConfigDict(
        extra="forbid",
        populate_by_name=True,
        case_sensitive=False,
        # fields without a conventional name read VLLM_CHATOPS_<FIELD> (JSON for lists)
        env_prefix="VLLM_CHATOPS_",
    )

    slack_bot_token: SecretStr | None = Field(
        default=None, validation_alias=_env("slack_bot_token", "SLACK_BOT_TOKEN")
    )
    slack_app_token: SecretStr | None = Field(
        default=None, validation_alias=_env("slack_app_token", "SLACK_APP_TOKEN")
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None, validation_alias=_env("slack_signing_secret", "SLACK_SIGNING_SECRET")
    )
    slack_api_url: HttpUrl = Field(
        default=HttpUrl(DEFAULT_SLACK_API_URL),
        validation_alias=_env("slack_api_url", "SLACK_API_URL"),
    )
    prometheus_url: HttpUrl = Field(
        default=HttpUrl("http://127.0.0.1:9090"),
        validation_alias=_env("prometheus_url", "PROMETHEUS_URL"),
    )
    alertmanager_url: HttpUrl = Field(
        default=HttpUrl("http://127.0.0.1:9093"),
        validation_alias=_env("alertmanager_url", "ALERTMANAGER_URL"),
    )
    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        validation_alias=_env("database_url", "DATABASE_URL"),
        pattern=r"^(sqlite|postgresql)(\+\w+)?://",
    )
    alerts_token: SecretStr | None = Field(
        default=None, validation_alias=_env("alerts_token", "VLLM_CHATOPS_ALERTS_TOKEN")
    )
    default_channel: str | None = Field(
        default=None, validation_alias=_env("default_channel", "VLLM_CHATOPS_DEFAULT_CHANNEL")
    )
    clusters: list[ClusterConfig] = Field(default_factory=list)
    routes: list[Route] = Field(
        default_factory=list, description="alert routing to channels; else default_channel"
    )
    policy: Policy = Field(
        default_factory=Policy,
        description="who may run which actions where; approvals (two-person rule)",
    )
    verification_delay_s: int = Field(
        default=300,
        ge=0,
        le=86400,
        validation_alias=_env("verification_delay_s", "VLLM_CHATOPS_VERIFY_AFTER"),
        description="After an action, re-run the runbook's diagnosis this much later.",
    )
    action_request_ttl_s: int = Field(
        default=900,
        ge=60,
        le=86400,
        validation_alias=_env("action_request_ttl_s", "VLLM_CHATOPS_ACTION_TTL"),
        description="How long a recommended-action button stays valid.",
    )
    resolved_alert_retention_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        validation_alias=_env(
            "resolved_alert_retention_days", "VLLM_CHATOPS_RESOLVED_ALERT_RETENTION_DAYS"
        ),
        description="How long the database keeps an incident's post after its last alert "
        "resolved (the Slack message itself stays).",
    )
    runbooks_dir: Path | None = Field(
        default=None,
        validation_alias=_env("runbooks_dir", "VLLM_CHATOPS_RUNBOOKS_DIR"),
        description="Directory of runbook YAML files; default: the shipped runbooks.",
    )
    diagnosis_window: str = Field(
        default="5m",
        pattern=r"^\d+(s|m|h)$",
        validation_alias=_env("diagnosis_window", "VLLM_CHATOPS_DIAGNOSIS_WINDOW"),
        description="Range for rates and quantiles in diagnoses (PromQL duration).",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        validation_alias=_env("log_format", "VLLM_CHATOPS_LOG_FORMAT"),
        description="`serve` logs as text lines, or one JSON object a line for a log pipeline.",
    )
    recording_rules: bool | Literal["auto"] = Field(
        default="auto",
        validation_alias=_env("recording_rules", "VLLM_CHATOPS_RECORDING_RULES"),
        description="Read the recording rules of `rules export`: `auto` when Prometheus "
        "holds them for the diagnosis window (one cheap query a diagnosis), `true` always, "
        "`false` never.",
    )
    query_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=120,
        validation_alias=_env("query_timeout_s", "VLLM_CHATOPS_QUERY_TIMEOUT"),
        description="Deadline for one Prometheus query; a check times out at twice this.",
    )
    scale_headroom: float = Field(
        default=0.3,
        ge=0,
        le=3,
        validation_alias=_env("scale_headroom", "VLLM_CHATOPS_SCALE_HEADROOM"),
        description="Spare capacity a recommended scale-out adds over measured demand.",
    )
    thresholds: dict[str, dict[str, float | int | str]] = Field(
        default_factory=dict,
        description="Per check id, parameter overrides (warn, crit, slo_s, …) for every runbook.",
    )
    labels: LabelConventions = Field(
        default_factory=LabelConventions,
        description="Label conventions of the series (cluster label, GPU workload labels).",
    )
    canary: CanarySettings = Field(
        default_factory=CanarySettings,
        description="Canary gates, phases and rollback triggers (the checklist's by default).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init kwargs; the environment overrides it.
        return env_settings, init_settings

    @field_validator("clusters")
    @classmethod
    def _cluster_names_unique(cls, clusters: list[ClusterConfig]) -> list[ClusterConfig]:
        names = [c.name for c in clusters]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"cluster names must be unique; repeated: {', '.join(duplicates)}")
        return clusters

    @field_validator("thresholds")
    @classmethod
    def _known_checks_and_params(
        cls, thresholds: dict[str, dict[str, float | int | str]]
    ) -> dict[str, dict[str, float | int | str]]:
        from bot.diagnosis.checks import REGISTRY  # the check library, not needed to parse the rest

        for check_id, params in thresholds.items():
            check = REGISTRY.get(check_id)
            if check is None:
                raise ValueError(
                    f"unknown check {check_id!r}; known: {', '.join(sorted(REGISTRY))}"
                )
            unknown = sorted(set(params) - set(check.defaults))
            if unknown:
                known = ", ".join(sorted(check.defaults)) or "none"
                raise ValueError(
                    f"check {check_id} has no parameter {unknown[0]!r}; known: {known}"
                )
        return thresholds

    def channel_for(self, labels: Mapping[str, str]) -> str | None:
        """The first matching route's channel, else the default channel."""
        for route in self.routes:
            if labels_match(route.match, labels):
                return route.channel
        return self.default_channel

    def cluster(self, name: str | None) -> ClusterConfig:
        """The named cluster (or the first one); ConfigError naming the known ones."""
        clusters = self.effective_clusters()
        if name is None:
            return clusters[0]
        for cluster in clusters:
            if cluster.name == name:
                return cluster
        raise ConfigError(
            f"unknown cluster {name!r}; configured: {', '.join(c.name for c in clusters)}"
        )

    def is_configured(self, name: str | None) -> bool:
        """Whether ``name`` is a configured cluster (None, the default, always is)."""
        return name is None or any(c.name == name for c in self.effective_clusters())

    def prometheus_url_for(self, cluster: str | None) -> str:
        """The Prometheus to ask about ``cluster``: its own when configured, else the
        default one (a federated store tells clusters apart by their label)."""
        if self.is_configured(cluster):
            return str(self.cluster(cluster).prometheus_url)
        return str(self.prometheus_url)

    def conventions(self, cluster: str | None) -> LabelConventions:
        """The label conventions for ``cluster``: its own, else the global ones."""
        for config in self.clusters:
            if config.name == cluster and config.labels is not None:
                return config.labels
        return self.labels

    def effective_clusters(self) -> list[ClusterConfig]:
        """Clusters with inherited URLs filled in; one implicit 'default' when none are set."""
        clusters = self.clusters or [ClusterConfig(name="default")]
        return [
            c.model_copy(
                update={
                    "prometheus_url": c.prometheus_url or self.prometheus_url,
                    "alertmanager_url": c.alertmanager_url or self.alertmanager_url,
                }
            )
            for c in clusters
        ]


class ConfigError(Exception):
    """A configuration problem, phrased for the operator who has to fix it."""


_ENV_NAMES = {
    name: [a for a in field.validation_alias.choices if isinstance(a, str) and a.isupper()]
    for name, field in Settings.model_fields.items()
    if isinstance(field.validation_alias, AliasChoices)
}
_SECRET_FIELDS = {
    name for name, field in Settings.model_fields.items() if field.annotation == SecretStr | None
}


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel]:
    """The model that owns the last key of ``loc`` (Settings, or a nested ClusterConfig)."""
    return ClusterConfig if len(loc) > 1 and loc[0] == "clusters" else Settings


def _describe(error: Any) -> str:
    loc = tuple(error["loc"])
    path = ".".join(str(p) for p in loc) or "(top level)"
    top = str(loc[0]) if loc else ""
    if error["type"] == "extra_forbidden":
        known = ", ".join(sorted(_model_at(loc).model_fields))
        return f"- unknown setting '{path}': remove it or fix its spelling (known: {known})"
    where = f"key '{path}' in the config file"
    env = _ENV_NAMES.get(top)
    if env:
        where += f" or environment variable {env[0]}"
    value = error.get("input")
    # Never echo secrets or whole sub-trees (they may hold secrets) back to the terminal.
    shown = "" if top in _SECRET_FIELDS or isinstance(value, dict | list) else f" (input {value!r})"
    return f"- {path}: {error['msg']}{shown}. Fix: set {where}."


def load_settings(config_file: str | Path | None = None) -> Settings:
    """Build Settings from the environment and an optional YAML file, or raise ConfigError."""
    path = config_file or os.environ.get(CONFIG_ENV_VAR) or None
    data: dict[str, Any] = {}
    if path:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(
                f"config file {file} does not exist; fix --config or {CONFIG_ENV_VAR}"
            )
        try:
            loaded = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {file} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {file} must hold a mapping of settings at top level")
        bad_keys = [k for k in loaded if not isinstance(k, str)]
        if bad_keys:
            raise ConfigError(
                f"config file {file}: setting names must be strings, got {bad_keys[0]!r}"
            )
        data = loaded
    try:
        return Settings(**data)
    except ValidationError as exc:
        source = f" (file {path})" if path else ""
        lines = [_describe(e) for e in exc.errors()]
        raise ConfigError(f"invalid configuration{source}:\n" + "\n".join(lines)) from exc
