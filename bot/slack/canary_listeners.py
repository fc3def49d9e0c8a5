"""`/vllm canary NS/DEPLOYMENT`: acknowledged at once, compared after, a private reply.

When a rollback trigger tripped, the reply proposes the rollback: a request recorded
through the remediation flow and a button that opens its plan, so the usual permission,
approval and audit apply — nothing is rolled back without a person's confirmation.
"""

from __future__ import annotations

from bot.canary.compare import compare
from bot.config import ConfigError
from bot.models import Scope
from bot.remediation.placement import AmbiguousTarget
from bot.remediation.requests import Asked
from bot.slack.block_kit import Message
from bot.slack.canary_blocks import Proposal, canary_message
from bot.slack.services import Services


async def canary_reply(
    svc: Services, target: str, scope: Scope, channel: str | None = None
) -> Message:
    """The canary gates of ``target`` (``NS/DEPLOYMENT``, already checked), read now."""
    namespace, deployment = target.split("/", 1)
    metrics = svc.metrics_for(scope.cluster)
    result = await compare(metrics, scope, namespace, deployment, svc.settings.canary)
    if not result.rollback:
        return canary_message(result)
    workload = f"deployment/{namespace}/{deployment}"
    tripped = "; ".join(f"{t.metric} {t.reason}" for t in result.triggers if t.tripped)
    try:
        request_id = await svc.remediation.offer(
            Asked("rollback", workload),
            reason=f"canary rollback trigger on the new revision: {tripped}",
            cluster=scope.cluster,
            channel=channel,
        )
    except (AmbiguousTarget, ConfigError) as exc:
        return canary_message(result, Proposal(workload, None, str(exc)))
    return canary_message(result, Proposal(workload, request_id))
