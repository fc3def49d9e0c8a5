"""Roll a Deployment back to its previous revision, as ``kubectl rollout undo`` does.

The Deployment's ReplicaSets carry ``deployment.kubernetes.io/revision``; the previous
revision's pod template (minus the controller's ``pod-template-hash`` label) is written
back into the Deployment, and the controller brings that ReplicaSet back as a new revision.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.actions.base import (
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


def _revision(obj: Obj) -> int:
    try:
        return int((obj["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


async def history(client: KubeClient, deployment: Obj) -> list[Revision]:
    """The deployment's ReplicaSets as revisions, oldest first."""
    meta = deployment["metadata"]
    selector = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    owned = [
        rs
        for rs in await client.list("ReplicaSet", meta["namespace"], labels=selector or None)
        if any(
            o.get("kind") == "Deployment" and o.get("uid") == meta["uid"]
            for o in rs["metadata"].get("ownerReferences") or []
        )
    ]
    revisions = [
        Revision(
            _revision(rs), rs["metadata"]["name"], (rs.get("spec") or {}).get("template") or {}
        )
        for rs in owned
    ]
    return sorted(revisions, key=lambda r: r.number)


def rollback_template(template: Obj) -> Obj:
    """The ReplicaSet's template without the controller-added ``pod-template-hash`` label."""
    clean = copy.deepcopy(template)
    labels = (clean.get("metadata") or {}).get("labels")
    if labels:
        labels.pop("pod-template-hash", None)
    return clean


@dataclass(frozen=True)
class _Step:
    current: Revision
    previous: Revision
    deployment: Obj


async def _choose(client: KubeClient, t: Target, params: Mapping[str, Any]) -> _Step:
    ns = t.namespace or ""
    deployment = await client.get("Deployment", t.name, ns)
    revisions = await history(client, deployment)
    if not revisions:
        raise ActionError(f"Deployment {t.ref} has no ReplicaSets, so no rollout history")
    now = _revision(deployment)
    current = next((r for r in revisions if r.number == now), revisions[-1])
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
            raise ActionError(f"Deployment {t.ref} has no revision {number} (has {known})")
        if previous.number == current.number:
            raise ActionError(f"Deployment {t.ref} is already at revision {number}")
    else:
        older = [r for r in revisions if r.number < current.number]
        if not older:
            raise ActionError(
                f"Deployment {t.ref} has no previous revision to roll back to "
                f"(only {current.describe()})"
            )
        previous = older[-1]
    return _Step(current, previous, deployment)


def _patch(step: _Step) -> list[Obj]:
    return [
        {
            "op": "replace",
            "path": "/spec/template",
            "value": rollback_template(step.previous.template),
        },
    ]


class RollbackAction:
    kind = "rollback"

    async def plan(self, client: KubeClient, target: str, params: Mapping[str, Any]) -> Plan:
        t = parse_target(target, ("deployment",))
        step = await _choose(client, t, params)
        warnings: list[str] = []
        if step.previous.image == step.current.image:
            warnings.append(
                "both revisions run the same image; the difference is elsewhere in the pod template"
            )
        ok = await dry_run(
            lambda: client.patch(
                "Deployment", t.name, _patch(step), t.namespace, patch_type="json", dry_run=True
            ),
            warnings,
        )
        return Plan(
            kind=self.kind,
            target=str(t),
            summary=(
                f"roll back Deployment {t.ref}: {step.current.describe()} → "
                f"{step.previous.describe()}"
            ),
            changes=[
                f"Deployment {t.ref}: pod template of {step.current.describe()} replaced by "
                f"that of {step.previous.describe()} (ReplicaSet {step.previous.replicaset})",
                "pods are replaced by a rolling update",
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
        t = parse_target(target, ("deployment",))

        async def attempt() -> tuple[_Step, Obj]:
            step = await _choose(client, t, params)
            updated = await client.patch(
                "Deployment", t.name, _patch(step), t.namespace, patch_type="json"
            )
            return step, updated

        step, updated = await retry_on_conflict(attempt)
        new_revision = _revision(updated)
        image = images_of((updated.get("spec") or {}).get("template") or {})
        await report(progress, f"rolled back Deployment {t.ref} to {step.previous.image}")
        return Outcome(
            ok=image == step.previous.image,
            summary=(
                f"rolled back Deployment {t.ref} from {step.current.describe()} to the template "
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
