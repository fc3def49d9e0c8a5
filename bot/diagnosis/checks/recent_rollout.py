"""Recent rollout: how old the newest revision of each workload in scope is, and whether
its replicas are the ones failing or slow.

A rollout makes new pods, not restarts, so it shows only in the cluster's objects, read
from kube-state-metrics: a pod's ReplicaSet (``kube_pod_owner``), the Deployment or Argo
Rollout owning a ReplicaSet (``kube_replicaset_owner``), when the ReplicaSet was created
(``kube_replicaset_created``) and whether it has replicas (``kube_replicaset_spec_replicas``).
The workloads in scope are those owning the vLLM pods in scope; a workload's newest
ReplicaSet with replicas is its newest revision, *recent* when younger than ``lookback_s``.

A recent revision is *implicated* when its replicas do worse than what it replaces, each
revision read whole (all its pods, whatever the scope narrows to) and by its median pod,
so one sick replica does not make a bad build:

* two revisions serving at once (a rollout under way, a canary): its error share and p99
  TPOT against those of the revision before it;
* one revision serving: against the workload's just before the rollout (the window ending
  when its ReplicaSet was created).

Errors implicate from ``error_warn`` up and at least ``worse_factor`` times the reference
(at any such level when nothing was recorded before); TPOT from ``tpot_factor`` times the
reference. ``crit`` when implicated with errors at ``error_crit``, ``warn`` otherwise
implicated, ``ok`` when no revision is recent or none is implicated; ``unknown`` without
kube-state-metrics, or when a recent revision cannot be judged (no traffic, too little
history). Without a recent revision the check costs two queries.

Facts: the workload (``deployment``, ``namespace``, ``workload`` as kind/NS/NAME) with the
newest or implicated revision, that ``revision`` (its ReplicaSet), its ``age_s``/``age``,
``recent``, ``implicated``, the ``evidence``, and ``rollback_targets``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from bot.diagnosis.checks.base import (
    TOP_K,
    Check,
    CheckContext,
    fmt,
    replica_target,
    target_clusters,
    unknown,
)
from bot.diagnosis.checks.error_rate import ratio as error_ratio
from bot.diagnosis.metric_names import RUNNING, TPOT_BUCKET
from bot.diagnosis.promql import cluster_matchers, conventions_of, quote, regex_quote, vllm
from bot.models import CheckResult, Offender, Status
from bot.sources.prometheus import Sample

ID, TITLE = "recent_rollout", "Recent rollout"
POD_OWNER = "kube_pod_owner"
RS_OWNER = "kube_replicaset_owner"
RS_CREATED = "kube_replicaset_created"
RS_REPLICAS = "kube_replicaset_spec_replicas"
OWNER_KINDS = {"Deployment": "deployment", "Rollout": "rollout"}  # → action target kind
MAX_RECENT = 5  # recent workloads judged (the most recent rollouts)
MAX_BEFORE = 3  # of those, single-revision ones compared with before their rollout
PODS_PER_REVISION = 3
NOT_COMPARED = "not compared (more recent rollouts in scope than are compared at once)"

KSM_MISSING = (
    f"no kube-state-metrics series ({RS_CREATED}, {RS_OWNER}, {POD_OWNER}): a rollout makes "
    "new pods, not restarts, and only the cluster's objects show it — deploy "
    "kube-state-metrics and scrape it (kube-prometheus-stack ships it) to tell a bad "
    "rollout from a replica fault"
)
NO_WORKLOAD = (
    "kube-state-metrics knows no Deployment or Argo Rollout owning the vLLM pods in scope: "
    "are they run by one, and does kube-state-metrics keep its own namespace/pod labels "
    "(scrape it with honor_labels: true)?"
)

Key = tuple[str, str, str]  # namespace, ReplicaSet, cluster
Before = tuple[float | None, float | None]  # a workload's error share and TPOT before


@dataclass(frozen=True)
class Revision:
    """A ReplicaSet with replicas, of a workload in scope; its median pod's numbers."""

    namespace: str
    kind: str  # Deployment | Rollout
    workload: str
    replicaset: str
    cluster: str
    age_s: float
    errors: float | None = None
    tpot_s: float | None = None

    @property
    def target(self) -> str:
        return f"{OWNER_KINDS.get(self.kind, 'deployment')}/{self.namespace}/{self.workload}"

    @property
    def key(self) -> Key:
        return (self.namespace, self.replicaset, self.cluster)


@dataclass(frozen=True)
class Verdict:
    newest: Revision
    status: Status
    recent: bool
    implicated: bool
    evidence: str


def age_text(seconds: float) -> str:
    """'45 s', '12 min', '5.5 h', '3 d'."""
    if seconds < 90:
        return f"{max(0.0, seconds):.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} d"


def alternatives(values: Sequence[str]) -> str:
    """A regex matching exactly ``values``, quoted for a ``=~`` matcher."""
    return '"' + "|".join(regex_quote(v)[1:-1] for v in sorted(set(values))) + '"'


class Queries:
    """The check's PromQL for one scope (its label conventions and cluster included)."""

    def __init__(self, ctx: CheckContext) -> None:
        self.ctx = ctx
        self.cl = conventions_of(ctx.scope).cluster_label
        # a revision is read whole: its pods are picked by kube-state-metrics, not the scope
        whole = ctx.scope.model_copy(update={"labels": {}, "pods": None})
        self.whole = dataclasses.replace(ctx, scope=whole, queries=[])

    def ksm(self, metric: str, *matchers: str) -> str:
        """A kube-state-metrics selector in the scope's cluster."""
        return f"{metric}{{{','.join([*matchers, *cluster_matchers(self.ctx.scope)])}}}"

    def namespaced(self) -> list[str]:
        namespace = self.ctx.scope.labels.get("namespace")
        return [f"namespace={quote(namespace)}"] if namespace is not None else []

    def present(self) -> str:
        return f"count({self.ksm(RS_CREATED)})"

    def pod_replicaset(self, *matchers: str) -> str:
        """Each pod's ReplicaSet in ``owner_name`` (one series a pod, however many
        kube-state-metrics replicas report it)."""
        owner = self.ksm(POD_OWNER, 'owner_kind="ReplicaSet"', *matchers)
        return f"max by (namespace, pod, owner_name, {self.cl}) ({owner})"

    def replicaset_workload(self, *matchers: str) -> str:
        kinds = f"owner_kind=~{alternatives(list(OWNER_KINDS))}"
        owner = self.ksm(RS_OWNER, kinds, 'owner_is_controller="true"', *matchers)
        return f"max by (namespace, replicaset, owner_kind, owner_name, {self.cl}) ({owner})"

    def revisions(self) -> str:
        """The age of every ReplicaSet with replicas of the workloads owning vLLM pods in
        scope, labelled with its workload (``owner_kind``, ``owner_name``)."""
        cl, ns = self.cl, self.namespaced()
        served = f"group by (namespace, pod, {cl}) ({vllm(RUNNING, self.ctx.scope)})"
        in_scope = f"({self.pod_replicaset(*ns)} and on (namespace, pod, {cl}) {served})"
        replicasets = f'label_replace({in_scope}, "replicaset", "$1", "owner_name", "(.*)")'
        owners = self.replicaset_workload(*ns)
        workloads = (
            f"group by (namespace, owner_kind, owner_name, {cl}) "
            f"({owners} and on (namespace, replicaset, {cl}) {replicasets})"
        )
        theirs = f"({owners} and on (namespace, owner_kind, owner_name, {cl}) {workloads})"
        created = f"max by (namespace, replicaset, {cl}) ({self.ksm(RS_CREATED, *ns)})"
        serving = f"(max by (namespace, replicaset, {cl}) ({self.ksm(RS_REPLICAS, *ns)}) > 0)"
        return (
            f"((time() - {created}) * on (namespace, replicaset, {cl}) "
            f"group_left (owner_kind, owner_name) {theirs}) "
            f"and on (namespace, replicaset, {cl}) {serving}"
        )

    # -- the numbers of given revisions, read whole ---------------------------------------

    def _errors(self, pods: str, keep: str, namespaces: Sequence[str]) -> str:
        """Each replica's error share (replicas of ``pods``, labelled with ``keep``)."""
        ratio = error_ratio(self.whole, f"namespace=~{alternatives(namespaces)}")
        return f"{ratio} * on (namespace, pod, {self.cl}) group_left ({keep}) {pods}"

    def _tpot(self, pods: str, keep: str, namespaces: Sequence[str]) -> str:
        """Each replica's TPOT quantile (replicas of ``pods``, labelled with ``keep``)."""
        rates = self.whole.rate(
            TPOT_BUCKET,
            f"namespace, pod, {self.cl}, le",
            f"namespace=~{alternatives(namespaces)}",
        )
        quantile = f"histogram_quantile({self.ctx.number('quantile'):g}, {rates})"
        return f"{quantile} * on (namespace, pod, {self.cl}) group_left ({keep}) {pods}"

    def of(self, revisions: Sequence[Revision]) -> str:
        """The pods of ``revisions``, labelled with their ReplicaSet in ``owner_name``."""
        names = alternatives([r.replicaset for r in revisions])
        return self.pod_replicaset(f"owner_name=~{names}")

    def errors_by_revision(self, revisions: Sequence[Revision]) -> str:
        by_pod = self._errors(self.of(revisions), "owner_name", [r.namespace for r in revisions])
        return f"quantile by (namespace, owner_name, {self.cl}) (0.5, {by_pod})"

    def tpot_by_revision(self, revisions: Sequence[Revision]) -> str:
        by_pod = self._tpot(self.of(revisions), "owner_name", [r.namespace for r in revisions])
        return f"quantile by (namespace, owner_name, {self.cl}) (0.5, {by_pod})"

    def worst_pods(self, revisions: Sequence[Revision]) -> str:
        by_pod = self._errors(self.of(revisions), "owner_name", [r.namespace for r in revisions])
        return f"topk by (namespace, owner_name, {self.cl}) ({PODS_PER_REVISION}, {by_pod})"

    def before(self, revision: Revision) -> str:
        """The workload's median error share and TPOT over the window ending when
        ``revision`` was created, tagged ``stat="errors"|"tpot"``: its pods then, those of
        the ReplicaSets it owned then."""
        cl = self.cl
        matchers = [
            f"owner_kind={quote(revision.kind)}",
            f"owner_name={quote(revision.workload)}",
            f"namespace={quote(revision.namespace)}",
        ]
        if revision.cluster:
            matchers.append(f"{cl}={quote(revision.cluster)}")
        replicasets = self.replicaset_workload(*matchers)
        as_owner = f'label_replace({replicasets}, "owner_name", "$1", "replicaset", "(.*)")'
        owned = self.pod_replicaset(f"namespace={quote(revision.namespace)}")
        pods = (
            f"max by (namespace, pod, {cl}) ({owned} "
            f"* on (namespace, owner_name, {cl}) group_left () {as_owner})"
        )
        namespaces = [revision.namespace]
        offset = math.ceil(revision.age_s) + 1
        parts = [
            f"label_replace(last_over_time((quantile(0.5, {expr}))[2s:1s] offset {offset}s), "
            f'"stat", "{stat}", "", "")'
            for stat, expr in (
                ("errors", self._errors(pods, "", namespaces)),
                ("tpot", self._tpot(pods, "", namespaces)),
            )
        ]
        return " or ".join(parts)


def _by_revision(samples: Sequence[Sample], cluster_label: str) -> dict[Key, float]:
    return {
        (
            s.labels.get("namespace", ""),
            s.labels.get("owner_name", ""),
            s.labels.get(cluster_label, ""),
        ): s.value
        for s in samples
        if not math.isnan(s.value)
    }


def workloads_of(rows: Sequence[Sample], cluster_label: str) -> list[list[Revision]]:
    """The serving revisions of each workload, newest first; the most recent rollout first."""
    found: dict[tuple[str, ...], list[Revision]] = {}
    for row in rows:
        labels = row.labels
        revision = Revision(
            namespace=labels.get("namespace", ""),
            kind=labels.get("owner_kind", "Deployment"),
            workload=labels.get("owner_name", ""),
            replicaset=labels.get("replicaset", ""),
            cluster=labels.get(cluster_label, ""),
            age_s=max(0.0, row.value),
        )
        key = (revision.namespace, revision.kind, revision.workload, revision.cluster)
        found.setdefault(key, []).append(revision)
    ordered = [sorted(revs, key=lambda r: (r.age_s, r.replicaset)) for revs in found.values()]
    return sorted(ordered, key=lambda revs: (revs[0].age_s, revs[0].target))


def judge(ctx: CheckContext, revisions: list[Revision], before: Before | None) -> Verdict:
    """The verdict on a workload's newest revision (``before``: the workload's error share
    and TPOT before the rollout, when one revision serves)."""
    newest = revisions[0]
    if newest.age_s >= ctx.number("lookback_s"):
        return Verdict(newest, "ok", False, False, "")
    if len(revisions) > 1:
        older = revisions[1]
        ref_errors, ref_tpot = older.errors, older.tpot_s
        against = f"on {older.replicaset}, the revision before it"
    else:
        ref_errors, ref_tpot = before if before else (None, None)
        against = "before the rollout"
    err, slow = newest.errors, newest.tpot_s
    if err is None and slow is None:
        return Verdict(newest, "unknown", True, False, "no traffic to judge it by")
    status: Status = "ok"
    found: list[str] = []
    worse = ctx.number("worse_factor")
    erring = err is not None and err >= ctx.number("error_warn")
    if err is not None and erring and (ref_errors is None or err >= worse * ref_errors):
        status = "crit" if err >= ctx.number("error_crit") else "warn"
        ref = "none recorded" if ref_errors is None else fmt(ref_errors, "ratio")
        found.append(f"errors {fmt(err, 'ratio')} on its replicas, {ref} {against}")
    if slow and ref_tpot and slow >= ctx.number("tpot_factor") * ref_tpot:
        status = "warn" if status == "ok" else status
        found.append(
            f"p{ctx.number('quantile') * 100:g} TPOT {fmt(slow, 's')} on its replicas, "
            f"{fmt(ref_tpot, 's')} {against} (x{slow / ref_tpot:.1f})"
        )
    if found:
        return Verdict(newest, status, True, True, "; ".join(found))
    measured = []
    if err is not None:
        ref = f" ({fmt(ref_errors, 'ratio')} {against})" if ref_errors is not None else ""
        measured.append(f"errors {fmt(err, 'ratio')}{ref}")
    if slow is not None:
        ref = f" ({fmt(ref_tpot, 's')} {against})" if ref_tpot else ""
        measured.append(f"TPOT {fmt(slow, 's')}{ref}")
    return Verdict(newest, "ok", True, False, "its replicas do no worse: " + ", ".join(measured))


# implicated first, then revisions that could not be judged, then the most recent
_ORDER: dict[Status, int] = {"crit": 0, "warn": 1, "unknown": 2, "ok": 3}


def _rank(v: Verdict) -> tuple[int, bool, float]:
    return (_ORDER[v.status], not v.recent, v.newest.age_s)


def _summary(v: Verdict, others: int, lookback_s: float) -> str:
    r = v.newest
    text = f"{r.target}: revision {r.replicaset} rolled out {age_text(r.age_s)} ago"
    if not v.recent:
        text += f", none in the last {age_text(lookback_s)}"
    elif v.evidence:
        text += f"; {v.evidence}"
    if others:
        text += f" ({others} more workload{'s' if others > 1 else ''} in scope)"
    return text


async def _judged(
    ctx: CheckContext, q: Queries, recent: list[list[Revision]]
) -> tuple[list[Verdict], list[Sample]]:
    """Verdicts on the recent workloads' newest revisions, and their worst pods."""
    serving = [r for revs in recent for r in revs]
    alone = [revs[0] for revs in recent if len(revs) == 1][:MAX_BEFORE]
    errors, tpot, pods, *befores = await ctx.query_all(
        q.errors_by_revision(serving),
        q.tpot_by_revision(serving),
        q.worst_pods(serving),
        *(q.before(r) for r in alone),
    )
    by_errors, by_tpot = _by_revision(errors, q.cl), _by_revision(tpot, q.cl)
    before: dict[Key, Before] = {}
    for revision, found in zip(alone, befores, strict=True):
        stats = {s.labels.get("stat"): s.value for s in found if not math.isnan(s.value)}
        before[revision.key] = (stats.get("errors"), stats.get("tpot"))
    verdicts = []
    for revs in recent:
        measured = [
            dataclasses.replace(r, errors=by_errors.get(r.key), tpot_s=by_tpot.get(r.key))
            for r in revs
        ]
        if len(revs) == 1 and revs[0].key not in before:
            verdicts.append(Verdict(revs[0], "ok", True, False, NOT_COMPARED))
        else:
            verdicts.append(judge(ctx, measured, before.get(revs[0].key)))
    return verdicts, pods


async def run(ctx: CheckContext) -> CheckResult:
    q = Queries(ctx)
    gap, (present, rows) = await asyncio.gather(
        ctx.history_gap(), ctx.query_all(q.present(), q.revisions())
    )
    if not present:
        return unknown(ctx, ID, TITLE, KSM_MISSING)
    if not rows:
        return unknown(ctx, ID, TITLE, NO_WORKLOAD)
    lookback = ctx.number("lookback_s")
    workloads = workloads_of(rows, q.cl)
    recent = [revs for revs in workloads if revs[0].age_s < lookback][:MAX_RECENT]
    if recent and gap:
        return unknown(ctx, ID, TITLE, ctx.too_new("a revision rolled out recently", gap))
    verdicts, pods = await _judged(ctx, q, recent) if recent else ([], [])
    for revs in workloads[len(recent) :]:
        later = revs[0].age_s < lookback  # recent, past the ones compared
        verdicts.append(Verdict(revs[0], "ok", later, False, NOT_COMPARED if later else ""))
    verdicts.sort(key=_rank)
    top = verdicts[0]
    implicated = [v for v in verdicts if v.implicated]
    target = replica_target(ctx.scope)
    offenders = [
        Offender(target=target(s.labels), value=s.value, status=v.status)
        for v in implicated
        for s in sorted(pods, key=lambda s: -s.value)
        if (s.labels.get("namespace", ""), s.labels.get("owner_name", ""), s.labels.get(q.cl, ""))
        == v.newest.key
    ]
    named = [
        (v.newest.target, {"cluster": v.newest.cluster} if v.newest.cluster else {})
        for v in implicated
    ]
    r = top.newest
    return CheckResult(
        id=ID,
        title=TITLE,
        status=top.status,
        value=round(r.age_s / 60, 1),
        unit="min",
        summary=_summary(top, len(verdicts) - 1, lookback),
        offenders=offenders[:TOP_K],
        queries=list(ctx.queries),
        facts={
            "workload": r.target,
            "deployment": r.workload,
            "namespace": r.namespace,
            "revision": r.replicaset,
            "age_s": round(r.age_s),
            "age": age_text(r.age_s),
            "recent": top.recent,
            "implicated": top.implicated,
            "evidence": top.evidence,
            "lookback_s": lookback,
            "workloads": len(verdicts),
            "rollback_targets": list(dict.fromkeys(v.newest.target for v in implicated))[:3],
            "target_clusters": target_clusters(named),
        },
    )


CHECK = Check(
    ID,
    TITLE,
    run,
    {
        "lookback_s": 3600,
        "error_warn": 0.005,
        "error_crit": 0.02,
        "worse_factor": 2.0,
        "tpot_factor": 1.3,
        "quantile": 0.99,
    },
    description="age of the newest revision; whether its replicas err or decode slower",
    thresholds=None,
    context=True,
)
