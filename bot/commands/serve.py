"""`serve`: the bot — Slack (HTTP or Socket Mode), the Alertmanager webhook, health, metrics."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import secrets
import signal
import socket
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

from aiohttp import web
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.errors import SlackApiError

import bot.logs as logs
from bot.app import Bot, build
from bot.commands.common import EXIT_OK, err
from bot.config import ConfigError, load_settings
from bot.slack import intake
from bot.slack.canary_watch import run_watches
from bot.slack.services import Services

log = logging.getLogger("bot")
VERIFY_POLL_S = 2.0
RESEND_POLL_S = 2.0  # Slack writes that failed or whose sender died are sent again
REFRESH_POLL_S = 1.0  # incidents' posts catch up (each paced by intake.REFRESH_PACE_S)


LEASE = "scheduler"
LEASE_RENEW_S = 2.0
LEASE_TTL = timedelta(seconds=10)  # a dead leader's work moves on within this


class Leadership:
    """This replica's claim on the scheduler lease, renewed every ``LEASE_RENEW_S``."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.leading = False

    async def renew(self) -> None:
        try:
            held = await asyncio.to_thread(self.svc.store.hold_lease, LEASE, self.holder, LEASE_TTL)
        except Exception as exc:  # the database is down: stop leading, keep serving
            log.warning("cannot renew the scheduler lease: %s", exc)
            held = False
        if held != self.leading:
            log.info("scheduler lease %s", "taken" if held else "lost")
        self.leading = held
        self.svc.metrics.scheduler_leader.set(1 if held else 0)

    def only_when_leading(
        self, job: Callable[..., Awaitable[object]]
    ) -> Callable[..., Coroutine[Any, Any, None]]:
        @functools.wraps(job)  # the job keeps its name (in logs and the overrun metric)
        async def run(*args: Any) -> None:
            if not self.leading:
                return
            try:
                await job(*args)
            except asyncio.CancelledError:
                # the scheduler shutting down cancels a run in progress: its work is in
                # the database and the next leader picks it up, so this is no error
                log.info("%s stopped mid-run by the shutdown", job.__name__)

        return run

    def release(self) -> None:
        with contextlib.suppress(Exception):
            self.svc.store.release_lease(LEASE, self.holder)


# A poll whose run outlasts its interval: the next run waits for it (one run at a time),
# and runs missed meanwhile, or while the event loop was busy, are one run, however late.
POLL_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
SKIPPED = "skipped: maximum number of running instances"


class _QuietSkips(logging.Filter):
    """APScheduler warns each time a run is skipped because the previous one is still
    going: expected of a poll under load (counted in ``scheduler_overruns`` instead), and
    at a warning a second it buries the warnings that matter. Demoted to DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and SKIPPED in str(record.msg):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def quiet_skips(logger: logging.Logger) -> None:
    if not any(isinstance(f, _QuietSkips) for f in logger.filters):
        logger.addFilter(_QuietSkips())


def start_scheduler(svc: Services, leadership: Leadership) -> AsyncIOScheduler:
    """Scheduled work, run by the one replica holding the scheduler lease: every few
    seconds, due verification re-checks, unposted alerts, incidents' posts behind their
    state and Slack writes still pending; every minute, request expiry and forgetting old
    Slack request signatures, settled writes and long-resolved incidents' posts. The
    work itself is in the database and claimed row by row, so a restart or a dead leader
    loses nothing: the next leader (within the lease's 10 s) carries on."""
    scheduler = AsyncIOScheduler(timezone="UTC", job_defaults=POLL_DEFAULTS)
    quiet_skips(logging.getLogger("apscheduler.scheduler"))

    def overran(event: JobSubmissionEvent) -> None:
        job = scheduler.get_job(event.job_id)
        name = job.name.rsplit(".", 1)[-1] if job else event.job_id  # "refresh", "resend" …
        svc.metrics.scheduler_overruns.labels(name).inc()

    scheduler.add_listener(overran, EVENT_JOB_MAX_INSTANCES)
    remediation = svc.remediation
    lead = leadership.only_when_leading

    async def expire() -> None:
        await asyncio.to_thread(remediation.expire_requests)
        await asyncio.to_thread(svc.store.forget_seen, timedelta(minutes=10))
        await asyncio.to_thread(svc.outbox.ledger.prune, timedelta(days=1))
        kept = timedelta(days=svc.settings.resolved_alert_retention_days)
        await asyncio.to_thread(svc.store.forget_resolved, kept)

    async def resend() -> None:
        await svc.outbox.resend_due()
        pending, oldest_s = await asyncio.to_thread(svc.outbox.ledger.backlog)
        svc.metrics.outbox_pending.set(pending)
        svc.metrics.outbox_oldest_seconds.set(oldest_s)

    scheduler.add_job(leadership.renew, "interval", seconds=LEASE_RENEW_S)
    scheduler.add_job(lead(remediation.run_due_verifications), "interval", seconds=VERIFY_POLL_S)
    scheduler.add_job(lead(intake.redrive), "interval", args=[svc], seconds=intake.RETRY_S)
    scheduler.add_job(lead(intake.refresh), "interval", args=[svc], seconds=REFRESH_POLL_S)
    scheduler.add_job(lead(resend), "interval", seconds=RESEND_POLL_S)
    scheduler.add_job(lead(expire), "interval", seconds=60)
    every = svc.settings.canary.evaluate_every_s
    scheduler.add_job(lead(run_watches), "interval", args=[svc], seconds=every)
    scheduler.start()
    return scheduler


def cmd_serve(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    logs.configure(settings.log_format)
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
    leadership = Leadership(svc)
    await leadership.renew()
    if leadership.leading:
        svc.spawn(intake.redrive(svc), "redrive unposted alerts")
    scheduler = start_scheduler(svc, leadership)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        scheduler.shutdown(wait=False)
        await asyncio.to_thread(leadership.release)  # a successor need not wait the TTL
        if handler is not None:
            await handler.close_async()  # type: ignore[no-untyped-call]
        await svc.shutdown(grace_s=10)
        await runner.cleanup()
        svc.close()
