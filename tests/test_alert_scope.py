"""The diagnosis scope an alert group gives: what it is about, readable by every check."""

from __future__ import annotations

from bot.models import AlertGroup
from bot.slack.intake import scope_of


def _group(labels: dict[str, str]) -> AlertGroup:
    return AlertGroup.model_validate(
        {
            "status": "firing",
            "alerts": [
                {
                    "status": "firing",
                    "labels": labels,
                    "startsAt": "2026-11-30T00:00:00Z",
                    "fingerprint": "f1",
                }
            ],
        }
    )


def test_a_pod_alert_is_scoped_by_pod_not_by_its_scrape_target() -> None:
    # the vLLM target's instance is not the instance of the node exporter that reports the
    # pod's GPUs: keeping it left every GPU check of a pod alert without data
    scope = _group(
        {
            "alertname": "VLLMQueueBacklog",
            "namespace": "inference",
            "pod": "vllm-a-1",
            "instance": "vllm-a-1:8000",
        }
    )
    assert scope_of(scope).labels == {"namespace": "inference", "pod": "vllm-a-1"}


def test_an_instance_alert_without_a_pod_keeps_its_instance_and_node() -> None:
    scope = scope_of(_group({"alertname": "X", "instance": "gpu-node-1:9400", "Hostname": "n1"}))
    assert scope.labels == {"instance": "gpu-node-1:9400", "node": "n1"}
