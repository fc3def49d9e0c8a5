"""Decision rules: evidence (conditions on check results) → a finding and maybe an action.

Rules live in two places: the shared catalogue (``runbooks/rules/*.yaml``), which every
runbook running a rule's checks applies, and a runbook's own ``rules``. The catalogue is
what makes the same evidence lead to the same recommendation whichever runbook sees it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.diagnosis.yaml_source import FieldError, RunbookError, parse_yaml_model
from bot.models import ActionKind, Status

ID_PATTERN = r"^[a-z][a-z0-9_]{1,62}$"
# `{check_id.field}` placeholders in summaries and reasons.
PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\.([a-z_]+)(?:\.([a-z_]+))?\}")
TEMPLATE_FIELDS = ("value", "summary", "offenders", "count", "status", "facts")
TARGET_FORMS = re.compile(
    r"^(?P<check>[a-z][a-z0-9_]*)\.(?:offenders:(?P<kind>deployment|pod|node)"
    r"|facts\.(?P<fact>[a-z_]+))$|^scope:(?P<scope>deployment)$"
)
CATALOGUE_DIR = "rules"  # beside the runbooks


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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

    @property
    def target_check(self) -> str | None:
        m = TARGET_FORMS.match(self.target)
        return m.group("check") if m else None


class Rule(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    when: list[Condition] = Field(min_length=1)
    severity: Literal["warn", "crit", "checks"] = "checks"
    summary: str
    action: ActionSpec | None = None

    @property
    def checks(self) -> frozenset[str]:
        """The checks this rule reads: its conditions' and its action target's."""
        target = self.action.target_check if self.action else None
        return frozenset([*(c.check for c in self.when), *([target] if target else [])])

    def applies_to(self, checks: Iterable[str]) -> bool:
        return self.checks <= set(checks)


def rule_problems(
    rule: Rule, listed: set[str], outside: str = "the runbook does not run"
) -> list[tuple[tuple[str | int, ...], str]]:
    """Where ``rule`` names a check outside ``listed`` or a bogus template field."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for c, cond in enumerate(rule.when):
        if cond.check not in listed:
            problems.append(
                (
                    ("when", c, "check"),
                    f"rule {rule.id}: condition uses check {cond.check!r} "
                    "which the runbook does not run; add it to checks",
                )
            )
    texts: list[tuple[tuple[str | int, ...], str]] = [(("summary",), rule.summary)]
    if rule.action:
        texts.append((("action", "reason"), rule.action.reason))
    for loc, text in texts:
        for check, field_, _ in PLACEHOLDER.findall(text):
            if check not in listed:
                problems.append(
                    (loc, f"rule {rule.id}: {{{check}.{field_}}} names a check {outside}")
                )
            if field_ not in TEMPLATE_FIELDS:
                problems.append(
                    (
                        loc,
                        f"rule {rule.id}: {{{check}.{field_}}}: field must be one "
                        f"of {', '.join(TEMPLATE_FIELDS)}",
                    )
                )
    target = rule.action.target_check if rule.action else None
    if target and target not in listed:
        problems.append(
            (
                ("action", "target"),
                f"rule {rule.id}: action target uses check {target!r} "
                "which the runbook does not run",
            )
        )
    return problems


class RuleCatalogue(_Strict):
    """A catalogue file: rules any runbook applies when it runs all of a rule's checks.

    A catalogue rule's texts may only name the checks it reads, since the runbooks that
    apply it run those and maybe nothing else.
    """

    rules: list[Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _self_contained(self) -> RuleCatalogue:
        seen: set[str] = set()
        for r, rule in enumerate(self.rules):
            if rule.id in seen:
                raise FieldError(("rules", r, "id"), f"rule {rule.id} is defined twice")
            seen.add(rule.id)
            for loc, message in rule_problems(rule, set(rule.checks), "the rule does not read"):
                raise FieldError(("rules", r, *loc), message)
        return self


def load_rule_catalogue(runbook_dir: Path) -> list[Rule]:
    """Every rule in ``runbook_dir/rules/*.yaml``, in file then listed order (precedence)."""
    rules: list[Rule] = []
    problems: list[str] = []
    for path in sorted((runbook_dir / CATALOGUE_DIR).glob("*.yaml")):
        try:
            catalogue = parse_yaml_model(
                path.read_text(), str(path), RuleCatalogue, "a rule file is a mapping with rules"
            )
        except RunbookError as exc:
            problems.append(str(exc))
            continue
        rules.extend(catalogue.rules)
    ids = [r.id for r in rules]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        where = runbook_dir / CATALOGUE_DIR
        problems.append(f"{where}: rules defined in several files: {', '.join(repeated)}")
    if problems:
        raise RunbookError("\n".join(problems))
    return rules
