"""The PromQL of a canary comparison: a Deployment's pods split by revision.

A revision is a ReplicaSet; kube-state-metrics says which ReplicaSets a Deployment owns
(``kube_replicaset_owner``), when each was created (``kube_replicaset_created``), how many
replicas it asks for, and which ReplicaSet owns each pod (``kube_pod_owner``). The
selectors are those of the ``recent_rollout`` check (:class:`Queries`), so both read
revisions alike. Every per-revision query labels its answer with the ReplicaSet in
``owner_name``; one query answers for both revisions.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.diagnosis.checks.base import CheckContext
from bot.diagnosis.checks.error_rate import ratio as error_ratio
from bot.diagnosis.checks.recent_rollout import (
    RS_CREATED,
    RS_REPLICAS,
    Queries,
    alternatives,
)
from bot.diagnosis.metric_names import (
    KV_USAGE,
    REQUEST_SUCCESS,
    RUNNING,
    TPOT_BUCKET,
    TTFT_BUCKET,
)
from bot.diagnosis.promql import conventions_of, dcgm_over, quote, vllm, window_seconds

GENERATION_TOKENS = "vllm:generation_tokens_total"
FB_USED = "DCGM_FI_DEV_FB_USED"
REVISION = "owner_name"  # the label every per-revision answer carries


class CanaryQueries:
    """Queries about one Deployment's revisions (``ctx.scope``: its namespace, cluster)."""

    def __init__(self, ctx: CheckContext, namespace: str, deployment: str) -> None:
        self.ctx, self.namespace, self.deployment = ctx, namespace, deployment
        self.base = Queries(ctx)
        self.cl = self.base.cl
        self.ns = f"namespace={quote(namespace)}"

    def revisions(self) -> tuple[str, str]:
        """(creation time, replicas asked for) of each ReplicaSet the Deployment owns."""
        owned = self.base.replicaset_workload(
            'owner_kind="Deployment"', f"owner_name={quote(self.deployment)}", self.ns
        )
        join = f"on (namespace, replicaset, {self.cl}) group_left ()"
        by = f"max by (namespace, replicaset, {self.cl})"
        created = f"{by} ({self.base.ksm(RS_CREATED, self.ns)}) * {join} {owned}"
        replicas = f"{by} ({self.base.ksm(RS_REPLICAS, self.ns)}) * {join} {owned}"
        return created, replicas

    def pods(self, replicasets: Sequence[str]) -> str:
        """The pods of ``replicasets`` (value 1), labelled with their ReplicaSet."""
        return self.base.pod_replicaset(self.ns, f"owner_name=~{alternatives(replicasets)}")

    def _per_pod(self, expr: str, replicasets: Sequence[str]) -> str:
        """``expr`` (one series a pod) labelled with the pod's ReplicaSet."""
        on = f"on (namespace, pod, {self.cl}) group_left ({REVISION})"
        return f"{expr} * {on} {self.pods(replicasets)}"

    def _by_revision(self, how: str, expr: str, replicasets: Sequence[str], extra: str = "") -> str:
        by = f"{REVISION}, {self.cl}{extra}"
        return f"{how} by ({by}) ({self._per_pod(expr, replicasets)})"

    def covered(self, replicasets: Sequence[str], window: str) -> str:
        """Seconds of ``window`` that every pod of each revision has data for: since the
        first sample of its youngest pod (as ``history_query`` reads it)."""
        step = max(1, round(window_seconds(window) / 60))
        series = vllm(RUNNING, self.base.whole.scope, self.ns)
        by_pod = (
            f"max by (namespace, pod, {self.cl}) "
            f"(min_over_time(timestamp({series})[{window}:{step}s]))"
        )
        return f"time() - {self._by_revision('max', by_pod, replicasets)}"

    def requests(self, replicasets: Sequence[str], window: str) -> str:
        """Requests each revision finished over the window (its p99s' sample size)."""
        rates = self._at(window).rate(REQUEST_SUCCESS, f"namespace, pod, {self.cl}", self.ns)
        return f"{self._by_revision('sum', rates, replicasets)} * {window_seconds(window):g}"

    def errors(self, replicasets: Sequence[str], window: str) -> str:
        """The mean error share of each revision's replicas."""
        ctx = self._at(window)
        return self._by_revision("avg", error_ratio(ctx, self.ns), replicasets)

    def latency_p99(
        self, buckets: str | tuple[str, ...], replicasets: Sequence[str], window: str
    ) -> str:
        """The p99 of a latency histogram over all of each revision's requests."""
        rates = self._at(window).rate(buckets, f"namespace, pod, {self.cl}, le", self.ns)
        summed = self._by_revision("sum", rates, replicasets, ", le")
        return f"histogram_quantile(0.99, {summed})"

    def ttft(self, replicasets: Sequence[str], window: str) -> str:
        return self.latency_p99(TTFT_BUCKET, replicasets, window)

    def tpot(self, replicasets: Sequence[str], window: str) -> str:
        return self.latency_p99(TPOT_BUCKET, replicasets, window)

    def throughput(self, replicasets: Sequence[str], window: str) -> str:
        """Generated tokens per second, per replica of each revision."""
        rates = self._at(window).rate(GENERATION_TOKENS, f"namespace, pod, {self.cl}", self.ns)
        return self._by_revision("avg", rates, replicasets)

    def kv_usage(self, replicasets: Sequence[str], window: str) -> str:
        """The mean KV-cache usage of each revision's replicas over the window."""
        parts = [
            f"max by (namespace, pod, {self.cl}) (avg_over_time({name}{{{self.ns}}}[{window}]))"
            for name in KV_USAGE
        ]
        return self._by_revision("avg", "(" + " or ".join(parts) + ")", replicasets)

    def gpu_memory_trend(self, replicasets: Sequence[str], window: str) -> str:
        """How fast each revision's GPUs' framebuffer use rises, in MiB per hour (the
        least-squares slope over the window; a leak rises steadily under flat load)."""
        c = conventions_of(self.ctx.scope)
        pod, namespace = c.gpu_label("pod"), c.gpu_label("namespace")
        scope = self.ctx.scope.model_copy(update={"labels": {"namespace": self.namespace}})
        slope = dcgm_over("deriv", FB_USED, scope, window)
        per_pod = f"max by ({namespace}, {pod}, {self.cl}) ({slope}) * 3600"
        if pod != "pod":
            per_pod = f'label_replace({per_pod}, "pod", "$1", "{pod}", "(.*)")'
            per_pod = f'label_replace({per_pod}, "namespace", "$1", "{namespace}", "(.*)")'
            per_pod = f"max by (namespace, pod, {self.cl}) ({per_pod})"
        return self._by_revision("avg", per_pod, replicasets)

    def _at(self, window: str) -> CheckContext:
        """The whole-revision context reading rates over ``window``."""
        ctx = self.base.whole
        return (
            ctx
            if ctx.window == window
            else type(ctx)(metrics=ctx.metrics, scope=ctx.scope, window=window, params=ctx.params)
        )
