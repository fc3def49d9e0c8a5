"""Remediation actions: each has ``plan()`` (live, dry-run checked, changes nothing) and
``execute()``. Importing this package fills :data:`ACTIONS` (kind → action)."""

from __future__ import annotations

from bot.remediation.actions import drain, promote, restart, rollback, scale
from bot.remediation.actions.base import (
    ACTIONS,
    Action,
    ActionError,
    Outcome,
    Plan,
    Progress,
    Target,
    get_action,
    parse_target,
)

__all__ = [
    "ACTIONS",
    "Action",
    "ActionError",
    "Outcome",
    "Plan",
    "Progress",
    "Target",
    "drain",
    "get_action",
    "parse_target",
    "promote",
    "restart",
    "rollback",
    "scale",
]
