"""Block Kit rendering of `/vllm readiness` and its Attest form. Pure.

Critical items first, as the scorecard orders them; each says its status, how it was
decided and its evidence (passing items briefly: the failing ones need the room). An item
only a person can know carries an Attest button whose value is the item's id.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

from slack_sdk.models.blocks import (
    Block,
    ButtonElement,
    InputBlock,
    PlainTextInputElement,
    PlainTextObject,
)
from slack_sdk.models.views import View

from bot.models import Scope
from bot.readiness.decide import ItemStatus
from bot.readiness.items import Item
from bot.readiness.scorecard import Row, Scorecard
from bot.slack import ids
from bot.slack.block_kit import Message, context, fallback, finish, header, section
from bot.slack.mrkdwn import inline, link, truncate

EMOJI: dict[ItemStatus, str] = {
    "pass": ":white_check_mark:",
    "attested": ":ballot_box_with_check:",
    "fail": ":red_circle:",
    "unknown": ":grey_question:",
}
LINK_BLOCK, DAYS_BLOCK = "attest_link", "attest_days"


def _evidence(row: Row) -> str:
    d = row.decision
    parts = []
    for fact in d.evidence:
        parts.append(
            link(fact, fact) if fact.startswith(("http://", "https://")) else inline(fact, 300)
        )
    room = 160 if d.status in ("pass", "attested") else 700
    return truncate("; ".join(parts), room)


def _row(row: Row) -> Block:
    item, d = row.item, row.decision
    critical = " · critical" if item.critical else ""
    text = (
        f"{EMOJI[d.status]} *{inline(item.title, 150)}* — {d.status}{critical}\n"
        f"_{inline(d.how, 220)}_\n{_evidence(row)}"
    )
    button = None
    if item.attest is not None:
        button = ButtonElement(
            text=PlainTextObject(text="Attest again" if d.status == "attested" else "Attest"),
            action_id=ids.ATTEST_BUTTON,
            value=item.id,
        )
    return section(text, button)


def readiness_message(card: Scorecard, scope: Scope) -> Message:
    emoji = ":rocket:" if card.ready else ":no_entry:"
    blocks: list[Block] = [
        header("production readiness", f"{ids.COMMAND} "),
        section(f"{emoji} *{inline(card.verdict, 200)}*   scope: {inline(scope.describe(), 200)}"),
        *(_row(r) for r in card.rows),
        context(
            "Measured items are read from Prometheus, Kubernetes, the audit log and the "
            "loaded runbooks. Attest records who, when and a link in the audit log; it expires."
        ),
    ]
    return Message(text=fallback(f"{ids.COMMAND} readiness: {card.verdict}"), blocks=finish(blocks))


def attest_view(item: Item, channel: str) -> dict[str, Any]:
    """The Attest form: an optional link and the validity (at most the item's)."""
    assert item.attest is not None
    limit = item.attest.expires_days
    view = View(
        type="modal",
        callback_id=ids.ATTEST_VIEW,
        private_metadata=json.dumps({"item": item.id, "channel": channel}),
        title=PlainTextObject(text="Attest"),
        submit=PlainTextObject(text="Attest"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            section(
                f"*{inline(item.title, 150)}*\nYou vouch for it as yourself; the audit log "
                f"keeps who, when and the link. Valid up to {limit} days."
            ),
            InputBlock(
                block_id=LINK_BLOCK,
                label=PlainTextObject(text="Link (a report, a rota)"),
                element=PlainTextInputElement(action_id="value"),
                optional=True,
            ),
            InputBlock(
                block_id=DAYS_BLOCK,
                label=PlainTextObject(text="Valid for (days)"),
                element=PlainTextInputElement(action_id="value", initial_value=str(limit)),
                optional=True,
            ),
        ],
    )
    return cast(dict[str, Any], view.to_dict())


def submitted(view: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """(item id, channel, link, days text) from an Attest form's submission."""
    try:
        meta = json.loads(str(view.get("private_metadata") or "{}"))
    except ValueError:
        meta = {}
    values = (view.get("state") or {}).get("values") or {}

    def value(block: str) -> str:
        element = (values.get(block) or {}).get("value") or {}
        return str(element.get("value") or "").strip()

    meta = meta if isinstance(meta, dict) else {}
    return (
        str(meta.get("item", "")),
        str(meta.get("channel", "")),
        value(LINK_BLOCK),
        value(DAYS_BLOCK),
    )
