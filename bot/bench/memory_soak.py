"""The bot's resident memory under sustained mixed traffic.

Every second: an Alertmanager notification (a new alert joins one of a few incidents, the
older ones resolve; every five minutes the incidents resolve and new ones open) and a signed
``/vllm help``. ``VmRSS`` is sampled every few seconds; the first sample after the warm-up
(a sixth of the soak: imports, pools and caches settle) is the baseline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bot.bench.alert_payloads import alert, notification
from bot.bench.serve_process import CHANNEL, ServedBot, served_bot
from bot.console.payloads import signed_headers, slash_command_body

OPEN_INCIDENTS = 5
INCIDENTS_RENEWED_EVERY = 300  # notifications (seconds) before a new set of incidents opens
KEPT_FIRING = 20  # alerts of a group still firing; older ones resolve
SENT_PER_GROUP = 40  # the newest alerts of the group in each notification


@dataclass(frozen=True)
class SoakResult:
    samples: list[tuple[float, int]]  # (seconds since the traffic started, VmRSS KiB)
    warmup_s: float
    requests: int
    failed: int  # requests not answered 2xx

    @property
    def baseline_kib(self) -> int:
        after = [kib for at, kib in self.samples if at >= self.warmup_s]
        return after[0] if after else self.samples[-1][1]

    @property
    def last_kib(self) -> int:
        return self.samples[-1][1]

    @property
    def growth_percent(self) -> float:
        return 100 * (self.last_kib - self.baseline_kib) / self.baseline_kib

    @property
    def after_warmup(self) -> int:
        return sum(at >= self.warmup_s for at, _ in self.samples)


def sample_every(soak_s: float) -> float:
    """About 60 samples however long the soak, between one a second and one per 10 s."""
    return min(10.0, max(1.0, soak_s / 60))


class Traffic:
    """The notifications of second ``n``: one group grows by an alert while its older
    alerts resolve; when a new set of incidents opens, the retired set resolves whole."""

    def __init__(self) -> None:
        self._groups: dict[int, list[dict[str, Any]]] = {}

    def notifications(self, n: int) -> list[dict[str, Any]]:
        period = n // INCIDENTS_RENEWED_EVERY
        out = []
        if period and n % INCIDENTS_RENEWED_EVERY == 0:
            for incident in [i for i in self._groups if i < 10 * period]:
                group = self._groups.pop(incident)
                for a in group:
                    a["status"] = "resolved"
                out.append(notification(f"soak/{incident}", f"soak-{incident}", group))
        incident = n % OPEN_INCIDENTS + 10 * period
        namespace = f"soak-{incident}"
        group = self._groups.setdefault(incident, [])
        group.append(alert(f"soak-{incident}-{n}", namespace, n))
        if len(group) > KEPT_FIRING:
            group[-KEPT_FIRING - 1]["status"] = "resolved"
        del group[:-SENT_PER_GROUP]  # what is no longer sent needs no keeping
        return [*out, notification(f"soak/{incident}", namespace, list(group))]


def _answered(http: httpx.Client, path: str, **request: Any) -> bool:
    """POST; whether the bot answered 2xx."""
    try:
        return http.post(path, **request).is_success
    except httpx.HTTPError:
        return False


def _slash(http: httpx.Client, bot: ServedBot) -> bool:
    response_url = bot.slack.new_response_url(user="U123", channel=CHANNEL)
    body = slash_command_body("help", channel_id=CHANNEL, response_url=response_url)
    headers = signed_headers(bot.signing_secret, body)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    return _answered(http, "/slack/events", content=body, headers=headers)


def soak(bot: ServedBot, soak_s: float) -> SoakResult:
    traffic = Traffic()
    every = sample_every(soak_s)
    samples: list[tuple[float, int]] = []
    auth = {"Authorization": f"Bearer {bot.alerts_token}"}
    requests = failed = 0
    with httpx.Client(base_url=bot.url, timeout=10) as http:
        started = time.monotonic()
        next_sample = started
        n = 0
        while (now := time.monotonic()) < started + soak_s:
            if now >= next_sample:
                samples.append((now - started, bot.rss_kib()))
                next_sample += every
            answers = [
                *(
                    _answered(http, "/alerts", json=b, headers=auth)
                    for b in traffic.notifications(n)
                ),
                _slash(http, bot),
            ]
            requests += len(answers)
            failed += answers.count(False)
            n += 1
            time.sleep(max(0.0, started + n - time.monotonic()))
        samples.append((time.monotonic() - started, bot.rss_kib()))
    return SoakResult(samples, soak_s / 6, requests, failed)


def measure(soak_s: float, work_dir: Path, database_url: str) -> SoakResult:
    """The soak; its samples are kept in ``work_dir/soak/rss.tsv`` to see the curve."""
    with served_bot(work_dir, "soak", database_url) as bot:
        result = soak(bot, soak_s)
    lines = [f"{at:.1f}\t{kib}" for at, kib in result.samples]
    (work_dir / "soak" / "rss.tsv").write_text("seconds\tkib\n" + "\n".join(lines) + "\n")
    return result
