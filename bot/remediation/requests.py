"""What a person asks for, in words → an action request's kind, target and parameters (pure).

Shared by every front end: `/vllm drain gpu-node-7` in Slack and
`vllm-chatops act drain gpu-node-7` in a terminal mean the same request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.remediation.actions.base import DNS_LABEL, DNS_SUBDOMAIN
from bot.remediation.actions.silence import SilenceError, parse_duration
from bot.remediation.verbs import ACTION_VERBS

WORKLOAD_KINDS = ("deployment", "statefulset", "rollout")
RESTART_KINDS = (*WORKLOAD_KINDS, "pod")


SILENCE_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


class RequestSyntaxError(ValueError):
    """The words do not form a request; the message says the expected usage."""


def check_name(what: str, value: str, pattern: re.Pattern[str] = DNS_SUBDOMAIN) -> str:
    """``value`` if it is a valid Kubernetes name, else a RequestSyntaxError saying the rule."""
    if pattern.match(value):
        return value
    rule = (
        "a DNS label: lower-case letters, digits and '-', at most 63"
        if pattern is DNS_LABEL
        else "a DNS subdomain: lower-case letters, digits, '-' and '.', at most 253"
    )
    raise RequestSyntaxError(f"`{value}` is not a valid {what} name ({rule})")


@dataclass(frozen=True)
class Asked:
    kind: str
    target: str
    params: dict[str, Any] = field(default_factory=dict)


def _workload(word: str, kinds: tuple[str, ...] = WORKLOAD_KINDS) -> str:
    """`ns/name` → deployment/ns/name; `kind/ns/name` as given (``kind`` one of ``kinds``)."""
    parts = word.split("/")
    if len(parts) == 2 and all(parts):
        parts = ["deployment", *parts]
    if len(parts) != 3 or parts[0] not in kinds or not all(parts):
        raise RequestSyntaxError(
            f"`{word}` is not NAMESPACE/NAME or {'|'.join(kinds)}/NAMESPACE/NAME"
        )
    kind, namespace, name = parts
    check_name("namespace", namespace, DNS_LABEL)
    check_name(kind, name)
    return f"{kind}/{namespace}/{name}"


def parse_action(verb: str, words: list[str]) -> Asked:
    """``verb`` (one of :data:`ACTION_VERBS`) and its arguments → the request."""
    if verb == "scale":
        if len(words) != 2 or not _digits(words[1]):
            raise RequestSyntaxError("usage: `scale NAMESPACE/DEPLOYMENT REPLICAS`")
        return Asked("scale", _workload(words[0]), {"replicas": int(words[1])})
    if verb == "rollback":
        if len(words) != 1:
            raise RequestSyntaxError("usage: `rollback NAMESPACE/DEPLOYMENT`")
        return Asked(verb, _workload(words[0]))
    if verb == "restart":  # a whole workload, or one pod (its controller replaces it)
        if len(words) != 1:
            raise RequestSyntaxError(
                "usage: `restart NAMESPACE/DEPLOYMENT` or `restart pod/NAMESPACE/POD`"
            )
        return Asked(verb, _workload(words[0], RESTART_KINDS))
    if verb in ("drain", "uncordon"):
        if len(words) != 1 or "/" in words[0]:
            raise RequestSyntaxError(f"usage: `{verb} NODE`")
        return Asked(verb, f"node/{check_name('node', words[0])}")
    if verb == "unsilence":
        if len(words) != 1 or not SILENCE_ID.match(words[0]):
            raise RequestSyntaxError("usage: `unsilence SILENCE_ID` (the id Alertmanager gave)")
        return Asked("unsilence", words[0])
    if verb == "silence":
        if len(words) != 2:
            raise RequestSyntaxError("usage: `silence ALERTNAME{label=value,…} DURATION` (e.g. 2h)")
        return Asked("silence", words[0], {"duration": words[1]})
    raise RequestSyntaxError(f"unknown action `{verb}`; known: {', '.join(ACTION_VERBS)}")


# --- parameters a person may change before confirming ---------------------------------------


def _digits(text: str) -> bool:
    """ASCII digits, few enough to read: "²".isdigit() holds but int("²") fails."""
    return text.isascii() and text.isdigit() and len(text) <= 9


def _whole_number(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not _digits(text.strip()) or not low <= int(text) <= high:
            raise ValueError(f"expected a whole number from {low} to {high}, not {text!r}")
        return int(text)

    return parse


def _duration(text: str) -> str:
    try:
        parse_duration(text.strip())
    except SilenceError as exc:
        raise ValueError(str(exc)) from exc
    return text.strip()


@dataclass(frozen=True)
class Editable:
    name: str
    label: str
    parse: Callable[[str], Any]  # raises ValueError saying what is expected


EDITABLE: dict[str, tuple[Editable, ...]] = {
    "scale": (Editable("replicas", "Replicas", _whole_number(0, 10_000)),),
    "drain": (Editable("timeout_s", "Eviction timeout (seconds)", _whole_number(1, 86_400)),),
    "silence": (Editable("duration", "Duration (e.g. 30m, 2h)", _duration),),
}


def apply_edits(
    kind: str, params: Mapping[str, Any], edited: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """``params`` with the edits ``kind`` declares applied, and the problems by name.

    A name the kind does not declare editable is a problem, never a new parameter.
    """
    declared = {e.name: e for e in EDITABLE.get(kind, ())}
    out = dict(params)
    problems: dict[str, str] = {}
    for name, text in edited.items():
        editable = declared.get(name)
        if editable is None:
            problems[name] = f"`{name}` cannot be changed for a {kind}"
            continue
        try:
            out[name] = editable.parse(text)
        except ValueError as exc:
            problems[name] = str(exc)
    return out, problems


def check_edits(edited: Mapping[str, str]) -> dict[str, str]:
    """Problems with edited values by parameter name, whatever the kind (for a form's inline
    errors before anything is accepted; :func:`apply_edits` checks against the kind)."""
    by_name = {e.name: e for editables in EDITABLE.values() for e in editables}
    problems: dict[str, str] = {}
    for name, text in edited.items():
        editable = by_name.get(name)
        if editable is None:
            problems[name] = f"`{name}` cannot be changed"
            continue
        try:
            editable.parse(text)
        except ValueError as exc:
            problems[name] = str(exc)
    return problems
