"""The bot's configuration in the demo: every setting a real deployment would write.

Pure: ports, secrets and paths in, a settings mapping out (written as the bot's YAML
config file, so the bot starts exactly as ``vllm-chatops --config FILE serve`` would).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Personas of the console (bot.console): the on-call engineer and the second approver hold
# every grant; the third person holds none, so permission refusals can be played.
GRANTED_USERS = ("U0ONCALL", "U0APPROVER")
CLUSTER = "demo"
# A drill plays to its verdict in minutes, not the production quarter hour: the demo's
# clients give up after 15 s (CLIENT_TIMEOUT_S), so a saturated replica's backlog drains in
# about 15 s once a scale-out lands; rates read a 30 s window; the new replicas load in 10 s.
# Recovery is then visible about 60 s after the click, and the re-check runs at 90 s.
VERIFY_AFTER_S = 90
DIAGNOSIS_WINDOW = "30s"
CLIENT_TIMEOUT_S = 15.0
# A watched canary in minutes, not hours: the checklist's phases, shortened (a gate still
# waits until its window is filled).
DEMO_CANARY: dict[str, Any] = {
    "window": "1m",
    "rollback": {"window": "30s"},
    "evaluate_every_s": 10,
    "min_requests": 50,
    "phases": [
        {"name": n, "traffic_percent": p, "duration": "1m", "gates": gates}
        for n, p, gates in (
            ("canary", 5, ["error_rate", "ttft_p99", "tpot_p99", "gpu_memory_leak"]),
            ("progressive-25", 25, ["error_rate", "ttft_p99", "tpot_p99", "gpu_memory_leak"]),
            ("progressive-50", 50, ["error_rate", "ttft_p99", "tpot_p99", "throughput"]),
            ("full", 100, ["error_rate", "ttft_p99", "tpot_p99", "throughput"]),
        )
    ],
}
ALERT_FOR = "1m"  # alerts fire after their condition held 1 m: the diagnosis then reads a
# window of the fault alone, so what it measures (demand, say) is the fault's, not a blend


@dataclass(frozen=True)
class DemoEndpoints:
    slack_api_url: str
    prometheus_url: str
    alertmanager_url: str
    kube_api_url: str
    kube_token: str
    channel: str


def bot_settings(
    endpoints: DemoEndpoints,
    *,
    signing_secret: str,
    bot_token: str,
    alerts_token: str,
    state_dir: Path,
    runbooks_dir: Path | None = None,
    verify_after_s: int = VERIFY_AFTER_S,
) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "slack_bot_token": bot_token,
        "slack_signing_secret": signing_secret,
        "slack_api_url": endpoints.slack_api_url,
        "prometheus_url": endpoints.prometheus_url,
        "alertmanager_url": endpoints.alertmanager_url,
        "database_url": f"sqlite:///{state_dir / 'vllm-chatops.db'}",
        "alerts_token": alerts_token,
        "default_channel": endpoints.channel,
        "verification_delay_s": verify_after_s,
        "diagnosis_window": DIAGNOSIS_WINDOW,
        "recording_rules": True,
        "clusters": [
            {
                "name": CLUSTER,
                "prometheus_url": endpoints.prometheus_url,
                "alertmanager_url": endpoints.alertmanager_url,
                "kube_api_url": endpoints.kube_api_url,
                "kube_token": endpoints.kube_token,
            }
        ],
        "canary": DEMO_CANARY,
        "policy": {
            "grants": [
                {
                    "users": list(GRANTED_USERS),
                    "kinds": ["*"],
                    "clusters": ["*"],
                    "namespaces": ["*"],
                }
            ],
            "approvals": [{"kinds": ["drain", "rollback"], "namespaces": ["prod*", "production*"]}],
        },
    }
    if runbooks_dir is not None:
        settings["runbooks_dir"] = str(runbooks_dir)
    return settings
