"""Runbooks are data: ``runbooks/*.yaml``, validated strictly, matched to alerts.

A runbook says which checks to run (with parameter overrides), which decision rules turn
check results into findings and recommended actions, how a person fixes the problem
(Markdown), and which Prometheus alerts route back to it. Any error names the file, the
line and the field, and says what would be valid.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote_plus

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.diagnosis.checks import REGISTRY
from bot.diagnosis.rules import (
    CATALOGUE_DIR,
    ID_PATTERN,
    Rule,
    load_rule_catalogue,
    rule_problems,
)
from bot.diagnosis.yaml_source import FieldError, line_index, parse_yaml_model
from bot.diagnosis.yaml_source import RunbookError as RunbookError
from bot.models import LabelMatchers, labels_match

DEFAULT_RUNBOOK_DIR = Path(__file__).resolve().parents[2] / "runbooks"
LINK_PLACEHOLDER = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Strict):
    """How alerts find this runbook (besides a `runbook` label naming it)."""

    alertnames: list[str] = Field(default_factory=list)
    labels: LabelMatchers = Field(
        default_factory=dict, description="exact values; a value starting with ~ is a regex"
    )

    def matches(self, labels: Mapping[str, str]) -> bool:
        if not self.alertnames and not self.labels:
            return False
        if self.alertnames and labels.get("alertname") not in self.alertnames:
            return False
        return labels_match(self.labels, labels)


class CheckRef(_Strict):
    id: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_check_and_params(self) -> CheckRef:
        check = REGISTRY.get(self.id)
        if check is None:
            known = ", ".join(sorted(REGISTRY))
            raise FieldError(("id",), f"unknown check {self.id!r}; known: {known}")
        unknown = sorted(set(self.params) - set(check.defaults))
        if unknown:
            known = ", ".join(sorted(check.defaults)) or "none"
            raise FieldError(
                ("params", unknown[0]),
                f"check {self.id} has no parameter {unknown[0]!r}; known: {known}",
            )
        return self


class AlertSpec(_Strict):
    """A Prometheus alert exported from this runbook.

    With ``check``, one rule per level, ``{threshold}`` filled with that check's warn/crit
    level (the same levels the diagnosis applies). Without, ``expr`` is complete and
    ``levels`` names the single severity it fires at.
    """

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    check: str | None = None
    expr: str
    for_: str = Field(default="5m", alias="for", pattern=r"^\d+[smh]$")
    levels: tuple[Literal["warning", "critical"], ...] = Field(
        default=("warning", "critical"), min_length=1
    )
    summary: str
    description: str = ""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _threshold_source(self) -> AlertSpec:
        has_placeholder = "{threshold}" in self.expr
        if self.check is None:
            if has_placeholder:
                raise ValueError(f"alert {self.name}: {{threshold}} needs a check to come from")
            if len(self.levels) != 1:
                raise ValueError(f"alert {self.name}: without a check, give exactly one level")
            return self
        check = REGISTRY.get(self.check)
        if check is None or check.thresholds is None:
            with_levels = sorted(k for k, c in REGISTRY.items() if c.thresholds)
            raise ValueError(
                f"alert {self.name}: check {self.check!r} has no thresholds; "
                f"use one of {', '.join(with_levels)}"
            )
        if not has_placeholder:
            raise ValueError(f"alert {self.name}: expr must contain {{threshold}}")
        return self


class Link(_Strict):
    title: str
    url: str = Field(description="{label} placeholders are filled from the scope, URL-encoded")

    def render(self, labels: Mapping[str, str]) -> str:
        """The URL with ``{label}`` filled from ``labels``; unknown labels become empty."""
        return LINK_PLACEHOLDER.sub(lambda m: quote_plus(labels.get(m.group(1), "")), self.url)


class Runbook(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    title: str
    summary: str
    severity: Literal["warning", "critical"]
    match: Match = Field(default_factory=Match)
    checks: list[CheckRef] = Field(min_length=1)
    rules: list[Rule] = Field(default_factory=list)
    remediation: str
    links: list[Link] = Field(default_factory=list)
    alerts: list[AlertSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references_resolve(self) -> Runbook:
        ids = [c.id for c in self.checks]
        for i, check_id in enumerate(ids):
            if check_id in ids[:i]:
                raise FieldError(("checks", i, "id"), f"check {check_id} is listed twice; merge")
        listed = set(ids)
        for r, rule in enumerate(self.rules):
            for loc, message in rule_problems(rule, listed):
                raise FieldError(("rules", r, *loc), message)
        return self

    def check_params(
        self, check_id: str, overrides: Mapping[str, Mapping[str, Any]] | None = None
    ) -> dict[str, Any]:
        """A check's effective parameters: its defaults, this runbook's, then config's."""
        own = next((ref.params for ref in self.checks if ref.id == check_id), {})
        extra = (overrides or {}).get(check_id, {})
        return {**REGISTRY[check_id].defaults, **own, **extra}


def parse_runbook(text: str, source: str = "<runbook>") -> Runbook:
    return parse_yaml_model(
        text, source, Runbook, "a runbook is a YAML mapping with id, title, checks, …"
    )


def load_runbook_file(path: Path) -> Runbook:
    text = path.read_text()
    runbook = parse_runbook(text, str(path))
    if runbook.id != path.stem:
        node = yaml.compose(text)
        line = line_index(node).get(("id",), 1) if node is not None else 1
        raise RunbookError(
            f"{path}:{line}: id: {runbook.id!r} must equal the file name {path.stem!r}"
        )
    return runbook


def runbook_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.glob("*.yaml")))
        else:
            files.append(path)
    return files


def catalogue_dir(directory: Path) -> Path:
    """The rule catalogue for runbooks in ``directory``: its own, else the shipped one."""
    return directory if (directory / CATALOGUE_DIR).is_dir() else DEFAULT_RUNBOOK_DIR


def with_shared_rules(runbook: Runbook, catalogue: list[Rule]) -> Runbook:
    """The runbook as it runs: every catalogue rule it has the checks for, then its own.

    A runbook may not redefine a catalogue rule: one finding kind, one recommendation.
    """
    shared = {rule.id for rule in catalogue}
    clash = [rule.id for rule in runbook.rules if rule.id in shared]
    if clash:
        raise RunbookError(
            f"runbook {runbook.id}: rule {clash[0]!r} is defined in the shared rule "
            f"catalogue ({CATALOGUE_DIR}/); rename it or change the catalogue's"
        )
    checks = {ref.id for ref in runbook.checks}
    applied = [rule for rule in catalogue if rule.applies_to(checks)]
    return runbook.model_copy(update={"rules": [*applied, *runbook.rules]})


def load_runbooks(directory: Path = DEFAULT_RUNBOOK_DIR) -> dict[str, Runbook]:
    """Every runbook in ``directory`` with its shared rules, or RunbookError listing
    every problem found."""
    runbooks: dict[str, Runbook] = {}
    problems: list[str] = []
    try:
        catalogue = load_rule_catalogue(catalogue_dir(directory))
    except RunbookError as exc:
        problems.append(str(exc))
        catalogue = []
    for path in runbook_files([directory]):
        try:
            runbook = with_shared_rules(load_runbook_file(path), catalogue)
        except RunbookError as exc:
            problems.append(str(exc))
            continue
        runbooks[runbook.id] = runbook
    if problems:
        raise RunbookError("\n".join(problems))
    return runbooks


def match_alert(runbooks: Mapping[str, Runbook], labels: Mapping[str, str]) -> Runbook | None:
    """The runbook an alert belongs to: its `runbook` label first, then match rules."""
    named = labels.get("runbook")
    if named and named in runbooks:
        return runbooks[named]
    for runbook in runbooks.values():
        if runbook.match.matches(labels):
            return runbook
    return None
