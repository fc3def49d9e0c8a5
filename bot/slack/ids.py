"""Every identifier the app registers with Slack, in one place (the manifest test reads it)."""

COMMAND = "/vllm"
# A recommended-action button; its value is an opaque request id, never the parameters.
ACTION_BUTTON = "recommended_action"
# The modal that shows an action's plan and asks for confirmation.
ACTION_PLAN_VIEW = "action_plan"
# Second-person approval of a request that needs one.
APPROVE_BUTTON = "approve_action"
REJECT_BUTTON = "reject_action"
# A readiness item only a person can know: the button opens the Attest form.
ATTEST_BUTTON = "readiness_attest"
ATTEST_VIEW = "readiness_attest_form"
# Stop a watched canary; its value is the watch's number.
CANARY_STOP_BUTTON = "canary_watch_stop"
ACTION_IDS = (ACTION_BUTTON, APPROVE_BUTTON, REJECT_BUTTON, ATTEST_BUTTON, CANARY_STOP_BUTTON)
CALLBACK_IDS = (ACTION_PLAN_VIEW, ATTEST_VIEW)

# OAuth bot scopes the code uses, and why.
BOT_SCOPES = {
    "commands": "the /vllm slash command",
    "chat:write": "post, update and send ephemeral messages",
    "chat:write.public": "post alerts to public channels the bot was not invited to",
    "files:write": "upload charts (files_upload_v2)",
    "usergroups:read": "resolve the user groups named in the permission policy",
    "channels:history": "find a post that may have reached a public channel before a crash, "
    "so it is not posted twice",
    "groups:history": "the same in private channels",
}
