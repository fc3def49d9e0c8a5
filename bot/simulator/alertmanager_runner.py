"""A real Alertmanager (Debian package prometheus-alertmanager) routing to the bot's webhook.

Used by the demo stack, the end-to-end tests and ``bench`` (which also has it post every
alert to a Slack incoming webhook with its own notifier, to compare with the bot).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from bot.simulator.processes import spawn, terminate
from bot.simulator.prometheus_runner import PrometheusError, free_port


def find_alertmanager() -> str | None:
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


DEFAULT_GROUP_BY = ("alertname", "namespace")


class AlertmanagerRunner:
    """Alertmanager on a free loopback port with one receiver: the bot's webhook and, with
    ``slack_url``, Alertmanager's own Slack notifier posting to that incoming webhook too."""

    def __init__(
        self,
        binary: str,
        webhook_url: str,
        bearer_token: str,
        *,
        port: int | None = None,
        slack_url: str | None = None,
        group_by: tuple[str, ...] = DEFAULT_GROUP_BY,
    ) -> None:
        self.binary = binary
        self.webhook_url = webhook_url
        self.bearer_token = bearer_token
        self.slack_url = slack_url
        self.group_by = group_by
        self.port = port or free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="vllm-chatops-am-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        receiver: dict[str, Any] = {
            "name": "bot",
            "webhook_configs": [
                {
                    "url": self.webhook_url,
                    "send_resolved": True,
                    "http_config": {
                        "authorization": {"type": "Bearer", "credentials": self.bearer_token}
                    },
                }
            ],
        }
        if self.slack_url is not None:
            receiver["slack_configs"] = [
                {"api_url": self.slack_url, "channel": "#alerts", "send_resolved": False}
            ]
        return {
            "route": {
                "receiver": "bot",
                "group_by": list(self.group_by),
                "group_wait": "0s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [receiver],
        }

    def start(self, timeout_s: float = 30.0) -> AlertmanagerRunner:
        config = self._dir / "alertmanager.yml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        log = (self._dir / "alertmanager.log").open("wb")
        self._process = spawn(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.path={self._dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            log,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PrometheusError(
                    "alertmanager exited: "
                    + (self._dir / "alertmanager.log").read_text(errors="replace")[-2000:]
                )
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise PrometheusError("alertmanager not ready")

    def stop(self) -> None:
        terminate(self._process, timeout_s=10)
        shutil.rmtree(self._dir, ignore_errors=True)
