"""Recording rules that make diagnoses cheap on large fleets (pure).

Rates over histogram buckets are the expensive part of a diagnosis: on 1,000 replicas a
per-replica p99 reads ~22 buckets x 1,000 series over the whole window. Prometheus can
keep those per-replica rates up to date itself (recording rules); the checks then read
one fresh sample per series. ``vllm-chatops rules export`` ships these rules beside the
alerts; with ``recording_rules: auto`` (the default) the checks use them whenever
Prometheus holds them for the diagnosis window, and fall back to raw series otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.diagnosis import metric_names as names

REPLICA = ("namespace", "pod", "instance", "model_name")
HTTP_REPLICA = ("namespace", "pod", "instance")
BY_MODEL = ("namespace", "model_name", "le")
QUANTILE = 0.99  # the per-replica quantile recorded (the checks' default)


@dataclass(frozen=True)
class Recording:
    """Per-replica rate of ``source`` (either name of a renamed metric), kept by Prometheus."""

    key: str
    source: str | tuple[str, ...]
    keep: tuple[str, ...]  # labels the recorded series keep

    def name(self, window: str) -> str:
        return f"vllm_chatops:{self.key}:rate{window}"

    def expr(self, window: str) -> str:
        by = ", ".join(self.keep)
        sources = (self.source,) if isinstance(self.source, str) else self.source
        parts = [f"sum by ({by}) (rate({s}[{window}]))" for s in sources]
        return " or ".join(parts)

    @property
    def histogram(self) -> bool:
        return "le" in self.keep

    def quantile_name(self, window: str) -> str:
        """Each replica's :data:`QUANTILE` of a histogram (one series a replica)."""
        return f"vllm_chatops:{self.key.removesuffix('_bucket')}:p99_rate{window}"

    def by_model_name(self, window: str) -> str:
        """A histogram's buckets summed per namespace and model (a few series a model)."""
        return f"vllm_chatops_model:{self.key}:rate{window}"

    def rules(self, window: str) -> list[dict[str, str]]:
        """This rate, and for a histogram what its fleet and per-replica quantiles read:
        a diagnosis then touches one series a replica instead of one a bucket."""
        rules = [{"record": self.name(window), "expr": self.expr(window)}]
        if self.histogram:
            rules += [
                {
                    "record": self.quantile_name(window),
                    "expr": f"histogram_quantile({QUANTILE}, {self.name(window)})",
                },
                {
                    "record": self.by_model_name(window),
                    "expr": f"sum by ({', '.join(BY_MODEL)}) ({self.name(window)})",
                },
            ]
        return rules


RECORDINGS: tuple[Recording, ...] = (
    Recording("ttft_seconds_bucket", names.TTFT_BUCKET, (*REPLICA, "le")),
    Recording("tpot_seconds_bucket", names.TPOT_BUCKET, (*REPLICA, "le")),
    Recording("prompt_tokens_bucket", names.PROMPT_LEN_BUCKET, (*REPLICA, "le")),
    Recording("request_success", names.REQUEST_SUCCESS, (*REPLICA, "finished_reason")),
    Recording("http_requests", names.HTTP_REQUESTS, (*HTTP_REPLICA, "handler", "status")),
    PREEMPTIONS := Recording("preemptions", names.PREEMPTIONS, REPLICA),
)
_BY_SOURCE = {r.source: r for r in RECORDINGS}


def recording_for(source: str | tuple[str, ...]) -> Recording | None:
    return _BY_SOURCE.get(source)


def presence_query(window: str) -> str:
    """Non-empty when Prometheus records rates for ``window``: one series a replica, the
    cheapest of the recordings to look at."""
    return f"count({PREEMPTIONS.name(window)})"


def recording_group(window: str) -> dict[str, Any]:
    """The Prometheus rule group recording every per-replica rate at ``window``."""
    return {
        "name": f"vllm-chatops-recording-{window}",
        "rules": [rule for r in RECORDINGS for rule in r.rules(window)],
    }
