"""The bot's own alerting rules: it is down, its webhook fails, Slack refuses its calls.

They ship in the PrometheusRule (``rules export --format prometheusrule``) beside the
runbooks' rules, over the metrics of :mod:`bot.slack.metrics`. None carries a ``runbook``
label, on purpose: the Alertmanager route that feeds the bot matches ``runbook``, and a bot
that is down cannot post about itself, so these go to the usual on-call receiver.
"""

from __future__ import annotations

from typing import Any

GROUP = "vllm-chatops-bot"
# The ServiceMonitor's targets get the Service's name as their job label.
JOB = "vllm-chatops"
# `outcome` values of vllm_chatops_alerts_received_total (bot/app.py): alerts lost or
# refused, as opposed to "posted" and "duplicate_or_resolved".
UNRECORDED = ("store_error", "no_channel")
REFUSED = ("unauthorized", "invalid")


def _rule(
    name: str, expr: str, for_: str, severity: str, summary: str, description: str
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity, "component": "vllm-chatops"},
        "annotations": {"summary": summary, "description": description},
    }


def own_alert_group(job: str = JOB) -> dict[str, Any]:
    """The rule group for the bot itself, its targets selected by ``job``."""
    up = f'up{{job="{job}"}}'
    received = "vllm_chatops_alerts_received_total"
    calls = "vllm_chatops_slack_calls_total"
    return {
        "name": GROUP,
        "rules": [
            _rule(
                "VLLMChatOpsDown",
                f"sum({up}) == 0 or absent({up})",
                "5m",
                "critical",
                "No vllm-chatops replica is up",
                "Prometheus has scraped no live vllm-chatops for 5 minutes: alerts are not "
                "posted to Slack and /vllm does not answer. Look at the pods and their logs "
                "(kubectl -n vllm-chatops get pods; kubectl -n vllm-chatops logs "
                "deploy/vllm-chatops).",
            ),
            _rule(
                "VLLMChatOpsReplicaDown",
                f"{up} == 0",
                "15m",
                "warning",
                "A vllm-chatops replica is down ({{ $labels.pod }})",
                "One replica has been down for 15 minutes; the others still serve, with less "
                "headroom. Its logs say why (often: the state store or Slack is unreachable).",
            ),
            _rule(
                "VLLMChatOpsWebhookFailing",
                f'sum(rate({received}{{job="{job}", outcome=~"{"|".join(UNRECORDED)}"}}[5m])) > 0',
                "5m",
                "critical",
                "Alerts reach vllm-chatops but are not recorded",
                "store_error: the state store (DATABASE_URL) does not answer; Alertmanager "
                "retries, and nothing is posted until it does. no_channel: no route and no "
                "default_channel match the alert, so it is dropped; add a route. The outcome "
                "label of vllm_chatops_alerts_received_total says which.",
            ),
            _rule(
                "VLLMChatOpsWebhookRejected",
                f'sum(rate({received}{{job="{job}", outcome=~"{"|".join(REFUSED)}"}}[5m])) > 0',
                "15m",
                "warning",
                "vllm-chatops refuses Alertmanager's notifications",
                "unauthorized: Alertmanager's bearer token is not VLLM_CHATOPS_ALERTS_TOKEN; "
                "invalid: the body is not an Alertmanager v4 webhook. Alertmanager drops "
                "4xx answers, so these alerts never reach Slack.",
            ),
            _rule(
                "VLLMChatOpsSlackErrors",
                f'sum(rate({calls}{{job="{job}", outcome!="ok"}}[10m])) '
                f'/ sum(rate({calls}{{job="{job}"}}[10m])) > 0.1',
                "10m",
                "warning",
                "More than 10 % of vllm-chatops' Slack API calls fail",
                "The outcome label of vllm_chatops_slack_calls_total names the error: "
                "error:invalid_auth or error:token_revoked (a new SLACK_BOT_TOKEN is needed), "
                "error:not_in_channel (invite the bot), unreachable (egress to slack.com).",
            ),
            _rule(
                "VLLMChatOpsOutboxBacklog",
                f'max(vllm_chatops_outbox_oldest_seconds{{job="{job}"}}) > 300',
                "5m",
                "warning",
                "vllm-chatops has Slack messages waiting for more than 5 minutes",
                "Posts and updates are kept in the database and retried until Slack takes "
                "them (vllm_chatops_outbox_pending says how many). Slack is down or refusing "
                "with 429/5xx: see the outcome label of vllm_chatops_slack_calls_total and "
                "/readyz's slack field.",
            ),
            _rule(
                "VLLMChatOpsNoLeader",
                f'sum(vllm_chatops_scheduler_leader{{job="{job}"}}) < 1 and sum({up}) > 0',
                "2m",
                "warning",
                "No vllm-chatops replica runs the scheduled work",
                "No replica holds the scheduler lease (the leases table in the state store), "
                "so verification re-checks, re-posts of unposted alerts and storm updates "
                "wait. Usually the state store is failing: the replicas' logs say 'cannot "
                "renew the scheduler lease'.",
            ),
        ],
    }
