"""Slack incoming webhooks: ``POST /services/T…/B…/SECRET`` with a JSON message, answered ``ok``.

What Alertmanager's built-in Slack notifier (``slack_configs``' ``api_url``) posts to.
Each post is kept with the moment it arrived, so the latency of a notifier that is not
the bot can be measured against the bot's own posts in the same workspace.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

ROUTE = "/services/{team}/{hook}/{secret}"


@dataclass(frozen=True)
class WebhookPost:
    path: str  # /services/T…/B…/SECRET: which webhook
    body: dict[str, Any]  # text, attachments, blocks … as sent
    at: float  # time.time() when the request arrived

    @property
    def text(self) -> str:
        """Everything readable in the post (text and attachments), for finding it."""
        return json.dumps(self.body)


class IncomingWebhooks:
    """Accepts what Slack's incoming webhooks accept; records every post that was valid."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._posts: list[WebhookPost] = []

    @property
    def posts(self) -> list[WebhookPost]:
        with self._lock:
            return list(self._posts)

    def forget(self) -> None:
        with self._lock:
            self._posts.clear()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(ROUTE, self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        arrived = time.time()
        raw = await request.read()
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return web.Response(status=400, text="invalid_payload")
        if not isinstance(body, dict):
            return web.Response(status=400, text="invalid_payload")
        if not (body.get("text") or body.get("attachments") or body.get("blocks")):
            return web.Response(status=400, text="no_text")  # Slack's answer to an empty post
        with self._lock:
            self._posts.append(WebhookPost(request.path, body, arrived))
        return web.Response(text="ok", content_type="text/html")
