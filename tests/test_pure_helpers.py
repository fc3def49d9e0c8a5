"""Sizing, the Xid catalogue, workload names and scope parsing."""

from __future__ import annotations

import pytest

from bot.diagnosis import sizing
from bot.diagnosis.scope import ScopeSyntaxError, parse_scope
from bot.diagnosis.workloads import workload_of_pod
from bot.diagnosis.xid import XID_CATALOGUE, decode


def test_throughput_sizing_is_peak_plus_headroom() -> None:
    plan = sizing.for_throughput(current=8, arrival_rps=128, per_replica_rps=10, headroom=0.3)
    assert plan is not None
    assert plan.replicas == 17  # ceil(128 * 1.3 / 10) = ceil(16.64)
    assert plan.added == 9
    assert "128.0 req/s" in plan.why and "17 replicas" in plan.why


def test_throughput_sizing_never_shrinks_and_needs_measurements() -> None:
    plan = sizing.for_throughput(current=8, arrival_rps=10, per_replica_rps=10)
    assert plan is not None and plan.replicas == 8
    assert sizing.for_throughput(current=8, arrival_rps=10, per_replica_rps=0) is None
    assert sizing.for_throughput(current=0, arrival_rps=10, per_replica_rps=1) is None


def test_kv_sizing_brings_the_peak_to_target() -> None:
    plan = sizing.for_kv(current=8, peak_kv=0.97, target_kv=0.75)
    assert plan is not None and plan.replicas == 11  # ceil(8 * 0.97 / 0.75) = ceil(10.35)
    one_more = sizing.for_kv(current=4, peak_kv=0.5, target_kv=0.75)
    assert one_more is not None and one_more.replicas == 5  # pressure at all: at least +1


@pytest.mark.parametrize("code", [48, 64, 74, 79, 95, 140])
def test_fatal_hardware_xids_drain(code: int) -> None:
    assert decode(code).remedy == "drain"
    assert decode(code).gpu_is_faulty


@pytest.mark.parametrize("code", [13, 31, 68, 69, 94])
def test_application_xids_restart_and_never_drain(code: int) -> None:
    info = decode(code)
    assert info.remedy == "restart"
    assert not info.gpu_is_faulty


def test_unknown_xid_is_investigated_not_drained() -> None:
    info = decode(999)
    assert info.kind == "unknown" and not info.gpu_is_faulty
    assert 999 not in XID_CATALOGUE


@pytest.mark.parametrize(
    ("pod", "workload"),
    [
        ("vllm-llama-3-1-70b-7d9f8c6b5d-x2k9p", "deployment/ns/vllm-llama-3-1-70b"),
        ("vllm-70b-0", "statefulset/ns/vllm-70b"),
        ("standalone", "pod/ns/standalone"),
    ],
)
def test_workload_of_pod(pod: str, workload: str) -> None:
    assert workload_of_pod("ns", pod) == workload


def test_scope_words_with_aliases_and_cluster() -> None:
    scope = parse_scope(["model=llama-70b", "ns=prod", "pod=p-1", "cluster=gpu-east", "node=n1"])
    assert scope.cluster == "gpu-east"
    assert scope.labels == {
        "model_name": "llama-70b",
        "namespace": "prod",
        "pod": "p-1",
        "node": "n1",
    }


@pytest.mark.parametrize("word", ["llama", "=x", "model=", "bad-key=x", "9x=1"])
def test_bad_scope_words_explain_the_syntax(word: str) -> None:
    with pytest.raises(ScopeSyntaxError):
        parse_scope([word])
