"""Parse scope words (``model=llama ns=prod pod=x``) from the CLI and Slack. Pure."""

from __future__ import annotations

from collections.abc import Iterable

from bot.diagnosis.promql import LABEL_NAME
from bot.models import Scope

ALIASES = {"ns": "namespace", "model": "model_name", "deploy": "deployment", "host": "node"}


class ScopeSyntaxError(ValueError):
    """A scope word that is not KEY=VALUE with a valid label name."""


def parse_scope(words: Iterable[str]) -> Scope:
    labels: dict[str, str] = {}
    cluster: str | None = None
    for word in words:
        key, sep, value = word.partition("=")
        key = ALIASES.get(key.strip(), key.strip())
        value = value.strip().strip('"')
        if not sep or not key or not value:
            raise ScopeSyntaxError(
                f"{word!r} is not KEY=VALUE (e.g. namespace=prod model=llama-70b pod=NAME "
                "node=NAME cluster=NAME)"
            )
        if not LABEL_NAME.match(key):
            raise ScopeSyntaxError(f"{key!r} is not a valid label name")
        if key == "cluster":
            cluster = value
        else:
            labels[key] = value
    return Scope(cluster=cluster, labels=labels)
