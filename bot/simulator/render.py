"""Turn a replica or a node into the exposition its real exporter would serve."""

from __future__ import annotations

import math

from bot.simulator import catalog as m
from bot.simulator.exposition import ExpositionWriter
from bot.simulator.fleet import Gpu, Node, Replica

_HTTP_HANDLER = "/v1/chat/completions"


def replica_metrics(replica: Replica) -> str:
    """vLLM's /metrics for one replica (V1 engine; old names when ``replica.legacy``)."""
    s = replica.state
    assert s is not None, "advance() the replica before rendering it"
    p = replica.profile
    c = replica.counters
    h = replica.histograms
    base = (
        {"model_name": replica.model}
        if replica.legacy
        else {"model_name": replica.model, "engine": "0"}
    )
    w = ExpositionWriter()

    w.sample(m.PROCESS_START, {}, replica.started_at)
    w.sample(m.RESIDENT_MEMORY, {}, 6.2e9 + 1.0e8 * s.kv_usage)
    w.sample(m.RUNNING, base, float(round(s.running)))
    w.sample(m.WAITING, base, float(round(s.waiting)))
    w.sample(m.KV_USAGE_OLD if replica.legacy else m.KV_USAGE, base, round(s.kv_usage, 6))
    if replica.legacy:
        w.sample(m.PREFIX_QUERIES_OLD, base, math.floor(c.get("prefix_queries", 0.0)))
        w.sample(m.PREFIX_HITS_OLD, base, math.floor(c.get("prefix_hits", 0.0)))
    else:
        w.sample(m.PREFIX_QUERIES, base, math.floor(c.get("prefix_queries", 0.0)))
        w.sample(m.PREFIX_HITS, base, math.floor(c.get("prefix_hits", 0.0)))
    w.sample(m.PREEMPTIONS, base, math.floor(c.get("preemptions", 0.0)))
    w.sample(m.PROMPT_TOKENS, base, math.floor(c.get("prompt_tokens", 0.0)))
    w.sample(m.GENERATION_TOKENS, base, math.floor(c.get("generation_tokens", 0.0)))
    reasons = (
        ("stop", "length", "abort") if replica.legacy else ("stop", "length", "abort", "error")
    )
    for reason in reasons:
        w.sample(
            m.REQUEST_SUCCESS,
            {**base, "finished_reason": reason},
            math.floor(c.get(f"finished:{reason}", 0.0)),
        )

    def hist(family: m.Family, key: str) -> None:
        histogram = h[key]
        w.histogram(family, base, histogram.bounds, histogram.cumulative(), histogram.sum)

    hist(m.PROMPT_LEN, "prompt")
    hist(m.GENERATION_LEN, "generation")
    hist(m.ITERATION_TOKENS, "iteration")
    hist(m.TTFT, "ttft")
    hist(m.TPOT_OLD if replica.legacy else m.ITL, "tpot")
    if not replica.legacy:
        hist(m.REQUEST_TPOT, "request_tpot")
    hist(m.E2E, "e2e")
    hist(m.QUEUE_TIME, "queue")
    hist(m.INFERENCE_TIME, "inference")
    hist(m.PREFILL_TIME, "prefill")
    hist(m.DECODE_TIME, "decode")

    cache_config = {
        "block_size": "16",
        "cache_dtype": "auto",
        "calculate_kv_scales": "False",
        "cpu_offload_gb": "0",
        "enable_prefix_caching": p.enable_prefix_caching,
        "engine": "0",
        "gpu_memory_utilization": p.gpu_memory_utilization,
        "is_attention_free": "False",
        "num_cpu_blocks": "None",
        "num_gpu_blocks": str(int(p.kv_capacity_tokens // 16)),
        "num_gpu_blocks_override": "None",
        "prefix_caching_hash_algo": "builtin",
        "sliding_window": "None",
        "swap_space": "4",
        "swap_space_bytes": str(4 * 2**30),
    }
    w.sample(m.CACHE_CONFIG, cache_config, 1.0)

    for status in ("2xx", "4xx", "5xx"):
        w.sample(
            m.HTTP_REQUESTS,
            {"handler": _HTTP_HANDLER, "method": "POST", "status": status},
            math.floor(c.get(f"http:{status}", 0.0)),
        )
    return w.render()


def _gpu_labels(node: Node, gpu: Gpu) -> dict[str, str]:
    labels = {
        "gpu": str(gpu.index),
        "UUID": gpu.uuid,
        "pci_bus_id": gpu.pci_bus_id,
        "device": f"nvidia{gpu.index}",
        "modelName": m.GPU_MODEL_NAME,
        ("Hostname" if node.legacy else "hostname"): node.name,
        "DCGM_FI_DRIVER_VERSION": "535.183.01" if node.legacy else "570.133.20",
    }
    if gpu.replica is not None:
        labels |= {"container": "vllm", "namespace": gpu.replica.namespace, "pod": gpu.replica.pod}
    return labels


def node_metrics(node: Node, now: float, *, ecc_counters: bool = True) -> str:
    """dcgm-exporter's /metrics for one node (all its GPUs)."""
    dt = max(0.0, now - node.last_advance)
    node.last_advance = now
    w = ExpositionWriter()
    for gpu in node.gpus:
        labels = _gpu_labels(node, gpu)
        replica = gpu.replica
        gpu.ecc_sbe += gpu.ecc_sbe_per_s * dt
        if gpu.fell_off_bus:
            # The driver lost the device: only the Xid that says so is still reported.
            w.sample(m.XID, labels | _xid_detail(node, gpu), float(gpu.xid))
            continue
        busy = replica is not None and replica.available(now) and replica.state is not None
        util = 0.0
        if busy and replica is not None and replica.state is not None:
            util = min(100.0, max(0.0, replica.state.gpu_util_pct + replica.rng.uniform(-2, 2)))
        jitter = replica.rng.uniform(-0.8, 0.8) if replica else 0.0
        temp = 34.0 + 0.36 * util + jitter
        if gpu.temp_override_c is not None:
            # a cooling fault shows under load; with no workload on it the GPU stays cool
            hot = gpu.temp_override_c if busy else 34.0 + 0.3 * (gpu.temp_override_c - 34.0)
            temp = hot + jitter / 2
        clock = (345.0 if util < 1 else 1980.0) * gpu.clock_factor
        fb_used = 0.0
        if busy and replica is not None:
            fraction = float(replica.profile.gpu_memory_utilization)
            leaked = replica.profile.fb_leak_mib_per_s * max(0.0, now - replica.started_at)
            fb_used = min(m.GPU_FRAMEBUFFER_MIB, round(m.GPU_FRAMEBUFFER_MIB * fraction + leaked))
        w.sample(m.GPU_UTIL, labels, round(util))
        w.sample(m.MEM_COPY_UTIL, labels, round(util * 0.55))
        w.sample(m.FB_USED, labels, fb_used)
        w.sample(m.FB_FREE, labels, m.GPU_FRAMEBUFFER_MIB - fb_used)
        w.sample(m.GPU_TEMP, labels, round(temp))
        w.sample(m.MEMORY_TEMP, labels, round(temp + 6.0))
        w.sample(m.POWER, labels, round(72.0 + 5.9 * util * gpu.clock_factor, 3))
        w.sample(m.SM_CLOCK, labels, round(clock))
        w.sample(m.XID, labels | _xid_detail(node, gpu), float(gpu.xid))
        w.sample(m.PCIE_REPLAY, labels, math.floor(gpu.pcie_replays))
        w.sample(m.UNCORRECTABLE_REMAP, labels, math.floor(gpu.uncorrectable_remaps))
        w.sample(m.CORRECTABLE_REMAP, labels, math.floor(gpu.correctable_remaps))
        w.sample(m.REMAP_FAILURE, labels, 0.0)
        w.sample(m.GR_ENGINE_ACTIVE, labels, round(util / 100 * 0.97, 6))
        w.sample(m.TENSOR_ACTIVE, labels, round(util / 100 * 0.42, 6))
        w.sample(m.DRAM_ACTIVE, labels, round(util / 100 * 0.61, 6))
        if ecc_counters:
            w.sample(m.ECC_SBE, labels, math.floor(gpu.ecc_sbe))
            w.sample(m.ECC_DBE, labels, math.floor(gpu.ecc_dbe))
    return w.render()


_XID_MESSAGES = {
    13: "Graphics Engine Exception",
    48: "DBE (Double Bit Error) ECC Error",
    79: "GPU has fallen off the bus",
}


def _xid_detail(node: Node, gpu: Gpu) -> dict[str, str]:
    """Newer exporters name the Xid in labels; older ones only report the number."""
    if node.legacy or gpu.xid == 0:
        return {}
    return {"err_code": str(gpu.xid), "err_msg": _XID_MESSAGES.get(gpu.xid, "Xid error")}
