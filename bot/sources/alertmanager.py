"""Alertmanager API v2 (silences) over httpx, async, with plain-language errors.

Every failure becomes :class:`AlertmanagerError` whose message a person can act on:
unreachable (with the URL), refused (400: the matchers or times are wrong, with
Alertmanager's own words), not found (404), or any other status with its body.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class AlertmanagerError(Exception):
    """Alertmanager could not do what was asked; the message says why in plain words."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class Matcher(BaseModel):
    """One label matcher, as Alertmanager's API spells it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = Field(min_length=1)
    value: str
    isRegex: bool = False
    isEqual: bool = True

    def describe(self) -> str:
        op = ("=~" if self.isRegex else "=") if self.isEqual else ("!~" if self.isRegex else "!=")
        return f"{self.name}{op}{self.value}"


class Silence(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    matchers: list[Matcher]
    startsAt: datetime
    endsAt: datetime
    createdBy: str = ""
    comment: str = ""
    state: str = Field(default="", description="active | pending | expired")

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Silence:
        return cls.model_validate({**data, "state": (data.get("status") or {}).get("state", "")})


def _time(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("silence times must be timezone-aware")
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


_SILENCE_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def _checked_id(silence_id: str) -> str:
    if not _SILENCE_ID.fullmatch(silence_id):
        raise AlertmanagerError(f"{silence_id!r} is not a silence id (like 0f3c…-…)", 400)
    return silence_id


def _body_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500]
    if isinstance(body, str):
        return body.strip()
    if isinstance(body, dict) and "message" in body:
        return str(body["message"])
    return str(body)[:500]


class AlertmanagerClient:
    """Silences on one Alertmanager (``url`` without the ``/api/v2`` suffix)."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.headers = dict(headers or {})
        self._transport = transport

    async def _request(
        self, method: str, path: str, *, what: str, json: Any = None
    ) -> httpx.Response:
        try:
            async with httpx.AsyncClient(
                base_url=self.url,
                timeout=self.timeout_s,
                headers=self.headers,
                transport=self._transport,
            ) as client:
                response = await client.request(method, path, json=json)
        except httpx.TimeoutException as exc:
            raise AlertmanagerError(
                f"Alertmanager at {self.url} did not answer within {self.timeout_s:g}s "
                f"while trying to {what}"
            ) from exc
        except httpx.HTTPError as exc:
            raise AlertmanagerError(
                f"Alertmanager at {self.url} is unreachable ({type(exc).__name__}: {exc}); "
                f"could not {what}. Check alertmanager_url and that Alertmanager is running"
            ) from exc
        status = response.status_code
        if status in (400, 422):  # 422: the request failed Alertmanager's API schema
            hint = " (check the label matchers and the times)" if method == "POST" else ""
            raise AlertmanagerError(
                f"Alertmanager refused to {what}: {_body_text(response)}{hint}", status
            )
        # Alertmanager < 0.27 answers 500 "silence not found" when expiring an unknown id
        if status == 404 or (status == 500 and "not found" in _body_text(response).lower()):
            raise AlertmanagerError(
                f"Alertmanager could not {what}: not found ({_body_text(response)})", 404
            )
        if response.status_code in (401, 403):
            raise AlertmanagerError(
                f"Alertmanager at {self.url} refused access ({response.status_code}); "
                "check the credentials the bot sends",
                response.status_code,
            )
        if response.status_code >= 300:
            raise AlertmanagerError(
                f"Alertmanager failed to {what}: HTTP {response.status_code}: "
                f"{_body_text(response)}",
                response.status_code,
            )
        return response

    async def create_silence(
        self,
        matchers: Sequence[Matcher | Mapping[str, Any]],
        starts_at: datetime,
        ends_at: datetime,
        created_by: str,
        comment: str,
    ) -> str:
        """POST /api/v2/silences; the new silence's id."""
        try:
            parsed = [m if isinstance(m, Matcher) else Matcher.model_validate(m) for m in matchers]
        except ValidationError as exc:
            raise AlertmanagerError(f"invalid matcher: {exc.errors()[0]['msg']}", 400) from exc
        body = {
            "matchers": [m.model_dump() for m in parsed],
            "startsAt": _time(starts_at),
            "endsAt": _time(ends_at),
            "createdBy": created_by,
            "comment": comment,
        }
        response = await self._request(
            "POST", "/api/v2/silences", what="create the silence", json=body
        )
        try:
            return str(response.json()["silenceID"])
        except (ValueError, KeyError, TypeError) as exc:
            raise AlertmanagerError(
                f"Alertmanager answered without a silence id: {response.text[:200]}"
            ) from exc

    async def get_silences(self) -> list[Silence]:
        """GET /api/v2/silences: every silence Alertmanager still knows (any state)."""
        response = await self._request("GET", "/api/v2/silences", what="list silences")
        try:
            return [Silence.from_api(item) for item in response.json()]
        except (ValueError, TypeError, ValidationError) as exc:
            raise AlertmanagerError(f"unexpected silences answer from Alertmanager: {exc}") from exc

    async def get_silence(self, silence_id: str) -> Silence:
        _checked_id(silence_id)
        response = await self._request(
            "GET", f"/api/v2/silence/{silence_id}", what=f"find silence {silence_id}"
        )
        try:
            return Silence.from_api(response.json())
        except (ValueError, TypeError, ValidationError) as exc:
            raise AlertmanagerError(f"unexpected silence answer from Alertmanager: {exc}") from exc

    async def expire_silence(self, silence_id: str) -> None:
        """DELETE /api/v2/silence/{id}: the silence ends now."""
        _checked_id(silence_id)
        await self._request(
            "DELETE", f"/api/v2/silence/{silence_id}", what=f"expire silence {silence_id}"
        )
