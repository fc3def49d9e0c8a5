"""manifest.yaml: valid for Slack, and in step with bot/slack/ids.py and the code.

The schema is Slack's published one (a copy lives in ``shared/reference`` beside the
repository). The scope test reads every Web API call under ``bot/`` and fails when one
needs a scope ``BOT_SCOPES`` lacks — or is missing from the table below.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped, unused-ignore]
import pytest
import yaml

from bot.slack import ids

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "manifest.yaml"
SCHEMA = (
    Path(__file__).resolve().parents[2]
    / "shared/reference/slack-manifest-schema/manifest.schema.1.0.0.json"
)
PLACEHOLDER_URL = "https://chatops.example.com/slack/events"
BACKGROUND = re.compile(r"^#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$")  # the schema's `regex`, unenforced

# The bot scope each Web API method needs (None: none). Exact names first, then by family.
# https://api.slack.com/methods lists each method's scopes.
METHOD_SCOPES: dict[str, str | None] = {
    "auth_test": None,
    "chat_getPermalink": None,
    "chat_unfurl": "links:write",
    "files_info": "files:read",
    "files_list": "files:read",
    "users_lookupByEmail": "users:read.email",
    "users_conversations": "channels:read",
    "conversations_history": "channels:history",
    "conversations_replies": "channels:history",
    "conversations_join": "channels:join",
    "conversations_open": "im:write",
    "conversations_invite": "channels:manage",
    "reactions_get": "reactions:read",
    "reactions_list": "reactions:read",
    "pins_list": "pins:read",
    "bookmarks_list": "bookmarks:read",
    "usergroups_list": "usergroups:read",
    "usergroups_users_list": "usergroups:read",
}
FAMILY_SCOPES: dict[str, str | None] = {
    "chat": "chat:write",  # postMessage, update, postEphemeral, delete, scheduleMessage
    "files": "files:write",  # upload_v2, getUploadURLExternal, completeUploadExternal
    "views": None,  # open, update, push, publish: a trigger id or the app's own view
    "users": "users:read",
    "conversations": "channels:read",
    "reactions": "reactions:write",
    "pins": "pins:write",
    "bookmarks": "bookmarks:write",
    "usergroups": "usergroups:write",
    "team": "team:read",
    "emoji": "emoji:read",
    "dnd": "dnd:read",
    "bots": "users:read",
    "reminders": "reminders:write",
    "dialog": None,
    "apps": None,
}
# Families Slack's clients expose; a call in one the tables do not cover fails the test.
FAMILIES = (
    *FAMILY_SCOPES,
    "auth",
    "admin",
    "calls",
    "channels",
    "groups",
    "im",
    "mpim",
    "search",
    "stars",
    "rtm",
    "oauth",
    "openid",
    "workflows",
    "migration",
)
CALL = re.compile(r"\.((?:" + "|".join(FAMILIES) + r")_[A-Za-z0-9_]+)\s*\(")
API_CALL = re.compile(r"\.api_call\(\s*[\"']([a-z]+(?:\.[A-Za-z]+)+)[\"']")


class UnknownMethod(LookupError):
    pass


def api_calls(source: str) -> set[str]:
    """Web API methods called in ``source``, as slack_sdk names them (``chat_postMessage``)."""
    direct = set(CALL.findall(source))
    generic = {name.replace(".", "_") for name in API_CALL.findall(source)}
    return direct | generic


def scope_for(method: str) -> str | None:
    if method in METHOD_SCOPES:
        return METHOD_SCOPES[method]
    family = method.split("_", 1)[0]
    if family in FAMILY_SCOPES:
        return FAMILY_SCOPES[family]
    raise UnknownMethod(method)


def missing_scopes(methods: Iterable[str], granted: Iterable[str]) -> dict[str, str]:
    """Method → the scope it needs that ``granted`` lacks."""
    have = set(granted)
    out: dict[str, str] = {}
    for method in sorted(methods):
        needed = scope_for(method)
        if needed is not None and needed not in have:
            out[method] = needed
    return out


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    loaded = yaml.safe_load(MANIFEST.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    if not SCHEMA.is_file():
        message = f"Slack's manifest schema is not at {SCHEMA} (shared/ beside the repository)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    loaded = yaml.safe_load(SCHEMA.read_text())  # JSON is YAML
    assert isinstance(loaded, dict)
    return loaded


def test_manifest_is_valid_against_slacks_schema(
    manifest: dict[str, Any], schema: dict[str, Any]
) -> None:
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    errors = [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in validator.iter_errors(manifest)
    ]
    assert errors == []
    assert BACKGROUND.match(manifest["display_information"]["background_color"])


def test_the_schema_catches_a_broken_manifest(
    manifest: dict[str, Any], schema: dict[str, Any]
) -> None:
    broken = {**manifest, "features": {**manifest["features"], "slash_commands": [{}]}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_display_information_and_bot_user(manifest: dict[str, Any]) -> None:
    assert manifest["display_information"]["name"] == "vLLM ChatOps"
    assert manifest["display_information"]["description"]
    assert manifest["features"]["bot_user"] == {
        "display_name": "vllm-chatops",
        "always_online": True,
    }


def test_slash_command_is_the_one_the_bot_handles(manifest: dict[str, Any]) -> None:
    commands = manifest["features"]["slash_commands"]
    assert [c["command"] for c in commands] == [ids.COMMAND]
    (command,) = commands
    assert command["url"] == PLACEHOLDER_URL
    assert command["should_escape"] is False
    assert (
        command["usage_hint"]
        == "diagnose high_latency model=llama-70b | status | doctor | runbooks | help"
    )


def test_bot_scopes_are_exactly_bot_scopes(manifest: dict[str, Any]) -> None:
    scopes = manifest["oauth_config"]["scopes"]
    assert set(scopes) == {"bot"}, "the bot asks for no user scopes"
    bot = scopes["bot"]
    assert len(bot) == len(set(bot)), "a scope is listed twice"
    assert set(bot) == set(ids.BOT_SCOPES)
    assert all(reason.strip() for reason in ids.BOT_SCOPES.values()), "say why each scope"
    assert "commands" in bot, "slash commands need the commands scope"


def test_interactivity_and_socket_mode(manifest: dict[str, Any]) -> None:
    settings = manifest["settings"]
    # Buttons (ACTION_IDS) and modal submissions (CALLBACK_IDS) arrive as interactions.
    assert ids.ACTION_IDS and ids.CALLBACK_IDS
    assert settings["interactivity"] == {"is_enabled": True, "request_url": PLACEHOLDER_URL}
    assert settings["socket_mode_enabled"] is True
    assert settings["org_deploy_enabled"] is False
    assert settings["token_rotation_enabled"] is False


def id_constants() -> dict[str, str]:
    """Module-level string constants of bot/slack/ids.py, by name."""
    tree = ast.parse(Path(ids.__file__).read_text())
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name) and isinstance(getattr(ids, name.id), str):
                        out[name.id] = getattr(ids, name.id)
    return out


def test_every_id_constant_is_registered() -> None:
    constants = id_constants()
    assert constants.pop("COMMAND") == ids.COMMAND
    assert constants, "ids.py defines no action or callback ids"
    registered = [*ids.ACTION_IDS, *ids.CALLBACK_IDS]
    unlisted = {name: value for name, value in constants.items() if value not in registered}
    assert unlisted == {}, "add these to ACTION_IDS or CALLBACK_IDS"
    assert len(registered) == len(set(registered)), "an id is both an action and a callback"
    assert set(registered) == set(constants.values()), "ids listed but not named constants"
    for value in registered:
        assert 0 < len(value) <= 255 and value == value.strip(), value


def bot_sources() -> dict[Path, str]:
    return {path: path.read_text() for path in sorted((REPO / "bot").rglob("*.py"))}


def test_every_web_api_call_has_its_scope() -> None:
    calls: dict[str, list[str]] = {}
    for path, text in bot_sources().items():
        for method in api_calls(text):
            calls.setdefault(method, []).append(str(path.relative_to(REPO)))
    unknown = sorted(m for m in calls if _unknown(m))
    assert unknown == [], "add these methods to METHOD_SCOPES or FAMILY_SCOPES"
    missing = missing_scopes(calls, ids.BOT_SCOPES)
    assert missing == {}, {m: (scope, calls[m]) for m, scope in missing.items()}


def _unknown(method: str) -> bool:
    try:
        scope_for(method)
    except UnknownMethod:
        return True
    return False


def test_the_scope_scan_catches_a_call_without_its_scope() -> None:
    source = """
        await self.client.chat_postMessage(channel=c, text=t)
        await client.files_upload_v2(
            channel=c, content=png)
        await client.views_open(trigger_id=t, view=v)
        await client.api_call("users.info", params={"user": u})
        response = outbox.chat_update (channel=c, ts=ts)
        self.summary_files(x)  # not a Slack method
    """
    found = api_calls(source)
    assert found == {
        "chat_postMessage",
        "files_upload_v2",
        "views_open",
        "users_info",
        "chat_update",
    }
    assert missing_scopes(found, ["chat:write"]) == {
        "files_upload_v2": "files:write",
        "users_info": "users:read",
    }
    assert missing_scopes(found, [*ids.BOT_SCOPES, "users:read"]) == {}
    assert missing_scopes(["conversations_info", "auth_test"], []) == {
        "conversations_info": "channels:read"
    }
    with pytest.raises(UnknownMethod):
        scope_for("search_messages")
