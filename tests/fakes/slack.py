"""The test suite's Slack: the product's local workspace (``bot.console``), re-exported.

One implementation serves the tests and the demo console; see ``bot.console.workspace``
(the Web API over real sockets), ``bot.console.payloads`` (signed bodies Slack sends to
an app) and ``bot.console.block_kit_rules`` (what Slack refuses).
"""

from bot.console.block_kit_rules import validate_blocks, validate_view
from bot.console.delivery import SignedResponse, send_signed
from bot.console.payloads import (
    DEFAULT_BOT_TOKEN,
    DEFAULT_BOT_USER_ID,
    UNROUTED_RESPONSE_URL,
    block_action_body,
    block_action_payload,
    event_callback_payload,
    make_trigger_id,
    make_ts,
    signed_headers,
    slash_command_body,
    slash_command_payload,
    view_submission_body,
    view_submission_payload,
)
from bot.console.records import (
    Call,
    Ephemeral,
    Message,
    MessageVersion,
    ResponsePost,
    SocketAck,
    SocketConnection,
    SocketEnvelope,
    UploadedFile,
    View,
)
from bot.console.workspace import Workspace as FakeSlack

__all__ = [
    "DEFAULT_BOT_TOKEN",
    "DEFAULT_BOT_USER_ID",
    "UNROUTED_RESPONSE_URL",
    "Call",
    "Ephemeral",
    "FakeSlack",
    "Message",
    "MessageVersion",
    "ResponsePost",
    "SignedResponse",
    "SocketAck",
    "SocketConnection",
    "SocketEnvelope",
    "UploadedFile",
    "View",
    "block_action_body",
    "block_action_payload",
    "event_callback_payload",
    "make_trigger_id",
    "make_ts",
    "send_signed",
    "signed_headers",
    "slash_command_body",
    "slash_command_payload",
    "validate_blocks",
    "validate_view",
    "view_submission_body",
    "view_submission_payload",
]
