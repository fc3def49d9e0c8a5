"""Every Block Kit message stays within Slack's limits whatever the (fuzzed) input."""

from __future__ import annotations

import random

import pytest
from block_helpers import (
    DASHBOARD,
    KINDS,
    STATUSES,
    all_text,
    assert_valid,
    buttons,
    make_runbook,
)

from bot.models import (
    Alert,
    AlertGroup,
    CheckResult,
    Diagnosis,
    Finding,
    Offender,
    RecommendedAction,
    Scope,
)
from bot.slack.alert_blocks import alert_message
from bot.slack.diagnosis_blocks import diagnosis_message, progress_message
from bot.slack.help_blocks import runbook_message, usage_error

ALPHABET = "ab <>&@*_~`|\n\t:!#é🔥\u200b\\"
WORDS = ("@here", "@channel", "<!everyone>", "<@U1>", "<http://x|y>", "**", "```", "&amp;")


def noise(rng: random.Random, size: int) -> str:
    parts = [rng.choice(WORDS) if rng.random() < 0.2 else rng.choice(ALPHABET) for _ in range(size)]
    return "".join(parts)


@pytest.mark.parametrize("seed", range(8))
def test_fuzzed_inputs_never_break_limits(seed: int) -> None:
    rng = random.Random(seed)

    def n(size: int) -> str:
        return noise(rng, rng.randint(0, size))

    checks = [
        CheckResult(
            id=f"c{i}",
            title=n(300),
            status=rng.choice(STATUSES),
            value=rng.choice([None, rng.random() * 1e9, -1.0]),
            unit=rng.choice(["ratio", "s", "%", "tokens", n(20)]),
            summary=n(3000),
            offenders=[
                Offender(target={n(10): n(500)}, value=rng.random(), status="crit")
                for _ in range(rng.randint(0, 30))
            ],
        )
        for i in range(rng.randint(0, 70))
    ]
    actions = [
        RecommendedAction(
            kind=rng.choice(KINDS), target=n(3000), params={n(50): n(500)}, reason=n(3000)
        )
        for _ in range(rng.randint(0, 30))
    ]
    d = Diagnosis(
        runbook=n(80),
        title=n(400),
        scope=Scope(cluster=n(100) or None, labels={n(20): n(2000) for _ in range(5)}),
        status=rng.choice(STATUSES),
        checks=checks,
        findings=[
            Finding(id="f", severity=rng.choice(STATUSES), summary=n(5000), targets=[n(300)] * 9)
            for _ in range(rng.randint(0, 20))
        ],
        actions=actions,
        remediation=n(20_000),
        links={n(100): rng.choice(["https://ok.example/" + n(100), n(200)]) for _ in range(15)},
        duration_s=rng.random() * 100,
    )
    rids = [f"id-{i}" if rng.random() < 0.8 else "" for i in range(len(actions))]
    m = diagnosis_message(d, rids)
    assert_valid(m)
    values = [b["value"] for b in buttons(m.blocks)]
    assert values == [r for r in rids if r][: len(values)]
    assert "message size limit" not in all_text(m.blocks)

    assert_valid(progress_message(n(500), d.scope, checks, len(checks) + rng.randint(0, 5)))
    labels = {n(15) or "x": n(800) for _ in range(10)}
    alerts = [
        Alert.model_validate(
            {
                "status": rng.choice(["firing", "resolved"]),
                "labels": {**labels, "alertname": n(200), "pod": n(300)},
                "annotations": {"summary": n(2000), "description": n(6000)},
                "startsAt": n(40),
                "fingerprint": f"f{i}",
            }
        )
        for i in range(rng.randint(1, 40))
    ]
    group = AlertGroup.model_validate(
        {
            "status": rng.choice(["firing", "resolved"]),
            "alerts": [a.model_dump() for a in alerts],
            "commonLabels": labels,
            "commonAnnotations": {"summary": n(2000), "description": n(6000)},
            "truncatedAlerts": rng.randint(0, 100),
        }
    )
    rb = make_runbook(remediation=n(20_000), links=[{"title": n(200), "url": DASHBOARD}])
    for runbook in (None, rb):
        am = alert_message(group, runbook, resolved_after=n(100) or None)
        assert_valid(am)
    assert_valid(usage_error(n(20_000)))
    assert_valid(runbook_message(rb))
