"""The simulator as a real Prometheus sees it: every scenario says in PromQL what it claims.

One fleet (half old vLLM/DCGM, half new) and one Prometheus for the module; each test
switches the scenario at run time and waits until the claimed symptom shows.
"""

from __future__ import annotations

import pytest
from fleet_stack import FleetStack, eventually

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

KV = "(vllm:kv_cache_usage_perc or vllm:gpu_cache_usage_perc)"
TPOT_BUCKETS = (
    '{__name__=~"vllm:inter_token_latency_seconds_bucket'
    '|vllm:time_per_output_token_seconds_bucket"}'
)
TTFT_P99 = (
    "histogram_quantile(0.99, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket[{w}])))"
)


def host(labels: dict[str, str]) -> str:
    return labels.get("hostname") or labels["Hostname"]


def test_every_exporter_is_its_own_target(mixed_fleet: FleetStack) -> None:
    fleet = mixed_fleet.simulator.fleet
    assert mixed_fleet.scalar('count(up{job="vllm"} == 1)') == len(fleet.replicas)
    assert mixed_fleet.scalar('count(up{job="dcgm-exporter"} == 1)') == len(fleet.nodes)
    pods = {labels["pod"] for labels, _ in mixed_fleet.vector('up{job="vllm"}')}
    assert pods == {r.pod for r in fleet.replicas}
    instances = {labels["instance"] for labels, _ in mixed_fleet.vector("up")}
    assert len(instances) == len(fleet.replicas) + len(fleet.nodes)


def test_mixed_versions_need_both_names(mixed_fleet: FleetStack) -> None:
    fleet = mixed_fleet.simulator.fleet
    legacy = sum(r.legacy for r in fleet.replicas)
    assert 0 < legacy < len(fleet.replicas), "the fixture fleet must mix versions"
    mixed_fleet.switch("healthy")  # whatever ran before (a replica down) is undone

    def every_replica_scraped() -> None:  # targets are up before each was scraped once
        assert len(mixed_fleet.vector("vllm:gpu_cache_usage_perc")) == legacy
        assert len(mixed_fleet.vector("vllm:kv_cache_usage_perc")) == len(fleet.replicas) - legacy
        assert len(mixed_fleet.vector(KV)) == len(fleet.replicas)

    eventually(every_replica_scraped, timeout_s=30)
    assert len(mixed_fleet.vector(f"rate({TPOT_BUCKETS}[5s])")) > 0
    old_hosts = mixed_fleet.vector('count by (Hostname) (DCGM_FI_DEV_GPU_UTIL{Hostname!=""})')
    new_hosts = mixed_fleet.vector('count by (hostname) (DCGM_FI_DEV_GPU_UTIL{hostname!=""})')
    assert old_hosts and new_hosts
    assert {host(m) for m, _ in old_hosts + new_hosts} == {n.name for n in fleet.nodes}


def test_healthy_fleet_is_quiet(mixed_fleet: FleetStack) -> None:
    mixed_fleet.switch("healthy")

    def quiet() -> None:
        assert mixed_fleet.scalar(TTFT_P99.format(w="10s")) < 2.0
        assert mixed_fleet.scalar("max(vllm:num_requests_waiting)") < 10
        assert mixed_fleet.scalar(f"max({KV})") < 0.85
        assert mixed_fleet.scalar("max(DCGM_FI_DEV_XID_ERRORS)") == 0
        assert mixed_fleet.scalar("max(DCGM_FI_DEV_GPU_TEMP)") < 80
        errors = mixed_fleet.scalar(
            'sum(rate(http_requests_total{status="5xx"}[10s]))'
            " / sum(rate(http_requests_total[10s]))"
        )
        assert errors < 0.005

    eventually(quiet, timeout_s=40)


def test_underprovisioned_queue_grows_and_gpus_saturate(mixed_fleet: FleetStack) -> None:
    truth = mixed_fleet.switch("underprovisioned")
    assert truth.action == "scale"

    def backlog() -> float:
        waiting = mixed_fleet.scalar("min(vllm:num_requests_waiting)")
        assert waiting > 50
        assert mixed_fleet.scalar(TTFT_P99.format(w="10s")) > 5.0
        assert mixed_fleet.scalar('avg(DCGM_FI_DEV_GPU_UTIL{pod!=""})') > 90
        return waiting

    first = eventually(backlog, timeout_s=40)
    eventually(lambda: _grew(mixed_fleet, "min(vllm:num_requests_waiting)", first), 20)


def _grew(stack: FleetStack, promql: str, before: float) -> None:
    assert stack.scalar(promql) > before


def test_long_prefill_shows_in_prompt_lengths(mixed_fleet: FleetStack) -> None:
    mixed_fleet.switch("long_prefill")

    def symptoms() -> None:
        prompt_p99 = mixed_fleet.scalar(
            "histogram_quantile(0.99, sum by (le) (rate(vllm:request_prompt_tokens_bucket[15s])))"
        )
        assert prompt_p99 > 30_000
        assert mixed_fleet.scalar(TTFT_P99.format(w="15s")) > 2.0
        assert 10 <= mixed_fleet.scalar("avg(vllm:num_requests_waiting)") <= 100
        assert mixed_fleet.scalar(f"max({KV})") < 0.85

    eventually(symptoms, timeout_s=45)


def test_kv_cache_pressure_names_the_right_replicas(mixed_fleet: FleetStack) -> None:
    truth = mixed_fleet.switch("kv_cache_pressure")
    expected = {f.pod for f in truth.faults}

    def pressured() -> None:
        hot = {m["pod"] for m, _ in mixed_fleet.vector(f"{KV} >= 0.95")}
        assert hot == expected
        preempting = {
            m["pod"] for m, _ in mixed_fleet.vector("rate(vllm:num_preemptions_total[10s]) > 0")
        }
        assert preempting == expected

    eventually(pressured, timeout_s=30)


def test_underutilized_gpus_idle_while_latency_climbs(mixed_fleet: FleetStack) -> None:
    mixed_fleet.switch("underutilized")

    def symptoms() -> None:
        assert mixed_fleet.scalar('avg(DCGM_FI_DEV_GPU_UTIL{pod!=""})') < 30
        assert mixed_fleet.scalar("max(vllm:num_requests_running)") <= 8
        assert mixed_fleet.scalar(TTFT_P99.format(w="10s")) > 5.0

    eventually(symptoms, timeout_s=40)


@pytest.mark.parametrize("code", [48, 13])
def test_xid_on_exactly_the_faulty_gpu(mixed_fleet: FleetStack, code: int) -> None:
    truth = mixed_fleet.switch(f"xid_{code}")
    (fault,) = truth.faults
    assert truth.action == ("drain" if code == 48 else "restart")

    def reported() -> None:
        series = mixed_fleet.vector(f"DCGM_FI_DEV_XID_ERRORS == {code}")
        assert len(series) == 1
        labels = series[0][0]
        assert (host(labels), labels["gpu"], labels["UUID"]) == (fault.node, fault.gpu, fault.uuid)
        assert labels["pod"] == fault.pod
        assert mixed_fleet.scalar("count(DCGM_FI_DEV_XID_ERRORS != 0)") == 1

    eventually(reported, timeout_s=20)
    dbe = mixed_fleet.vector(f'DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{{UUID="{fault.uuid}"}}')
    assert dbe[0][1] == (1 if code == 48 else 0)


def test_xid_79_gpu_gone_and_replica_down(mixed_fleet: FleetStack) -> None:
    truth = mixed_fleet.switch("xid_79")
    (fault,) = truth.faults

    def gone() -> None:
        assert mixed_fleet.scalar(f'up{{pod="{fault.pod}"}}') == 0
        xid = mixed_fleet.vector("DCGM_FI_DEV_XID_ERRORS == 79")
        assert [m["UUID"] for m, _ in xid] == [fault.uuid]
        assert mixed_fleet.vector(f'DCGM_FI_DEV_GPU_UTIL{{UUID="{fault.uuid}"}}') == []

    eventually(gone, timeout_s=20)


def test_thermal_one_gpu_hot(mixed_fleet: FleetStack) -> None:
    truth = mixed_fleet.switch("thermal")
    (fault,) = truth.faults

    def hot() -> None:
        series = mixed_fleet.vector("DCGM_FI_DEV_GPU_TEMP >= 85")
        assert [(host(m), m["gpu"]) for m, _ in series] == [(fault.node, fault.gpu)]
        assert 86 <= series[0][1] <= 88

    eventually(hot, timeout_s=20)


def test_error_burst_on_the_named_replicas(mixed_fleet: FleetStack) -> None:
    truth = mixed_fleet.switch("error_burst")
    expected = {f.pod for f in truth.faults}
    ratio = (
        'sum by (pod) (rate(vllm:request_success_total{finished_reason=~"error|abort"}[10s]))'
        " / sum by (pod) (rate(vllm:request_success_total[10s]))"
    )

    def erroring() -> None:
        assert {m["pod"] for m, _ in mixed_fleet.vector(f"{ratio} > 0.02")} == expected

    eventually(erroring, timeout_s=30)


def test_oom_crash_loop_flaps_and_resets_counters(mixed_fleet: FleetStack) -> None:
    truth = mixed_fleet.switch("oom_crash_loop")
    (fault,) = truth.faults
    up = f'up{{pod="{fault.pod}"}}'

    eventually(lambda: _equals(mixed_fleet, up, 0.0), timeout_s=40)
    eventually(lambda: _equals(mixed_fleet, up, 1.0), timeout_s=30)
    restarts = f'changes(process_start_time_seconds{{pod="{fault.pod}"}}[2m])'
    eventually(lambda: _at_least(mixed_fleet, restarts, 1.0), timeout_s=10)
    resets = f'resets(vllm:prompt_tokens_total{{pod="{fault.pod}"}}[2m])'
    eventually(lambda: _at_least(mixed_fleet, resets, 1.0), timeout_s=10)
    config = mixed_fleet.vector(f'vllm:cache_config_info{{pod="{fault.pod}"}}')
    assert config[0][0]["gpu_memory_utilization"] == "0.98"


def _equals(stack: FleetStack, promql: str, value: float) -> None:
    assert stack.scalar(promql) == value


def _at_least(stack: FleetStack, promql: str, value: float) -> None:
    assert stack.scalar(promql) >= value
