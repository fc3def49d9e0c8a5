"""`/vllm readiness` and its Attest button: acknowledge at once, read the fleet after.

The scorecard comes back as a private reply; Attest opens a form (an optional link, the
validity) and records the attestation as the person who submitted it, in the audit log.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.canary.watches import Watches
from bot.diagnosis.yaml_source import RunbookError
from bot.models import Scope
from bot.readiness.attestations import LINK, AttestError, attest, current, validate
from bot.readiness.connect import open_sources
from bot.readiness.items import Item, configured_items
from bot.readiness.scorecard import evaluate
from bot.slack import ids
from bot.slack.block_kit import Message, fallback, finish, section
from bot.slack.help_blocks import refusal, usage_error
from bot.slack.mrkdwn import inline
from bot.slack.readiness_blocks import (
    DAYS_BLOCK,
    LINK_BLOCK,
    attest_view,
    readiness_message,
    submitted,
)
from bot.slack.services import Services

log = logging.getLogger(__name__)


def _items(svc: Services) -> dict[str, Item]:
    return {i.id: i for i in configured_items(svc.settings.runbooks_dir)}


async def readiness_reply(svc: Services, scope: Scope) -> Message:
    """The scorecard of ``scope``, read now."""
    try:
        items = list(_items(svc).values())
    except RunbookError as exc:
        return usage_error(f"the readiness items do not load: {str(exc).splitlines()[0]}")
    watches = Watches(svc.store)  # the bot's own database, not one opened per scorecard
    async with open_sources(svc.settings, scope, audit=svc.audit, watches=watches) as sources:
        card = await evaluate(items, sources, current(svc.audit), datetime.now(UTC))
    return readiness_message(card, scope)


def _form_errors(item: Item | None, link: str, days_text: str) -> tuple[dict[str, str], int | None]:
    """Problems shown under the form's fields, and the validity asked for."""
    if item is None:
        return {LINK_BLOCK: "this item no longer exists; run /vllm readiness again"}, None
    if days_text and not (days_text.isascii() and days_text.isdigit() and len(days_text) < 6):
        return {DAYS_BLOCK: "a whole number of days"}, None
    days = int(days_text) if days_text else None
    errors: dict[str, str] = {}
    try:
        validate(item, days, "")
    except AttestError as exc:
        errors[DAYS_BLOCK] = str(exc)[:150]
    if link and not LINK.match(link):
        errors[LINK_BLOCK] = "an http(s) URL without spaces"
    return errors, days


def register(app: AsyncApp, svc: Services) -> None:
    @app.action(ids.ATTEST_BUTTON)
    async def attest_button(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        svc.spawn(open_form(svc, body), "attest form")

    @app.view(ids.ATTEST_VIEW)
    async def attest_submitted(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        item_id, channel, link, days_text = submitted(view)
        try:
            item = _items(svc).get(item_id)
        except RunbookError:
            item = None
        errors, days = _form_errors(item, link, days_text)
        if errors or item is None:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        svc.spawn(record(svc, body, item, link, days, channel), "attest")


async def open_form(svc: Services, body: dict[str, Any]) -> None:
    item_id = str(((body.get("actions") or [{}])[0]).get("value", ""))
    channel = str((body.get("channel") or {}).get("id", ""))
    item = _items(svc).get(item_id)
    if item is None or item.attest is None:
        user = str((body.get("user") or {}).get("id", ""))
        if channel and user:
            await svc.outbox.ephemeral(channel, user, refusal(f"{item_id!r} cannot be attested"))
        return
    await svc.outbox.open_view(str(body.get("trigger_id", "")), attest_view(item, channel))


async def record(
    svc: Services, body: dict[str, Any], item: Item, link: str, days: int | None, channel: str
) -> None:
    user = body.get("user") or {}
    user_id = str(user.get("id", ""))
    name = str(user.get("username") or user.get("name") or user_id)
    try:
        done = attest(
            svc.audit,
            item,
            by=user_id,
            by_name=name,
            link=link,
            days=days,
            now=datetime.now(UTC),
            origin={"channel": channel, "via": "slack"},
        )
    except AttestError as exc:  # checked by the form already; the items may have changed
        message = refusal(str(exc))
    else:
        text = (
            f":ballot_box_with_check: *{inline(item.title, 150)}* attested by <@{user_id}> "
            f"until {done.expires:%Y-%m-%d %H:%M} UTC; `/vllm readiness` shows it"
        )
        message = Message(text=fallback(f"attested {item.title}"), blocks=finish([section(text)]))
    if channel and user_id:
        await svc.outbox.ephemeral(channel, user_id, message)
