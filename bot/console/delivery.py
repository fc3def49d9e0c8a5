"""Deliver a signed request to an app, as Slack does: the only I/O towards the bot.

``send_signed`` blocks (scripts and tests); ``post_signed`` is the console's async form,
which turns "no answer" into :class:`BotUnreachable` with a sentence to show.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import aiohttp

from bot.console.payloads import signed_headers

FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class SignedResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float


class BotUnreachable(Exception):
    """The app did not answer at all: refused, reset, timed out."""


def send_signed(
    url: str,
    body: str,
    secret: str,
    *,
    content_type: str = FORM,
    timestamp: int | None = None,
    timeout: float = 10.0,
) -> SignedResponse:
    """POST ``body`` to an app's endpoint signed like Slack does; never raises on HTTP errors."""
    headers = {"Content-Type": content_type, **signed_headers(secret, body, timestamp)}
    req = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    start = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return SignedResponse(
                resp.status, dict(resp.headers.items()), resp.read(), time.monotonic() - start
            )
    except urllib.error.HTTPError as err:
        return SignedResponse(
            err.code, dict(err.headers.items()), err.read(), time.monotonic() - start
        )


async def post_signed(
    session: aiohttp.ClientSession,
    url: str,
    body: str,
    secret: str,
    *,
    answer_within: float = 3.0,
) -> SignedResponse:
    """POST a signed form body; Slack gives an app 3 seconds to answer."""
    headers = {"Content-Type": FORM, **signed_headers(secret, body)}
    start = time.monotonic()
    try:
        async with session.post(
            url,
            data=body.encode(),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=answer_within),
        ) as resp:
            raw = await resp.read()
            return SignedResponse(
                resp.status, dict(resp.headers.items()), raw, time.monotonic() - start
            )
    except TimeoutError as exc:
        raise BotUnreachable(f"no answer from {url} within {answer_within:g} s") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise BotUnreachable(f"{url}: {exc or type(exc).__name__}") from exc
