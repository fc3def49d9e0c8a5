"""p99 time per output token (inter-token latency) against the SLO (1.5x warn, 2x crit)."""

from bot.diagnosis.checks.base import slo_quantile_check
from bot.diagnosis.metric_names import TPOT_BUCKET

CHECK = slo_quantile_check("tpot_p99", "TPOT p99", "TPOT", TPOT_BUCKET, slo_s=0.1)
