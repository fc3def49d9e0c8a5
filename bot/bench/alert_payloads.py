"""Alertmanager webhook notifications (version 4) as a benchmark sends them. Pure."""

from __future__ import annotations

from typing import Any

ALERTNAME = "VLLMKVCachePressure"
RUNBOOK = "kv_cache_pressure"  # a shipped runbook: each new post gets its diagnosis


def alert(fingerprint: str, namespace: str, pod: int, status: str = "firing") -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": ALERTNAME,
            "runbook": RUNBOOK,
            "severity": "warning",
            "namespace": namespace,
            "pod": f"vllm-llama-7d9f8b6c5d-p{pod % 500:04d}",
        },
        "annotations": {"summary": "KV cache high"},
        "startsAt": "2026-11-28T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-28T11:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": fingerprint,
    }


def notification(group_key: str, namespace: str, alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """One group's notification; its labels scope the incident the alerts belong to."""
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "receiver": "vllm-chatops",
        "status": "firing" if firing else "resolved",
        "alerts": alerts,
        "groupLabels": {"namespace": namespace},
        "commonLabels": {"alertname": ALERTNAME, "runbook": RUNBOOK, "namespace": namespace},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager",
        "groupKey": group_key,
        "truncatedAlerts": 0,
    }
