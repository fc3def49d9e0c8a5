"""The metric families the simulator exposes, exactly as vLLM and the DCGM exporter name them.

Names, types, help texts and histogram buckets follow vLLM's V1 Prometheus logger
(``vllm/v1/metrics/loggers.py``) and dcgm-exporter's ``default-counters.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricType = Literal["gauge", "counter", "histogram"]


@dataclass(frozen=True)
class Family:
    name: str  # as exposed; counters carry their `_total` suffix where the exporter adds one
    type: MetricType
    help: str


def one_two_five_buckets(limit: int) -> tuple[float, ...]:
    """vLLM's build_1_2_5_buckets: 1, 2, 5, 10, 20, 50, … up to and including ``limit``."""
    out: list[float] = []
    exponent = 0
    while True:
        for mantissa in (1, 2, 5):
            value = mantissa * 10**exponent
            if value > limit:
                return tuple(out)
            out.append(float(value))
        exponent += 1


TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
    10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
TPOT_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0,
)  # fmt: skip
REQUEST_LATENCY_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
    240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
ITERATION_TOKEN_BUCKETS = (
    1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0,
)  # fmt: skip

# --- vLLM engine families (per replica; labels model_name and, since 0.10, engine) -----------

RUNNING = Family(
    "vllm:num_requests_running", "gauge", "Number of requests in model execution batches."
)
WAITING = Family(
    "vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed."
)
KV_USAGE = Family("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.")
KV_USAGE_OLD = Family(
    "vllm:gpu_cache_usage_perc", "gauge", "GPU KV-cache usage. 1 means 100 percent usage."
)
CACHE_CONFIG = Family("vllm:cache_config_info", "gauge", "Information of the LLMEngine CacheConfig")
PREEMPTIONS = Family(
    "vllm:num_preemptions_total", "counter", "Cumulative number of preemption from the engine."
)
PROMPT_TOKENS = Family("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.")
GENERATION_TOKENS = Family(
    "vllm:generation_tokens_total", "counter", "Number of generation tokens processed."
)
PREFIX_QUERIES = Family(
    "vllm:prefix_cache_queries_total",
    "counter",
    "Prefix cache queries, in terms of number of queried tokens.",
)
PREFIX_HITS = Family(
    "vllm:prefix_cache_hits_total",
    "counter",
    "Prefix cache hits, in terms of number of cached tokens.",
)
PREFIX_QUERIES_OLD = Family(
    "vllm:gpu_prefix_cache_queries_total",
    "counter",
    "GPU prefix cache queries, in terms of number of queried blocks.",
)
PREFIX_HITS_OLD = Family(
    "vllm:gpu_prefix_cache_hits_total",
    "counter",
    "GPU prefix cache hits, in terms of number of cached blocks.",
)
REQUEST_SUCCESS = Family(
    "vllm:request_success_total", "counter", "Count of successfully processed requests."
)
HTTP_REQUESTS = Family(
    "http_requests_total", "counter", "Total number of requests by method, status and handler."
)
PROCESS_START = Family(
    "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds."
)
RESIDENT_MEMORY = Family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")

TTFT = Family(
    "vllm:time_to_first_token_seconds", "histogram", "Histogram of time to first token in seconds."
)
ITL = Family(
    "vllm:inter_token_latency_seconds", "histogram", "Histogram of inter-token latency in seconds."
)
TPOT_OLD = Family(
    "vllm:time_per_output_token_seconds",
    "histogram",
    "Histogram of time per output token in seconds.",
)
REQUEST_TPOT = Family(
    "vllm:request_time_per_output_token_seconds",
    "histogram",
    "Histogram of time_per_output_token_seconds per request.",
)
E2E = Family(
    "vllm:e2e_request_latency_seconds", "histogram", "Histogram of e2e request latency in seconds."
)
QUEUE_TIME = Family(
    "vllm:request_queue_time_seconds",
    "histogram",
    "Histogram of time spent in WAITING phase for request.",
)
INFERENCE_TIME = Family(
    "vllm:request_inference_time_seconds",
    "histogram",
    "Histogram of time spent in RUNNING phase for request.",
)
PREFILL_TIME = Family(
    "vllm:request_prefill_time_seconds",
    "histogram",
    "Histogram of time spent in PREFILL phase for request.",
)
DECODE_TIME = Family(
    "vllm:request_decode_time_seconds",
    "histogram",
    "Histogram of time spent in DECODE phase for request.",
)
PROMPT_LEN = Family(
    "vllm:request_prompt_tokens", "histogram", "Number of prefill tokens processed."
)
GENERATION_LEN = Family(
    "vllm:request_generation_tokens", "histogram", "Number of generation tokens processed."
)
ITERATION_TOKENS = Family(
    "vllm:iteration_tokens_total", "histogram", "Histogram of number of tokens per engine_step."
)

# --- DCGM exporter families (per GPU; counters carry no `_total`, as dcgm-exporter writes them) --

GPU_UTIL = Family("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).")
MEM_COPY_UTIL = Family("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).")
FB_USED = Family("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).")
FB_FREE = Family("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).")
GPU_TEMP = Family("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).")
MEMORY_TEMP = Family("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "Memory temperature (in C).")
POWER = Family("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).")
SM_CLOCK = Family("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).")
XID = Family("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered.")
PCIE_REPLAY = Family("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries.")
UNCORRECTABLE_REMAP = Family(
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
    "counter",
    "Number of remapped rows for uncorrectable errors",
)
CORRECTABLE_REMAP = Family(
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
    "counter",
    "Number of remapped rows for correctable errors",
)
REMAP_FAILURE = Family(
    "DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", "Whether remapping of rows has failed"
)
GR_ENGINE_ACTIVE = Family(
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge", "Ratio of time the graphics engine is active."
)
TENSOR_ACTIVE = Family(
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "gauge", "Ratio of cycles the tensor (HMMA) pipe is active."
)
DRAM_ACTIVE = Family(
    "DCGM_FI_PROF_DRAM_ACTIVE",
    "gauge",
    "Ratio of cycles the device memory interface is active sending or receiving data.",
)
ECC_SBE = Family(
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "counter", "Total number of single-bit volatile ECC errors."
)
ECC_DBE = Family(
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "counter", "Total number of double-bit volatile ECC errors."
)

GPU_MODEL_NAME = "NVIDIA H100 80GB HBM3"
GPU_FRAMEBUFFER_MIB = 81559
