"""Where an action runs: the configured cluster a request is about, and its API client."""

from __future__ import annotations

import asyncio

from bot.config import Settings
from bot.remediation.actions.base import parse_target
from bot.remediation.actions.drain import pods_on_node
from bot.remediation.requests import Asked
from bot.sources.kubernetes import KubeClient, KubernetesError, KubeTarget


class AmbiguousTarget(ValueError):
    """The target exists in several configured clusters: the person must say which."""


def kube_for(settings: Settings, cluster: str | None) -> KubeClient:
    config = settings.cluster(cluster)
    target = KubeTarget(
        kube_context=config.kube_context,
        in_cluster=config.in_cluster,
        base_url=str(config.kube_api_url).rstrip("/") if config.kube_api_url else None,
        token=config.kube_token.get_secret_value() if config.kube_token else None,
    )
    return KubeClient.connect(target)


async def connected(settings: Settings, cluster: str | None) -> KubeClient:
    """:func:`kube_for`, made in a thread: a client's TLS context (the system's CA
    certificates loaded) costs milliseconds of CPU the event loop need not wait for."""
    return await asyncio.to_thread(kube_for, settings, cluster)


async def locate(settings: Settings, asked: Asked) -> str:
    """The configured cluster ``asked`` is about, when the person named none."""
    clusters = settings.effective_clusters()
    if len(clusters) == 1:
        return clusters[0].name
    if asked.kind in ("silence", "unsilence"):
        if len({str(c.alertmanager_url) for c in clusters}) == 1:
            return clusters[0].name
        names = ", ".join(c.name for c in clusters)
        raise AmbiguousTarget(
            f"each cluster has its own Alertmanager ({names}): say which with cluster=NAME"
        )
    found = [c.name for c in clusters if await may_hold(settings, c.name, asked.target)]
    if len(found) == 1:
        return found[0]
    if not found:  # nowhere: the first cluster's plan will say it was not found
        return clusters[0].name
    raise AmbiguousTarget(
        f"{asked.target} may exist in clusters {', '.join(found)}: say which with cluster=NAME"
    )


async def may_hold(settings: Settings, cluster: str, target: str) -> bool:
    """Whether ``target`` exists in ``cluster`` (True when the cluster cannot say)."""
    t = parse_target(target)
    client = await connected(settings, cluster)
    try:
        await client.get(t.kind, t.name, t.namespace)
        return True
    except KubernetesError as exc:
        return exc.status != 404
    finally:
        await client.close()


async def drain_held(settings: Settings, cluster: str | None, target: str) -> bool:
    """Whether a drained node is still cordoned with no serving pods left on it."""
    node = parse_target(target).name
    client = await connected(settings, cluster)
    try:
        obj = await client.get("Node", node)
        left, _ = await pods_on_node(client, node)
    except KubernetesError:
        return False
    finally:
        await client.close()
    return bool((obj.get("spec") or {}).get("unschedulable")) and not left
