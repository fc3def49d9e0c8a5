"""Who is in the console's workspace: three people with fixed ids, and its channels.

Fixed so a demo's permission policy can name them: grant ``ONCALL`` the actions,
``APPROVER`` the approvals, and leave ``VIEWER`` out to see a refusal. ``SRE_GROUP`` is a
Slack user group holding the first two, for grants by group.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Persona:
    id: str
    handle: str  # Slack's user name, what the bot records as the actor's name
    real_name: str
    role: str


@dataclass(frozen=True)
class Channel:
    id: str
    name: str


ONCALL = Persona("U0ONCALL", "ada", "Ada Oncall", "on-call engineer")
APPROVER = Persona("U0APPROVER", "grace", "Grace Approver", "second approver")
VIEWER = Persona("U0VIEWER", "sam", "Sam Viewer", "no grants")
PERSONAS = (ONCALL, APPROVER, VIEWER)
SRE_GROUP = "S0SRE"
USERGROUPS = {SRE_GROUP: (ONCALL.id, APPROVER.id)}

INCIDENTS = Channel("C0INCIDENTS", "vllm-incidents")  # the bot's default channel
GENERAL = Channel("C0GENERAL", "general")
CHANNELS = (INCIDENTS, GENERAL)
