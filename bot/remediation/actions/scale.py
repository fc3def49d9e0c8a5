"""Scale a Deployment/StatefulSet, or move its autoscaler's floor when one owns the count.

If an HPA (or a KEDA ScaledObject, through the HPA it creates) targets the workload,
writing the scale subresource would be undone by the autoscaler within seconds. Instead the
autoscaler's lower bound is set to N (and the upper bound raised to N if it was below), and
the plan says so.
"""

from __future__ import annotations

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
    int_param,
    parse_target,
    register,
    report,
    retry_on_conflict,
)
from bot.sources.kubernetes import KubeClient, Obj


@dataclass(frozen=True)
class Autoscaler:
    """Who owns the replica count: an HPA, or the KEDA ScaledObject behind it."""

    kind: str  # "HorizontalPodAutoscaler" | "ScaledObject"
    namespace: str
    name: str
    hpa: str
    min_field: str
    max_field: str

    @property
    def label(self) -> str:
        if self.kind == "ScaledObject":
            return f"KEDA ScaledObject {self.namespace}/{self.name} (via HPA {self.hpa})"
        return f"HPA {self.namespace}/{self.name}"


async def find_autoscaler(client: KubeClient, target: Target) -> Autoscaler | None:
    assert target.namespace is not None
    for hpa in await client.list("HorizontalPodAutoscaler", target.namespace):
        ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        if ref.get("kind") != target.kind or ref.get("name") != target.name:
            continue
        name = hpa["metadata"]["name"]
        for owner in hpa["metadata"].get("ownerReferences") or []:
            if owner.get("kind") == "ScaledObject":
                return Autoscaler(
                    "ScaledObject",
                    target.namespace,
                    owner["name"],
                    name,
                    "minReplicaCount",
                    "maxReplicaCount",
                )
        return Autoscaler(
            "HorizontalPodAutoscaler", target.namespace, name, name, "minReplicas", "maxReplicas"
        )
    return None


def _bounds(obj: Obj, scaler: Autoscaler) -> tuple[int, int]:
    spec = obj.get("spec") or {}
    default_min = 0 if scaler.kind == "ScaledObject" else 1
    return int(spec.get(scaler.min_field, default_min)), int(spec.get(scaler.max_field, 100))


def _bounds_patch(obj: Obj, scaler: Autoscaler, replicas: int) -> tuple[Obj, list[str]]:
    lo, hi = _bounds(obj, scaler)
    spec: dict[str, Any] = {scaler.min_field: replicas}
    verb = "raising" if replicas > lo else "lowering" if replicas < lo else "keeping"
    changes = [
        f"{scaler.label} owns the replica count: {verb} {scaler.min_field} {lo} → {replicas}"
    ]
    if hi < replicas:
        spec[scaler.max_field] = replicas
        changes.append(f"raising {scaler.max_field} {hi} → {replicas} so the floor fits")
    patch: Obj = {
        "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
        "spec": spec,
    }
    return patch, changes


class ScaleAction:
    kind = "scale"

    @staticmethod
    def _args(target: str, params: Mapping[str, Any]) -> tuple[Target, int]:
        parsed = parse_target(target, ("deployment", "statefulset"))
        return parsed, int_param(params, "replicas", minimum=0)

    async def plan(self, client: KubeClient, target: str, params: Mapping[str, Any]) -> Plan:
        t, replicas = self._args(target, params)
        assert t.namespace is not None
        scale = await client.get_scale(t.kind, t.name, t.namespace)
        current = int((scale.get("spec") or {}).get("replicas", 0))
        scaler = await find_autoscaler(client, t)
        warnings: list[str] = []
        details: dict[str, Any] = {"current": current, "desired": replicas}
        if scaler is None:
            changes = [f"{t.kind} {t.ref}: replicas {current} → {replicas}"]
            if current == replicas:
                warnings.append(f"{t.kind} {t.ref} already has {replicas} replicas")
            ok = await dry_run(
                lambda: client.patch_scale(
                    t.kind, t.name, t.namespace or "", replicas, dry_run=True
                ),
                warnings,
            )
            details["mode"] = "scale"
            summary = f"scale {t.kind} {t.ref} from {current} to {replicas} replicas"
        else:
            self._check_floor(scaler, replicas)
            obj = await client.get(scaler.kind, scaler.name, scaler.namespace)
            patch, changes = _bounds_patch(obj, scaler, replicas)
            lo, hi = _bounds(obj, scaler)
            warnings.append(
                f"{scaler.label} manages {t.kind} {t.ref}; its bounds change instead of the "
                f"replica count, so it will not fight the change (it may still scale up to "
                f"{max(hi, replicas)})"
            )
            ok = await dry_run(
                lambda: client.patch(
                    scaler.kind, scaler.name, patch, scaler.namespace, dry_run=True
                ),
                warnings,
            )
            details.update(
                mode="keda" if scaler.kind == "ScaledObject" else "hpa",
                autoscaler=f"{scaler.namespace}/{scaler.name}",
                hpa=scaler.hpa,
                min=lo,
                max=hi,
            )
            summary = (
                f"set the floor of {scaler.label} to {replicas} "
                f"({t.kind} {t.ref} has {current} now)"
            )
        return Plan(
            kind=self.kind,
            target=str(t),
            summary=summary,
            changes=changes,
            warnings=warnings,
            dry_run_ok=ok,
            details=details,
        )

    @staticmethod
    def _check_floor(scaler: Autoscaler, replicas: int) -> None:
        if scaler.kind == "HorizontalPodAutoscaler" and replicas < 1:
            raise ActionError(
                f"{scaler.label} owns the replica count and cannot go below 1 replica; "
                "remove or pause the HPA to scale to zero"
            )

    async def execute(
        self,
        client: KubeClient,
        target: str,
        params: Mapping[str, Any],
        progress: Progress | None = None,
    ) -> Outcome:
        t, replicas = self._args(target, params)
        ns = t.namespace or ""
        scaler = await find_autoscaler(client, t)
        if scaler is None:

            async def attempt_scale() -> tuple[int, Obj]:
                scale = await client.get_scale(t.kind, t.name, ns)
                before = int((scale.get("spec") or {}).get("replicas", 0))
                after = await client.patch_scale(
                    t.kind,
                    t.name,
                    ns,
                    replicas,
                    resource_version=scale["metadata"]["resourceVersion"],
                )
                return before, after

            before, after = await retry_on_conflict(attempt_scale)
            now = int(after["spec"]["replicas"])
            await report(progress, f"scaled {t.kind} {t.ref}: {before} → {now} replicas")
            return Outcome(
                ok=now == replicas,
                summary=f"scaled {t.kind} {t.ref} from {before} to {now} replicas",
                details={"mode": "scale", "before": before, "after": now},
            )

        self._check_floor(scaler, replicas)

        async def attempt_bounds() -> tuple[tuple[int, int], list[str], Obj]:
            obj = await client.get(scaler.kind, scaler.name, scaler.namespace)
            patch, changes = _bounds_patch(obj, scaler, replicas)
            return (
                _bounds(obj, scaler),
                changes,
                await client.patch(scaler.kind, scaler.name, patch, scaler.namespace),
            )

        (lo, hi), changes, updated = await retry_on_conflict(attempt_bounds)
        new_lo, new_hi = _bounds(updated, scaler)
        await report(progress, "; ".join(changes))
        return Outcome(
            ok=new_lo == replicas,
            summary=(
                f"{scaler.label} owns the replica count of {t.kind} {t.ref}: "
                f"{scaler.min_field} {lo} → {new_lo}"
                + (f", {scaler.max_field} {hi} → {new_hi}" if new_hi != hi else "")
            ),
            details={
                "mode": "keda" if scaler.kind == "ScaledObject" else "hpa",
                "autoscaler": f"{scaler.namespace}/{scaler.name}",
                "min": [lo, new_lo],
                "max": [hi, new_hi],
            },
        )


ACTION = register(ScaleAction())
