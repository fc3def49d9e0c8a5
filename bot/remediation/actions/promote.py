"""Promote a canary one phase: give the new revision a larger share of the pods.

The canary is the one an operator makes with a plain Deployment (and the bot's canary
watch compares): the rollout is paused with two ReplicaSets serving, the newest
revision's and the previous one's. Below 100 %, pods move between the two ReplicaSets —
the new one is scaled up first, then the previous one down, so capacity never dips — and
the rollout stays paused. At 100 % the rollout is resumed and the Deployment controller
finishes it. An Argo Rollout promotes itself: export the gates as an AnalysisTemplate
(``vllm-chatops canary export-analysis``) instead.
"""

from __future__ import annotations

import math
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
    int_param,
    parse_target,
    register,
    report,
    retry_on_conflict,
)
from bot.remediation.actions.rollback import revision_of
from bot.sources.kubernetes import KubeClient, Obj


@dataclass(frozen=True)
class Side:
    """One serving ReplicaSet of the canary."""

    name: str
    revision: int
    replicas: int
    image: str


@dataclass(frozen=True)
class Canary:
    deployment: Obj
    new: Side
    old: Side

    @property
    def total(self) -> int:
        return self.new.replicas + self.old.replicas


@dataclass(frozen=True)
class Move:
    """The pods each side has after the promotion (``resume``: 100 %, the controller's)."""

    new: int
    old: int
    resume: bool


def split(total: int, percent: int) -> Move:
    """The new revision's share of ``total`` pods at ``percent``: at least one pod, and
    below 100 % at least one pod left on the previous revision. Pure."""
    if percent >= 100:
        return Move(total, 0, resume=True)
    new = min(max(1, math.ceil(total * percent / 100)), max(1, total - 1))
    return Move(new, total - new, resume=False)


def _side(rs: Obj) -> Side:
    meta = rs["metadata"]
    revision = revision_of(rs)
    template = (rs.get("spec") or {}).get("template") or {}
    return Side(
        meta["name"],
        revision,
        int((rs.get("spec") or {}).get("replicas") or 0),
        images_of(template),
    )


async def find_canary(client: KubeClient, t: Target) -> Canary:
    """The paused Deployment's two serving revisions, newest first; ActionError when no
    canary of that shape is under way."""
    ns = t.namespace or ""
    deployment = await client.get("Deployment", t.name, ns)
    meta = deployment["metadata"]
    if not (deployment.get("spec") or {}).get("paused"):
        raise ActionError(
            f"Deployment {t.ref} is not paused mid-rollout, so no canary is under way "
            "(a canary here is a paused rollout with two ReplicaSets serving)"
        )
    selector = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    serving = sorted(
        (
            _side(rs)
            for rs in await client.list("ReplicaSet", ns, labels=selector or None)
            if any(
                o.get("kind") == "Deployment" and o.get("uid") == meta["uid"]
                for o in rs["metadata"].get("ownerReferences") or []
            )
        ),
        key=lambda s: s.revision,
        reverse=True,
    )
    serving = [s for s in serving if s.replicas > 0]
    if len(serving) != 2:
        names = ", ".join(f"{s.name} ({s.replicas})" for s in serving) or "none"
        raise ActionError(
            f"Deployment {t.ref} has {len(serving)} ReplicaSets serving ({names}); "
            "a canary has exactly two, the new revision and the previous one"
        )
    return Canary(deployment, serving[0], serving[1])


def _target(target: str) -> Target:
    return parse_target(target, ("deployment",))


def _replicas(count: int) -> Obj:
    return {"spec": {"replicas": count}}


def _describe(c: Canary, move: Move, percent: int) -> list[str]:
    if move.resume:
        return [
            f"Deployment {c.deployment['metadata']['name']}: its paused rollout is resumed; "
            f"the controller moves the remaining {c.old.replicas} pod(s) from ReplicaSet "
            f"{c.old.name} ({c.old.image}) to {c.new.name} ({c.new.image})",
        ]
    return [
        f"ReplicaSet {c.new.name} (new, {c.new.image}): {c.new.replicas} → {move.new} pod(s)",
        f"ReplicaSet {c.old.name} (previous, {c.old.image}): {c.old.replicas} → {move.old} pod(s)",
        f"the new revision serves {move.new} of {c.total} pods (asked: {percent} %); "
        "the rollout stays paused",
    ]


class PromoteAction:
    kind = "promote"

    async def plan(self, client: KubeClient, target: str, params: Mapping[str, Any]) -> Plan:
        t = _target(target)
        c = await find_canary(client, t)
        percent = _percent(params)
        move = split(c.total, percent)
        warnings: list[str] = []
        if not move.resume and move.new == c.new.replicas:
            warnings.append(
                f"{c.total} pods cannot be split finer: the new revision already serves "
                f"{move.new}, so nothing moves"
            )
        ns = t.namespace or ""
        if move.resume:
            body, kind, name = {"spec": {"paused": False}}, "Deployment", t.name
        else:
            body, kind, name = _replicas(move.new), "ReplicaSet", c.new.name
        ok = await dry_run(
            lambda: client.patch(kind, name, body, ns, dry_run=True),
            warnings,
        )
        return Plan(
            kind=self.kind,
            target=str(t),
            summary=f"promote the canary of Deployment {t.ref} to {percent} % ({c.new.image})",
            changes=_describe(c, move, percent),
            warnings=warnings,
            dry_run_ok=ok,
            details={
                "traffic_percent": percent,
                "new_replicaset": c.new.name,
                "previous_replicaset": c.old.name,
                "new_pods": move.new,
                "previous_pods": move.old,
            },
        )

    async def execute(
        self,
        client: KubeClient,
        target: str,
        params: Mapping[str, Any],
        progress: Progress | None = None,
    ) -> Outcome:
        t = _target(target)
        percent = _percent(params)
        ns = t.namespace or ""

        async def attempt() -> tuple[Canary, Move]:
            c = await find_canary(client, t)
            move = split(c.total, percent)
            if move.resume:
                await client.patch("Deployment", t.name, {"spec": {"paused": False}}, ns)
                return c, move
            await client.patch("ReplicaSet", c.new.name, _replicas(move.new), ns)
            await report(progress, f"ReplicaSet {c.new.name} scaled to {move.new}")
            await client.patch("ReplicaSet", c.old.name, _replicas(move.old), ns)
            return c, move

        c, move = await retry_on_conflict(attempt)
        if move.resume:
            summary = (
                f"resumed the rollout of Deployment {t.ref}: {c.new.image} takes every pod "
                f"({c.total})"
            )
        else:
            summary = (
                f"promoted the canary of Deployment {t.ref} to {percent} %: {c.new.image} "
                f"serves {move.new} of {c.total} pods"
            )
        await report(progress, summary)
        return Outcome(
            ok=True,
            summary=summary,
            details={"traffic_percent": percent, "new_pods": move.new, "previous_pods": move.old},
        )


def _percent(params: Mapping[str, Any]) -> int:
    percent = int_param(params, "traffic_percent", minimum=1)
    if percent > 100:
        raise ActionError(f"parameter 'traffic_percent' must be at most 100, not {percent}")
    return percent


ACTION = register(PromoteAction())
