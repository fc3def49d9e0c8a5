"""p99 time to first token against the SLO (warning 1.5x, critical 2x)."""

from bot.diagnosis.checks.base import slo_quantile_check
from bot.diagnosis.metric_names import TTFT_BUCKET

CHECK = slo_quantile_check("ttft_p99", "TTFT p99", "TTFT", TTFT_BUCKET, slo_s=2.0)
