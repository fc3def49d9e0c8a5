"""Attestations: a person vouches for an item only a person can know (an on-call
rotation, a load test). Each is an ``attested`` record in the audit log — who, when, an
optional link, the expiry — so it is tamper-evident like any action, and the newest
record of an item is its attestation."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from bot.readiness.evidence import Attestation
from bot.readiness.items import Item
from bot.remediation.audit import AuditEvent, AuditLog, format_time, parse_time

KIND = "readiness"
LINK = re.compile(r"^https?://[^\s<>|]{1,500}$")  # untrusted text that reaches Slack


class AttestError(ValueError):
    """An attestation that may not be recorded; the message says why."""


def target(item_id: str) -> str:
    return f"readiness/{item_id}"


def validate(item: Item, days: int | None, link: str) -> int:
    """The attestation's validity in days; AttestError for a measured item, a validity
    beyond the item's or a link that is not an http(s) URL."""
    if item.attest is None:
        raise AttestError(
            f"{item.id} is measured by the bot ({item.measure.kind if item.measure else '?'}); "
            "only items marked attest can be attested"
        )
    limit = item.attest.expires_days
    chosen = limit if days is None else days
    if not 1 <= chosen <= limit:
        raise AttestError(f"{item.id}: an attestation is valid 1 to {limit} days, not {chosen}")
    if link and not LINK.match(link):
        raise AttestError("the link must be an http(s) URL without spaces")
    return chosen


def attest(
    audit: AuditLog,
    item: Item,
    *,
    by: str,
    by_name: str = "",
    link: str = "",
    days: int | None = None,
    now: datetime,
    origin: Mapping[str, str] | None = None,
) -> Attestation:
    """Record an attestation in the audit log (AttestError when it may not be)."""
    valid = validate(item, days, link)
    expires = now + timedelta(days=valid)
    event = audit.append(
        "attested",
        actor_id=by,
        actor_name=by_name,
        kind=KIND,
        target=target(item.id),
        params={"item": item.id, "link": link, "days": valid, "expires": format_time(expires)},
        outcome=f"attested {item.title!r} for {valid} days",
        origin=origin,
        at=now,
    )
    return _attestation(event) or Attestation(item.id, by, by_name, now, expires, link)


def _attestation(event: AuditEvent) -> Attestation | None:
    params = event.params
    try:
        expires = parse_time(str(params["expires"]))
    except (KeyError, ValueError):
        return None
    return Attestation(
        item=str(params.get("item", "")),
        by=event.actor_id,
        by_name=event.actor_name,
        at=event.at,
        expires=expires,
        link=str(params.get("link", "")),
    )


def newest(events: Sequence[AuditEvent]) -> dict[str, Attestation]:
    """Each item's newest attestation (records oldest first)."""
    found: dict[str, Attestation] = {}
    for event in events:
        if event.event == "attested":
            att = _attestation(event)
            if att is not None and att.item:
                found[att.item] = att
    return found


def current(audit: AuditLog) -> dict[str, Attestation]:
    return newest(audit.of_kind(KIND))
