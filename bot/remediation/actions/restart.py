"""Restart: a whole Deployment/StatefulSet, or one pod.

``deployment/NS/NAME`` and ``statefulset/NS/NAME`` roll every pod, as
``kubectl rollout restart`` does (the ``restartedAt`` pod template annotation).

``pod/NS/POD`` restarts that one replica: the pod is evicted and the controller that owns
it (a ReplicaSet, usually of a Deployment; a StatefulSet, …) creates its replacement, so
the other replicas keep serving and the workload is not rolled. A pod nothing would
recreate is refused: one without a controlling owner, a static pod, one already
terminating, one whose ReplicaSet is gone or scaled to zero.

Why an eviction and not a DELETE: a DELETE ignores PodDisruptionBudgets, so restarting a
"faulty" replica could take out the last one serving while the others are still loading
their model. An eviction (``POST pods/NAME/eviction``) is a delete the API server admits
only while the pod's PodDisruptionBudget allows one more disruption, and answers 429
TooManyRequests when it does not; a pod that is not ready (the usual broken replica)
counts against the budget already, so it stays evictable whenever the healthy replicas
meet it. It is also the one pod-removing verb the bot holds for drains
(``create pods/eviction``): it needs no ``delete pods`` grant.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.remediation.actions.base import (
    ActionError,
    Outcome,
    Plan,
    Progress,
    Target,
    dry_run,
    float_param,
    parse_target,
    register,
    report,
    retry_on_conflict,
)
from bot.remediation.actions.drain import MIRROR_ANNOTATION
from bot.sources.kubernetes import KubeClient, KubernetesError, Obj

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
TARGET_TYPES = ("deployment", "statefulset", "pod")
# How long execute() watches for the replacement pod (parameter ``wait_s``); the eviction
# has been accepted either way, and the verification re-check judges the result.
DEFAULT_WAIT_S = 30.0
POLL_S = 1.0
DEFAULT_GRACE_S = 30  # the API's default terminationGracePeriodSeconds


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _patch(stamp: str) -> Obj:
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}


def _last_restart(obj: Obj) -> str | None:
    template = (obj.get("spec") or {}).get("template") or {}
    value = ((template.get("metadata") or {}).get("annotations") or {}).get(RESTARTED_AT)
    return str(value) if value else None


# --- one pod ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Recreator:
    """The controller that replaces an evicted pod."""

    uid: str  # of the pod's controlling owner: its replacement has the same owner
    chain: tuple[str, ...]  # ("ReplicaSet llama-7d9c", "Deployment llama")
    selector: dict[str, str] | None  # labels every pod of that owner carries, when known
    same_name: bool  # a StatefulSet recreates the pod under its own name
    warnings: tuple[str, ...] = ()

    def __str__(self) -> str:
        return " of ".join(self.chain)


def _controller(obj: Obj) -> Obj | None:
    return next(
        (o for o in obj["metadata"].get("ownerReferences") or [] if o.get("controller")), None
    )


def _ready(pod: Obj) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


async def _read_pod(client: KubeClient, t: Target) -> Obj:
    try:
        return await client.get("Pod", t.name, t.namespace)
    except KubernetesError as exc:
        if exc.status != 404:
            raise
        raise KubernetesError(
            exc.status,
            exc.reason,
            f"pod {t.ref} was not found: it may have been restarted or replaced already "
            "(a Deployment's new pod gets a new name). Nothing was done; diagnose again "
            "to see the current pods",
            exc.api_message,
        ) from exc


async def recreator_of(client: KubeClient, pod: Obj) -> Recreator:
    """Who replaces ``pod`` once it is evicted; ActionError when nothing would, or when it
    is already on its way out."""
    meta = pod["metadata"]
    ref = f"{meta['namespace']}/{meta['name']}"
    if meta.get("deletionTimestamp"):
        raise ActionError(
            f"pod {ref} is already terminating (deletion requested at "
            f"{meta['deletionTimestamp']}): its controller replaces it once it has stopped. "
            "Nothing to restart"
        )
    if MIRROR_ANNOTATION in (meta.get("annotations") or {}):
        node = (pod.get("spec") or {}).get("nodeName", "its node")
        raise ActionError(
            f"pod {ref} is a static pod, run by the kubelet on {node} from a manifest file: "
            "evicting it would restart nothing. Nothing was done; restart it on the node"
        )
    owner = _controller(pod)
    if owner is None:
        raise ActionError(
            f"pod {ref} has no controller (no ownerReference with controller: true), so "
            "nothing would recreate it: evicted, it would be gone for good. Nothing was "
            "done; restart whatever created it, or recreate the pod from its manifest"
        )
    kind, name, uid = str(owner.get("kind")), str(owner.get("name")), str(owner.get("uid"))
    if kind != "ReplicaSet":
        return Recreator(uid, (f"{kind} {name}",), None, same_name=kind == "StatefulSet")
    try:
        rs: Obj | None = await client.get("ReplicaSet", name, meta["namespace"])
    except KubernetesError as exc:
        if exc.status != 404:
            raise
        rs = None
    if rs is None or rs["metadata"].get("uid") != uid:
        raise ActionError(
            f"pod {ref}: its ReplicaSet {name} no longer exists, so nothing would replace "
            "it. Nothing was done"
        )
    desired = int((rs.get("spec") or {}).get("replicas", 1))
    current = int((rs.get("status") or {}).get("replicas", desired))
    chain = [f"ReplicaSet {name}"]
    top = _controller(rs)
    if top is not None:
        chain.append(f"{top.get('kind')} {top.get('name')}")
    if desired == 0:
        raise ActionError(
            f"pod {ref}: {' of '.join(chain)} is scaled to 0 (an old revision being "
            "retired), so it would not replace the pod. Nothing was done"
        )
    warnings = []
    if current > desired:
        warnings.append(
            f"ReplicaSet {name} is scaling down ({current} → {desired} pods): it may not "
            "replace this pod"
        )
    selector = ((rs.get("spec") or {}).get("selector") or {}).get("matchLabels")
    return Recreator(
        uid,
        tuple(chain),
        dict(selector) if selector else None,
        same_name=False,
        warnings=tuple(warnings),
    )


async def _siblings(client: KubeClient, namespace: str, who: Recreator) -> list[Obj]:
    """The pods ``who`` controls (the evicted one while it lasts, then its replacement)."""
    pods = await client.list("Pod", namespace, labels=who.selector)
    return [p for p in pods if (_controller(p) or {}).get("uid") == who.uid]


def _blocked(ref: str, exc: KubernetesError) -> str:
    return (
        f"{exc.message}. Nothing was done: the Eviction API refuses while the budget "
        f"allows no disruption. Try again once more replicas are ready, or, accepting the "
        f"disruption, delete the pod by hand (kubectl delete pod -n {ref.replace('/', ' ', 1)})"
    )


async def _plan_pod(client: KubeClient, t: Target) -> Plan:
    pod = await _read_pod(client, t)
    who = await recreator_of(client, pod)
    meta, spec = pod["metadata"], pod.get("spec") or {}
    warnings = list(who.warnings)
    siblings = await _siblings(client, meta["namespace"], who)
    serving = [p for p in siblings if p["metadata"]["uid"] != meta.get("uid") and _ready(p)]
    if not serving:
        warnings.append(
            f"no other replica of {who} is ready: nothing it runs is served until the "
            "replacement is ready (loading a model can take minutes)"
        )
    ok = True
    try:  # the API server's answer now: 429 while a PodDisruptionBudget forbids it
        await client.evict(t.name, str(t.namespace), dry_run=True, uid=meta.get("uid"))
    except KubernetesError as exc:
        if exc.status == 429:
            raise ActionError(_blocked(t.ref, exc)) from exc
        warnings.append(f"server-side dry run failed: {exc.message}")
        ok = False
    grace = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_S)
    node = spec.get("nodeName")
    comes_back = (
        f"{who} recreates pod {t.name} under the same name once it has stopped"
        if who.same_name
        else f"{who} creates a replacement pod"
    )
    whole = who.chain[-1]
    return Plan(
        kind="restart",
        target=str(t),
        summary=f"restart pod {t.ref}: evict it, and {who} replaces it",
        changes=[
            f"evict pod {t.ref}{' on node ' + node if node else ''} through the Eviction API "
            f"(PodDisruptionBudgets apply): it stops within its {grace}s grace period",
            f"{comes_back}; only this replica restarts, {whole} is not rolled",
        ],
        warnings=warnings,
        dry_run_ok=ok,
        details={
            "pod": t.ref,
            "uid": meta.get("uid"),
            "node": node,
            "controller": list(who.chain),
            "grace_period_s": grace,
        },
    )


async def _execute_pod(
    client: KubeClient, t: Target, params: Mapping[str, Any], progress: Progress | None
) -> Outcome:
    wait_s = float_param(params, "wait_s", DEFAULT_WAIT_S)
    pod = await _read_pod(client, t)  # read before writing: a missing pod stops here
    who = await recreator_of(client, pod)  # the refusals, on what is live now
    uid = str(pod["metadata"].get("uid"))
    known = {p["metadata"]["uid"] for p in await _siblings(client, str(t.namespace), who)}
    known.add(uid)
    details: dict[str, Any] = {"pod": t.ref, "controller": list(who.chain)}
    # Only this pod (its uid): executed late or twice, it never evicts its own replacement.
    try:
        await client.evict(t.name, str(t.namespace), uid=uid)
        evicted = f"evicted pod {t.ref}"
    except KubernetesError as exc:
        if exc.status == 429:
            return Outcome(ok=False, summary=_blocked(t.ref, exc), details=details)
        if exc.status == 409:
            return Outcome(
                ok=False,
                summary=f"pod {t.ref} was replaced by a new pod of the same name before the "
                "eviction reached it; nothing was done (the new pod was left alone)",
                details=details,
            )
        if exc.status != 404:
            raise
        evicted = f"pod {t.ref} was already gone"  # what was asked for, by someone else
    await report(progress, f"{evicted}; waiting for {who} to replace it")
    deadline = time.monotonic() + wait_s
    new: list[Obj] = []
    while True:
        new = [
            p
            for p in await _siblings(client, str(t.namespace), who)
            if p["metadata"]["uid"] not in known
        ]
        remaining = deadline - time.monotonic()
        if new or remaining <= 0:
            break
        await asyncio.sleep(min(POLL_S, remaining))
    if new:
        name = new[0]["metadata"]["name"]
        phase = (new[0].get("status") or {}).get("phase") or "Pending"
        details["replacement"] = f"{t.namespace}/{name}"
        summary = f"restarted pod {t.ref}: {evicted}; {who} replaced it with {name} ({phase})"
        await report(progress, f"replacement: pod {t.namespace}/{name} ({phase})")
    else:
        details["replacement"] = None
        summary = (
            f"restarted pod {t.ref}: {evicted}; no replacement from {who} seen within "
            f"{wait_s:g}s (the old pod may still be stopping): "
            f"check kubectl get pods -n {t.namespace}"
        )
    return Outcome(ok=True, summary=summary, details=details)


# --- the action ---------------------------------------------------------------------------


class RestartAction:
    kind = "restart"

    async def plan(self, client: KubeClient, target: str, params: Mapping[str, Any]) -> Plan:
        t = parse_target(target, TARGET_TYPES)
        if t.type == "pod":
            return await _plan_pod(client, t)
        obj = await client.get(t.kind, t.name, t.namespace)
        replicas = int((obj.get("spec") or {}).get("replicas", 1))
        stamp = _now()
        warnings: list[str] = []
        if replicas == 0:
            warnings.append(f"{t.kind} {t.ref} has 0 replicas; nothing will actually restart")
        previous = _last_restart(obj)
        ok = await dry_run(
            lambda: client.patch(t.kind, t.name, _patch(stamp), t.namespace, dry_run=True),
            warnings,
        )
        return Plan(
            kind=self.kind,
            target=str(t),
            summary=f"rolling restart of {t.kind} {t.ref} ({replicas} pods)",
            changes=[
                f"{t.kind} {t.ref}: pod template annotation {RESTARTED_AT} "
                f"{previous or '(unset)'} → now",
                f"{replicas} pods replaced one by one under the rollout strategy",
            ],
            warnings=warnings,
            dry_run_ok=ok,
            details={"replicas": replicas, "previous_restart": previous},
        )

    async def execute(
        self,
        client: KubeClient,
        target: str,
        params: Mapping[str, Any],
        progress: Progress | None = None,
    ) -> Outcome:
        t: Target = parse_target(target, TARGET_TYPES)
        if t.type == "pod":
            return await _execute_pod(client, t, params, progress)
        await client.get(t.kind, t.name, t.namespace)  # read before writing: 404 stops here
        stamp = _now()

        async def attempt() -> Obj:
            return await client.patch(t.kind, t.name, _patch(stamp), t.namespace)

        updated = await retry_on_conflict(attempt)
        await report(progress, f"restart of {t.kind} {t.ref} requested at {stamp}")
        details: dict[str, Any] = {"restartedAt": stamp}
        revision = (updated["metadata"].get("annotations") or {}).get(
            "deployment.kubernetes.io/revision"
        )
        if revision:
            details["revision"] = revision
        return Outcome(
            ok=_last_restart(updated) == stamp,
            summary=f"rolling restart of {t.kind} {t.ref} started ({RESTARTED_AT}={stamp})",
            details=details,
        )


ACTION = register(RestartAction())
