"""One evolving alert post per incident: merging notifications into it. Pure.

Alertmanager re-sends a group as it grows; each notification carries the group's alerts
so far (or a page of them). The post keeps the newest alerts it has seen, bounded, and
the store keeps the tallies (firing, resolved) that the message shows.
"""

from __future__ import annotations

import json
from typing import Any, TypedDict

KEPT_ALERTS = 100  # alerts kept to render (newest first); tallies count them all
DIGEST_MAX = 200  # alerts waiting for the thread digest, beyond which only a count


class Digest(TypedDict):
    """Alerts that joined a post and were not yet said in its thread."""

    count: int
    alerts: list[dict[str, str]]  # the first DIGEST_MAX of them, for names


def incident_key(runbook: str, cluster: str | None, scope: str) -> str:
    """Alerts of different groups about the same thing: same runbook and same scope."""
    return f"{runbook}|{cluster or '-'}|{scope}"[:512]


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The post's group after ``new`` arrived: alerts by fingerprint (newer wins), newest
    first, at most ``KEPT_ALERTS``; labels common to both stay common."""
    alerts = {a["fingerprint"]: a for a in old.get("alerts", [])}
    alerts.update({a["fingerprint"]: a for a in new.get("alerts", [])})
    ordered = sorted(alerts.values(), key=lambda a: str(a.get("startsAt", "")), reverse=True)
    old_common = old.get("commonLabels", {})
    common = {k: v for k, v in new.get("commonLabels", {}).items() if old_common.get(k) == v}
    return {
        **new,
        "status": "firing",
        "alerts": ordered[:KEPT_ALERTS],
        "truncatedAlerts": 0,
        "commonLabels": common,
    }


def mark_resolved(payload: dict[str, Any], fingerprints: set[str]) -> dict[str, Any]:
    alerts = [
        {**a, "status": "resolved"} if a["fingerprint"] in fingerprints else a
        for a in payload.get("alerts", [])
    ]
    return {**payload, "alerts": alerts}


def digest_entries(group: dict[str, Any], fresh: set[str]) -> list[dict[str, str]]:
    """What the thread digest says about newly attached alerts: name and key labels."""
    keys = ("alertname", "namespace", "pod", "node", "severity")
    return [
        {k: a["labels"][k] for k in keys if a.get("labels", {}).get(k)}
        for a in group.get("alerts", [])
        if a["fingerprint"] in fresh
    ]


def digest_of(stored: str | None) -> Digest:
    data = json.loads(stored) if stored else {}
    return {"count": int(data.get("count", 0)), "alerts": list(data.get("alerts", []))}


def add_to_digest(digest: Digest, joined: list[dict[str, str]]) -> Digest:
    alerts = (digest["alerts"] + joined)[:DIGEST_MAX]
    return {"count": digest["count"] + len(joined), "alerts": alerts}


def put_back(untold: Digest, since: Digest) -> Digest:
    """A digest taken to be told but not told, ahead of what joined after it was taken."""
    alerts = (untold["alerts"] + since["alerts"])[:DIGEST_MAX]
    return {"count": untold["count"] + since["count"], "alerts": alerts}
