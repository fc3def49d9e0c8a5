"""Block Kit rendering of Alertmanager notifications: fields, runbook, bounds, inertness."""

from __future__ import annotations

from block_helpers import (
    HOSTILE,
    all_text,
    assert_inert,
    assert_valid,
    make_alert,
    make_group,
    make_runbook,
)

from bot.models import Alert, AlertGroup
from bot.slack.alert_blocks import alert_message

# --- alerts --------------------------------------------------------------------------------


def test_alert_firing_with_runbook() -> None:
    group = make_group(
        [make_alert(0), make_alert(1)],
        commonAnnotations={"summary": "KV cache above 95 %", "description": "Preemptions follow."},
        commonLabels={"alertname": "VLLMKVCacheHigh", "namespace": "prod", "cluster": "eu-1"},
    )
    m = alert_message(group, make_runbook())
    assert_valid(m)
    assert m.blocks[0]["text"]["text"] == ":fire: FIRING: VLLMKVCacheHigh (2 alerts)"
    body = all_text(m.blocks)
    fields = m.blocks[1]["fields"]
    assert fields[0]["text"] == "*Severity*\n`warning`"
    assert "*Namespace*\n`prod`" in [f["text"] for f in fields]
    assert "*Pod*\n`llama-70b-0`, `llama-70b-1`" in [f["text"] for f in fields]
    assert "*KV cache above 95 %*\nPreemptions follow." in body
    assert "pod=`llama-70b-1`" in body
    assert "Runbook: KV cache pressure" in body
    assert "1. *Scale up* replicas" in body
    assert (
        "<https://grafana.example.com/d/vllm?var-namespace=prod&amp;var-model=|vLLM dashboard>"
        in body
    )
    assert "`/vllm diagnose kv_cache_pressure ns=prod cluster=eu-1`" in body
    assert "No runbook matches" not in body
    assert m.text.startswith("FIRING: VLLMKVCacheHigh (2 alerts) — KV cache above 95 %")


def test_alert_without_runbook() -> None:
    group = make_group([make_alert(0, alertname="SomethingElse")])
    m = alert_message(group, None)
    assert_valid(m)
    body = all_text(m.blocks)
    assert "No runbook matches this alert (labels: " in body
    assert "`alertname=VLLMKVCacheHigh`" in body
    assert "Runbook:" not in body


def test_alert_resolved() -> None:
    group = make_group([make_alert(0, status="resolved")], status="resolved")
    m = alert_message(group, make_runbook(), resolved_after="12m")
    assert_valid(m)
    assert m.blocks[0]["text"]["text"].startswith(":white_check_mark: RESOLVED: VLLMKVCacheHigh")
    assert "Resolved after 12m" in all_text(m.blocks)
    assert "resolved after 12m" in m.text
    assert "diagnose" not in all_text(m.blocks)  # nothing to diagnose any more
    firing = alert_message(make_group([make_alert(0)]), None, resolved_after="12m")
    assert "Resolved after" not in all_text(firing.blocks)


def test_alert_list_is_bounded() -> None:
    group = make_group([make_alert(i) for i in range(30)], truncatedAlerts=5)
    m = alert_message(group, make_runbook())
    assert_valid(m)
    body = all_text(m.blocks)
    assert "(35 alerts)" in m.blocks[0]["text"]["text"]
    assert "`llama-70b-9`" in body
    assert "pod=`llama-70b-10`" not in body
    assert "… and 25 more" in body


def test_alert_hostile_labels_are_inert() -> None:
    hostile_labels = {
        "alertname": HOSTILE,
        "severity": HOSTILE,
        "namespace": HOSTILE * 200,
        "pod": HOSTILE,
        "Hostname": HOSTILE,
        "model_name": "x" * 5000,
        "cluster": HOSTILE,
        "extra": HOSTILE,
    }
    alerts = [
        Alert.model_validate(
            {
                "status": "firing",
                "labels": {**hostile_labels, "pod": f"{HOSTILE}{i}"},
                "annotations": {"summary": HOSTILE * 100, "description": HOSTILE * 500},
                "startsAt": HOSTILE,
                "fingerprint": f"f{i}",
            }
        )
        for i in range(50)
    ]
    group = AlertGroup.model_validate(
        {
            "status": "firing",
            "alerts": [a.model_dump() for a in alerts],
            "commonLabels": hostile_labels,
            "commonAnnotations": {"summary": HOSTILE * 100, "description": HOSTILE * 500},
        }
    )
    for runbook in (None, make_runbook(remediation="x " * 10_000)):
        m = alert_message(group, runbook)
        assert_valid(m)
        assert_inert(m.blocks, ("<https://grafana.example.com/d/vllm?",))
        assert_inert(m.text)
    hint = all_text(alert_message(group, make_runbook()).blocks)
    # Unsafe label values never make it into the copyable command.
    assert "`/vllm diagnose kv_cache_pressure`" in hint


def test_alert_header_keeps_count_whatever_the_names() -> None:
    names = [make_alert(i, alertname=f"Alert{i}_" + "x" * 100) for i in range(4)]
    header = alert_message(make_group(names), None).blocks[0]["text"]["text"]
    assert header.startswith(":fire: FIRING: Alert0_")
    assert header.endswith("… (4 alerts)")
