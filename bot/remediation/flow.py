"""The remediation flow: preview → confirm → permission → (approval) → lock → execute →
audit → verify.

Every state change of a request is one conditional database update, so a request runs at
most once however many people confirm, however many times, on however many bot replicas.
Every step is audited. Front ends pass only the request id and the actor; everything else
is read from the database and re-checked here. Each step is reported to the front end's
:class:`~bot.remediation.events.Reporter` as an event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from bot.config import Settings
from bot.diagnosis.engine import DiagnosisOptions, diagnose
from bot.diagnosis.runbooks import Runbook
from bot.diagnosis.workloads import workload_of_pod
from bot.models import ActionKind, RecommendedAction, Scope
from bot.remediation.actions import get_action, silence
from bot.remediation.actions.base import ActionError, Plan, parse_target
from bot.remediation.audit import AuditEventType, AuditLog
from bot.remediation.events import (
    BOT,
    Actor,
    ApprovalRequested,
    Approved,
    Busy,
    Directory,
    Event,
    Finished,
    Preview,
    Progressed,
    Refused,
    Rejected,
    Reporter,
    Started,
    Verified,
)
from bot.remediation.placement import drain_held, kube_for, locate
from bot.remediation.policy import Decision, can_approve, decide
from bot.remediation.requests import Asked, apply_edits
from bot.sources.alertmanager import AlertmanagerClient, AlertmanagerError
from bot.sources.kubernetes import KubernetesError
from bot.sources.prometheus import MetricsSource
from bot.store import ActionRequest, Store, utcnow

log = logging.getLogger(__name__)

NOT_EXECUTABLE = {"config"}  # a change a person makes in the deployment's configuration
HANDLED = "this request expired or was already handled; run the diagnosis again"


class UnknownRequest(LookupError):
    """No request has this id (mistyped, forged, or from another installation)."""


def _when(at: datetime | None) -> str:
    return f"{at:%H:%M:%S} UTC" if at else "earlier"


def handled(req: ActionRequest) -> str:
    """Why a request can no longer be confirmed, in words for the person who tried."""
    who = req.approved_by or req.requested_by or "someone"
    what = f"{req.kind} {req.target}"
    if req.state == "executing":
        return f"already running: {what}, confirmed by {who}"
    if req.state == "awaiting_approval":
        return f"already waiting for approval: {what}, asked by {req.requested_by}"
    if req.state in ("done", "failed"):
        return f"already {req.state}: {what}, confirmed by {who} ({req.outcome or 'no detail'})"
    if req.state == "cancelled":
        return f"rejected by {req.approved_by}: {what}"
    return f"this request expired at {_when(req.expires_at)}; run the diagnosis again"


RUN_ERRORS = (ActionError, KubernetesError, AlertmanagerError, silence.SilenceError)
# The cluster whose data justified a recommended action, kept in the request's origin.
EVIDENCE_CLUSTER = "evidence_cluster"


def misplaced(req: ActionRequest, configured: Callable[[str], bool]) -> str | None:
    """Why ``req`` must not run where it would (its evidence is from another cluster), or
    None. A drain or scale acts only in the cluster whose data justified it."""
    evidence = str((req.origin or {}).get(EVIDENCE_CLUSTER) or "")
    if not evidence or evidence == (req.cluster or ""):
        return None
    fix = (
        f"diagnose again with cluster={evidence} to act there"
        if configured(evidence)
        else f"configure cluster {evidence} (under `clusters:`, with its Kubernetes access) "
        "to act there"
    )
    return (
        f"the evidence for {req.kind} {req.target} is from cluster {evidence}, but it would "
        f"run in cluster {req.cluster or 'default'}; nothing was done: {fix}"
    )


def namespace_of(target: str) -> str:
    """`deployment/NS/NAME` → NS; nodes have no namespace ('')."""
    parts = target.split("/")
    return parts[1] if len(parts) == 3 else ""


def recheck_scope(req: ActionRequest) -> Scope:
    """What a verification re-checks: the diagnosis's scope, except that a Deployment's pod
    the action replaces or moves (its own restart, a rollback, restart or scale of its
    Deployment, a drain of its node) is followed to its Deployment: a replacement has a new
    name, and the old name's series end with it. A StatefulSet's pod keeps its name."""
    labels = dict(req.scope or {})
    pod = labels.get("pod")
    kind, _, rest = req.target.partition("/")
    namespace = labels.get("namespace") or (rest.split("/")[0] if kind != "node" else "")
    if not pod or not namespace:
        return Scope(cluster=req.cluster, labels=labels)
    workload = workload_of_pod(namespace, pod)
    follows = (
        (kind == "pod" and req.target == f"pod/{namespace}/{pod}")
        or (kind in ("deployment", "statefulset") and req.target == workload)
        or (kind == "node" and req.kind == "drain")
    )
    if follows and workload.startswith("deployment/"):
        del labels["pod"]
        labels["namespace"] = namespace
        labels["deployment"] = workload.rsplit("/", 1)[1]
    return Scope(cluster=req.cluster, labels=labels)


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


@dataclass
class Remediation:
    """One bot's remediation core; front ends call it, it reports to ``reporter``."""

    settings: Settings
    store: Store
    audit: AuditLog
    runbooks: dict[str, Runbook]
    reporter: Reporter
    directory: Directory
    metrics_for: Callable[[str | None], MetricsSource]
    options: DiagnosisOptions

    # --- people and places ---------------------------------------------------------------

    async def with_groups(self, actor: Actor) -> Actor:
        """The groups (of those the policy names) that ``actor`` belongs to."""
        named = sorted({g for grant in self.settings.policy.grants for g in grant.groups})
        if not named:
            return actor
        mine = {g for g in named if actor.id in await self.directory.members(g)}
        return Actor(actor.id, actor.name, frozenset(mine))

    def _decision(self, req: ActionRequest, actor: Actor) -> Decision:
        return decide(
            self.settings.policy,
            actor.id,
            set(actor.groups),
            cast(ActionKind, req.kind),
            req.cluster or "",
            namespace_of(req.target),
        )

    def _audit(self, event: AuditEventType, req: ActionRequest, actor: Actor, **extra: Any) -> None:
        self.audit.append(
            event,
            request_id=req.id,
            actor_id=actor.id,
            actor_name=actor.name,
            kind=req.kind,
            target=req.target,
            cluster=req.cluster or "",
            namespace=namespace_of(req.target),
            params=dict(req.params),
            plan=str(extra.pop("plan", "")),
            outcome=str(extra.pop("outcome", "")),
            origin=_flat({"channel": req.channel, "runbook": req.runbook, **(req.origin or {})}),
        )

    async def _report(self, event: Event) -> str | None:
        """A front end failing to show a step must not stop the flow."""
        try:
            return await self.reporter.report(event)
        except Exception:
            log.exception(
                "reporting %s for request %s failed", type(event).__name__, event.request.id
            )
            return None

    # --- offer, plan ----------------------------------------------------------------------

    async def offer(
        self,
        asked: Asked,
        *,
        reason: str,
        cluster: str | None = None,
        evidence_cluster: str | None = None,
        channel: str | None = None,
        runbook: str = "",
        scope: dict[str, str] | None = None,
        origin: dict[str, Any] | None = None,
    ) -> str:
        """Record a request someone may confirm until it expires; its opaque id.

        The cluster it acts on is decided here, once, and stored: plan, policy, approval,
        lock, execution and audit all read it from the request. Without ``cluster`` and
        with several clusters configured, the one where the target exists is chosen;
        :class:`AmbiguousTarget` if that is more than one.

        A diagnosis's recommendation (``runbook``) remembers the cluster its evidence came
        from (``evidence_cluster``, else ``cluster``): it acts there when that cluster is
        configured, and is refused wherever else it would run.
        """
        evidence = evidence_cluster or (cluster if runbook else None)
        wanted = cluster or evidence
        if wanted and self.settings.is_configured(wanted):
            resolved = self.settings.cluster(wanted).name
        elif runbook:  # evidence from a cluster not configured: recorded, then refused
            resolved = self.settings.cluster(None).name
        elif wanted:
            resolved = self.settings.cluster(wanted).name  # ConfigError naming the known
        else:
            resolved = await locate(self.settings, asked)
        if evidence:
            origin = {**(origin or {}), EVIDENCE_CLUSTER: evidence}
        return await asyncio.to_thread(
            self.store.create_action_request,
            kind=asked.kind,
            target=asked.target,
            params=dict(asked.params),
            reason=reason,
            runbook=runbook,
            channel=channel,
            ttl=timedelta(seconds=self.settings.action_request_ttl_s),
            cluster=resolved,
            scope=scope,
            origin=origin,
        )

    async def offer_recommended(
        self,
        action: RecommendedAction,
        *,
        runbook: str,
        scope: Scope,
        channel: str | None = None,
        origin: dict[str, Any] | None = None,
    ) -> str:
        """Offer a diagnosis's recommended action in the cluster whose data justified it
        (the action's own cluster, else the scope's); refused anywhere else."""
        where = action.cluster or scope.cluster
        return await self.offer(
            Asked(action.kind, action.target, dict(action.params)),
            reason=action.reason,
            cluster=where,
            evidence_cluster=where,
            channel=channel,
            runbook=runbook,
            scope=dict(scope.labels),
            origin=origin,
        )

    async def plan(self, req: ActionRequest, params: dict[str, Any]) -> Plan:
        """What would change, computed from the live cluster (server-side dry run)."""
        if req.kind in NOT_EXECUTABLE:
            change = str(params.get("change", "a configuration change"))
            return Plan(kind=req.kind, target=req.target, summary=f"Needs a person: {change}")
        if req.kind == "unsilence":
            summary = f"expire Alertmanager silence {req.target}"
            return Plan(kind="unsilence", target=req.target, summary=summary, dry_run_ok=True)
        if req.kind == "silence":
            try:
                summary = silence.plan(silence.parse_selector(req.target), str(params["duration"]))
            except (silence.SilenceError, KeyError) as exc:
                raise ActionError(f"cannot silence {req.target}: {exc}") from exc
            return Plan(kind="silence", target=req.target, summary=summary, dry_run_ok=True)
        client = await asyncio.to_thread(kube_for, self.settings, req.cluster)
        try:
            return await get_action(req.kind).plan(client, req.target, params)
        finally:
            await client.close()

    async def preview(self, request_id: str, actor: Actor) -> Preview:
        """The live plan and whether ``actor`` may confirm it; changes nothing."""
        req = await asyncio.to_thread(self.store.action_request, request_id)
        if req is None or _expired(req) or req.state != "offered":
            return Preview(request_id, None, error=HANDLED)
        wrong_place = misplaced(req, self.settings.is_configured)
        if wrong_place:
            await asyncio.to_thread(self._audit, "denied", req, actor, outcome=wrong_place)
            return Preview(request_id, req, error=wrong_place)
        actor = await self.with_groups(actor)
        decision = self._decision(req, actor)
        try:
            plan = await self.plan(req, dict(req.params))
        except (ActionError, KubernetesError) as exc:
            return Preview(request_id, req, error=str(exc))
        error = None
        if not decision.allowed:
            error = decision.reason
            await asyncio.to_thread(self._audit, "denied", req, actor, outcome=decision.reason)
        elif req.kind in NOT_EXECUTABLE:
            error = "This is a change for a person to make; there is nothing to execute."
        return Preview(request_id, req, plan, error, decision.needs_approval)

    # --- confirm, approve ----------------------------------------------------------------

    async def confirm(self, request_id: str, actor: Actor, edited: dict[str, str]) -> None:
        """Confirm pressed: check permission, then execute or ask for approval."""
        req = await asyncio.to_thread(self.store.action_request, request_id)
        if req is None:
            raise UnknownRequest(f"there is no action request {request_id!r}")
        if req.state == "offered" and _expired(req):
            await asyncio.to_thread(self.expire_requests)
            req = await asyncio.to_thread(self.store.action_request, request_id) or req
        if req.state != "offered":
            await self._report(Refused(req, actor, handled(req)))
            return
        wrong_place = misplaced(req, self.settings.is_configured)
        if wrong_place:
            await asyncio.to_thread(self._audit, "denied", req, actor, outcome=wrong_place)
            await self._report(Refused(req, actor, wrong_place))
            return
        params, problems = apply_edits(req.kind, req.params, edited)
        if problems:
            await self._report(Refused(req, actor, "; ".join(problems.values())))
            return
        actor = await self.with_groups(actor)
        decision = self._decision(req, actor)
        if not decision.allowed or req.kind in NOT_EXECUTABLE:
            reason = decision.reason if not decision.allowed else "nothing to execute"
            await asyncio.to_thread(self._audit, "denied", req, actor, outcome=reason)
            await self._report(Refused(req, actor, reason))
            return
        try:  # re-plan with what was confirmed: a plan that fails never runs
            plan = await self.plan(req, params)
        except (ActionError, KubernetesError) as exc:
            await self._report(Refused(req, actor, f"the plan failed, nothing was done: {exc}"))
            return
        plan_text = "; ".join([plan.summary, *plan.changes])
        if decision.needs_approval:
            if not await asyncio.to_thread(
                self.store.transition,
                req.id,
                ("offered",),
                "awaiting_approval",
                requested_by=actor.id,
                params=params,
            ):
                await self._lost(req.id, actor)
                return
            await asyncio.to_thread(self._audit, "approval_requested", req, actor, plan=plan_text)
            ref = await self._report(ApprovalRequested(req, actor, plan_text))
            if ref:
                await asyncio.to_thread(self.store.note, req.id, approval_ref=ref)
            return
        if await self._run_now(req, actor, plan_text, params) == "lost":
            await self._lost(req.id, actor)

    async def _run_now(
        self, req: ActionRequest, actor: Actor, plan_text: str, params: dict[str, Any]
    ) -> Literal["lost", "unaudited", "ran"]:
        """Claim an offered request for ``actor``, audit it, run it: "lost" when another
        click claimed it first, "unaudited" when the audit log could not record it (a
        request nobody can trace never runs; it is marked failed)."""
        if not await asyncio.to_thread(
            self.store.transition,
            req.id,
            ("offered",),
            "executing",
            requested_by=actor.id,
            params=params,
        ):
            return "lost"
        try:
            await asyncio.to_thread(self._audit, "requested", req, actor, plan=plan_text)
        except Exception:  # an unrecorded request must not run
            log.exception("cannot audit request %s; not executing it", req.id)
            await asyncio.to_thread(
                self.store.transition,
                req.id,
                ("executing",),
                "failed",
                outcome="audit log unavailable",
            )
            return "unaudited"
        await self._execute(req.id, actor)
        return "ran"

    async def execute_by_policy(self, request_id: str, policy: str) -> bool:
        """Run an offered request with no person's confirmation, because configuration
        (``policy``, named in the audit record) says so: a canary whose rollback trigger
        tripped in a namespace set to roll back at once. The plan is still computed and
        audited first, and a plan that fails never runs. False when it did not run."""
        req = await asyncio.to_thread(self.store.action_request, request_id)
        if req is None or req.state != "offered":
            return False
        try:
            plan = await self.plan(req, dict(req.params))
        except (ActionError, KubernetesError) as exc:
            outcome = f"{policy}: the plan failed: {exc}"
            await asyncio.to_thread(self._audit, "denied", req, BOT, outcome=outcome)
            return False
        plan_text = "; ".join([plan.summary, *plan.changes, f"by policy: {policy}"])
        return await self._run_now(req, BOT, plan_text, dict(req.params)) == "ran"

    async def _lost(self, request_id: str, actor: Actor) -> None:
        """Another click won the race: say what it did."""
        req = await asyncio.to_thread(self.store.action_request, request_id)
        if req is not None:
            await self._report(Refused(req, actor, handled(req)))

    async def approve(self, request_id: str, approver: Actor, approved: bool) -> None:
        req = await asyncio.to_thread(self.store.action_request, request_id)
        if req is None:
            raise UnknownRequest(f"there is no action request {request_id!r}")
        if req.state != "awaiting_approval":
            await self._report(Refused(req, approver, handled(req)))
            return
        wrong_place = misplaced(req, self.settings.is_configured)
        if wrong_place:
            await asyncio.to_thread(self._audit, "denied", req, approver, outcome=wrong_place)
            await self._report(Refused(req, approver, wrong_place))
            return
        approver = await self.with_groups(approver)
        decision = can_approve(
            self.settings.policy,
            approver.id,
            set(approver.groups),
            req.requested_by or "",
            cast(ActionKind, req.kind),
            req.cluster or "",
            namespace_of(req.target),
        )
        if not decision.allowed:
            await asyncio.to_thread(self._audit, "denied", req, approver, outcome=decision.reason)
            await self._report(Refused(req, approver, decision.reason))
            return
        if not approved:
            if await asyncio.to_thread(
                self.store.transition,
                req.id,
                ("awaiting_approval",),
                "cancelled",
                approved_by=approver.id,
            ):
                await asyncio.to_thread(self._audit, "rejected", req, approver)
                await self._report(Rejected(req, approver, ref=req.approval_ref))
            else:
                await self._lost(req.id, approver)
            return
        if not await asyncio.to_thread(
            self.store.transition,
            req.id,
            ("awaiting_approval",),
            "executing",
            approved_by=approver.id,
        ):
            await self._lost(req.id, approver)
            return
        await asyncio.to_thread(self._audit, "approved", req, approver)
        await self._report(Approved(req, approver, ref=req.approval_ref))
        await self._execute(req.id, approver)

    # --- execute ---------------------------------------------------------------------------

    async def _execute(self, request_id: str, actor: Actor) -> None:
        """Run a request already moved to `executing` (exactly one caller gets here)."""
        req = await asyncio.to_thread(self.store.action_request, request_id)
        assert req is not None and req.state == "executing"
        if not await asyncio.to_thread(self.store.lock_target, req.target, req.id):
            lock = await asyncio.to_thread(self.store.lock_holder, req.target)
            holder = (
                await asyncio.to_thread(self.store.action_request, lock.request_id)
                if lock
                else None
            )
            await asyncio.to_thread(
                self.store.transition, req.id, ("executing",), "failed", outcome="target busy"
            )
            await asyncio.to_thread(
                self._audit,
                "failed",
                req,
                actor,
                outcome="another action is running on this target",
            )
            await self._report(Busy(req, actor, holder, lock.acquired_at if lock else None))
            return
        ref = await self._report(Started(req, actor))
        await asyncio.to_thread(self._audit, "executing", req, actor)

        async def progress(message: str) -> None:
            await self._report(Progressed(req, actor, message, ref=ref))

        try:
            ok, summary, details = await self._run(req, actor, progress)
        except RUN_ERRORS as exc:
            ok, summary, details = False, str(exc), {}
        except Exception as exc:  # never leave a request stuck in `executing`
            log.exception("action %s failed", req.id)
            ok, summary, details = False, f"failed unexpectedly ({type(exc).__name__})", {}
        finally:
            await asyncio.to_thread(self.store.unlock_target, req.target, req.id)
        await asyncio.to_thread(
            self.store.transition,
            req.id,
            ("executing",),
            "done" if ok else "failed",
            outcome=summary,
        )
        await asyncio.to_thread(
            self._audit, "executed" if ok else "failed", req, actor, outcome=summary
        )
        delay = self.settings.verification_delay_s if ok and req.runbook else None
        at = utcnow() + timedelta(seconds=delay or 0)
        if delay is not None:  # before reporting: a replica dying mid-report loses nothing
            await asyncio.to_thread(self.store.schedule_verification, req.id, at, ref)
        finished = Finished(req, actor, ok, summary, details, delay, ref=ref)
        shown = await self._report(finished) or ref
        if delay is not None and shown is not None and shown != ref:
            # where the result goes
            await asyncio.to_thread(self.store.set_verify_ref, req.id, shown)

    async def _run(
        self, req: ActionRequest, actor: Actor, progress: Callable[[str], Any]
    ) -> tuple[bool, str, dict[str, Any]]:
        if req.kind in ("silence", "unsilence"):
            client = AlertmanagerClient(str(self.settings.cluster(req.cluster).alertmanager_url))
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
        kube = await asyncio.to_thread(kube_for, self.settings, req.cluster)
        try:
            action = get_action(req.kind)
            outcome = await action.execute(kube, req.target, dict(req.params), progress)
        finally:
            await kube.close()
        return outcome.ok, outcome.summary, dict(outcome.details)

    # --- verify, expire (run by the scheduler) ---------------------------------------------

    async def run_due_verifications(self) -> int:
        """Re-check every request whose verification is due; each runs on one replica."""
        due = await asyncio.to_thread(self.store.claim_due_verifications)
        for request_id, ref in due:
            try:
                await self.verify(request_id, ref)
            except Exception:
                log.exception("verification of request %s failed", request_id)
        return len(due)

    async def verify(self, request_id: str, ref: str | None) -> Verified | None:
        """Re-run the runbook's diagnosis after the action and report the verdict."""
        req = await asyncio.to_thread(self.store.action_request, request_id)
        runbook = self.runbooks.get(req.runbook) if req else None
        if req is None or runbook is None:
            return None
        scope = recheck_scope(req)
        d = await diagnose(runbook, scope, self.metrics_for(req.cluster), self.options)
        recovered = d.status in ("ok", "warn")
        verdict = "recovered" if recovered else "still failing"
        headline = f"{verdict} after {req.kind} {req.target}: {runbook.title} is {d.status}"
        if d.status == "unknown":  # no data is no verdict: never call it recovered
            blind = next((c.summary for c in d.checks if c.status == "unknown"), "")
            headline = (
                f"could not verify {req.kind} {req.target}: {runbook.title} read no data"
                f" ({blind}); check by hand"
            )
        details = [f.summary for f in d.findings[:3]] + [
            f"{c.title}: {c.summary}" for c in d.checks if c.status in ("crit", "warn")
        ][:5]
        contained = (
            not recovered
            and req.kind == "drain"
            and await drain_held(self.settings, req.cluster, req.target)
        )
        if contained:
            # a GPU's Xid and ECC counters stay until it is reset: red is expected here
            node = parse_target(req.target).name
            headline = (
                f"contained after drain {node}: the node is cordoned and its serving pods "
                f"moved; {runbook.title} still reports the GPU fault, which stays until the "
                "GPU is reset"
            )
            details = [
                "what is left: reset or replace the GPU, then uncordon the node",
                *details,
            ]
        await asyncio.to_thread(self._audit, "verified", req, BOT, outcome=headline)
        event = Verified(req, BOT, recovered, headline, tuple(details), contained, ref=ref)
        await self._report(event)
        return event

    def expire_requests(self) -> list[str]:
        """Mark requests nobody acted on in time as expired, and audit it."""
        expired = self.store.expire_requests()
        for request_id in expired:
            req = self.store.action_request(request_id)
            if req is not None:
                self._audit("expired", req, BOT)
        return expired
