"""What the simulated exporters write: names, types, labels and values as the real ones do.

Expected names and types are written out here from the reference (vLLM V1's
``loggers.py`` and dcgm-exporter's ``default-counters.csv``), not imported from the
simulator's catalogue, so a typo there cannot make these tests agree with it.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import defaultdict

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.simulator.exposition import ExpositionWriter, format_labels
from bot.simulator.fleet import Fleet, Replica, build_fleet
from bot.simulator.render import node_metrics, replica_metrics

from .promtext import Labels, declared_types, samples, series, value

T0 = 1_700_000_000.0

# --- the reference -----------------------------------------------------------------------

NEW_VLLM_TYPES = {
    "process_start_time_seconds": "gauge",
    "process_resident_memory_bytes": "gauge",
    "vllm:num_requests_running": "gauge",
    "vllm:num_requests_waiting": "gauge",
    "vllm:kv_cache_usage_perc": "gauge",
    "vllm:num_preemptions_total": "counter",
    "vllm:prompt_tokens_total": "counter",
    "vllm:generation_tokens_total": "counter",
    "vllm:prefix_cache_queries_total": "counter",
    "vllm:prefix_cache_hits_total": "counter",
    "vllm:request_success_total": "counter",
    "vllm:time_to_first_token_seconds": "histogram",
    "vllm:inter_token_latency_seconds": "histogram",
    "vllm:request_time_per_output_token_seconds": "histogram",
    "vllm:e2e_request_latency_seconds": "histogram",
    "vllm:request_queue_time_seconds": "histogram",
    "vllm:request_inference_time_seconds": "histogram",
    "vllm:request_prefill_time_seconds": "histogram",
    "vllm:request_decode_time_seconds": "histogram",
    "vllm:request_prompt_tokens": "histogram",
    "vllm:request_generation_tokens": "histogram",
    "vllm:iteration_tokens_total": "histogram",
    "vllm:cache_config_info": "gauge",
    "http_requests_total": "counter",
}
RENAMED_IN_NEW = {  # new name -> the name older vLLM releases expose
    "vllm:kv_cache_usage_perc": "vllm:gpu_cache_usage_perc",
    "vllm:inter_token_latency_seconds": "vllm:time_per_output_token_seconds",
    "vllm:prefix_cache_queries_total": "vllm:gpu_prefix_cache_queries_total",
    "vllm:prefix_cache_hits_total": "vllm:gpu_prefix_cache_hits_total",
}
LEGACY_VLLM_TYPES = {RENAMED_IN_NEW.get(name, name): t for name, t in NEW_VLLM_TYPES.items()}
ADDED_LATER = {"vllm:request_time_per_output_token_seconds"}  # may be absent on old engines

DCGM_DEFAULT_TYPES = {
    "DCGM_FI_DEV_GPU_UTIL": "gauge",
    "DCGM_FI_DEV_MEM_COPY_UTIL": "gauge",
    "DCGM_FI_DEV_FB_USED": "gauge",
    "DCGM_FI_DEV_FB_FREE": "gauge",
    "DCGM_FI_DEV_GPU_TEMP": "gauge",
    "DCGM_FI_DEV_MEMORY_TEMP": "gauge",
    "DCGM_FI_DEV_POWER_USAGE": "gauge",
    "DCGM_FI_DEV_SM_CLOCK": "gauge",
    "DCGM_FI_DEV_XID_ERRORS": "gauge",
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": "counter",
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": "counter",
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": "counter",
    "DCGM_FI_DEV_ROW_REMAP_FAILURE": "gauge",
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE": "gauge",
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": "gauge",
    "DCGM_FI_PROF_DRAM_ACTIVE": "gauge",
}
DCGM_ECC_TYPES = {
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": "counter",
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": "counter",
}
DCGM_COUNTERS_WITHOUT_TOTAL = (
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
)
DCGM_GPU_LABELS = {"gpu", "UUID", "pci_bus_id", "device", "modelName"}
K8S_LABELS = {"pod", "namespace", "container"}

# Bucket bounds from vllm/v1/metrics/loggers.py.
TTFT_BOUNDS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
    10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
ITL_BOUNDS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0,
)  # fmt: skip
REQUEST_LATENCY_BOUNDS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
    240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
ITERATION_TOKEN_BOUNDS = (
    1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0,
)  # fmt: skip
# build_1_2_5_buckets(max_model_len=131072)
TOKEN_COUNT_BOUNDS = (
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0,
    20000.0, 50000.0, 100000.0,
)  # fmt: skip
HISTOGRAM_BOUNDS = {
    "vllm:time_to_first_token_seconds": TTFT_BOUNDS,
    "vllm:inter_token_latency_seconds": ITL_BOUNDS,
    "vllm:time_per_output_token_seconds": ITL_BOUNDS,
    "vllm:request_time_per_output_token_seconds": ITL_BOUNDS,
    "vllm:e2e_request_latency_seconds": REQUEST_LATENCY_BOUNDS,
    "vllm:request_queue_time_seconds": REQUEST_LATENCY_BOUNDS,
    "vllm:request_inference_time_seconds": REQUEST_LATENCY_BOUNDS,
    "vllm:request_prefill_time_seconds": REQUEST_LATENCY_BOUNDS,
    "vllm:request_decode_time_seconds": REQUEST_LATENCY_BOUNDS,
    "vllm:request_prompt_tokens": TOKEN_COUNT_BOUNDS,
    "vllm:request_generation_tokens": TOKEN_COUNT_BOUNDS,
    "vllm:iteration_tokens_total": ITERATION_TOKEN_BOUNDS,
}


# --- helpers -----------------------------------------------------------------------------


def make_fleet(
    *,
    replicas: int = 4,
    gpus_per_replica: int = 4,
    gpus_per_node: int = 8,
    models: tuple[str, ...] = ("llama-3.1-70b-instruct",),
    namespace: str = "inference",
    legacy_fraction: float = 0.0,
    seed: int = 7,
) -> Fleet:
    return build_fleet(
        replicas=replicas,
        gpus_per_replica=gpus_per_replica,
        gpus_per_node=gpus_per_node,
        models=models,
        namespace=namespace,
        legacy_fraction=legacy_fraction,
        seed=seed,
        now=T0,
    )


def advanced(replica: Replica, now: float) -> str:
    replica.advance(now)
    return replica_metrics(replica)


SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


def cumulative_samples(text: str) -> dict[SeriesKey, float]:
    """Every sample of every counter and histogram family, keyed by name and labels."""
    out: dict[SeriesKey, float] = {}
    for family in text_string_to_metric_families(text):
        if family.type in ("counter", "histogram"):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def engine_samples(text: str) -> list[tuple[str, Labels]]:
    """(name, labels) of every vLLM engine sample (vllm:*, without the config info)."""
    return [
        (s.name, dict(s.labels))
        for s in samples(text)
        if s.name.startswith("vllm:") and s.name != "vllm:cache_config_info"
    ]


# --- vLLM names, types and labels --------------------------------------------------------


def test_new_replicas_expose_the_current_vllm_names_and_types() -> None:
    fleet = make_fleet(legacy_fraction=0.0)
    for replica in fleet.replicas:
        assert not replica.legacy
        text = replica_metrics(replica)
        assert declared_types(text) == NEW_VLLM_TYPES
        for old in RENAMED_IN_NEW.values():
            assert old not in text


def test_legacy_replicas_expose_the_old_vllm_names() -> None:
    fleet = make_fleet(legacy_fraction=1.0)
    for replica in fleet.replicas:
        assert replica.legacy
        declared = declared_types(replica_metrics(replica))
        assert {n: t for n, t in declared.items() if n not in ADDED_LATER} == {
            n: t for n, t in LEGACY_VLLM_TYPES.items() if n not in ADDED_LATER
        }
        for new in RENAMED_IN_NEW:
            assert new not in declared


def test_new_replicas_label_every_engine_series_with_model_and_engine_zero() -> None:
    fleet = make_fleet(legacy_fraction=0.0, models=("mistral-7b", "llama-3.1-8b"))
    assert {r.model for r in fleet.replicas} == {"mistral-7b", "llama-3.1-8b"}
    for replica in fleet.replicas:
        found = engine_samples(replica_metrics(replica))
        assert len(found) > 100
        for name, labels in found:
            assert labels.get("engine") == "0", name
            assert labels.get("model_name") == replica.model, name


def test_legacy_replicas_have_no_engine_label() -> None:
    fleet = make_fleet(legacy_fraction=1.0)
    for replica in fleet.replicas:
        found = engine_samples(replica_metrics(replica))
        assert len(found) > 100
        for name, labels in found:
            assert "engine" not in labels, name
            assert labels.get("model_name") == replica.model, name


@pytest.mark.parametrize("legacy", [False, True])
def test_request_success_reasons_and_http_statuses(legacy: bool) -> None:
    replica = make_fleet(legacy_fraction=float(legacy)).replicas[0]
    text = replica_metrics(replica)
    reasons = {
        labels["finished_reason"] for labels, _ in series(text, "vllm:request_success_total")
    }
    assert {"stop", "length", "abort"} <= reasons
    assert ("error" in reasons) is not legacy
    statuses = {labels["status"] for labels, _ in series(text, "http_requests_total")}
    assert statuses == {"2xx", "4xx", "5xx"}
    assert value(text, "http_requests_total", status="2xx") > value(
        text, "http_requests_total", status="5xx"
    )


def test_cache_config_info_is_a_constant_one_with_the_config_as_labels() -> None:
    text = replica_metrics(make_fleet().replicas[0])
    [(labels, info)] = series(text, "vllm:cache_config_info")
    assert info == 1.0
    assert labels["gpu_memory_utilization"] == "0.9"
    assert labels["enable_prefix_caching"] == "True"
    assert labels["block_size"] == "16"
    assert int(labels["num_gpu_blocks"]) > 0


def test_kv_cache_usage_is_a_fraction() -> None:
    fleet = make_fleet(legacy_fraction=0.5, replicas=8)
    for replica in fleet.replicas:
        name = "vllm:gpu_cache_usage_perc" if replica.legacy else "vllm:kv_cache_usage_perc"
        usage = value(replica_metrics(replica), name)
        assert 0.05 < usage < 1.0


# --- DCGM names, types and labels --------------------------------------------------------


@pytest.mark.parametrize("ecc", [True, False])
def test_dcgm_families_match_the_default_counters(ecc: bool) -> None:
    fleet = make_fleet(legacy_fraction=0.5, replicas=8)
    expected = DCGM_DEFAULT_TYPES | (DCGM_ECC_TYPES if ecc else {})
    for node in fleet.nodes:
        assert declared_types(node_metrics(node, T0 + 1, ecc_counters=ecc)) == expected


def test_dcgm_counters_have_no_total_suffix_in_the_raw_text() -> None:
    node = make_fleet().nodes[0]
    lines = node_metrics(node, T0 + 1).splitlines()
    for name in DCGM_COUNTERS_WITHOUT_TOTAL:
        assert f"# TYPE {name} counter" in lines
        written = [line for line in lines if line.startswith(f"{name}{{")]
        assert len(written) == len(node.gpus)
        assert not [line for line in lines if line.startswith(f"{name}_total")]
    appended = [line for line in lines if re.match(r"^DCGM_\w+_total[{ ]", line)]
    assert appended == []


def test_dcgm_host_label_is_spelled_by_exporter_version() -> None:
    fleet = make_fleet(legacy_fraction=0.5, replicas=8)
    assert {n.legacy for n in fleet.nodes} == {True, False}, "the seed must mix versions"
    for node in fleet.nodes:
        host, other = ("Hostname", "hostname") if node.legacy else ("hostname", "Hostname")
        found = samples(node_metrics(node, T0 + 1))
        assert len(found) >= len(DCGM_DEFAULT_TYPES) * len(node.gpus)
        for s in found:
            assert s.labels.get(host) == node.name, s
            assert other not in s.labels, s
            assert set(s.labels) >= DCGM_GPU_LABELS, s


def test_every_dcgm_host_label_is_lowercase_without_legacy_nodes() -> None:
    fleet = make_fleet(legacy_fraction=0.0, replicas=8)
    for node in fleet.nodes:
        assert not node.legacy
        assert 'Hostname="' not in node_metrics(node, T0 + 1)
    fleet = make_fleet(legacy_fraction=1.0, replicas=8)
    for node in fleet.nodes:
        assert 'hostname="' not in node_metrics(node, T0 + 1)


def test_gpus_carry_the_labels_of_the_pod_using_them_and_unused_gpus_none() -> None:
    # 3 replicas of 3 GPUs on 8-GPU nodes: two replicas per node, 7 GPUs left idle.
    fleet = make_fleet(replicas=3, gpus_per_replica=3, namespace="llm-prod")
    assert [n.name for n in fleet.nodes] == ["gpu-node-001", "gpu-node-002"]
    owner = {(g.node, g.index): r for r in fleet.replicas for g in r.gpus}
    assert len(owner) == 9
    for replica in fleet.replicas:
        assert len({g.node for g in replica.gpus}) == 1, "a replica never spans nodes"
    unused = 0
    for node in fleet.nodes:
        per_gpu: dict[str, list[Labels]] = defaultdict(list)
        for s in samples(node_metrics(node, T0 + 1)):
            per_gpu[s.labels["gpu"]].append(dict(s.labels))
        assert sorted(per_gpu, key=int) == [str(i) for i in range(8)]
        for gpu in node.gpus:
            user = owner.get((node.name, gpu.index))
            unused += user is None
            for labels in per_gpu[str(gpu.index)]:
                assert labels["UUID"] == gpu.uuid
                if user is None:
                    assert not K8S_LABELS & set(labels), labels
                else:
                    assert labels["pod"] == user.pod
                    assert labels["namespace"] == "llm-prod"
                    assert labels["container"] == "vllm"
    assert unused == 7


# --- histograms --------------------------------------------------------------------------


@pytest.mark.parametrize("legacy", [False, True])
def test_histograms_are_cumulative_and_use_the_vllm_bounds(legacy: bool) -> None:
    replica = make_fleet(legacy_fraction=float(legacy)).replicas[0]
    text = advanced(replica, T0 + 30)
    histograms = [f for f in text_string_to_metric_families(text) if f.type == "histogram"]
    names = {f.name for f in histograms}
    assert "vllm:time_to_first_token_seconds" in names
    assert ("vllm:time_per_output_token_seconds" in names) is legacy
    assert len(histograms) >= 10
    for family in histograms:
        buckets: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = defaultdict(list)
        counts: dict[tuple[tuple[str, str], ...], float] = {}
        sums: dict[tuple[tuple[str, str], ...], float] = {}
        for s in family.samples:
            key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
            if s.name.endswith("_bucket"):
                buckets[key].append((float(s.labels["le"]), float(s.value)))
            elif s.name.endswith("_count"):
                counts[key] = float(s.value)
            elif s.name.endswith("_sum"):
                sums[key] = float(s.value)
        assert buckets.keys() == counts.keys() == sums.keys(), family.name
        for key, pairs in buckets.items():
            pairs.sort()
            bounds = [le for le, _ in pairs]
            values = [v for _, v in pairs]
            assert bounds[-1] == math.inf, family.name
            assert tuple(bounds[:-1]) == HISTOGRAM_BOUNDS[family.name], family.name
            assert all(a <= b for a, b in itertools.pairwise(values)), family.name
            assert values[-1] == counts[key], family.name
            assert counts[key] > 0, family.name
            assert sums[key] > 0, family.name


def test_ttft_mean_lies_inside_the_histogram() -> None:
    replica = make_fleet().replicas[0]
    text = advanced(replica, T0 + 30)
    count = value(text, "vllm:time_to_first_token_seconds_count")
    mean = value(text, "vllm:time_to_first_token_seconds_sum") / count
    assert 0.01 < mean < 2.0  # a healthy engine answers in well under two seconds
    below_2_5 = value(text, "vllm:time_to_first_token_seconds_bucket", le="2.5")
    assert below_2_5 / count > 0.95


# --- values over time --------------------------------------------------------------------


@pytest.mark.parametrize("legacy", [False, True])
def test_counters_never_decrease_across_advances(legacy: bool) -> None:
    replica = make_fleet(legacy_fraction=float(legacy)).replicas[1]
    previous = cumulative_samples(advanced(replica, T0 + 5))
    assert len(previous) > 200
    grew: set[str] = set()
    for step in range(2, 13):
        current = cumulative_samples(advanced(replica, T0 + 5 * step))
        assert current.keys() == previous.keys()
        for key, before in previous.items():
            assert current[key] >= before, (key, before, current[key])
            if current[key] > before:
                grew.add(key[0])
        previous = current
    prompt = "vllm:prompt_tokens_total"
    assert {prompt, "vllm:time_to_first_token_seconds_count", "http_requests_total"} <= grew


def test_counters_strictly_grow_while_there_is_load() -> None:
    replica = make_fleet().replicas[2]
    tracked: tuple[tuple[str, dict[str, str]], ...] = (
        ("vllm:prompt_tokens_total", {}),
        ("vllm:generation_tokens_total", {}),
        ("vllm:prefix_cache_queries_total", {}),
        ("vllm:request_success_total", {"finished_reason": "stop"}),
        ("vllm:time_to_first_token_seconds_count", {}),
        ("vllm:e2e_request_latency_seconds_sum", {}),
        ("http_requests_total", {"status": "2xx"}),
    )
    text = advanced(replica, T0 + 5)
    before = [value(text, name, **labels) for name, labels in tracked]
    for step in range(2, 8):
        text = advanced(replica, T0 + 5 * step)
        assert replica.state is not None and replica.state.served_rps > 0
        now = [value(text, name, **labels) for name, labels in tracked]
        for (name, _), a, b in zip(tracked, before, now, strict=True):
            assert b > a, (name, a, b)
        before = now


def test_restart_resets_counters_and_moves_process_start() -> None:
    replica = make_fleet().replicas[0]
    text = advanced(replica, T0 + 10)
    started = value(text, "process_start_time_seconds")
    assert started < T0 - 3600  # the fixture fleet has been serving for hours
    before = cumulative_samples(text)
    prompt_before = value(text, "vllm:prompt_tokens_total")

    replica.restart(T0 + 20)
    text = advanced(replica, T0 + 25)
    assert value(text, "process_start_time_seconds") == T0 + 20
    after = cumulative_samples(text)
    assert after.keys() == before.keys()
    assert all(after[k] <= before[k] for k in before)
    assert value(text, "vllm:prompt_tokens_total") < prompt_before / 100
    assert value(text, "vllm:time_to_first_token_seconds_count") < 200  # ~5 s of requests

    # and from there it counts up again
    again = cumulative_samples(advanced(replica, T0 + 30))
    assert all(again[k] >= after[k] for k in after)


def test_gauges_move_over_time() -> None:
    fleet = make_fleet()
    replica = fleet.replicas[0]
    node = fleet.node(replica.gpus[0].node)
    assert node is not None
    running, kv, util, temp = [], [], [], []
    for step in range(1, 11):
        now = T0 + 5 * step
        for r in fleet.replicas:
            r.advance(now)
        text = replica_metrics(replica)
        running.append(value(text, "vllm:num_requests_running"))
        kv.append(value(text, "vllm:kv_cache_usage_perc"))
        dcgm = node_metrics(node, now)
        gpu = str(replica.gpus[0].index)
        util.append(value(dcgm, "DCGM_FI_DEV_GPU_UTIL", gpu=gpu))
        temp.append(value(dcgm, "DCGM_FI_DEV_GPU_TEMP", gpu=gpu))
    assert len(set(running)) > 1
    assert len(set(kv)) > 1
    assert len(set(util)) > 1
    assert all(20 < u < 95 for u in util), util  # a healthy, loaded GPU
    assert all(35 < t < 80 for t in temp), temp


# --- determinism -------------------------------------------------------------------------


def test_same_seed_same_fleet_other_seed_other_names() -> None:
    a = make_fleet(seed=5, replicas=6)
    b = make_fleet(seed=5, replicas=6)
    c = make_fleet(seed=6, replicas=6)
    assert [r.pod for r in a.replicas] == [r.pod for r in b.replicas]
    assert [g.uuid for n in a.nodes for g in n.gpus] == [g.uuid for n in b.nodes for g in n.gpus]
    assert replica_metrics(a.replicas[3]) == replica_metrics(b.replicas[3])
    assert node_metrics(a.nodes[1], T0 + 1) == node_metrics(b.nodes[1], T0 + 1)
    assert not {r.pod for r in a.replicas} & {r.pod for r in c.replicas}
    assert not {g.uuid for n in a.nodes for g in n.gpus} & {g.uuid for n in c.nodes for g in n.gpus}


def test_pod_names_look_like_a_deployment_and_are_unique() -> None:
    fleet = make_fleet(replicas=40, models=("Llama-3.1-70B-Instruct",))
    pods = [r.pod for r in fleet.replicas]
    assert len(set(pods)) == 40
    for pod in pods:
        assert re.fullmatch(r"vllm-llama-3-1-70b-instruct-[0-9bcdf]{10}-[a-z0-9]{5}", pod), pod
    assert len({r.instance for r in fleet.replicas}) == 40


def test_pod_names_are_unique_at_fleet_scale() -> None:
    fleet = build_fleet(replicas=2000, gpus_per_replica=4, seed=11, now=T0)
    assert len({r.pod for r in fleet.replicas}) == 2000


# --- escaping ----------------------------------------------------------------------------

AWKWARD = {"quote": 'say "hi"', "backslash": "C:\\path\\", "newline": "two\nlines", "plain": "x"}


def test_format_labels_escapes_quotes_backslashes_and_newlines() -> None:
    assert format_labels({}) == ""
    assert format_labels(AWKWARD) == (
        '{quote="say \\"hi\\"",backslash="C:\\\\path\\\\",newline="two\\nlines",plain="x"}'
    )
    [parsed] = samples(f"m{format_labels(AWKWARD)} 1\n")
    assert parsed.labels == AWKWARD


def test_writer_round_trips_awkward_labels_in_samples_and_histograms() -> None:
    from bot.simulator.catalog import Family

    writer = ExpositionWriter()
    writer.sample(Family("g", "gauge", 'help with "quotes" \\ and\nnewline'), AWKWARD, 2.5)
    writer.histogram(Family("h", "histogram", "h"), AWKWARD, (1.0, 2.0), (1, 3, 4), 6.5)
    text = writer.render()
    assert value(text, "g", **AWKWARD) == 2.5
    assert value(text, "h_bucket", le="2.0", **AWKWARD) == 3
    assert value(text, "h_bucket", le="+Inf", **AWKWARD) == 4
    assert value(text, "h_count", **AWKWARD) == 4
    assert value(text, "h_sum", **AWKWARD) == 6.5


def test_awkward_model_names_survive_the_replica_exposition() -> None:
    model = 'org/"quoted"\\model\nv2'
    fleet = make_fleet(models=(model,), replicas=1)
    found = engine_samples(replica_metrics(fleet.replicas[0]))
    assert found
    assert {labels["model_name"] for _, labels in found} == {model}


# --- validation --------------------------------------------------------------------------


def test_build_fleet_rejects_replicas_wider_than_a_node() -> None:
    with pytest.raises(ValueError, match=r"gpus_per_replica \(9\).*gpus_per_node \(8\)"):
        build_fleet(replicas=2, gpus_per_replica=9, gpus_per_node=8, now=T0)


@pytest.mark.parametrize("replicas", [0, -1])
def test_build_fleet_rejects_fewer_than_one_replica(replicas: int) -> None:
    with pytest.raises(ValueError, match="replicas"):
        build_fleet(replicas=replicas, gpus_per_replica=4, now=T0)


def test_build_fleet_rejects_a_legacy_fraction_outside_zero_to_one() -> None:
    with pytest.raises(ValueError, match="legacy_fraction"):
        build_fleet(replicas=2, gpus_per_replica=4, legacy_fraction=1.5, now=T0)


def test_build_fleet_places_replicas_on_enough_nodes() -> None:
    fleet = make_fleet(replicas=5, gpus_per_replica=4, gpus_per_node=8)
    assert len(fleet.nodes) == 3
    assert all(len(n.gpus) == 8 for n in fleet.nodes)
    used = [(g.node, g.index) for r in fleet.replicas for g in r.gpus]
    assert len(used) == len(set(used)) == 20
