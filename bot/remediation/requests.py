"""What a person asks for, in words → an action request's kind, target and parameters (pure).

Shared by every front end: `/vllm drain gpu-node-7` in Slack and
`vllm-chatops act drain gpu-node-7` in a terminal mean the same request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ACTION_VERBS = ("scale", "rollback", "restart", "drain", "uncordon", "silence", "unsilence")
WORKLOAD_KINDS = ("deployment", "statefulset", "rollout")


class RequestSyntaxError(ValueError):
    """The words do not form a request; the message says the expected usage."""


@dataclass(frozen=True)
class Asked:
    kind: str
    target: str
    params: dict[str, Any] = field(default_factory=dict)


def _workload(word: str) -> str:
    """`ns/name` → deployment/ns/name; `kind/ns/name` as given."""
    parts = word.split("/")
    if len(parts) == 2 and all(parts):
        return f"deployment/{parts[0]}/{parts[1]}"
    if len(parts) == 3 and parts[0] in WORKLOAD_KINDS and all(parts):
        return word
    raise RequestSyntaxError(
        f"`{word}` is not NAMESPACE/NAME or deployment|statefulset/NAMESPACE/NAME"
    )


def parse_action(verb: str, words: list[str]) -> Asked:
    """``verb`` (one of :data:`ACTION_VERBS`) and its arguments → the request."""
    if verb == "scale":
        if len(words) != 2 or not words[1].isdigit():
            raise RequestSyntaxError("usage: `scale NAMESPACE/DEPLOYMENT REPLICAS`")
        return Asked("scale", _workload(words[0]), {"replicas": int(words[1])})
    if verb in ("rollback", "restart"):
        if len(words) != 1:
            raise RequestSyntaxError(f"usage: `{verb} NAMESPACE/DEPLOYMENT`")
        return Asked(verb, _workload(words[0]))
    if verb in ("drain", "uncordon"):
        if len(words) != 1 or "/" in words[0]:
            raise RequestSyntaxError(f"usage: `{verb} NODE`")
        return Asked(verb, f"node/{words[0]}")
    if verb == "unsilence":
        if len(words) != 1:
            raise RequestSyntaxError("usage: `unsilence SILENCE_ID`")
        return Asked("unsilence", words[0])
    if verb == "silence":
        if len(words) != 2:
            raise RequestSyntaxError("usage: `silence ALERTNAME{label=value,…} DURATION` (e.g. 2h)")
        return Asked("silence", words[0], {"duration": words[1]})
    raise RequestSyntaxError(f"unknown action `{verb}`; known: {', '.join(ACTION_VERBS)}")
