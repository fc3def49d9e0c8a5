"""Memory under sustained traffic: the real `serve` process for ``--minutes``.

    .venv/bin/python benchmarks/soak.py --minutes 10

Every second: an Alertmanager notification (new alerts joining a few incidents, older
ones resolving, an incident closing now and then) and a signed `/vllm help`; the fake
Slack answers everything. The bot's resident memory (``VmRSS``) is sampled every 10 s;
the first sample after a one-minute warm-up is the baseline. Prints one JSON line with
the baseline, the last sample and the growth in percent (the target: under 5 %).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fakes.slack import FakeSlack, send_signed, slash_command_body

from bot.simulator.prometheus_runner import free_port

TOKEN, SECRET, CHANNEL = "soak-token", "soak-secret", "C0SOAK001"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def notification(incident: int, alerts: list[dict[str, Any]]) -> dict[str, Any]:
    common = {"alertname": "VLLMQueueBacklog", "runbook": "queue_backlog"}
    common["namespace"] = f"soak-{incident}"
    return {
        "version": "4",
        "receiver": "bot",
        "status": "firing",
        "alerts": alerts,
        "groupLabels": {},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "",
        "groupKey": f"soak/{incident}",
        "truncatedAlerts": 0,
    }


def alert(incident: int, n: int, status: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": "VLLMQueueBacklog",
            "runbook": "queue_backlog",
            "namespace": f"soak-{incident}",
            "pod": f"vllm-llama-7d9f8b6c5d-p{n % 64:04d}",
        },
        "annotations": {},
        "startsAt": "2026-11-28T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": f"soak-{incident}-{n}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup-s", type=float, default=60.0)
    args = parser.parse_args()

    slack = FakeSlack().start()
    slack.add_channel(CHANNEL, "soak")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = os.environ | {
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.api_url,
            "PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
            "DATABASE_URL": f"sqlite:///{tmp}/bot.db",
            "VLLM_CHATOPS_ALERTS_TOKEN": TOKEN,
            "VLLM_CHATOPS_DEFAULT_CHANNEL": CHANNEL,
        }
        command = [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port"]
        bot = subprocess.Popen(
            [*command, str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            print(json.dumps(soak(bot.pid, f"http://127.0.0.1:{port}", slack, args)))
        finally:
            bot.terminate()
            bot.wait(timeout=30)
            slack.stop()


def soak(pid: int, url: str, slack: FakeSlack, args: argparse.Namespace) -> dict[str, Any]:
    http = httpx.Client(timeout=10)
    deadline = time.monotonic() + 60
    while True:
        try:
            http.get(f"{url}/healthz").raise_for_status()
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    started = time.monotonic()
    end = started + args.minutes * 60
    samples: list[tuple[float, int]] = []
    groups: dict[int, list[dict[str, Any]]] = {}
    n = sent = 0
    next_sample = started
    while time.monotonic() < end:
        incident = n % 5 + 10 * (n // 300)  # a few open incidents, new ones every 5 min
        group = groups.setdefault(incident, [])
        group.append(alert(incident, n, "firing"))
        for old in group[:-20]:
            old["status"] = "resolved"  # older alerts resolve as new ones arrive
        auth = {"Authorization": f"Bearer {TOKEN}"}
        http.post(f"{url}/alerts", json=notification(incident, group[-40:]), headers=auth)
        body = slash_command_body("help", channel_id=CHANNEL, response_url=slack.response_url)
        send_signed(f"{url}/slack/events", body, SECRET)
        n, sent = n + 1, sent + 2
        if time.monotonic() >= next_sample:
            samples.append((time.monotonic() - started, rss_kib(pid)))
            next_sample += 10
        time.sleep(max(0.0, started + n - time.monotonic()))
    after_warmup = [kib for at, kib in samples if at >= args.warmup_s] or [samples[-1][1]]
    base, last = after_warmup[0], samples[-1][1]
    return {
        "minutes": args.minutes,
        "requests": sent,
        "rss_mib_at_start": round(samples[0][1] / 1024, 1),
        "rss_mib_after_warmup": round(base / 1024, 1),
        "rss_mib_at_end": round(last / 1024, 1),
        "rss_mib_max": round(max(k for _, k in samples) / 1024, 1),
        "growth_percent": round(100 * (last - base) / base, 1),
    }


if __name__ == "__main__":
    main()
