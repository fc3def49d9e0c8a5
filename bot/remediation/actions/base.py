"""What every remediation action shares: targets, plans, outcomes and the registry.

An action is two steps. ``plan()`` reads the live cluster (and asks the API server for a
server-side dry run where it can) and says exactly what would change; nothing is written.
``execute()`` makes the change, re-reading live state first, and reports an ``Outcome``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, Field

from bot.sources.kubernetes import KubeClient, KubernetesError

T = TypeVar("T")
Progress = Callable[[str], Awaitable[None]]

# target prefix → Kubernetes kind
TARGET_KINDS: dict[str, str] = {
    "deployment": "Deployment",
    "statefulset": "StatefulSet",
    "rollout": "Rollout",  # Argo Rollouts: rollback only; other actions reject them by type
    "pod": "Pod",
    "node": "Node",
}


# Kubernetes object names: a DNS label (namespaces) or a DNS subdomain (nodes, workloads).
# Checked before a name reaches a URL.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)


class ActionError(ValueError):
    """The action cannot be planned or run as asked (bad target, bad params, nothing to do)."""


class Plan(BaseModel):
    kind: str
    target: str
    summary: str
    changes: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    dry_run_ok: bool = False
    details: dict[str, Any] = Field(default_factory=dict)


class Outcome(BaseModel):
    ok: bool
    summary: str
    details: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """A parsed ``deployment/NS/NAME``, ``statefulset/NS/NAME``, ``pod/NS/NAME``, ``node/NAME``."""

    type: str
    namespace: str | None
    name: str

    @property
    def kind(self) -> str:
        return TARGET_KINDS[self.type]

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    def __str__(self) -> str:
        return f"{self.type}/{self.ref}"


def parse_target(target: str, allowed: tuple[str, ...] | None = None) -> Target:
    """Parse a target string; ``allowed`` limits the target types an action accepts."""
    parts = target.strip().split("/")
    kind = parts[0].lower() if parts else ""
    if kind not in TARGET_KINDS:
        raise ActionError(
            f"target {target!r}: unknown type {kind!r}; expected one of "
            + ", ".join(f"{k}/…" for k in TARGET_KINDS)
        )
    if allowed is not None and kind not in allowed:
        raise ActionError(
            f"target {target!r}: this action works on {' or '.join(allowed)} targets, not {kind}"
        )
    if kind == "node":
        if len(parts) != 2 or not DNS_SUBDOMAIN.match(parts[1]):
            raise ActionError(f"target {target!r}: expected node/NAME (a DNS subdomain)")
        return Target(kind, None, parts[1])
    if len(parts) != 3 or not DNS_LABEL.match(parts[1]) or not DNS_SUBDOMAIN.match(parts[2]):
        raise ActionError(
            f"target {target!r}: expected {kind}/NAMESPACE/NAME (a DNS label and a DNS subdomain)"
        )
    return Target(kind, parts[1], parts[2])


class Action(Protocol):
    kind: str

    async def plan(self, client: KubeClient, target: str, params: Mapping[str, Any]) -> Plan: ...

    async def execute(
        self,
        client: KubeClient,
        target: str,
        params: Mapping[str, Any],
        progress: Progress | None = None,
    ) -> Outcome: ...


ACTIONS: dict[str, Action] = {}


def register(action: Action) -> Action:
    if action.kind in ACTIONS:
        raise ValueError(f"action {action.kind!r} registered twice")
    ACTIONS[action.kind] = action
    return action


def get_action(kind: str) -> Action:
    try:
        return ACTIONS[kind]
    except KeyError:
        raise ActionError(f"no action {kind!r}; available: {', '.join(sorted(ACTIONS))}") from None


async def report(progress: Progress | None, message: str) -> None:
    if progress is not None:
        await progress(message)


async def retry_on_conflict(attempt: Callable[[], Awaitable[T]], retries: int = 1) -> T:
    """Run ``attempt`` (which must re-read what it changes); on a 409, run it again."""
    for remaining in range(retries, -1, -1):
        try:
            return await attempt()
        except KubernetesError as exc:
            if exc.status != 409 or remaining == 0:
                raise
    raise AssertionError("unreachable")


async def dry_run(call: Callable[[], Awaitable[Any]], warnings: list[str]) -> bool:
    """Run a server-side dry run; a refusal becomes a warning on the plan, not an error."""
    try:
        await call()
    except KubernetesError as exc:
        warnings.append(f"server-side dry run failed: {exc.message}")
        return False
    return True


def int_param(params: Mapping[str, Any], name: str, *, minimum: int = 0) -> int:
    if name not in params:
        raise ActionError(f"missing parameter {name!r}")
    value = params[name]
    if isinstance(value, bool):
        raise ActionError(f"parameter {name!r} must be an integer, not {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ActionError(f"parameter {name!r} must be an integer, not {value!r}") from None
    if number != value and not (isinstance(value, str) and value.strip().isdigit()):
        raise ActionError(f"parameter {name!r} must be an integer, not {value!r}")
    if number < minimum:
        raise ActionError(f"parameter {name!r} must be at least {minimum}, not {number}")
    return number


def float_param(params: Mapping[str, Any], name: str, default: float) -> float:
    value = params.get(name, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ActionError(f"parameter {name!r} must be a number, not {value!r}") from None
    if number < 0:
        raise ActionError(f"parameter {name!r} must not be negative")
    return number


def images_of(template: Mapping[str, Any]) -> str:
    """``image`` for one container, ``name=image, …`` for several."""
    containers = (template.get("spec") or {}).get("containers") or []
    if len(containers) == 1:
        return str(containers[0].get("image", "?"))
    return ", ".join(f"{c.get('name', '?')}={c.get('image', '?')}" for c in containers) or "?"
