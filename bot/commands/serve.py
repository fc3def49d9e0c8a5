"""`serve`: the bot — Slack (HTTP or Socket Mode), the Alertmanager webhook, health, metrics."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from datetime import timedelta

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.errors import SlackApiError

from bot.app import Bot, build
from bot.commands.common import EXIT_OK, err
from bot.config import ConfigError, load_settings
from bot.slack import intake
from bot.slack.services import Services

log = logging.getLogger("bot")
VERIFY_POLL_S = 2.0
REFRESH_POLL_S = 1.0  # incidents' posts catch up (each paced by intake.REFRESH_PACE_S)


def start_scheduler(svc: Services) -> AsyncIOScheduler:
    """Every few seconds: due verification re-checks, unposted alerts and incidents' posts
    behind their state (all kept in the database and claimed by one replica each, so a
    restart or a dead replica loses nothing); request expiry and forgetting old Slack
    request signatures every minute."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    remediation = svc.remediation

    async def expire() -> None:
        await asyncio.to_thread(remediation.expire_requests)
        await asyncio.to_thread(svc.store.forget_seen, timedelta(minutes=10))

    scheduler.add_job(remediation.run_due_verifications, "interval", seconds=VERIFY_POLL_S)
    scheduler.add_job(intake.redrive, "interval", args=[svc], seconds=intake.RETRY_S)
    scheduler.add_job(intake.refresh, "interval", args=[svc], seconds=REFRESH_POLL_S)
    scheduler.add_job(expire, "interval", seconds=60)
    scheduler.start()
    return scheduler


def cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = load_settings(args.config)
    bot = build(settings)
    asyncio.run(serve(bot, args.host, args.port))
    return EXIT_OK


async def serve(bot: Bot, host: str, port: int, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set (or SIGINT/SIGTERM)."""
    svc = bot.services
    try:
        identity = await svc.outbox.client.auth_test()
        log.info("connected to Slack as %s", identity.get("user"))
    except SlackApiError as exc:
        raise ConfigError(f"Slack refused the bot token: {exc.response.get('error')}") from exc
    except Exception as exc:  # Slack unreachable: serve anyway, the outbox retries per call
        log.warning("cannot reach Slack at %s yet: %s", svc.settings.slack_api_url, exc)
    runner = web.AppRunner(bot.web, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    mode = "Socket Mode" if bot.socket_mode else f"HTTP (POST http://{host}:{port}/slack/events)"
    err.print(f"serving on http://{host}:{port} — Slack via {mode}; alerts at /alerts")
    handler = None
    if bot.socket_mode:
        assert svc.settings.slack_app_token is not None
        handler = AsyncSocketModeHandler(bot.bolt, svc.settings.slack_app_token.get_secret_value())
        await handler.connect_async()  # type: ignore[no-untyped-call]
    svc.spawn(intake.redrive(svc), "redrive unposted alerts")
    scheduler = start_scheduler(svc)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        scheduler.shutdown(wait=False)
        if handler is not None:
            await handler.close_async()  # type: ignore[no-untyped-call]
        await svc.shutdown(grace_s=10)
        await runner.cleanup()
        svc.close()
