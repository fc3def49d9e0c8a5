"""Wiring only: settings → clients → store → listeners → one HTTP server.

The HTTP server always serves ``POST /alerts`` (Alertmanager webhook, bearer token),
``GET /healthz``, ``GET /readyz`` and ``GET /metrics``; in HTTP mode (no app token) it
also serves Slack at ``POST /slack/events``. With ``SLACK_APP_TOKEN`` Slack comes in over
Socket Mode instead.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.signature import SignatureVerifier

from bot.config import ConfigError, Settings
from bot.diagnosis.runbooks import DEFAULT_RUNBOOK_DIR, load_runbooks
from bot.ledger import Ledger
from bot.models import AlertGroup
from bot.remediation.audit import AuditLog
from bot.slack import intake, listeners
from bot.slack.metrics import BotMetrics
from bot.slack.outbox import Outbox, make_client
from bot.slack.services import Services
from bot.store import Store

log = logging.getLogger(__name__)
MAX_WEBHOOK_BYTES = 4 * 1024 * 1024


def require_serving_settings(settings: Settings) -> None:
    """What `serve` cannot run without, named with the fix."""
    missing = []
    if settings.slack_bot_token is None:
        missing.append("SLACK_BOT_TOKEN (the bot token, xoxb-…)")
    if settings.slack_app_token is None and settings.slack_signing_secret is None:
        missing.append("SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode)")
    if settings.alerts_token is None:
        missing.append("VLLM_CHATOPS_ALERTS_TOKEN (the bearer token Alertmanager sends)")
    if settings.default_channel is None and not settings.routes:
        missing.append("VLLM_CHATOPS_DEFAULT_CHANNEL (or routes) for alert posts")
    if missing:
        raise ConfigError("cannot serve without: " + "; ".join(missing))


@dataclass
class Bot:
    services: Services
    bolt: AsyncApp
    web: web.Application
    socket_mode: bool


def build(settings: Settings) -> Bot:
    require_serving_settings(settings)
    assert settings.slack_bot_token is not None
    runbooks = load_runbooks(settings.runbooks_dir or DEFAULT_RUNBOOK_DIR)
    client = make_client(settings.slack_bot_token.get_secret_value(), str(settings.slack_api_url))
    metrics = BotMetrics()
    store = Store(settings.database_url)
    services = Services(
        settings=settings,
        runbooks=runbooks,
        store=store,
        outbox=Outbox(client, metrics.slack_calls, Ledger(store)),
        audit=AuditLog(settings.database_url),
        metrics=metrics,
    )
    socket_mode = settings.slack_app_token is not None
    secret = settings.slack_signing_secret
    bolt = AsyncApp(
        client=client,
        signing_secret=secret.get_secret_value() if secret else None,
        request_verification_enabled=not socket_mode,
        process_before_response=True,
    )
    listeners.register(bolt, services)
    return Bot(services, bolt, make_web_app(services, None if socket_mode else bolt), socket_mode)


def _signed(verifier: SignatureVerifier, body: bytes, request: web.Request) -> bool:
    """Slack's signature holds and is fresh; a timestamp that is not a number, a signature
    that is not ASCII or a body that is not UTF-8 is simply not signed."""
    try:
        return verifier.is_valid_request(body, dict(request.headers))
    except (ValueError, TypeError):
        return False


def make_web_app(svc: Services, bolt: AsyncApp | None) -> web.Application:
    routes = web.RouteTableDef()
    expected = svc.settings.alerts_token
    token = expected.get_secret_value() if expected else ""
    received = svc.metrics.alerts_received

    @routes.post("/alerts")
    async def alerts(request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "")
        if not token or not hmac.compare_digest(given, f"Bearer {token}"):
            received.labels("unknown", "unauthorized").inc()
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        raw = await request.read()
        try:  # too deep, or a number too long to read, is as unreadable as a syntax error
            body = json.loads(raw)
        except (ValueError, RecursionError):
            received.labels("unknown", "invalid").inc()
            return web.json_response({"error": "body is not JSON"}, status=400)
        try:
            group = AlertGroup.model_validate(body)
        except ValidationError as exc:
            received.labels("unknown", "invalid").inc()
            problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5]]
            return web.json_response(
                {"error": "not an Alertmanager webhook (version 4)", "problems": problems},
                status=400,
            )
        # a fingerprint sent twice in one notification is one alert (the last copy counts)
        unique = list({a.fingerprint: a for a in group.alerts}.values())
        group = group.model_copy(update={"alerts": unique})
        try:
            claims = await asyncio.to_thread(intake.claim, svc, group)
        except intake.NoChannelError as exc:
            received.labels(group.status, "no_channel").inc()
            return web.json_response({"error": str(exc)}, status=422)
        except Exception:  # the database: Alertmanager retries 5xx, so nothing is lost
            log.exception("cannot record alert group %s", group.groupKey)
            received.labels(group.status, "store_error").inc()
            return web.json_response({"error": "state store unavailable"}, status=503)
        for claim in claims:
            svc.spawn(intake.publish(svc, claim), f"alert post {claim.post_id}")
        if any(a.status == "resolved" for a in group.alerts):
            svc.spawn(intake.resolve(svc, group), f"resolve {group.groupKey}")
        new_posts = sum(not c.joined for c in claims)
        outcome = "posted" if new_posts else "joined" if claims else "duplicate_or_resolved"
        received.labels(group.status, outcome).inc()
        return web.json_response(
            {
                "accepted": len(group.alerts),
                "new_posts": new_posts,
                "joined_posts": len(claims) - new_posts,
            }
        )

    @routes.get("/healthz")
    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    @routes.get("/readyz")
    async def readyz(request: web.Request) -> web.Response:
        """Ready while the state store answers. Slack failing is reported, not fatal: the
        bot still records alerts and keeps its writes for when Slack is back."""
        database = await asyncio.to_thread(svc.store.ping)
        body = {
            "ready": database,
            "database": "ok" if database else "unreachable",
            "slack": svc.outbox.health.describe(),
        }
        return web.json_response(body, status=200 if database else 503)

    @routes.get("/metrics")
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(svc.metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    if bolt is not None:
        secret = svc.settings.slack_signing_secret
        verifier = SignatureVerifier(secret.get_secret_value()) if secret else None

        @routes.post("/slack/events")
        async def slack_events(request: web.Request) -> web.Response:
            # in flight until answered: listeners' handed-off work waits for it
            with svc.acks_first.request():
                return await answer_slack(request)

        async def answer_slack(request: web.Request) -> web.Response:
            # Forged and stale (> 5 min) requests are refused before their body is read as
            # anything; a valid one sent again within those 5 minutes is refused too: each
            # signature is served once.
            body = await request.read()
            signature = request.headers.get("X-Slack-Signature", "")
            if verifier is not None:
                if not _signed(verifier, body, request):
                    return web.json_response({"error": "invalid request"}, status=401)
                # its own thread, grouped with requests arriving together: never queued
                # behind background work in the default pool (see bot.slack.ack_path)
                if not await svc.ack_path.first_sight(signature):
                    return web.json_response({"error": "replayed request"}, status=401)
            try:
                bolt_request = await to_bolt_request(request)
            except (ValueError, RecursionError):  # not UTF-8, or a payload that is not JSON
                return web.json_response({"error": "unreadable request body"}, status=400)
            return await to_aiohttp_response(await bolt.async_dispatch(bolt_request))

    app = web.Application(client_max_size=MAX_WEBHOOK_BYTES)
    app.add_routes(routes)
    app.cleanup_ctx.append(partial(_slack_session, svc))
    return app


async def _slack_session(svc: Services, app: web.Application) -> AsyncIterator[None]:
    """One HTTP session (kept-alive connections) for every Web API call while serving.

    Without it the Slack client opens a session and a connection per call: CPU on the
    event loop that every acknowledgement waits behind when many requests arrive."""
    client = svc.outbox.client
    client.session = aiohttp.ClientSession()
    try:
        yield
    finally:
        session, client.session = client.session, None
        await session.close()
