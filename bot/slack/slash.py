"""`/vllm …` text → a request (pure). Errors say what was wrong; the listener adds usage."""

from __future__ import annotations

import shlex
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal

from bot.models import Scope
from bot.scope import ScopeSyntaxError, parse_scope

Verb = Literal["help", "diagnose", "runbook", "runbooks", "status"]
STATUS_RUNBOOK = "fleet_status"


class SlashError(ValueError):
    """The command cannot be understood; the message is safe to show (it gets escaped)."""


@dataclass(frozen=True)
class SlashRequest:
    verb: Verb
    runbook: str | None = None
    scope: Scope = field(default_factory=Scope)


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
