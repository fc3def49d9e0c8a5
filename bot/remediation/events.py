"""The remediation flow's own vocabulary: who acts, and what it reports as it goes.

Front ends (Slack, the terminal, the demo console) hand the flow an :class:`Actor` and a
:class:`Reporter`; the flow reports each step as an :class:`Event`, and each front end
decides how to show it. Nothing here knows a chat system.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bot.remediation.actions.base import Plan
from bot.store import ActionRequest


@dataclass(frozen=True)
class Actor:
    """A person (or the bot itself) acting on a request; ``groups`` as the policy names them."""

    id: str
    name: str
    groups: frozenset[str] = frozenset()


BOT = Actor(id="", name="vllm-chatops")


@dataclass(frozen=True)
class Preview:
    """What Confirm would do: the live plan and the permission outcome (nothing changed)."""

    request_id: str
    request: ActionRequest | None
    plan: Plan | None = None
    error: str | None = None  # why Confirm cannot run it: expired, denied, plan failed …
    needs_approval: bool = False

    @property
    def executable(self) -> bool:
        return self.request is not None and self.plan is not None and self.error is None


@dataclass(frozen=True)
class Event:
    """Something the flow did with a request. ``ref`` says where a front end showed the
    request's running message (what it returned for :class:`Started`), if anywhere."""

    request: ActionRequest
    actor: Actor
    ref: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class Refused(Event):
    """Not done, and only ``actor`` needs to know why (denied, expired, handled already)."""

    reason: str


@dataclass(frozen=True)
class ApprovalRequested(Event):
    """``actor`` asked; a second authorised person must approve or reject."""

    plan: str


@dataclass(frozen=True)
class Approved(Event):
    """``actor`` approved; ``ref`` is where the approval was asked (to update in place)."""


@dataclass(frozen=True)
class Rejected(Event):
    """``actor`` rejected a request awaiting approval; ``ref`` as for :class:`Approved`."""


@dataclass(frozen=True)
class Busy(Event):
    """Another action holds the target; nothing ran. ``holder`` is that action, if known."""

    holder: ActionRequest | None = None
    since: datetime | None = None


@dataclass(frozen=True)
class Started(Event):
    """Execution began; the reporter returns a reference later events carry as ``ref``."""


@dataclass(frozen=True)
class Progressed(Event):
    message: str


@dataclass(frozen=True)
class Finished(Event):
    ok: bool
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)
    verify_in_s: float | None = None  # a re-check is scheduled (the request has a runbook)


@dataclass(frozen=True)
class Verified(Event):
    """The runbook's diagnosis, re-run after the action."""

    recovered: bool
    headline: str
    details: tuple[str, ...] = ()
    contained: bool = False  # not recovered, but the action did what it could (a drain held)


class Reporter(Protocol):
    async def report(self, event: Event) -> str | None:
        """Show ``event``; return a reference to where (kept as later events' ``ref``)."""
        ...


class Directory(Protocol):
    async def members(self, group: str) -> frozenset[str]:
        """Ids of the people in ``group`` (empty when it cannot be told)."""
        ...


def describe_details(details: Mapping[str, Any], limit: int = 5) -> list[str]:
    """An outcome's details as short lines a person reads: words for keys, lists joined
    and capped, empty values left out (no Python reprs)."""

    def value(v: Any) -> str:
        if isinstance(v, Mapping):
            return value([f"{k} ({x})" if x not in ("", None) else str(k) for k, x in v.items()])
        if isinstance(v, list | tuple | set | frozenset):
            items = [str(x) for x in v]
            more = f" and {len(items) - limit} more" if len(items) > limit else ""
            return ", ".join(items[:limit]) + more
        if isinstance(v, bool):
            return "yes" if v else "no"
        return str(v)

    return [
        f"{str(k).replace('_', ' ')}: {value(v)}"
        for k, v in details.items()
        if v not in (None, "") and not (isinstance(v, Mapping | list | tuple) and not v)
    ]
