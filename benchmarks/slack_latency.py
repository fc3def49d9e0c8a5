"""Slash-command acknowledgement and alert-to-first-post latency, against a fake Slack.

    .venv/bin/python benchmarks/slack_latency.py --commands 50 --prometheus-delay 5

The bot runs in HTTP mode against a local fake Slack Web API and a "Prometheus" that
answers every query only after ``--prometheus-delay`` seconds. ``--commands`` signed
`/vllm diagnose high_latency` requests are sent at once; each one's time to the HTTP
answer (Slack's 3-second acknowledgement) is measured. Then ``--alerts`` Alertmanager
webhooks are sent one by one and the time from sending to the fake Slack receiving the
alert post is measured. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import httpx
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bot_runner import BotRunner
from fakes.slack import Call, FakeSlack, send_signed, slash_command_body

from bot.simulator.prometheus_runner import free_port

SECRET = "bench-secret"


def slow_prometheus(delay_s: float) -> str:
    async def query(request: web.Request) -> web.Response:
        await asyncio.sleep(delay_s)
        return web.json_response(
            {"status": "success", "data": {"resultType": "vector", "result": []}}
        )

    app = web.Application()
    app.router.add_route("*", "/api/v1/query", query)
    app.router.add_route("*", "/api/v1/query_range", query)
    port = free_port()
    loop = asyncio.new_event_loop()

    async def start() -> None:
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    threading.Thread(target=loop.run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(start(), loop).result()
    return f"http://127.0.0.1:{port}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def posted(slack: FakeSlack, marker: str) -> Call | None:
    calls = slack.calls_to("chat.postMessage")
    return next((c for c in calls if marker in json.dumps(c.params)), None)


def webhook(i: int) -> dict[str, object]:
    labels = {"alertname": "VLLMQueueBacklog", "severity": "critical", "runbook": "queue_backlog",
              "namespace": "inference", "pod": f"bench-pod-{i}"}  # fmt: skip
    return {
        "version": "4", "receiver": "bot", "status": "firing", "groupKey": f"bench/{i}",
        "groupLabels": {"alertname": "VLLMQueueBacklog"}, "commonLabels": labels,
        "commonAnnotations": {}, "externalURL": "", "truncatedAlerts": 0,
        "alerts": [{"status": "firing", "labels": labels, "annotations": {},
                    "startsAt": "2026-11-28T10:00:00Z", "fingerprint": f"bench-{i}"}],
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=50)
    parser.add_argument("--alerts", type=int, default=20)
    parser.add_argument("--prometheus-delay", type=float, default=5.0)
    args = parser.parse_args()

    slack = FakeSlack().start()
    prometheus = slow_prometheus(args.prometheus_delay)
    bot = BotRunner(
        slack_bot_token=slack.token, slack_signing_secret=SECRET, slack_api_url=slack.api_url,
        prometheus_url=prometheus, alerts_token="bench", default_channel="C0BENCH1",
        database_url=f"sqlite:///{tempfile.mkdtemp()}/bench.db", query_timeout_s=10,
    ).start()  # fmt: skip
    try:
        url = f"{bot.url}/slack/events"
        send_signed(url, slash_command_body("help"), SECRET)  # warm-up (Bolt's auth.test)

        def one(_: int) -> tuple[int, float]:
            response = send_signed(url, slash_command_body("diagnose high_latency"), SECRET)
            return response.status, response.elapsed

        with ThreadPoolExecutor(args.commands) as pool:
            results = list(pool.map(one, range(args.commands)))
        acks = [elapsed for status, elapsed in results if status == 200]

        post_latency = []
        for i in range(args.alerts):
            sent = time.time()
            httpx.post(f"{bot.url}/alerts", json=webhook(i),
                       headers={"Authorization": "Bearer bench"})  # fmt: skip
            call = slack.wait_for(partial(posted, slack, f"bench-pod-{i}"), timeout=30)
            assert call is not None, f"alert {i} was never posted"
            post_latency.append(call.at - sent)
        print(json.dumps({
            "commands": args.commands, "acknowledged_200": len(acks),
            "prometheus_delay_s": args.prometheus_delay,
            "ack_p50_ms": round(statistics.median(acks) * 1000, 1),
            "ack_p99_ms": round(percentile(acks, 0.99) * 1000, 1),
            "ack_max_ms": round(max(acks) * 1000, 1),
            "alerts": args.alerts,
            "alert_to_post_p50_ms": round(statistics.median(post_latency) * 1000, 1),
            "alert_to_post_p99_ms": round(percentile(post_latency, 0.99) * 1000, 1),
        }))  # fmt: skip
    finally:
        bot.stop()
        slack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
