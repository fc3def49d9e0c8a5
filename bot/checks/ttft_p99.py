"""p99 time to first token against the SLO (warning 1.5x, critical 2x)."""

from bot.checks.base import slo_quantile_check
from bot.metric_names import TTFT_BUCKET

CHECK = slo_quantile_check("ttft_p99", "TTFT p99", "TTFT", TTFT_BUCKET, slo_s=2.0)
