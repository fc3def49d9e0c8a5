"""The check library: one module a check; ``REGISTRY`` maps check ids to checks."""

from bot.diagnosis.checks import (
    ecc_errors,
    engine_config,
    error_rate,
    gpu_temperature,
    gpu_utilization,
    kv_cache_usage,
    long_prefills,
    preemption_rate,
    queue_depth,
    recent_rollout,
    replica_health,
    running_seqs,
    throughput,
    tpot_p99,
    ttft_p99,
    xid_errors,
)
from bot.diagnosis.checks.base import Check, CheckContext

REGISTRY: dict[str, Check] = {
    module.CHECK.id: module.CHECK
    for module in (
        gpu_utilization,
        kv_cache_usage,
        queue_depth,
        running_seqs,
        ttft_p99,
        tpot_p99,
        error_rate,
        preemption_rate,
        gpu_temperature,
        xid_errors,
        ecc_errors,
        long_prefills,
        replica_health,
        engine_config,
        throughput,
        recent_rollout,
    )
}

__all__ = ["REGISTRY", "Check", "CheckContext"]
