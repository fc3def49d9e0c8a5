"""A small fluid model of one vLLM engine: load in, gauges and latency distributions out.

Pure functions over plain dataclasses, so the physics can be tested without a server.
The numbers are shaped like a 70B model on 4 H100s; what matters is that every metric
moves the way it does on a real engine when the fleet is healthy or broken.

The queue is a fluid: arrivals above the engine's capacity pile up in it, spare capacity
drains it, and while it holds a backlog the engine runs a full batch fed from it. Clients
wait at most ``client_timeout_s`` for their request to start: a replica can start no more
than ``capacity x client_timeout_s`` queued requests within that time, so a backlog beyond
that is abandoned — those requests finish as ``abort`` — and the queue, and the queue wait
in TTFT, stay bounded by the timeout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z99 = 2.3263  # standard-normal 99th percentile


@dataclass
class EngineProfile:
    """The conditions a scenario imposes on one replica."""

    arrival_rps: float = 6.0
    capacity_rps: float = 10.0  # completions per second the engine can sustain
    max_num_seqs: int = 256
    scheduler_seq_cap: int | None = None  # a misconfigured, too-small batch limit
    prompt_median: float = 1200.0
    prompt_sigma: float = 0.9
    generation_median: float = 220.0
    generation_sigma: float = 0.6
    prefill_tokens_per_s: float = 40_000.0
    tpot_base_s: float = 0.018
    tpot_per_running_s: float = 0.00012
    tpot_factor: float = 1.0  # > 1 when the GPU throttles
    kv_capacity_tokens: float = 200_000.0
    kv_floor: float | None = None  # memory pressure: usage pinned at or above this
    queue_floor: float = 0.0  # extra head-of-line waiting (long prefills)
    client_timeout_s: float = 60.0  # a request not started within this is abandoned
    error_fraction: float = 0.0005
    abort_fraction: float = 0.002
    prefix_hit_rate: float = 0.35
    gpu_memory_utilization: str = "0.9"
    fb_leak_mib_per_s: float = 0.0  # a leaking build: framebuffer use climbs while it runs
    enable_prefix_caching: str = "True"
    max_model_len: int = 131_072


@dataclass
class EngineState:
    """What the engine looks like right now (gauges) and how requests fare (distributions)."""

    waiting: float
    running: float
    kv_usage: float
    served_rps: float
    aborted_rps: float
    gpu_util_pct: float
    prefill_median_s: float
    queue_wait_s: float
    ttft_median_s: float
    tpot_s: float
    preemptions_per_s: float


def lognormal_mean(median: float, sigma: float) -> float:
    return median * math.exp(sigma * sigma / 2)


def lognormal_cdf(x: float, median: float, sigma: float) -> float:
    if x <= 0:
        return 0.0
    return 0.5 * (1.0 + math.erf(math.log(x / median) / (sigma * math.sqrt(2.0))))


def step(
    profile: EngineProfile, waiting: float, load: float, dt: float, share: float = 1.0
) -> EngineState:
    """Advance the queue by ``dt`` seconds at ``load`` times the profile's arrival rate.

    ``share``: this replica's part of its Deployment's demand relative to the nominal one,
    as the Deployment's load balancer routes it (fewer replicas serving → more each; a
    replica with a long queue gets less, see ``fleet.Balancer``). A pinned KV floor eases in
    proportion when the share drops: the sequences that filled the cache are spread over
    more replicas.
    """
    arrival = profile.arrival_rps * load * share
    prompt_mean = lognormal_mean(profile.prompt_median, profile.prompt_sigma)
    generation_mean = lognormal_mean(profile.generation_median, profile.generation_sigma)
    prompt_p99 = profile.prompt_median * math.exp(Z99 * profile.prompt_sigma)

    prefill_median_s = 0.02 + profile.prompt_median / profile.prefill_tokens_per_s
    prefill_mean_s = 0.02 + prompt_mean / profile.prefill_tokens_per_s
    batch_limit = min(profile.max_num_seqs, profile.scheduler_seq_cap or profile.max_num_seqs)

    def batch(offered: float) -> tuple[float, float, float]:
        """Running sequences, TPOT and service time when ``offered`` req/s feed the batch.

        TPOT depends on the batch, the batch on TPOT: two fixed-point rounds are plenty.
        """
        p = profile
        running = min(batch_limit, offered * 6.0)
        tpot = p.tpot_base_s
        service_s = prefill_mean_s
        for _ in range(2):
            tpot = (p.tpot_base_s + p.tpot_per_running_s * running) * p.tpot_factor
            service_s = prefill_mean_s + generation_mean * tpot
            capacity = min(profile.capacity_rps, batch_limit / service_s)
            running = min(batch_limit, min(offered, capacity) * service_s)
        return running, tpot, service_s

    running, tpot, service_s = batch(arrival)
    capacity = min(profile.capacity_rps, batch_limit / service_s)
    rho = arrival / capacity
    steady_waiting = profile.queue_floor + 6.0 * min(rho, 1.0) ** 6
    backlog = waiting > steady_waiting + 1
    if backlog and arrival < capacity:
        # draining: the queue, not the arrivals, feeds the batch as fast as it serves
        running, tpot, service_s = batch(profile.capacity_rps)
        capacity = min(profile.capacity_rps, batch_limit / service_s)
    if arrival > capacity:
        waiting = waiting + (arrival - capacity) * dt
        served = capacity
    else:
        # drain towards the steady queue at the spare capacity, never below it; what
        # left the queue was served
        drained = max(0.0, waiting - max(steady_waiting, waiting - (capacity - arrival) * dt))
        waiting = max(steady_waiting, waiting - drained)
        served = min(capacity, arrival + drained / max(dt, 1e-9))
    # what the engine can start before its clients give up; the rest is abandoned
    bound = max(steady_waiting, capacity * profile.client_timeout_s)
    aborted = 0.0
    if waiting > bound:
        aborted = (waiting - bound) / max(dt, 1e-9)
        waiting = bound
    if waiting > steady_waiting + 1 and profile.scheduler_seq_cap:
        running = batch_limit  # a scheduler cap refills every freed slot at once

    queue_wait_s = waiting / max(capacity, 1e-6)
    head_of_line_s = max(0.0, prompt_p99 - 8192) / profile.prefill_tokens_per_s
    kv_usage = min(1.0, running * (prompt_mean + generation_mean) / profile.kv_capacity_tokens)
    if profile.kv_floor is not None:
        kv_usage = max(kv_usage, profile.kv_floor * min(1.0, share))
    preemptions = 0.0 if kv_usage < 0.92 else 40.0 * (kv_usage - 0.92) * (1 + running / 64)
    full_batch = profile.capacity_rps * service_s
    gpu_util = 100.0 * min(1.0, running / max(full_batch, 1e-6))
    return EngineState(
        waiting=waiting,
        running=running,
        kv_usage=kv_usage,
        served_rps=served,
        aborted_rps=aborted,
        gpu_util_pct=gpu_util,
        prefill_median_s=prefill_median_s,
        queue_wait_s=queue_wait_s,
        ttft_median_s=prefill_median_s + queue_wait_s + head_of_line_s,
        tpot_s=tpot,
        preemptions_per_s=preemptions,
    )
