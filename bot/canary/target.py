"""``NS/DEPLOYMENT`` from words: checked before anything is asked of Prometheus."""

from __future__ import annotations

import re

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class TargetError(ValueError):
    """Not a NS/DEPLOYMENT; the message says what is expected."""


def parse_target(text: str) -> tuple[str, str]:
    """(namespace, deployment) of ``NS/DEPLOYMENT`` (``deployment/NS/NAME`` too)."""
    parts = text.strip().removeprefix("deployment/").split("/")
    if len(parts) != 2:
        raise TargetError(f"expected NS/DEPLOYMENT, got {text!r}")
    namespace, name = parts
    if not DNS_LABEL.match(namespace):
        raise TargetError(f"{namespace!r} is not a namespace name (a DNS label)")
    if not DNS_SUBDOMAIN.match(name):
        raise TargetError(f"{name!r} is not a Deployment name (a DNS subdomain)")
    return namespace, name
