"""The silence action: plan it in words, create it in Alertmanager, expire it again.

What to silence is an alert name and/or labels (``{"namespace": "prod"}``; a value
starting with ``~`` is a regular expression, as in the rest of the settings), or a
selector text such as ``VLLMKVCachePressure{namespace=prod}`` or
``alertname=VLLMKVCachePressure namespace=prod``. Durations are ``30m``, ``2h``, ``1d``
or combinations (``1h30m``), at most 7 days.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from bot.sources.alertmanager import AlertmanagerClient, Matcher

MAX_DURATION = timedelta(days=7)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(?:(\d+)([smhdw]))+")
_PART = re.compile(r"(\d+)([smhdw])")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SilenceError(ValueError):
    """The silence request itself is wrong (duration, matchers); the message says how."""


def parse_duration(text: str) -> timedelta:
    """``30m``, ``2h``, ``1d``, ``1h30m`` → timedelta; more than 0 and at most 7 days."""
    value = text.strip().lower()
    if not _DURATION.fullmatch(value):
        raise SilenceError(
            f"duration {text!r} not understood: use a number and a unit (m, h, d), "
            "like 30m, 2h or 1d"
        )
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(value))
    duration = timedelta(seconds=seconds)
    if duration <= timedelta(0):
        raise SilenceError(f"duration {text!r} is zero: silence for at least 1m")
    if duration > MAX_DURATION:
        raise SilenceError(
            f"duration {text!r} is longer than the 7-day maximum: silence for 7d at most "
            "and fix the alert or its threshold instead"
        )
    return duration


def format_duration(duration: timedelta) -> str:
    """timedelta → ``1d2h30m`` (largest units first, seconds only when present)."""
    seconds = int(duration.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def silence_matchers(
    alertname: str | None = None, labels: Mapping[str, str] | None = None
) -> list[Matcher]:
    """Matchers for an alert name and labels (``~regex`` values become regex matchers)."""
    wanted: dict[str, str] = dict(labels or {})
    if alertname:
        if wanted.get("alertname", alertname) != alertname:
            raise SilenceError(f"alert name given twice: {alertname!r} and {wanted['alertname']!r}")
        wanted["alertname"] = alertname
    if not wanted:
        raise SilenceError(
            "nothing to silence: give an alert name and/or labels, e.g. "
            "VLLMKVCachePressure{namespace=prod}"
        )
    matchers = []
    for name in sorted(wanted, key=lambda k: (k != "alertname", k)):
        value = wanted[name]
        if not _LABEL_NAME.fullmatch(name):
            raise SilenceError(f"label name {name!r} is not valid (letters, digits, _)")
        is_regex = value.startswith("~")
        if is_regex:
            value = value[1:]
            try:
                re.compile(value)
            except re.error as exc:
                raise SilenceError(f"label {name}: invalid regex {value!r}: {exc}") from exc
        if not value or (is_regex and re.fullmatch(value, "")):
            raise SilenceError(
                f"label {name}: a matcher that matches an empty value would silence alerts "
                "without that label too; give a value"
            )
        matchers.append(Matcher(name=name, value=value, isRegex=is_regex))
    return matchers


def parse_selector(text: str) -> list[Matcher]:
    """``Name{k=v,k2=~re}`` or ``alertname=Name k=v`` → matchers."""
    text = text.strip()
    alertname: str | None = None
    labels: dict[str, str] = {}
    braces = re.fullmatch(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{(.*)\}", text)
    if braces:
        alertname = braces.group(1)
        words = [w.strip() for w in braces.group(2).split(",") if w.strip()]
    elif "=" not in text and _LABEL_NAME.fullmatch(text):
        alertname, words = text, []
    else:
        words = text.split()
    for word in words:
        match = re.fullmatch(r"""([A-Za-z_][A-Za-z0-9_]*)\s*(=~|=)\s*["']?(.*?)["']?""", word)
        if not match:
            raise SilenceError(f"{word!r} is not a label matcher like namespace=prod")
        name, op, value = match.groups()
        labels[name] = f"~{value}" if op == "=~" else value
    return silence_matchers(alertname, labels)


def describe(matchers: list[Matcher]) -> str:
    """``VLLMKVCachePressure{namespace=prod}`` (the alert name outside the braces)."""
    name = next((m.value for m in matchers if m.name == "alertname" and m.isEqual), "")
    if name and any(m.name == "alertname" and m.isRegex for m in matchers):
        name = ""
    rest = [m.describe() for m in matchers if not (name and m.name == "alertname")]
    return f"{name}{{{','.join(rest)}}}" if rest else name


def _until(ends: datetime, now: datetime) -> str:
    ends = ends.astimezone(UTC)
    if ends.date() == now.astimezone(UTC).date():
        return ends.strftime("%H:%M UTC")
    return ends.strftime("%Y-%m-%d %H:%M UTC")


def plan(matchers: list[Matcher], duration: str, now: datetime | None = None) -> str:
    """``silence VLLMKVCachePressure{namespace=prod} for 2h, until 14:00 UTC``."""
    length = parse_duration(duration)
    start = now or datetime.now(UTC)
    return f"silence {describe(matchers)} for {format_duration(length)}, until " + _until(
        start + length, start
    )


async def execute(
    client: AlertmanagerClient,
    matchers: list[Matcher],
    duration: str,
    created_by: str,
    comment: str,
    now: datetime | None = None,
) -> str:
    """Create the silence; its id (keep it to ``unsilence``)."""
    length = parse_duration(duration)
    if not matchers:
        raise SilenceError("nothing to silence: no matchers")
    start = now or datetime.now(UTC)
    return await client.create_silence(
        matchers, start, start + length, created_by=created_by, comment=comment
    )


async def unsilence(client: AlertmanagerClient, silence_id: str) -> None:
    """Expire the silence now."""
    await client.expire_silence(silence_id)
