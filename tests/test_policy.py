"""Permissions and the two-person rule: default deny, grants, globs, approvals, reasons."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.access import ApprovalRule, Grant, Policy
from bot.remediation.policy import can_approve, decide

POLICY = Policy.model_validate(
    {
        "grants": [
            {"users": ["U_ALICE"], "kinds": ["drain", "rollback"], "clusters": ["prod-*"]},
            {
                "groups": ["S_SRE"],
                "kinds": ["*"],
                "clusters": ["prod-us", "staging"],
                "namespaces": ["prod*", "serving"],
            },
            {"users": ["U_BOB"], "kinds": ["silence"], "namespaces": ["team-*"]},
            {"users": ["U_CAROL"], "kinds": ["drain", "rollback", "scale"]},
        ]
    }
)


def test_default_policy_denies_every_action() -> None:
    for kind in ("scale", "rollback", "drain", "restart", "silence", "config"):
        d = decide(Policy(), "U1", set(), kind, "prod-us", "serving")
        assert not d.allowed and not d.needs_approval
        assert "no grants are configured" in d.reason
        assert "`policy.grants`" in d.reason


def test_denial_names_user_action_place_and_fix() -> None:
    d = decide(POLICY, "U123", set(), "drain", "prod-us", "serving")
    assert not d.allowed
    assert d.reason == (
        "you (U123) may not drain in cluster prod-us namespace serving: no grant covers it; "
        "ask an admin to add one to `policy.grants`"
    )


def test_grant_by_user_with_cluster_glob() -> None:
    assert decide(POLICY, "U_ALICE", set(), "drain", "prod-eu", "").allowed
    assert decide(POLICY, "U_ALICE", set(), "rollback", "prod-us", "inference").allowed
    other_cluster = decide(POLICY, "U_ALICE", set(), "drain", "staging", "")
    assert not other_cluster.allowed
    assert "cover other places only" in other_cluster.reason and "prod-*" in other_cluster.reason
    other_kind = decide(POLICY, "U_ALICE", set(), "scale", "prod-eu", "x")
    assert not other_kind.allowed
    assert "your grants cover drain, rollback, not scale" in other_kind.reason


def test_grant_by_group_with_namespace_globs() -> None:
    sre = {"S_SRE"}
    assert decide(POLICY, "U9", sre, "restart", "prod-us", "production-a").allowed
    assert decide(POLICY, "U9", sre, "config", "staging", "serving").allowed
    assert not decide(POLICY, "U9", sre, "scale", "staging", "batch").allowed
    assert not decide(POLICY, "U9", sre, "scale", "prod-eu", "serving").allowed
    assert not decide(POLICY, "U9", {"S_OTHER"}, "scale", "staging", "serving").allowed
    denied = decide(POLICY, "U9", sre, "scale", "staging", "batch")
    assert "U9, groups S_SRE" in denied.reason


def test_node_targets_have_no_namespace() -> None:
    # a grant on namespaces ["*"] covers nodes; one on specific namespaces does not
    assert decide(POLICY, "U_CAROL", set(), "drain", "prod-us", "").allowed
    node = decide(POLICY, "U9", {"S_SRE"}, "drain", "prod-us", "")
    assert not node.allowed
    assert "may not drain in cluster prod-us:" in node.reason  # no "namespace" for nodes


def test_approvals_default_to_drain_and_rollback_in_prod_namespaces() -> None:
    carol = "U_CAROL"
    for kind in ("drain", "rollback"):
        for ns in ("prod", "prod-serving", "production"):
            d = decide(POLICY, carol, set(), kind, "any", ns)
            assert d.allowed and d.needs_approval, (kind, ns)
            assert "second authorised person" in d.reason
        d = decide(POLICY, carol, set(), kind, "any", "staging")
        assert d.allowed and not d.needs_approval
    scale = decide(POLICY, carol, set(), "scale", "any", "production")
    assert scale.allowed and not scale.needs_approval
    node = decide(POLICY, carol, set(), "drain", "prod-us", "")
    assert node.allowed and not node.needs_approval  # no namespace: the default rule is silent


def test_custom_approval_rules_replace_the_default() -> None:
    policy = Policy(
        grants=[Grant(users=["U1"], kinds=["*"])],
        approvals=[ApprovalRule(kinds=["*"], clusters=["prod-*"])],
    )
    assert decide(policy, "U1", set(), "scale", "prod-us", "dev").needs_approval
    assert decide(policy, "U1", set(), "drain", "prod-us", "").needs_approval
    assert not decide(policy, "U1", set(), "drain", "staging", "prod").needs_approval


def test_self_approval_is_refused() -> None:
    d = can_approve(POLICY, "U_CAROL", set(), "U_CAROL", "drain", "x", "prod")
    assert not d.allowed
    assert "requested this drain yourself" in d.reason and "different" in d.reason


def test_approver_needs_the_same_grant_there() -> None:
    ok = can_approve(POLICY, "U9", {"S_SRE"}, "U_CAROL", "rollback", "prod-us", "prod")
    assert ok.allowed and "U9 may approve U_CAROL's rollback" in ok.reason
    no = can_approve(POLICY, "U_BOB", set(), "U_CAROL", "rollback", "prod-us", "prod")
    assert not no.allowed
    assert "may not approve rollback in cluster prod-us namespace prod" in no.reason
    assert "same grant as running it" in no.reason and "`policy.grants`" in no.reason
    elsewhere = can_approve(POLICY, "U9", {"S_SRE"}, "U_CAROL", "rollback", "prod-eu", "prod")
    assert not elsewhere.allowed


def test_policy_validation() -> None:
    with pytest.raises(ValidationError, match="at least one user or group"):
        Grant(kinds=["drain"])
    with pytest.raises(ValidationError):
        Grant.model_validate({"users": ["U1"], "kinds": ["reboot"]})
    with pytest.raises(ValidationError):
        Grant.model_validate({"users": ["U1"], "kinds": []})
    with pytest.raises(ValidationError):
        Policy.model_validate({"grants": [], "admins": ["U1"]})
    assert Policy().approvals[0].namespaces == ["prod*", "production*"]
