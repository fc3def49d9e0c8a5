"""PromQL building: untrusted values cannot change a query; mixed fleets are read whole."""

from __future__ import annotations

import pytest

from bot.diagnosis.promql import (
    ScopeError,
    check_window,
    dcgm,
    quote,
    rate_by,
    regex_quote,
    vllm,
    vllm_selector,
)
from bot.models import Scope


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("plain", '"plain"'),
        ('a"b', '"a\\"b"'),
        ("back\\slash", '"back\\\\slash"'),
        ("new\nline", '"new\\nline"'),
        ('"} or vector(1) or {x="', '"\\"} or vector(1) or {x=\\""'),
    ],
)
def test_quote_escapes_everything_that_could_end_the_string(value: str, literal: str) -> None:
    assert quote(value) == literal


def test_regex_quote_makes_metacharacters_literal() -> None:
    assert regex_quote("a.b|c*") == '"a\\\\.b\\\\|c\\\\*"'


def test_injection_attempt_stays_inside_the_matcher() -> None:
    evil = '"} or on() vector(1) #'
    sel = vllm_selector(Scope(labels={"pod": evil}))
    assert sel == 'pod="\\"} or on() vector(1) #"'
    assert sel.count('"') - sel.count('\\"') == 2  # exactly one string literal


def test_invalid_label_name_is_refused() -> None:
    with pytest.raises(ScopeError):
        vllm_selector(Scope(labels={"bad-name": "x"}))


def test_renamed_metrics_are_merged_with_or() -> None:
    expr = vllm(("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"), Scope())
    assert expr == "(vllm:kv_cache_usage_perc{} or vllm:gpu_cache_usage_perc{})"


def test_rate_of_renamed_metric_merges_per_replica_before_summing() -> None:
    expr = rate_by(("new_bucket", "old_bucket"), Scope(), "5m", "le")
    # per replica first (its cluster too: names repeat across clusters), so a fleet of old
    # and new replicas is summed whole
    inner = "sum by (namespace, pod, instance, cluster, le)"
    assert expr.startswith(f"sum by (le) ({inner} (rate(new_bucket")
    assert f" or {inner} (rate(old_bucket{{}}[5m]))" in expr


def test_dcgm_node_scope_matches_both_host_label_spellings() -> None:
    expr = dcgm("DCGM_FI_DEV_GPU_TEMP", Scope(labels={"node": "gpu-1", "namespace": "prod"}))
    assert expr == (
        '((DCGM_FI_DEV_GPU_TEMP{namespace="prod",Hostname="gpu-1"}'
        ' or DCGM_FI_DEV_GPU_TEMP{namespace="prod",hostname="gpu-1"})'
        " unless on (instance, pod, cluster) up)"  # the exporter's own pod is no workload
    )


def test_node_scope_restricts_vllm_series_to_the_resolved_pods() -> None:
    scope = Scope(labels={"node": "n1"}, pods=("p-1", "p.2"))
    assert vllm_selector(scope) == 'pod=~"p-1|p\\\\.2"'
    assert vllm_selector(Scope(labels={"node": "n1"}, pods=())) == 'pod=~"^$"'


def test_deployment_scope_becomes_a_pod_name_regex() -> None:
    sel = vllm_selector(Scope(labels={"deployment": "vllm-llama"}))
    assert sel == 'pod=~"vllm-llama-[a-z0-9]+-[a-z0-9]+"'


@pytest.mark.parametrize("window", ["30s", "5m", "1h", "500ms"])
def test_valid_windows(window: str) -> None:
    assert check_window(window) == window


@pytest.mark.parametrize("window", ["5", "5 m", "5m]", "", "-1m"])
def test_invalid_windows(window: str) -> None:
    with pytest.raises(ScopeError):
        check_window(window)
