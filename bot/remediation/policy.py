"""Who may run which action where, and which actions need a second person (pure).

A :class:`~bot.access.Policy` (part of the settings) holds *grants* — Slack users or user
groups, the action kinds they may run, on which clusters and namespaces (``fnmatch``
globs) — and *approval rules*. Every action kind mutates something, so anything not
granted is denied (reading diagnoses is not an action and is never gated). Actions
matching an approval rule (default: ``drain`` and ``rollback`` in namespaces
``prod*``/``production*``) need a second, different person who is granted the same kind
at the same place.

Node targets have no namespace: pass ``namespace=""``; grants whose namespaces include a
pattern matching the empty string (``"*"``) cover them. Approval rules match the namespace
the same way, so the default rule does not cover node drains unless the caller passes the
namespace of the affected workload or an admin adds a cluster-based rule.

Every :class:`Decision` carries a reason written for the person who asked, including what
to change when the answer is no.
"""

from __future__ import annotations

from collections.abc import Set

from pydantic import BaseModel, ConfigDict

from bot.access import Policy, kind_matches
from bot.models import ActionKind


class Decision(BaseModel):
    model_config = ConfigDict(frozen=True)

    allowed: bool
    needs_approval: bool = False
    reason: str


def describe_place(cluster: str, namespace: str) -> str:
    place = f"cluster {cluster or '(default)'}"
    return f"{place} namespace {namespace}" if namespace else place


def _who(user_id: str, user_groups: Set[str]) -> str:
    if user_groups:
        return f"you ({user_id}, groups {', '.join(sorted(user_groups))})"
    return f"you ({user_id})"


def _denial(
    policy: Policy,
    user_id: str,
    user_groups: Set[str],
    kind: str,
    cluster: str,
    namespace: str,
    verb: str,
    because: str = "",
) -> str:
    where = describe_place(cluster, namespace)
    head = f"{_who(user_id, user_groups)} may not {verb}{kind} in {where}"
    mine = [(i, g) for i, g in enumerate(policy.grants) if g.covers_person(user_id, user_groups)]
    same_kind = [(i, g) for i, g in mine if kind_matches(kind, g.kinds)]
    if same_kind:
        places = "; ".join(
            f"policy.grants[{i}]: clusters {', '.join(g.clusters)} / namespaces "
            f"{', '.join(g.namespaces)}"
            for i, g in same_kind
        )
        why = f"your {kind} grants cover other places only ({places})"
    elif mine:
        kinds = sorted({k for _, g in mine for k in g.kinds})
        why = f"your grants cover {', '.join(kinds)}, not {kind}"
    elif not policy.grants:
        why = "no grants are configured, so every action is denied"
    else:
        why = "no grant covers it"
    return f"{head}: {because}{why}; ask an admin to add one to `policy.grants`"


def _first_grant(
    policy: Policy, user_id: str, user_groups: Set[str], kind: str, cluster: str, namespace: str
) -> int | None:
    for i, grant in enumerate(policy.grants):
        if grant.covers(user_id, user_groups, kind, cluster, namespace):
            return i
    return None


def decide(
    policy: Policy,
    user_id: str,
    user_groups: Set[str],
    kind: ActionKind,
    cluster: str,
    namespace: str,
) -> Decision:
    """May ``user_id`` run ``kind`` at ``cluster``/``namespace``, and does it need approval?"""
    i = _first_grant(policy, user_id, user_groups, kind, cluster, namespace)
    if i is None:
        reason = _denial(policy, user_id, user_groups, kind, cluster, namespace, "")
        return Decision(allowed=False, needs_approval=False, reason=reason)
    allowed_by = f"allowed by policy.grants[{i}]"
    for j, rule in enumerate(policy.approvals):
        if rule.applies(kind, cluster, namespace):
            return Decision(
                allowed=True,
                needs_approval=True,
                reason=(
                    f"{allowed_by}; {kind} in {describe_place(cluster, namespace)} needs "
                    f"approval by a second authorised person (policy.approvals[{j}]: "
                    f"{rule.describe()})"
                ),
            )
    return Decision(allowed=True, needs_approval=False, reason=allowed_by)


def can_approve(
    policy: Policy,
    approver_id: str,
    approver_groups: Set[str],
    requester_id: str,
    kind: ActionKind,
    cluster: str,
    namespace: str,
) -> Decision:
    """Two-person rule: a different person, granted the same kind at the same place."""
    if approver_id == requester_id:
        return Decision(
            allowed=False,
            reason=(
                f"you ({approver_id}) requested this {kind} yourself; under the two-person "
                "rule a different authorised person must approve it"
            ),
        )
    i = _first_grant(policy, approver_id, approver_groups, kind, cluster, namespace)
    if i is not None:
        return Decision(
            allowed=True,
            reason=(
                f"{approver_id} may approve {requester_id}'s {kind} in "
                f"{describe_place(cluster, namespace)} (policy.grants[{i}])"
            ),
        )
    reason = _denial(
        policy,
        approver_id,
        approver_groups,
        kind,
        cluster,
        namespace,
        "approve ",
        because="approving needs the same grant as running it, and ",
    )
    return Decision(allowed=False, reason=reason)
