"""An alert storm as Alertmanager sends it, against the real bot and a fake Slack.

    .venv/bin/python benchmarks/alert_storm.py --alerts 5000 --pods 500 --groups 10 --seconds 60

``--groups`` alert groups (one per namespace, so one incident each) grow together to
``--alerts`` alerts over ``--pods`` pods within ``--seconds``; every ``--interval`` seconds
each group is re-sent whole (as Alertmanager's group_interval does), with a tenth of its
older alerts resolved from the middle of the storm on. Meanwhile a signed `/vllm help`
is sent every second. Prints one JSON line: webhook answer latency, alerts recorded per
second, top-level posts vs incidents, the most Slack writes in any one second per
channel, the time from the last notification to the last post update, and the slash
command acknowledgement latency during the storm. ``--database-url`` picks the store
(default: SQLite in a temporary directory).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bot_runner import BotRunner
from fakes.slack import FakeSlack, send_signed, slash_command_body

from bot.simulator.prometheus_runner import free_port

SECRET, TOKEN, CHANNEL = "bench-secret", "bench-token", "C0STORM01"


def _alert(n: int, group: int, pods: int, resolved: bool) -> dict[str, Any]:
    return {
        "status": "resolved" if resolved else "firing",
        "labels": {
            "alertname": "VLLMKVCachePressure",
            "runbook": "kv_cache_pressure",
            "severity": "critical" if n % 7 == 0 else "warning",
            "namespace": f"team-{group}",
            "pod": f"vllm-llama-7d9f8b6c5d-p{n % pods:04d}",
        },
        "annotations": {"summary": "KV cache high"},
        "startsAt": f"2026-11-28T10:{(n // 60) % 60:02d}:{n % 60:02d}Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": f"{group:02d}{n:08x}",
    }


def _notification(group: int, alerts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "version": "4",
        "receiver": "bot",
        "status": "firing",
        "alerts": alerts,
        "groupLabels": {"namespace": f"team-{group}"},
        "commonLabels": {
            "alertname": "VLLMKVCachePressure",
            "runbook": "kv_cache_pressure",
            "namespace": f"team-{group}",
        },
        "commonAnnotations": {},
        "externalURL": "http://alertmanager",
        "groupKey": f'{{}}:{{namespace="team-{group}"}}',
        "truncatedAlerts": 0,
    }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--database-url")
    args = parser.parse_args()

    slack = FakeSlack().start()
    with tempfile.TemporaryDirectory() as tmp:
        bot = BotRunner(
            slack_bot_token=slack.token,
            slack_signing_secret=SECRET,
            slack_api_url=slack.api_url,
            prometheus_url=f"http://127.0.0.1:{free_port()}",  # diagnosis: unknown, fast
            alerts_token=TOKEN,
            default_channel=CHANNEL,
            database_url=args.database_url or f"sqlite:///{tmp}/bot.db",
        ).start()
        try:
            result = storm(bot, slack, args)
        finally:
            bot.stop()
            slack.stop()
    print(json.dumps(result))


def storm(bot: BotRunner, slack: FakeSlack, args: argparse.Namespace) -> dict[str, Any]:
    rounds = max(1, int(args.seconds / args.interval))
    per_round = args.alerts // (args.groups * rounds)
    groups: list[list[dict[str, Any]]] = [[] for _ in range(args.groups)]
    answers: list[float] = []
    acks: list[float] = []
    done = threading.Event()

    def slash() -> None:
        while not done.is_set():
            body = slash_command_body("help", channel_id=CHANNEL, response_url=slack.response_url)
            acks.append(send_signed(f"{bot.url}/slack/events", body, SECRET).elapsed)
            time.sleep(1.0)

    def send(body: dict[str, Any]) -> None:
        started = time.perf_counter()
        response = http.post(
            f"{bot.url}/alerts", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        answers.append(time.perf_counter() - started)
        response.raise_for_status()

    http = httpx.Client(timeout=30)
    commands = threading.Thread(target=slash, daemon=True)
    commands.start()
    started = time.perf_counter()
    n = 0
    with ThreadPoolExecutor(8) as pool:
        for r in range(rounds):
            due = started + r * args.interval
            time.sleep(max(0.0, due - time.perf_counter()))
            for g, alerts in enumerate(groups):
                resolving = r >= rounds // 2
                for a in alerts[: len(alerts) // 10] if resolving else []:
                    a["status"] = "resolved"
                alerts += [_alert(n + i, g, args.pods, False) for i in range(per_round)]
                n += per_round
            list(pool.map(send, [_notification(g, list(a)) for g, a in enumerate(groups)]))
    storm_s = time.perf_counter() - started
    sent_wall = time.time()
    done.set()

    def settled() -> float:
        """Seconds after the last notification until the last post update (quiet 5 s)."""
        while True:
            newest = max((v.at for m in slack.messages(CHANNEL) for v in m.history), default=0)
            if time.time() - newest > 5:
                return max(0.0, newest - sent_wall)
            time.sleep(1.0)

    settle_s = settled()
    messages = slack.messages(CHANNEL)
    roots = [m for m in messages if m.thread_ts is None and "help" not in m.text.lower()]
    per_second = Counter(int(v.at) for m in messages for v in m.history)
    return {
        "alerts": n,
        "pods": args.pods,
        "incidents": args.groups,
        "notifications": len(answers),
        "storm_s": round(storm_s, 1),
        "alerts_recorded_per_s": round(n / storm_s, 1),
        "webhook_answer_ms_p50": _pct(answers, 0.5),
        "webhook_answer_ms_p99": _pct(answers, 0.99),
        "top_level_posts": len(roots),
        "max_slack_writes_in_one_second": max(per_second.values(), default=0),
        "last_update_after_storm_s": round(settle_s, 1),
        "slash_ack_ms_p50": _pct(acks, 0.5) if acks else None,
        "slash_ack_ms_p99": _pct(acks, 0.99) if acks else None,
    }


if __name__ == "__main__":
    main()
