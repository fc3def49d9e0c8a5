"""Drain a node (cordon, then evict its serving pods through the Eviction API) and uncordon.

Evictions go through ``pods/NAME/eviction`` so the API server enforces PodDisruptionBudgets;
a 429 means "not now", and the pod is retried with backoff until ``timeout_s``. DaemonSet
pods and mirror (static) pods are left alone, as ``kubectl drain --ignore-daemonsets`` does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from bot.remediation.actions.base import (
    ActionError,
    Outcome,
    Plan,
    Progress,
    dry_run,
    float_param,
    parse_target,
    register,
    report,
    retry_on_conflict,
)
from bot.sources.kubernetes import KubeClient, KubernetesError, Obj

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
DEFAULT_TIMEOUT_S = 300.0
DEFAULT_RETRY_S = 5.0


def _pod_ref(pod: Obj) -> str:
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"


def skip_reason(pod: Obj) -> str | None:
    """Why drain leaves this pod alone, or None when it is to be evicted."""
    meta = pod["metadata"]
    if MIRROR_ANNOTATION in (meta.get("annotations") or {}):
        return "mirror (static) pod"
    for owner in meta.get("ownerReferences") or []:
        if owner.get("kind") == "DaemonSet" and owner.get("controller", False):
            return f"managed by DaemonSet {owner.get('name')}"
    return None


async def pods_on_node(client: KubeClient, node: str) -> tuple[list[Obj], list[tuple[Obj, str]]]:
    """(pods to evict, [(pod, why skipped)]) on ``node``."""
    evict: list[Obj] = []
    skipped: list[tuple[Obj, str]] = []
    for pod in await client.list("Pod", None, fields={"spec.nodeName": node}):
        why = skip_reason(pod)
        if why is None:
            evict.append(pod)
        else:
            skipped.append((pod, why))
    return evict, skipped


class DrainAction:
    kind = "drain"

    async def plan(self, client: KubeClient, target: str, params: Mapping[str, Any]) -> Plan:
        t = parse_target(target, ("node",))
        node = await client.get("Node", t.name)
        timeout_s = float_param(params, "timeout_s", DEFAULT_TIMEOUT_S)
        evict, skipped = await pods_on_node(client, t.name)
        warnings: list[str] = []
        if (node.get("spec") or {}).get("unschedulable"):
            warnings.append(f"node {t.name} is already cordoned")
        ok = await dry_run(
            lambda: client.patch("Node", t.name, {"spec": {"unschedulable": True}}, dry_run=True),
            warnings,
        )
        # Ask the API server (dry run) whether each eviction would pass its PDB right now.
        for pod in evict:
            meta = pod["metadata"]
            try:
                await client.evict(meta["name"], meta["namespace"], dry_run=True)
            except KubernetesError as exc:
                if exc.status == 429:
                    warnings.append(
                        f"{exc.message}; the drain will wait for it (up to {timeout_s:g}s)"
                    )
                else:
                    warnings.append(f"pod {_pod_ref(pod)}: eviction dry run failed: {exc.message}")
                    ok = False
        changes = [f"cordon node {t.name} (spec.unschedulable → true)"]
        changes += [f"evict pod {_pod_ref(p)}" for p in evict]
        if not evict:
            changes.append("no pods to evict")
        return Plan(
            kind=self.kind,
            target=str(t),
            summary=f"drain node {t.name}: cordon, then evict {len(evict)} pods",
            changes=changes,
            warnings=warnings,
            dry_run_ok=ok,
            details={
                "evict": [_pod_ref(p) for p in evict],
                "skip": {_pod_ref(p): why for p, why in skipped},
                "timeout_s": timeout_s,
            },
        )

    async def execute(
        self,
        client: KubeClient,
        target: str,
        params: Mapping[str, Any],
        progress: Progress | None = None,
    ) -> Outcome:
        t = parse_target(target, ("node",))
        timeout_s = float_param(params, "timeout_s", DEFAULT_TIMEOUT_S)
        retry_s = float_param(params, "retry_interval_s", DEFAULT_RETRY_S)
        if retry_s <= 0:
            raise ActionError("parameter 'retry_interval_s' must be positive")
        deadline = time.monotonic() + timeout_s
        await client.get("Node", t.name)  # read before writing: a missing node stops here
        await cordon(client, t.name, True)
        await report(progress, f"cordoned node {t.name}")

        evict, _ = await pods_on_node(client, t.name)
        total = len(evict)
        pending = {_pod_ref(p): p for p in evict}
        evicted: list[str] = []
        blocked: dict[str, str] = {}
        delay = retry_s
        while pending:
            for ref, pod in list(pending.items()):
                meta = pod["metadata"]
                try:
                    await client.evict(meta["name"], meta["namespace"])
                except KubernetesError as exc:
                    if exc.status == 429:
                        blocked[ref] = exc.message
                        continue
                    if exc.status != 404:  # 404: already gone, which is what we wanted
                        raise
                del pending[ref]
                blocked.pop(ref, None)
                evicted.append(ref)
                await report(progress, f"evicted {len(evicted)}/{total}: {ref}")
            if not pending:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await report(
                progress,
                f"waiting on {len(pending)} pod(s) blocked by disruption budgets: "
                + ", ".join(pending),
            )
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, max(retry_s, 30.0))

        gone = await _wait_gone(client, evicted, deadline)
        lingering = [ref for ref in evicted if ref not in gone]
        if pending:
            stuck = "; ".join(f"{ref}: {blocked.get(ref, 'not evicted')}" for ref in pending)
            summary = (
                f"drain of node {t.name} timed out after {timeout_s:g}s: evicted "
                f"{len(evicted)}/{total}; not evicted: {stuck}. The node stays cordoned."
            )
        else:
            summary = f"drained node {t.name}: cordoned and evicted {len(evicted)}/{total} pods"
        if lingering:
            summary += f" (still terminating: {', '.join(lingering)})"
        return Outcome(
            ok=not pending,
            summary=summary,
            details={
                "evicted": evicted,
                "not_evicted": list(pending),
                "blocked": {ref: blocked.get(ref, "") for ref in pending},
                "terminating": lingering,
            },
        )


async def _wait_gone(client: KubeClient, refs: list[str], deadline: float) -> set[str]:
    """The evicted pods that have actually disappeared (polled until ``deadline``)."""
    gone: set[str] = set()
    while True:
        for ref in refs:
            if ref in gone:
                continue
            ns, name = ref.split("/", 1)
            try:
                await client.get("Pod", name, ns)
            except KubernetesError as exc:
                if exc.status != 404:
                    raise
                gone.add(ref)
        if len(gone) == len(refs) or time.monotonic() >= deadline:
            return gone
        await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


async def cordon(client: KubeClient, node: str, unschedulable: bool) -> Obj:
    async def attempt() -> Obj:
        return await client.patch("Node", node, {"spec": {"unschedulable": unschedulable}})

    return await retry_on_conflict(attempt)


class UncordonAction:
    kind = "uncordon"

    async def plan(self, client: KubeClient, target: str, params: Mapping[str, Any]) -> Plan:
        t = parse_target(target, ("node",))
        node = await client.get("Node", t.name)
        warnings: list[str] = []
        if not (node.get("spec") or {}).get("unschedulable"):
            warnings.append(f"node {t.name} is not cordoned; nothing to undo")
        ok = await dry_run(
            lambda: client.patch("Node", t.name, {"spec": {"unschedulable": False}}, dry_run=True),
            warnings,
        )
        return Plan(
            kind=self.kind,
            target=str(t),
            summary=f"uncordon node {t.name}: allow new pods to be scheduled on it",
            changes=[f"node {t.name}: spec.unschedulable → false"],
            warnings=warnings,
            dry_run_ok=ok,
            details={"was_cordoned": bool((node.get("spec") or {}).get("unschedulable"))},
        )

    async def execute(
        self,
        client: KubeClient,
        target: str,
        params: Mapping[str, Any],
        progress: Progress | None = None,
    ) -> Outcome:
        t = parse_target(target, ("node",))
        await client.get("Node", t.name)  # read before writing
        updated = await cordon(client, t.name, False)
        schedulable = not (updated.get("spec") or {}).get("unschedulable")
        await report(progress, f"uncordoned node {t.name}")
        return Outcome(
            ok=schedulable,
            summary=f"uncordoned node {t.name}: new pods can be scheduled on it again",
            details={"unschedulable": not schedulable},
        )


ACTION = register(DrainAction())
UNCORDON = register(UncordonAction())
