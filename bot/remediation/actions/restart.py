"""Rolling restart of a Deployment/StatefulSet, as ``kubectl rollout restart`` does."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from bot.remediation.actions.base import (
    Outcome,
    Plan,
    Progress,
    Target,
    dry_run,
    parse_target,
    register,
    report,
    retry_on_conflict,
)
from bot.sources.kubernetes import KubeClient, Obj

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _patch(stamp: str) -> Obj:
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}


def _last_restart(obj: Obj) -> str | None:
    template = (obj.get("spec") or {}).get("template") or {}
    value = ((template.get("metadata") or {}).get("annotations") or {}).get(RESTARTED_AT)
    return str(value) if value else None


class RestartAction:
    kind = "restart"

    async def plan(self, client: KubeClient, target: str, params: Mapping[str, Any]) -> Plan:
        t = parse_target(target, ("deployment", "statefulset"))
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
        t: Target = parse_target(target, ("deployment", "statefulset"))
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
