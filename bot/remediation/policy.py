"""Who may run which action where, and which actions need a second person (pure).

A :class:`Policy` (part of the settings) holds *grants* — Slack users or user groups, the
action kinds they may run, on which clusters and namespaces (``fnmatch`` globs) — and
*approval rules*. Every action kind mutates something, so anything not granted is denied
(reading diagnoses is not an action and is never gated). Actions matching an approval rule
(default: ``drain`` and ``rollback`` in namespaces ``prod*``/``production*``) need a second,
different person who is granted the same kind at the same place.

Node targets have no namespace: pass ``namespace=""``; grants whose namespaces include a
pattern matching the empty string (``"*"``) cover them. Approval rules match the namespace
the same way, so the default rule does not cover node drains unless the caller passes the
namespace of the affected workload or an admin adds a cluster-based rule.

Every :class:`Decision` carries a reason written for the person who asked, including what
to change when the answer is no.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from fnmatch import fnmatchcase
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.models import ActionKind

KindPattern = ActionKind | Literal["*"]


def _matches(value: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(value, pattern) for pattern in patterns)


def _kind_matches(kind: str, kinds: Iterable[str]) -> bool:
    return any(k == "*" or k == kind for k in kinds)


class Grant(BaseModel):
    """These users and members of these groups may run these kinds here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    users: list[str] = Field(default_factory=list, description="Slack user ids (U…) or globs")
    groups: list[str] = Field(default_factory=list, description="Slack user group ids/handles")
    kinds: list[KindPattern] = Field(min_length=1)
    clusters: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    namespaces: list[str] = Field(default_factory=lambda: ["*"], min_length=1)

    @model_validator(mode="after")
    def _names_someone(self) -> Grant:
        if not self.users and not self.groups:
            raise ValueError("a grant must name at least one user or group (users: [U123…])")
        return self

    def covers_person(self, user_id: str, user_groups: Set[str]) -> bool:
        return _matches(user_id, self.users) or any(
            _matches(group, self.groups) for group in user_groups
        )

    def covers_place(self, cluster: str, namespace: str) -> bool:
        return _matches(cluster, self.clusters) and _matches(namespace, self.namespaces)

    def covers(
        self, user_id: str, user_groups: Set[str], kind: str, cluster: str, namespace: str
    ) -> bool:
        return (
            self.covers_person(user_id, user_groups)
            and _kind_matches(kind, self.kinds)
            and self.covers_place(cluster, namespace)
        )


class ApprovalRule(BaseModel):
    """Actions of these kinds on these clusters/namespaces need a second person's approval."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kinds: list[KindPattern] = Field(min_length=1)
    namespaces: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    clusters: list[str] = Field(default_factory=lambda: ["*"], min_length=1)

    def applies(self, kind: str, cluster: str, namespace: str) -> bool:
        return (
            _kind_matches(kind, self.kinds)
            and _matches(cluster, self.clusters)
            and _matches(namespace, self.namespaces)
        )

    def describe(self) -> str:
        where = f"namespaces {', '.join(self.namespaces)}"
        if self.clusters != ["*"]:
            where += f" of clusters {', '.join(self.clusters)}"
        return f"{'/'.join(self.kinds)} in {where}"


def default_approvals() -> list[ApprovalRule]:
    return [ApprovalRule(kinds=["drain", "rollback"], namespaces=["prod*", "production*"])]


class Policy(BaseModel):
    """Grants (default: none, so every action is denied) and approval rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    grants: list[Grant] = Field(default_factory=list)
    approvals: list[ApprovalRule] = Field(default_factory=default_approvals)


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
    same_kind = [(i, g) for i, g in mine if _kind_matches(kind, g.kinds)]
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
