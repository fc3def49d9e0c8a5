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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.diagnosis.checks import REGISTRY
from bot.models import ActionKind, LabelMatchers, Status, labels_match

DEFAULT_RUNBOOK_DIR = Path(__file__).resolve().parents[2] / "runbooks"
ID_PATTERN = r"^[a-z][a-z0-9_]{1,62}$"
# `{check_id.field}` placeholders in summaries and reasons.
PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\.([a-z_]+)(?:\.([a-z_]+))?\}")
LINK_PLACEHOLDER = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)\}")
TEMPLATE_FIELDS = ("value", "summary", "offenders", "count", "status", "facts")
TARGET_FORMS = re.compile(
    r"^(?P<check>[a-z][a-z0-9_]*)\.(?:offenders:(?P<kind>deployment|pod|node)"
    r"|facts\.(?P<fact>[a-z_]+))$|^scope:(?P<scope>deployment)$"
)


class FieldError(ValueError):
    """A validation error that knows which nested field it is about.

    Validators on a whole model would otherwise be reported at the model's own line;
    ``loc`` (relative to the model) lets the linter point at the offending key.
    """

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


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


class Condition(_Strict):
    """One test on a check result: its status, its value, or one of its facts."""

    check: str
    status: list[Status] | None = None
    fact: str | None = None
    above: float | None = None
    below: float | None = None
    equals: bool | str | float | None = None

    @model_validator(mode="after")
    def _says_something(self) -> Condition:
        if (
            self.status is None
            and self.above is None
            and self.below is None
            and self.equals is None
        ):
            raise ValueError("a condition needs status, above, below or equals")
        return self


class ActionSpec(_Strict):
    kind: ActionKind
    target: str = Field(
        description="check.offenders:deployment|pod|node, check.facts.NAME or scope:deployment"
    )
    sizing: Literal["throughput", "kv"] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    reason: str

    @field_validator("target")
    @classmethod
    def _target_form(cls, target: str) -> str:
        if not TARGET_FORMS.match(target):
            raise ValueError(
                "target must be CHECK.offenders:deployment|pod|node, CHECK.facts.NAME "
                f"or scope:deployment, got {target!r}"
            )
        return target


class Rule(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    when: list[Condition] = Field(min_length=1)
    severity: Literal["warn", "crit", "checks"] = "checks"
    summary: str
    action: ActionSpec | None = None


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
            for c, cond in enumerate(rule.when):
                if cond.check not in listed:
                    raise FieldError(
                        ("rules", r, "when", c, "check"),
                        f"rule {rule.id}: condition uses check {cond.check!r} "
                        "which the runbook does not run; add it to checks",
                    )
            texts: list[tuple[tuple[str | int, ...], str]] = [
                (("rules", r, "summary"), rule.summary)
            ]
            if rule.action:
                texts.append((("rules", r, "action", "reason"), rule.action.reason))
            for loc, text in texts:
                for check, field_, _ in PLACEHOLDER.findall(text):
                    if check not in listed:
                        raise FieldError(
                            loc,
                            f"rule {rule.id}: {{{check}.{field_}}} names a check "
                            "the runbook does not run",
                        )
                    if field_ not in TEMPLATE_FIELDS:
                        raise FieldError(
                            loc,
                            f"rule {rule.id}: {{{check}.{field_}}}: field must be one "
                            f"of {', '.join(TEMPLATE_FIELDS)}",
                        )
            if rule.action:
                m = TARGET_FORMS.match(rule.action.target)
                assert m is not None
                if m.group("check") and m.group("check") not in listed:
                    raise FieldError(
                        ("rules", r, "action", "target"),
                        f"rule {rule.id}: action target uses check "
                        f"{m.group('check')!r} which the runbook does not run",
                    )
        return self

    def check_params(
        self, check_id: str, overrides: Mapping[str, Mapping[str, Any]] | None = None
    ) -> dict[str, Any]:
        """A check's effective parameters: its defaults, this runbook's, then config's."""
        own = next((ref.params for ref in self.checks if ref.id == check_id), {})
        extra = (overrides or {}).get(check_id, {})
        return {**REGISTRY[check_id].defaults, **own, **extra}


class RunbookError(Exception):
    """Invalid runbook files, phrased with file, line, field and fix."""


def _line_index(node: yaml.Node, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Map each key path in a composed YAML document to its 1-based line."""
    index = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, key.value)
            index[child] = key.start_mark.line + 1
            index.update({k: v for k, v in _line_index(value, child).items() if k != child})
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            index.update(_line_index(item, (*path, i)))
    return index


def _error_line(index: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int:
    for cut in range(len(loc), -1, -1):
        line = index.get(tuple(loc[:cut]))
        if line is not None:
            return line
    return 1


def parse_runbook(text: str, source: str = "<runbook>") -> Runbook:
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{mark.line + 1}:" if mark is not None else ""
        raise RunbookError(f"{source}:{where} not valid YAML: {exc}") from exc
    if node is None or not isinstance(data, dict):
        raise RunbookError(f"{source}:1: a runbook is a YAML mapping with id, title, checks, …")
    index = _line_index(node)
    try:
        return Runbook.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))
            cause = (error.get("ctx") or {}).get("error")
            if isinstance(cause, FieldError):
                loc = (*loc, *cause.loc)
            field_path = ".".join(str(p) for p in loc) or "(top level)"
            line = _error_line(index, loc)
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key; remove it or fix its spelling"
            elif error["type"] == "missing":
                message = "required key is missing; add it"
            lines.append(f"{source}:{line}: {field_path}: {message}")
        raise RunbookError("\n".join(lines)) from exc


def load_runbook_file(path: Path) -> Runbook:
    text = path.read_text()
    runbook = parse_runbook(text, str(path))
    if runbook.id != path.stem:
        node = yaml.compose(text)
        line = _line_index(node).get(("id",), 1) if node is not None else 1
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


def load_runbooks(directory: Path = DEFAULT_RUNBOOK_DIR) -> dict[str, Runbook]:
    """Every runbook in ``directory``, or RunbookError listing every problem found."""
    runbooks: dict[str, Runbook] = {}
    problems: list[str] = []
    for path in runbook_files([directory]):
        try:
            runbook = load_runbook_file(path)
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
