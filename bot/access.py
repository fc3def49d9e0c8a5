"""Who may act, as configured: grants and approval rules (part of the settings).

A :class:`Policy` holds *grants* — users or user groups, the action kinds they may run, on
which clusters and namespaces (``fnmatch`` globs) — and *approval rules*. The decisions
drawn from it live in :mod:`bot.remediation.policy`.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from fnmatch import fnmatchcase
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.models import ActionKind

KindPattern = ActionKind | Literal["*"]


def matches(value: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(value, pattern) for pattern in patterns)


def kind_matches(kind: str, kinds: Iterable[str]) -> bool:
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
        return matches(user_id, self.users) or any(
            matches(group, self.groups) for group in user_groups
        )

    def covers_place(self, cluster: str, namespace: str) -> bool:
        return matches(cluster, self.clusters) and matches(namespace, self.namespaces)

    def covers(
        self, user_id: str, user_groups: Set[str], kind: str, cluster: str, namespace: str
    ) -> bool:
        return (
            self.covers_person(user_id, user_groups)
            and kind_matches(kind, self.kinds)
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
            kind_matches(kind, self.kinds)
            and matches(cluster, self.clusters)
            and matches(namespace, self.namespaces)
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
