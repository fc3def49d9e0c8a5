"""`/vllm …` text → a request (pure). Errors say what was wrong; the listener adds usage."""

from __future__ import annotations

import shlex
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.canary.target import TargetError, parse_target
from bot.diagnosis.scope import ScopeSyntaxError, parse_scope
from bot.models import Scope
from bot.remediation.requests import RequestSyntaxError, parse_action
from bot.remediation.verbs import ACTION_VERBS

Verb = Literal[
    "help",
    "diagnose",
    "runbook",
    "runbooks",
    "status",
    "action",
    "audit",
    "doctor",
    "readiness",
    "canary",
]
STATUS_RUNBOOK = "fleet_status"


class SlashError(ValueError):
    """The command cannot be understood; the message is safe to show (it gets escaped)."""


@dataclass(frozen=True)
class SlashRequest:
    verb: Verb
    runbook: str | None = None
    scope: Scope = field(default_factory=Scope)
    # verb "action": what to do (kind, target, params); verb "audit": how many / about what
    kind: str | None = None
    target: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    count: int = 10


def _split_cluster(words: list[str]) -> tuple[list[str], str | None]:
    rest = [w for w in words if not w.startswith("cluster=")]
    clusters = [w.split("=", 1)[1] for w in words if w.startswith("cluster=")]
    return rest, (clusters[-1] or None) if clusters else None


def _action(verb: str, words: list[str]) -> SlashRequest:
    words, cluster = _split_cluster(words)
    try:
        asked = parse_action(verb, words)
    except RequestSyntaxError as exc:
        raise SlashError(str(exc)) from exc
    return SlashRequest(
        "action", None, Scope(cluster=cluster), asked.kind, asked.target, asked.params
    )


def _canary(words: list[str]) -> SlashRequest:
    words, cluster = _split_cluster(words)
    watch = "watch" in words
    words = [w for w in words if w != "watch"]
    if len(words) != 1:
        raise SlashError(
            "`canary` needs one NS/DEPLOYMENT (then optionally `watch` and cluster=NAME)"
        )
    try:
        namespace, deployment = parse_target(words[0])
    except TargetError as exc:
        raise SlashError(str(exc)) from exc
    return SlashRequest(
        "canary",
        None,
        Scope(cluster=cluster),
        target=f"{namespace}/{deployment}",
        params={"watch": True} if watch else {},
    )


def parse(text: str, runbooks: Collection[str]) -> SlashRequest:
    try:
        words = shlex.split(text.strip())
    except ValueError as exc:
        raise SlashError(f"cannot read the command: {exc}") from exc
    if not words or words[0] in ("help", "-h", "--help"):
        return SlashRequest("help")
    verb, rest = words[0].lower(), words[1:]
    try:
        if verb == "runbooks":
            return SlashRequest("runbooks")
        if verb == "doctor":
            return SlashRequest("doctor")
        if verb in ACTION_VERBS:
            return _action(verb, rest)
        if verb == "audit":
            if rest and rest[0].isascii() and rest[0].isdigit():  # int("²") would fail
                digits = rest[0].lstrip("0") or "0"  # and 5,000 digits are not read
                return SlashRequest("audit", count=min(int(digits), 50) if len(digits) < 3 else 50)
            return SlashRequest("audit", target=rest[0] if rest else None)
        if verb == "readiness":
            return SlashRequest("readiness", None, parse_scope(rest))
        if verb == "canary":
            return _canary(rest)
        if verb == "status":
            return SlashRequest("status", STATUS_RUNBOOK, parse_scope(rest))
        if verb in ("diagnose", "runbook"):
            if not rest:
                raise SlashError(
                    f"`{verb}` needs a runbook id; known: {', '.join(sorted(runbooks))}"
                )
            name = rest[0]
            if name not in runbooks:
                raise SlashError(f"unknown runbook `{name}`; known: {', '.join(sorted(runbooks))}")
            if verb == "runbook":
                return SlashRequest("runbook", name)
            return SlashRequest("diagnose", name, parse_scope(rest[1:]))
    except ScopeSyntaxError as exc:
        raise SlashError(str(exc)) from exc
    raise SlashError(f"unknown subcommand `{verb}`")
