"""The click flow: plan → confirm → permission → (approval) → lock → execute → audit → verify.

Every state change of a request is one conditional database update, so a request runs at
most once however many people click, however many times, on however many bot replicas.
Every step is audited. Buttons carry only the request id; everything else is read from
the database and re-checked here, never trusted from the click.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, cast

from bot.diagnosis.engine import diagnose
from bot.models import ActionKind, Scope
from bot.remediation import actions as _register_actions  # noqa: F401 - registers actions
from bot.remediation.actions import silence
from bot.remediation.actions.base import ActionError, Plan, Progress, get_action
from bot.remediation.audit import AuditEventType as AuditEventKind
from bot.remediation.audit import AuditLog
from bot.remediation.policy import Decision, can_approve, decide
from bot.slack.blocks import usage_error
from bot.slack.remediation_blocks import approval_message, confirm_view, status_message
from bot.slack.services import Services
from bot.sources.alertmanager import AlertmanagerClient, AlertmanagerError
from bot.sources.kubernetes import KubeClient, KubernetesError, KubeTarget
from bot.store import ActionRequest, utcnow

log = logging.getLogger(__name__)

NOT_EXECUTABLE = {"config"}  # a change a person makes in the deployment's configuration


@dataclass(frozen=True)
class Actor:
    id: str
    name: str
    groups: frozenset[str] = frozenset()


async def with_groups(svc: Services, actor: Actor) -> Actor:
    """The Slack user groups (of those the policy names) that ``actor`` belongs to."""
    named = sorted({g for grant in svc.settings.policy.grants for g in grant.groups})
    if not named:
        return actor
    mine = {g for g in named if actor.id in await svc.group_members(g)}
    return Actor(actor.id, actor.name, frozenset(mine))


def namespace_of(target: str) -> str:
    """`deployment/NS/NAME` → NS; nodes have no namespace ('')."""
    parts = target.split("/")
    return parts[1] if len(parts) == 3 else ""


def kube_for(svc: Services, cluster: str | None) -> KubeClient:
    config = svc.settings.cluster(cluster)
    target = KubeTarget(
        kube_context=config.kube_context,
        in_cluster=config.in_cluster,
        base_url=str(config.kube_api_url).rstrip("/") if config.kube_api_url else None,
        token=config.kube_token.get_secret_value() if config.kube_token else None,
    )
    return KubeClient.connect(target)


def _audit(
    svc: Services, event: AuditEventKind, req: ActionRequest, actor: Actor | None, **extra: Any
) -> None:
    log_ = svc.audit
    log_.append(
        event,
        request_id=req.id,
        actor_id=actor.id if actor else "",
        actor_name=actor.name if actor else "vllm-chatops",
        kind=req.kind,
        target=req.target,
        cluster=req.cluster or "",
        namespace=namespace_of(req.target),
        params=dict(req.params),
        plan=str(extra.pop("plan", "")),
        outcome=str(extra.pop("outcome", "")),
        origin=_flat({"channel": req.channel, "runbook": req.runbook, **(req.origin or {})}),
    )


def _flat(values: dict[str, Any]) -> dict[str, str]:
    """Audit origins are strings: lists joined, missing values left out."""
    out: dict[str, str] = {}
    for key, value in values.items():
        if value is None or value == "":
            continue
        out[key] = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
    return out


def _expired(req: ActionRequest) -> bool:
    expires = req.expires_at
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=utcnow().tzinfo)
    return expires < utcnow()


async def live_plan(svc: Services, req: ActionRequest, params: dict[str, Any]) -> Plan:
    """What would change, computed from the live cluster (server-side dry run)."""
    if req.kind in NOT_EXECUTABLE:
        change = str(params.get("change", "a configuration change"))
        return Plan(kind=req.kind, target=req.target, summary=f"Needs a person: {change}")
    if req.kind == "unsilence":
        return Plan(
            kind="unsilence",
            target=req.target,
            summary=f"expire Alertmanager silence {req.target}",
            dry_run_ok=True,
        )
    if req.kind == "silence":
        try:
            summary = silence.plan(silence.parse_selector(req.target), str(params["duration"]))
        except (silence.SilenceError, KeyError) as exc:
            raise ActionError(f"cannot silence {req.target}: {exc}") from exc
        return Plan(kind="silence", target=req.target, summary=summary, dry_run_ok=True)
    client = kube_for(svc, req.cluster)
    try:
        return await get_action(req.kind).plan(client, req.target, params)
    finally:
        await client.close()


def _decision(svc: Services, req: ActionRequest, actor: Actor) -> Decision:
    return decide(
        svc.settings.policy,
        actor.id,
        set(actor.groups),
        cast(ActionKind, req.kind),
        req.cluster or "",
        namespace_of(req.target),
    )


async def open_plan(svc: Services, request_id: str, actor: Actor, view_id: str) -> None:
    """Fill the (already open) modal with the live plan and the permission outcome."""
    req = svc.store.action_request(request_id)
    if req is None or _expired(req) or req.state != "offered":
        reason = "this request expired or was already handled; run the diagnosis again"
        view = confirm_view(request_id, "-", "-", {}, reason, [], [], error=reason)
        await svc.outbox.update_view(view_id, view)
        return
    actor = await with_groups(svc, actor)
    decision = _decision(svc, req, actor)
    try:
        plan = await live_plan(svc, req, dict(req.params))
        error = None if decision.allowed else decision.reason
        if req.kind in NOT_EXECUTABLE:
            error = "This is a change for a person to make; there is nothing to execute."
        view = confirm_view(
            req.id,
            req.kind,
            req.target,
            req.params,
            plan.summary,
            plan.changes,
            plan.warnings,
            error=error,
            needs_approval=decision.needs_approval,
        )
    except (ActionError, KubernetesError) as exc:
        view = confirm_view(req.id, req.kind, req.target, req.params, "", [], [], error=str(exc))
    await svc.outbox.update_view(view_id, view)


def _merge_params(req: ActionRequest, edited: dict[str, str]) -> dict[str, Any]:
    params = dict(req.params)
    for key, value in edited.items():
        params[key] = int(value) if value.strip().lstrip("-").isdigit() else value.strip()
    return params


async def submit(svc: Services, request_id: str, actor: Actor, edited: dict[str, str]) -> None:
    """Confirm pressed: check permission, then execute or ask for approval."""
    req = svc.store.action_request(request_id)
    channel = req.channel if req else None
    if req is None or _expired(req) or req.state != "offered":
        if req is not None and _expired(req):
            svc.store.expire_requests()
        if channel:
            msg = usage_error("this request expired or was already handled")
            await svc.outbox.ephemeral(channel, actor.id, msg)
        return
    params = _merge_params(req, edited)
    actor = await with_groups(svc, actor)
    decision = _decision(svc, req, actor)
    if not decision.allowed or req.kind in NOT_EXECUTABLE:
        reason = decision.reason if not decision.allowed else "nothing to execute"
        _audit(svc, "denied", req, actor, outcome=reason)
        if channel:
            await svc.outbox.ephemeral(channel, actor.id, usage_error(reason))
        return
    if decision.needs_approval:
        if not svc.store.transition(
            req.id, ("offered",), "awaiting_approval", requested_by=actor.id, params=params
        ):
            return
        plan = await _plan_text(svc, req, params)
        _audit(svc, "approval_requested", req, actor, plan=plan)
        if channel:
            await svc.outbox.post(
                channel, approval_message(req.id, actor.id, req.kind, req.target, plan)
            )
        return
    if not svc.store.transition(
        req.id, ("offered",), "executing", requested_by=actor.id, params=params
    ):
        return  # another click won
    try:
        _audit(svc, "requested", req, actor, plan=await _plan_text(svc, req, params))
    except Exception:  # an unrecorded request must not run
        log.exception("cannot audit request %s; not executing it", req.id)
        svc.store.transition(req.id, ("executing",), "failed", outcome="audit log unavailable")
        return
    await execute(svc, req.id, actor)


async def _plan_text(svc: Services, req: ActionRequest, params: dict[str, Any]) -> str:
    try:
        plan = await live_plan(svc, req, params)
    except (ActionError, KubernetesError) as exc:
        return f"plan unavailable: {exc}"
    return "; ".join([plan.summary, *plan.changes])


async def approve(svc: Services, request_id: str, approver: Actor, approved: bool) -> None:
    req = svc.store.action_request(request_id)
    if req is None or req.state != "awaiting_approval" or req.channel is None:
        return
    approver = await with_groups(svc, approver)
    decision = can_approve(
        svc.settings.policy,
        approver.id,
        set(approver.groups),
        req.requested_by or "",
        cast(ActionKind, req.kind),
        req.cluster or "",
        namespace_of(req.target),
    )
    if not decision.allowed:
        _audit(svc, "denied", req, approver, outcome=decision.reason)
        await svc.outbox.ephemeral(req.channel, approver.id, usage_error(decision.reason))
        return
    if not approved:
        if svc.store.transition(
            req.id, ("awaiting_approval",), "cancelled", approved_by=approver.id
        ):
            _audit(svc, "rejected", req, approver)
            await svc.outbox.post(
                req.channel,
                status_message(":no_entry:", f"{approver.name} rejected {req.kind} {req.target}"),
            )
        return
    if not svc.store.transition(
        req.id, ("awaiting_approval",), "executing", approved_by=approver.id
    ):
        return
    _audit(svc, "approved", req, approver)
    await execute(svc, req.id, approver)


async def execute(svc: Services, request_id: str, actor: Actor) -> None:
    """Run a request already moved to `executing` (exactly one caller gets here)."""
    req = svc.store.action_request(request_id)
    assert req is not None and req.state == "executing"
    channel = req.channel or svc.settings.default_channel or ""
    if not svc.store.lock_target(req.target, req.id):
        svc.store.transition(req.id, ("executing",), "failed", outcome="target busy")
        _audit(svc, "failed", req, actor, outcome="another action is running on this target")
        await svc.outbox.post(
            channel,
            status_message(
                ":lock:", f"{req.target} is busy with another action; try again when it is done"
            ),
        )
        return
    ts = await svc.outbox.post(
        channel, status_message(":hourglass_flowing_sand:", f"{req.kind} {req.target}: running")
    )
    _audit(svc, "executing", req, actor)

    async def progress(message: str) -> None:
        if ts:
            await svc.outbox.update(
                channel,
                ts,
                status_message(":hourglass_flowing_sand:", f"{req.kind} {req.target}: {message}"),
            )

    try:
        ok, summary, details = await _run(svc, req, actor, progress)
    except (ActionError, KubernetesError, AlertmanagerError, silence.SilenceError) as exc:
        ok, summary, details = False, str(exc), {}
    except Exception as exc:  # never leave a request stuck in `executing`
        log.exception("action %s failed", req.id)
        ok, summary, details = False, f"failed unexpectedly ({type(exc).__name__})", {}
    finally:
        svc.store.unlock_target(req.target, req.id)
    svc.store.transition(req.id, ("executing",), "done" if ok else "failed", outcome=summary)
    _audit(svc, "executed" if ok else "failed", req, actor, outcome=summary)
    delay = svc.settings.verification_delay_s
    lines = [f"by {actor.name}", *(f"{k}: {v}" for k, v in list(details.items())[:5])]
    if ok:
        lines.append(f"verification in {delay} s")
    message = status_message(":white_check_mark:" if ok else ":x:", summary, lines)
    if ts is None or not await svc.outbox.update(channel, ts, message):
        ts = await svc.outbox.post(channel, message)
    if ok:
        schedule_verification(svc, req.id, delay, ts)


async def _run(
    svc: Services, req: ActionRequest, actor: Actor, progress: Progress
) -> tuple[bool, str, dict[str, Any]]:
    if req.kind in ("silence", "unsilence"):
        url = str(svc.settings.cluster(req.cluster).alertmanager_url)
        client = AlertmanagerClient(url)
        if req.kind == "unsilence":
            await silence.unsilence(client, req.target)
            return True, f"expired silence {req.target}", {}
        duration = str(req.params["duration"])
        silence_id = await silence.execute(
            client,
            silence.parse_selector(req.target),
            duration,
            actor.name,
            f"vllm-chatops request {req.id}",
        )
        return True, f"silenced {req.target} for {duration}", {"silence id": silence_id}
    kube = kube_for(svc, req.cluster)
    try:
        outcome = await get_action(req.kind).execute(kube, req.target, dict(req.params), progress)
    finally:
        await kube.close()
    return outcome.ok, outcome.summary, dict(outcome.details)


# --- verification ------------------------------------------------------------------------

_ACTIVE: Services | None = None  # the scheduler's jobs find the running bot here


def schedule_verification(
    svc: Services, request_id: str, delay_s: float, thread_ts: str | None
) -> None:
    scheduler = svc.scheduler
    if scheduler is None:
        svc.spawn(_after(delay_s, verify(request_id, thread_ts)), f"verify {request_id}")
        return
    from datetime import timedelta

    scheduler.add_job(
        run_verification,
        "date",
        run_date=utcnow() + timedelta(seconds=delay_s),
        args=[request_id, thread_ts],
        id=f"verify-{request_id}",
        replace_existing=True,
        misfire_grace_time=3600,
    )


async def _after(delay_s: float, coro: Any) -> None:
    await asyncio.sleep(delay_s)
    await coro


async def run_verification(request_id: str, thread_ts: str | None) -> None:
    """APScheduler entry point (persistent job store: survives a restart of the bot)."""
    await verify(request_id, thread_ts)


async def verify(request_id: str, thread_ts: str | None) -> None:
    svc = _ACTIVE
    if svc is None:
        return
    req = svc.store.action_request(request_id)
    runbook = svc.runbooks.get(req.runbook) if req else None
    if req is None or runbook is None:
        return
    scope = Scope(cluster=req.cluster, labels=dict(req.scope or {}))
    d = await diagnose(runbook, scope, svc.metrics_for(req.cluster), svc.options)
    recovered = d.status != "crit"
    headline = (
        f"recovered after {req.kind} {req.target}: {runbook.title} is {d.status}"
        if recovered
        else f"still failing after {req.kind} {req.target}: {runbook.title} is {d.status}"
    )
    details = [f.summary for f in d.findings[:3]] + [
        f"{c.title}: {c.summary}" for c in d.checks if c.status in ("crit", "warn")
    ][:5]
    _audit(svc, "verified", req, None, outcome=headline)
    channel = req.channel or svc.settings.default_channel or ""
    emoji = ":large_green_circle:" if recovered else ":red_circle:"
    await svc.outbox.post(channel, status_message(emoji, headline, details), thread_ts)


async def expire_requests() -> None:
    """Mark requests nobody acted on in time as expired, and audit it."""
    svc = _ACTIVE
    if svc is None:
        return
    for request_id in svc.store.expire_requests():
        req = svc.store.action_request(request_id)
        if req is not None:
            _audit(svc, "expired", req, None)


def activate(svc: Services) -> None:
    global _ACTIVE
    _ACTIVE = svc


__all__ = ["Actor", "AuditLog", "activate", "approve", "execute", "open_plan", "submit", "verify"]
