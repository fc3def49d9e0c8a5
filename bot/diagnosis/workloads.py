"""Kubernetes workload names from pod names (pure): what a scale or rollback acts on."""

from __future__ import annotations

import re

# <deployment>-<pod-template-hash>-<5 chars>; <statefulset>-<ordinal>
_DEPLOYMENT_POD = re.compile(r"^(?P<name>.+)-[a-z0-9]{5,10}-[a-z0-9]{5}$")
_STATEFULSET_POD = re.compile(r"^(?P<name>.+)-\d+$")


def workload_of_pod(namespace: str, pod: str) -> str:
    """``deployment/NS/NAME`` or ``statefulset/NS/NAME``; ``pod/NS/POD`` when unclear."""
    if m := _DEPLOYMENT_POD.match(pod):
        return f"deployment/{namespace}/{m.group('name')}"
    if m := _STATEFULSET_POD.match(pod):
        return f"statefulset/{namespace}/{m.group('name')}"
    return f"pod/{namespace}/{pod}"
