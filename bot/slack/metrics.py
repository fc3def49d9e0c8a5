"""The bot's own Prometheus metrics, one set per running bot (served at ``GET /metrics``).

Each bot gets its own registry, so two bots can run in one process (tests do) without
their counters colliding.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class BotMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.alerts_received = Counter(
            "vllm_chatops_alerts_received",
            "Alertmanager notifications received",
            ["status", "outcome"],
            registry=self.registry,
        )
        self.slash_commands = Counter(
            "vllm_chatops_slash_commands",
            "/vllm commands by verb",
            ["verb"],
            registry=self.registry,
        )
        self.diagnosis_seconds = Histogram(
            "vllm_chatops_diagnosis_seconds",
            "Diagnosis duration",
            ["runbook"],
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40),
            registry=self.registry,
        )
        self.alert_to_post_seconds = Histogram(
            "vllm_chatops_alert_to_post_seconds",
            "Webhook received → first Slack post",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
            registry=self.registry,
        )
        self.slack_calls = Counter(
            "vllm_chatops_slack_calls",
            "Slack Web API calls by method and outcome",
            ["method", "outcome"],
            registry=self.registry,
        )
        self.scheduler_leader = Gauge(
            "vllm_chatops_scheduler_leader",
            "1 while this replica holds the scheduler lease and runs the scheduled work",
            registry=self.registry,
        )
        self.scheduler_overruns = Counter(
            "vllm_chatops_scheduler_overruns",
            "Scheduled runs skipped because the job's previous run was still going",
            ["job"],
            registry=self.registry,
        )
        self.outbox_pending = Gauge(
            "vllm_chatops_outbox_pending",
            "Slack writes recorded but not yet accepted by Slack (all replicas)",
            registry=self.registry,
        )
        self.outbox_oldest_seconds = Gauge(
            "vllm_chatops_outbox_oldest_seconds",
            "Age of the oldest Slack write still waiting",
            registry=self.registry,
        )
        self.actions = Counter(
            "vllm_chatops_actions",
            "Remediation requests by action kind and outcome (refused, approval_requested, "
            "approved, rejected, busy, started, succeeded, failed, recovered, not_recovered)",
            ["kind", "outcome"],
            registry=self.registry,
        )
