"""`/vllm canary NS/DEPLOYMENT`: acknowledged at once, compared after, a private reply."""

from __future__ import annotations

from bot.canary.compare import compare
from bot.models import Scope
from bot.slack.block_kit import Message
from bot.slack.canary_blocks import canary_message
from bot.slack.services import Services


async def canary_reply(svc: Services, target: str, scope: Scope) -> Message:
    """The canary gates of ``target`` (``NS/DEPLOYMENT``, already checked), read now."""
    namespace, deployment = target.split("/", 1)
    metrics = svc.metrics_for(scope.cluster)
    result = await compare(metrics, scope, namespace, deployment, svc.settings.canary)
    return canary_message(result)
