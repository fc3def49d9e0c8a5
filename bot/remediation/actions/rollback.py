"""Roll a Deployment or an Argo Rollout back to its previous revision.

For a Deployment this is ``kubectl rollout undo``: the Deployment's ReplicaSets carry
``deployment.kubernetes.io/revision``; the previous revision's pod template (minus the
controller's ``pod-template-hash`` label) is written back into the Deployment, and the
controller brings that ReplicaSet back as a new revision.

For an Argo Rollout (``rollout/NAMESPACE/NAME``) it is ``kubectl argo rollouts undo``: the
Rollout's ReplicaSets carry ``rollout.argoproj.io/revision`` and the
``rollouts-pod-template-hash`` label; the previous revision's template (minus that label)
becomes the Rollout's ``spec.template`` and the Argo Rollouts controller rolls it out under
the Rollout's strategy (canary steps or blue-green) as a new revision.
"""

from __future__ import annotations

import copy
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
    images_of,
    parse_target,
    register,
    report,
    retry_on_conflict,
)
from bot.sources.kubernetes import KubeClient, Obj

REVISION = "deployment.kubernetes.io/revision"
ROLLOUT_REVISION = "rollout.argoproj.io/revision"
ROLLOUT_HASH = "rollouts-pod-template-hash"


@dataclass(frozen=True)
class WorkloadKind:
    """How a kind of workload records its rollout history on its ReplicaSets."""

    kind: str
    revision_annotation: str
    hash_label: str
    rollout: str  # how its pods get replaced, for the plan


WORKLOADS: dict[str, WorkloadKind] = {
    "Deployment": WorkloadKind(
        "Deployment", REVISION, "pod-template-hash", "pods are replaced by a rolling update"
    ),
    "Rollout": WorkloadKind(
        "Rollout",
        ROLLOUT_REVISION,
        ROLLOUT_HASH,
        "the Argo Rollouts controller rolls it out under the Rollout's strategy "
        "(canary steps or blue-green)",
    ),
}


@dataclass(frozen=True)
class Revision:
    number: int
    replicaset: str
    template: Obj

    @property
    def image(self) -> str:
        return images_of(self.template)

    def describe(self) -> str:
        return f"revision {self.number} ({self.image})"


def revision_of(obj: Obj, annotation: str = REVISION) -> int:
    try:
        return int((obj["metadata"].get("annotations") or {}).get(annotation, "0"))
    except ValueError:
        return 0


async def history(client: KubeClient, workload: Obj, kind: str = "Deployment") -> list[Revision]:
    """The workload's (Deployment's or Rollout's) ReplicaSets as revisions, oldest first."""
    wk = WORKLOADS[kind]
    meta = workload["metadata"]
    selector = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    owned = [
        rs
        for rs in await client.list("ReplicaSet", meta["namespace"], labels=selector or None)
        if any(
            o.get("kind") == wk.kind and o.get("uid") == meta["uid"]
            for o in rs["metadata"].get("ownerReferences") or []
        )
    ]
    revisions = [
        Revision(
            revision_of(rs, wk.revision_annotation),
            rs["metadata"]["name"],
            (rs.get("spec") or {}).get("template") or {},
        )
        for rs in owned
    ]
    return sorted(revisions, key=lambda r: r.number)


def rollback_template(template: Obj, hash_label: str = "pod-template-hash") -> Obj:
    """The ReplicaSet's template without the controller-added pod-template-hash label."""
    clean = copy.deepcopy(template)
    labels = (clean.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(hash_label, None)
    return clean


@dataclass(frozen=True)
class _Step:
    current: Revision
    previous: Revision
    workload: Obj


def _current(wk: WorkloadKind, workload: Obj, revisions: list[Revision]) -> Revision:
    now = revision_of(workload, wk.revision_annotation)
    found = next((r for r in revisions if r.number == now), None)
    if found is None and wk.kind == "Rollout":
        # Argo records the live template's hash in status.currentPodHash.
        pod_hash = (workload.get("status") or {}).get("currentPodHash")
        found = next(
            (
                r
                for r in revisions
                if pod_hash
                and ((r.template.get("metadata") or {}).get("labels") or {}).get(wk.hash_label)
                == pod_hash
            ),
            None,
        )
    return found or revisions[-1]


async def _choose(
    client: KubeClient, t: Target, wk: WorkloadKind, params: Mapping[str, Any]
) -> _Step:
    ns = t.namespace or ""
    workload = await client.get(wk.kind, t.name, ns)
    if wk.kind == "Rollout" and not (workload.get("spec") or {}).get("template"):
        raise ActionError(
            f"Rollout {t.ref} has no spec.template (it references a workload through "
            "spec.workloadRef); roll back the referenced Deployment instead"
        )
    revisions = await history(client, workload, wk.kind)
    if not revisions:
        raise ActionError(f"{wk.kind} {t.ref} has no ReplicaSets, so no rollout history")
    current = _current(wk, workload, revisions)
    wanted = params.get("to_revision")
    if wanted is not None:
        try:
            number = int(wanted)
        except (TypeError, ValueError):
            raise ActionError(
                f"parameter 'to_revision' must be an integer, not {wanted!r}"
            ) from None
        previous = next((r for r in revisions if r.number == number), None)
        if previous is None:
            known = ", ".join(str(r.number) for r in revisions)
            raise ActionError(f"{wk.kind} {t.ref} has no revision {number} (has {known})")
        if previous.number == current.number:
            raise ActionError(f"{wk.kind} {t.ref} is already at revision {number}")
    else:
        older = [r for r in revisions if r.number < current.number]
        if not older:
            raise ActionError(
                f"{wk.kind} {t.ref} has no previous revision to roll back to "
                f"(only {current.describe()})"
            )
        previous = older[-1]
    return _Step(current, previous, workload)


def _paused(step: _Step, wk: WorkloadKind) -> bool:
    """A Deployment whose rollout is paused (a canary made by pausing mid-rollout): a new
    template alone would never roll out, so the rollback resumes it too."""
    return wk.kind == "Deployment" and bool((step.workload.get("spec") or {}).get("paused"))


def _patch(step: _Step, wk: WorkloadKind) -> list[Obj]:
    ops: list[Obj] = [
        {
            "op": "replace",
            "path": "/spec/template",
            "value": rollback_template(step.previous.template, wk.hash_label),
        },
    ]
    if _paused(step, wk):
        ops.append({"op": "replace", "path": "/spec/paused", "value": False})
    return ops


def _target(target: str) -> tuple[Target, WorkloadKind]:
    t = parse_target(target, ("deployment", "rollout"))
    return t, WORKLOADS[t.kind]


class RollbackAction:
    kind = "rollback"

    async def plan(self, client: KubeClient, target: str, params: Mapping[str, Any]) -> Plan:
        t, wk = _target(target)
        step = await _choose(client, t, wk, params)
        warnings: list[str] = []
        if step.previous.image == step.current.image:
            warnings.append(
                "both revisions run the same image; the difference is elsewhere in the pod template"
            )
        ok = await dry_run(
            lambda: client.patch(
                wk.kind, t.name, _patch(step, wk), t.namespace, patch_type="json", dry_run=True
            ),
            warnings,
        )
        return Plan(
            kind=self.kind,
            target=str(t),
            summary=(
                f"roll back {wk.kind} {t.ref}: {step.current.describe()} → "
                f"{step.previous.describe()}"
            ),
            changes=[
                f"{wk.kind} {t.ref}: pod template of {step.current.describe()} replaced by "
                f"that of {step.previous.describe()} (ReplicaSet {step.previous.replicaset})",
                wk.rollout,
                *(
                    ["its paused rollout is resumed, so the rollback rolls out"]
                    if _paused(step, wk)
                    else []
                ),
            ],
            warnings=warnings,
            dry_run_ok=ok,
            details={
                "from_revision": step.current.number,
                "from_image": step.current.image,
                "to_revision": step.previous.number,
                "to_image": step.previous.image,
                "replicaset": step.previous.replicaset,
            },
        )

    async def execute(
        self,
        client: KubeClient,
        target: str,
        params: Mapping[str, Any],
        progress: Progress | None = None,
    ) -> Outcome:
        t, wk = _target(target)

        async def attempt() -> tuple[_Step, Obj]:
            step = await _choose(client, t, wk, params)
            updated = await client.patch(
                wk.kind, t.name, _patch(step, wk), t.namespace, patch_type="json"
            )
            return step, updated

        step, updated = await retry_on_conflict(attempt)
        new_revision = revision_of(updated, wk.revision_annotation)
        image = images_of((updated.get("spec") or {}).get("template") or {})
        await report(progress, f"rolled back {wk.kind} {t.ref} to {step.previous.image}")
        return Outcome(
            ok=image == step.previous.image,
            summary=(
                f"rolled back {wk.kind} {t.ref} from {step.current.describe()} to the template "
                f"of {step.previous.describe()}; it is now revision {new_revision} ({image})"
            ),
            details={
                "from_revision": step.current.number,
                "to_revision": step.previous.number,
                "new_revision": new_revision,
                "image": image,
            },
        )


ACTION = register(RollbackAction())
