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
VERIFY_AFTER_S = 60  # short, so a drill plays to "recovered" in about a minute
DIAGNOSIS_WINDOW = "1m"  # a short rate window: the demo fleet changes within a minute
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
