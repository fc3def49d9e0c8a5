"""The Slack fake behaves like Slack as seen from slack_sdk / slack_bolt clients.

Everything here goes over real sockets: WebClient / AsyncWebClient against the fake's
Web API, files_upload_v2 through its upload URLs, SocketModeClient against its
websocket, and Bolt apps dispatching the signed bodies the helpers build.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from aiohttp import WSMessage, web
from fakes.slack import (
    FakeSlack,
    SocketAck,
    block_action_body,
    block_action_payload,
    make_trigger_id,
    send_signed,
    signed_headers,
    slash_command_body,
    slash_command_payload,
    view_submission_body,
)
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond, AsyncSay
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook import WebhookClient

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as f:
        yield f


def client_for(fake: FakeSlack, **kwargs: Any) -> WebClient:
    return WebClient(token=fake.token, base_url=fake.api_url, **kwargs)


def async_client_for(fake: FakeSlack, **kwargs: Any) -> AsyncWebClient:
    return AsyncWebClient(token=fake.token, base_url=fake.api_url, **kwargs)


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def header_value(headers: Any, name: str) -> str:
    """Header lookup that works for both the sync (dict) and async (multidict) clients."""
    for key, value in dict(headers).items():
        if key.lower() == name.lower():
            return value[0] if isinstance(value, list) else str(value)
    raise KeyError(name)


# ---------------------------------------------------------------------------
# Web API: auth, messages, errors
# ---------------------------------------------------------------------------


def test_auth_test_identifies_the_bot(fake: FakeSlack) -> None:
    resp = client_for(fake).auth_test()
    assert resp["ok"] is True
    assert resp["user_id"] == fake.bot_user_id
    assert resp["bot_id"] == fake.bot_id
    assert resp["team_id"] == fake.team_id
    (call,) = fake.calls_to("auth.test")
    assert call.headers["Authorization"] == f"Bearer {fake.token}"


def test_tokens_are_checked_like_slack(fake: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as bad:
        WebClient(token="xoxb-wrong", base_url=fake.api_url).chat_postMessage(
            channel="C123", text="hi"
        )
    assert bad.value.response["error"] == "invalid_auth"

    with pytest.raises(SlackApiError) as missing:
        WebClient(base_url=fake.api_url).auth_test()
    assert missing.value.response["error"] == "not_authed"

    with pytest.raises(SlackApiError) as app_token:
        WebClient(token=fake.app_token, base_url=fake.api_url).auth_test()
    assert app_token.value.response["error"] == "not_allowed_token_type"

    assert fake.messages() == []
    assert [c.response["error"] for c in fake.calls] == [
        "invalid_auth",
        "not_authed",
        "not_allowed_token_type",
    ]


def test_unknown_method(fake: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as err:
        client_for(fake).api_call("chat.frobnicate", json={"channel": "C123"})
    assert err.value.response.status_code == 200
    assert err.value.response["error"] == "unknown_method"


def test_post_then_update_keeps_history(fake: FakeSlack) -> None:
    client = client_for(fake)
    blocks = [section("*KV cache* at 97 %")]
    posted = client.chat_postMessage(channel="C123", text="KV cache high", blocks=blocks)
    assert posted["ok"] is True
    assert posted["channel"] == "C123"
    assert posted["message"]["text"] == "KV cache high"
    assert posted["message"]["blocks"] == blocks
    ts = posted["ts"]

    reply = client.chat_postMessage(channel="C123", thread_ts=ts, text="diagnosing")
    updated = client.chat_update(channel="C123", ts=ts, text="KV cache high (ack'd)")
    assert updated["ts"] == ts
    assert updated["text"] == "KV cache high (ack'd)"

    parent, child = fake.messages("C123")
    assert parent.ts == ts
    assert parent.text == "KV cache high (ack'd)"
    assert parent.blocks == blocks  # chat.update without blocks keeps them, like Slack
    assert [v.text for v in parent.history] == ["KV cache high", "KV cache high (ack'd)"]
    assert [v.method for v in parent.history] == ["chat.postMessage", "chat.update"]
    assert parent.edited
    assert child.ts == reply["ts"]
    assert child.thread_ts == ts
    assert [m.ts for m in fake.messages("C123", thread_ts=ts)] == [ts, reply["ts"]]
    assert fake.messages("C999") == []

    client.chat_update(channel="C123", ts=ts, text="cleared", blocks=[])
    assert fake.messages("C123")[0].blocks == []


def test_update_of_unknown_message_and_missing_fields(fake: FakeSlack) -> None:
    client = client_for(fake)
    with pytest.raises(SlackApiError) as unknown:
        client.chat_update(channel="C123", ts="1700000000.000100", text="x")
    assert unknown.value.response["error"] == "message_not_found"

    with pytest.raises(SlackApiError) as no_text:
        client.api_call("chat.postMessage", json={"channel": "C123"})
    assert no_text.value.response["error"] == "no_text"

    with pytest.raises(SlackApiError) as no_channel:
        client.api_call("chat.postMessage", json={"text": "hi"})
    assert no_channel.value.response["error"] == "channel_not_found"


def test_form_encoded_body_and_json_string_blocks(fake: FakeSlack) -> None:
    blocks = [section("from a form")]
    resp = client_for(fake).api_call(
        "chat.postMessage",
        data={"channel": "C123", "text": "form", "blocks": json.dumps(blocks)},
    )
    assert resp["ok"] is True
    (call,) = fake.calls_to("chat.postMessage")
    assert call.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert call.params["blocks"] == blocks
    assert fake.messages()[0].blocks == blocks

    with pytest.raises(SlackApiError) as err:
        client_for(fake).api_call(
            "chat.postMessage", data={"channel": "C123", "text": "x", "blocks": "[{not json"}
        )
    assert err.value.response["error"] == "invalid_blocks_format"


def test_ts_are_unique_and_increasing_under_concurrency(fake: FakeSlack) -> None:
    client = client_for(fake)
    results: list[str] = []
    lock = threading.Lock()

    def post(i: int) -> None:
        ts = client.chat_postMessage(channel="C123", text=f"msg {i}")["ts"]
        with lock:
            results.append(ts)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 20
    ordered = [m.ts for m in fake.messages("C123")]
    assert ordered == sorted(results, key=lambda ts: tuple(int(p) for p in ts.split(".")))
    assert all(len(ts.split(".")[1]) == 6 for ts in results)
    assert len(fake.calls) == 20


def test_post_ephemeral(fake: FakeSlack) -> None:
    client = client_for(fake)
    resp = client.chat_postEphemeral(channel="C123", user="U123", text="only you can see this")
    assert resp["ok"] is True
    (eph,) = fake.ephemerals
    assert eph.message_ts == resp["message_ts"]
    assert (eph.channel, eph.user, eph.text) == ("C123", "U123", "only you can see this")
    assert fake.messages() == []  # ephemeral messages are not channel history

    with pytest.raises(SlackApiError) as err:
        client.api_call("chat.postEphemeral", json={"channel": "C123", "text": "x"})
    assert err.value.response["error"] == "user_not_found"


async def test_async_client_round_trips(fake: FakeSlack) -> None:
    client = async_client_for(fake)
    posted = await client.chat_postMessage(channel="C123", text="scaling out")
    await client.chat_update(channel="C123", ts=posted["ts"], text="scaled out to 4")
    eph = await client.chat_postEphemeral(channel="C123", user="U123", text="psst")
    (msg,) = fake.messages("C123")
    assert msg.text == "scaled out to 4"
    assert len(msg.history) == 2
    assert fake.ephemerals[0].message_ts == eph["message_ts"]
    assert [c.method for c in fake.calls] == [
        "chat.postMessage",
        "chat.update",
        "chat.postEphemeral",
    ]


def test_channel_and_user_directory(fake: FakeSlack) -> None:
    client = client_for(fake)
    channel = client.conversations_info(channel="C123")["channel"]
    assert (channel["id"], channel["name"], channel["is_member"]) == ("C123", "general", True)
    user = client.users_info(user="U123")["user"]
    assert (user["id"], user["name"], user["real_name"]) == ("U123", "alice", "Alice Example")

    fake.add_user("U777", "bob", "Bob Builder")
    assert client.users_info(user="U777")["user"]["real_name"] == "Bob Builder"


def test_strict_mode_knows_only_registered_channels_and_users() -> None:
    with FakeSlack(strict=True) as fake:
        fake.add_channel("C900", "private-ops", is_private=True, is_member=False)
        client = client_for(fake)
        for channel, error in [("C404", "channel_not_found"), ("C900", "not_in_channel")]:
            with pytest.raises(SlackApiError) as err:
                client.chat_postMessage(channel=channel, text="x")
            assert err.value.response["error"] == error
        with pytest.raises(SlackApiError) as user_err:
            client.users_info(user="U404")
        assert user_err.value.response["error"] == "user_not_found"
        assert client.chat_postMessage(channel="#general", text="by name")["channel"] == "C123"


# ---------------------------------------------------------------------------
# Block Kit limits
# ---------------------------------------------------------------------------


def button(**overrides: Any) -> dict[str, Any]:
    element = {
        "type": "button",
        "text": {"type": "plain_text", "text": "Restart"},
        "action_id": "restart",
        "value": "pod-1",
    }
    return {**element, **overrides}


@pytest.mark.parametrize(
    ("blocks", "pointer"),
    [
        ([section(f"row {i}") for i in range(51)], "/blocks"),
        ([section("x" * 3001)], "/blocks/0/text/text"),
        ([{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}], "/blocks/0"),
        ([{"type": "actions", "elements": [button(value="v" * 2001)]}], "/elements/0/value"),
        ([{"type": "actions", "elements": [button(action_id="a" * 256)]}], "/action_id"),
        ([{**section("x"), "block_id": "b" * 256}], "/blocks/0/block_id"),
        ([{"type": "actions", "elements": [button()] * 26}], "/blocks/0/elements"),
        ([{**section("a"), "block_id": "dup"}, {**section("b"), "block_id": "dup"}], "/blocks/1"),
    ],
    ids=[
        "51-blocks",
        "section-3001",
        "header-151",
        "button-value-2001",
        "action-id-256",
        "block-id-256",
        "26-actions",
        "duplicate-block-id",
    ],
)
def test_block_kit_limits_reject_like_slack(
    fake: FakeSlack, blocks: list[dict[str, Any]], pointer: str
) -> None:
    client = client_for(fake)
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C123", text="fallback", blocks=blocks)
    body = err.value.response.data
    assert isinstance(body, dict)
    assert body["ok"] is False
    assert body["error"] == "invalid_blocks"
    assert body["errors"], body
    assert any(pointer in e for e in body["errors"]), body["errors"]
    assert body["response_metadata"]["messages"][0].startswith("[ERROR] ")
    assert fake.messages() == []

    ok = client.chat_postMessage(channel="C123", text="fine")
    with pytest.raises(SlackApiError) as upd:
        client.chat_update(channel="C123", ts=ok["ts"], text="x", blocks=blocks)
    assert upd.value.response["error"] == "invalid_blocks"
    assert fake.messages()[0].text == "fine"


def test_block_kit_limits_accept_the_maximum(fake: FakeSlack) -> None:
    blocks = [section("x" * 3000)] + [section(f"row {i}") for i in range(48)]
    blocks.append(
        {
            "type": "actions",
            "block_id": "b" * 255,
            "elements": [button(value="v" * 2000, action_id="a" * 255)],
        }
    )
    assert len(blocks) == 50
    resp = client_for(fake).chat_postMessage(channel="C123", text="t" * 40_000, blocks=blocks)
    assert resp["ok"] is True


def test_message_text_over_40k_is_too_long(fake: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as err:
        client_for(fake).chat_postMessage(channel="C123", text="t" * 40_001)
    assert err.value.response["error"] == "msg_too_long"


# ---------------------------------------------------------------------------
# Fault injection: 429s, failures, delays
# ---------------------------------------------------------------------------


def test_rate_limit_raises_429_with_retry_after(fake: FakeSlack) -> None:
    fake.rate_limit("chat.postMessage", times=1, retry_after=7)
    client = client_for(fake)
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C123", text="hi")
    assert err.value.response.status_code == 429
    assert err.value.response["error"] == "ratelimited"
    assert header_value(err.value.response.headers, "Retry-After") == "7"
    # consumed: the next call goes through
    assert client.chat_postMessage(channel="C123", text="hi")["ok"] is True
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [429, 200]


def test_sync_rate_limit_retry_handler_succeeds_after_retry_after(fake: FakeSlack) -> None:
    fake.rate_limit("chat.postMessage", times=1, retry_after=1)
    client = client_for(fake, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])
    start = time.monotonic()
    resp = client.chat_postMessage(channel="C123", text="eventually")
    elapsed = time.monotonic() - start
    assert resp["ok"] is True
    assert elapsed >= 1.0
    calls = fake.calls_to("chat.postMessage")
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 1.0
    assert len(fake.messages("C123")) == 1


async def test_async_rate_limit_retry_handler_succeeds_after_retry_after(fake: FakeSlack) -> None:
    fake.rate_limit("chat.postMessage", times=1, retry_after=1)
    client = async_client_for(fake, retry_handlers=[AsyncRateLimitErrorRetryHandler()])
    resp = await client.chat_postMessage(channel="C123", text="eventually")
    assert resp["ok"] is True
    calls = fake.calls_to("chat.postMessage")
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 1.0


async def test_async_client_without_handler_surfaces_429(fake: FakeSlack) -> None:
    fake.rate_limit("chat.update", times=2, retry_after=3)
    client = async_client_for(fake)
    posted = await client.chat_postMessage(channel="C123", text="x")
    with pytest.raises(SlackApiError) as err:
        await client.chat_update(channel="C123", ts=posted["ts"], text="y")
    assert err.value.response.status_code == 429
    assert header_value(err.value.response.headers, "Retry-After") == "3"


def test_fail_injects_errors_for_n_calls(fake: FakeSlack) -> None:
    fake.fail("chat.postMessage", error="channel_not_found", times=2)
    client = client_for(fake)
    for _ in range(2):
        with pytest.raises(SlackApiError) as err:
            client.chat_postMessage(channel="C123", text="x")
        assert err.value.response.status_code == 200
        assert err.value.response["error"] == "channel_not_found"
    assert client.chat_postMessage(channel="C123", text="x")["ok"] is True

    fake.fail("users.info", error="fatal_error", times=None)
    for _ in range(3):
        with pytest.raises(SlackApiError):
            client.users_info(user="U123")
    fake.clear_faults()
    assert client.users_info(user="U123")["ok"] is True


async def test_delay_slows_only_that_method(fake: FakeSlack) -> None:
    fake.delay("users.info", 0.4)
    client = async_client_for(fake)
    start = time.monotonic()
    slow, fast = await asyncio.gather(
        client.users_info(user="U123"), client.conversations_info(channel="C123")
    )
    assert slow["ok"] and fast["ok"]
    assert time.monotonic() - start >= 0.4
    fast_call = fake.calls_to("conversations.info")[0]
    slow_call = fake.calls_to("users.info")[0]
    # the slow call arrived first or concurrently but was answered later
    assert fake.calls.index(fast_call) < fake.calls.index(slow_call)


def test_reset_forgets_traffic_and_faults(fake: FakeSlack) -> None:
    client = client_for(fake)
    client.chat_postMessage(channel="C123", text="before")
    fake.fail("chat.postMessage", times=None)
    fake.reset()
    assert (fake.calls, fake.messages()) == ([], [])
    assert client.chat_postMessage(channel="C123", text="after")["ok"] is True
    assert [m.text for m in fake.messages()] == ["after"]
    assert client.conversations_info(channel="C123")["channel"]["name"] == "general"


def test_stub_answers_an_arbitrary_method(fake: FakeSlack) -> None:
    fake.stub("reactions.add", {"ok": True})
    assert client_for(fake).reactions_add(channel="C123", timestamp="1.2", name="eyes")["ok"]
    assert fake.calls_to("reactions.add")[0].params["name"] == "eyes"


# ---------------------------------------------------------------------------
# Files and views
# ---------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def test_files_upload_v2_end_to_end(fake: FakeSlack) -> None:
    client = client_for(fake)
    parent = client.chat_postMessage(channel="C123", text="TTFT p99 over SLO")
    resp = client.files_upload_v2(
        channel="C123",
        thread_ts=parent["ts"],
        file=PNG,
        filename="x.png",
        title="TTFT",
        initial_comment="last hour",
    )
    assert resp["ok"] is True
    assert resp["file"]["name"] == "x.png"
    (uploaded,) = fake.files
    assert uploaded.id == resp["file"]["id"]
    assert uploaded.data == PNG
    assert uploaded.length == len(PNG)
    assert (uploaded.filename, uploaded.title) == ("x.png", "TTFT")
    assert (uploaded.channel, uploaded.thread_ts) == ("C123", parent["ts"])
    assert uploaded.initial_comment == "last hour"
    assert [c.method for c in fake.calls] == [
        "chat.postMessage",
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]
    assert fake.pending_files == []


async def test_async_files_upload_v2_end_to_end(fake: FakeSlack) -> None:
    client = async_client_for(fake)
    resp = await client.files_upload_v2(channel="C123", file=PNG, filename="x.png")
    assert resp["file"]["mimetype"] == "image/png"
    assert fake.files[0].data == PNG
    assert fake.files[0].thread_ts is None


def test_complete_upload_rejects_unknown_or_unuploaded_files(fake: FakeSlack) -> None:
    client = client_for(fake)
    with pytest.raises(SlackApiError) as unknown:
        client.files_completeUploadExternal(files=[{"id": "F0NOPE"}], channel_id="C123")
    assert unknown.value.response["error"] == "file_not_found"

    reserved = client.files_getUploadURLExternal(filename="y.png", length=10)
    assert reserved["upload_url"].startswith(fake.base_url + "/upload/v1/")
    with pytest.raises(SlackApiError) as not_uploaded:
        client.files_completeUploadExternal(files=[{"id": reserved["file_id"]}], channel_id="C123")
    assert not_uploaded.value.response["error"] == "file_not_found"
    assert [f.id for f in fake.pending_files] == [reserved["file_id"]]
    assert fake.files == []


def modal(title: str = "Restart pod?", **extra: Any) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": "confirm_restart",
        "private_metadata": "pod-1",
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": "Restart"},
        "blocks": [
            {
                "type": "input",
                "block_id": "reason",
                "label": {"type": "plain_text", "text": "Reason"},
                "element": {"type": "plain_text_input", "action_id": "text"},
            }
        ],
        **extra,
    }


def test_views_open_and_update(fake: FakeSlack) -> None:
    client = client_for(fake)
    trigger = fake.new_trigger_id()
    opened = client.views_open(trigger_id=trigger, view=modal())["view"]
    assert opened["id"].startswith("V")
    assert opened["callback_id"] == "confirm_restart"
    assert opened["private_metadata"] == "pod-1"

    updated = client.views_update(
        view_id=opened["id"], hash=opened["hash"], view=modal("Restarting…")
    )["view"]
    assert updated["id"] == opened["id"]
    assert updated["title"]["text"] == "Restarting…"
    (view,) = fake.views
    assert [v["title"]["text"] for v in view.history] == ["Restart pod?", "Restarting…"]

    with pytest.raises(SlackApiError) as stale:
        client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal())
    assert stale.value.response["error"] == "hash_conflict"
    with pytest.raises(SlackApiError) as missing:
        client.views_update(view_id="V0NOPE", view=modal())
    assert missing.value.response["error"] == "not_found"
    with pytest.raises(SlackApiError) as reused:
        client.views_open(trigger_id=trigger, view=modal())
    assert reused.value.response["error"] == "exchanged_trigger_id"


def test_views_open_enforces_trigger_ttl_and_view_limits(fake: FakeSlack) -> None:
    client = client_for(fake)
    with pytest.raises(SlackApiError) as expired:
        client.views_open(trigger_id=make_trigger_id(at=time.time() - 4), view=modal())
    assert expired.value.response["error"] == "expired_trigger_id"

    with pytest.raises(SlackApiError) as long_title:
        client.views_open(trigger_id=fake.new_trigger_id(), view=modal("t" * 25))
    assert long_title.value.response["error"] == "invalid_arguments"
    messages = long_title.value.response["response_metadata"]["messages"]
    assert any("/view/title/text" in m for m in messages)

    no_submit = modal()
    del no_submit["submit"]
    with pytest.raises(SlackApiError) as needs_submit:
        client.views_open(trigger_id=fake.new_trigger_id(), view=no_submit)
    assert needs_submit.value.response["error"] == "invalid_arguments"
    assert fake.views == []


# ---------------------------------------------------------------------------
# Signed requests to the app, payload builders, response_url
# ---------------------------------------------------------------------------


def test_signed_headers_verify_and_tampering_fails() -> None:
    body = slash_command_body("diagnose pod-1")
    headers = signed_headers(SECRET, body)
    verifier = SignatureVerifier(SECRET)
    ts, sig = headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    assert sig.startswith("v0=") and len(sig) == 3 + 64
    assert verifier.is_valid(body=body, timestamp=ts, signature=sig)
    assert verifier.is_valid_request(body.encode(), headers)
    assert not verifier.is_valid(body=body + "&x=1", timestamp=ts, signature=sig)
    assert not verifier.is_valid(body=body, timestamp=str(int(ts) + 1), signature=sig)
    assert not SignatureVerifier("other-secret").is_valid(body=body, timestamp=ts, signature=sig)
    stale = signed_headers(SECRET, body, timestamp=int(time.time()) - 301)
    assert not verifier.is_valid_request(body, stale)


def test_payload_builders_match_slack_shapes() -> None:
    form = dict(urllib.parse.parse_qsl(slash_command_body("top 5", response_url="http://r/1")))
    assert set(form) >= {
        "token",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "api_app_id",
        "response_url",
        "trigger_id",
    }
    assert (form["command"], form["text"], form["response_url"]) == ("/vllm", "top 5", "http://r/1")
    assert form == slash_command_payload(
        "top 5", response_url="http://r/1", trigger_id=form["trigger_id"]
    )

    (payload_json,) = urllib.parse.parse_qs(
        block_action_body("restart", "pod-1", message_ts="1700000000.000100")
    )["payload"]
    payload = json.loads(payload_json)
    assert payload["type"] == "block_actions"
    (action,) = payload["actions"]
    assert {"action_id", "block_id", "value", "type", "action_ts"} <= set(action)
    assert (action["action_id"], action["value"], action["type"]) == ("restart", "pod-1", "button")
    assert payload["container"]["message_ts"] == "1700000000.000100"
    assert payload["message"]["ts"] == "1700000000.000100"
    assert {"channel", "user", "trigger_id", "response_url"} <= set(payload)

    (view_json,) = urllib.parse.parse_qs(
        view_submission_body("confirm", "pod-1", {"reason": {"text": "OOM"}})
    )["payload"]
    view = json.loads(view_json)
    assert view["type"] == "view_submission"
    assert view["view"]["callback_id"] == "confirm"
    assert view["view"]["state"]["values"]["reason"]["text"] == {
        "type": "plain_text_input",
        "value": "OOM",
    }


def test_response_url_accepts_five_uses(fake: FakeSlack) -> None:
    url = fake.new_response_url()
    hook = WebhookClient(url)
    statuses = [hook.send(text=f"update {i}").status_code for i in range(6)]
    assert statuses == [200, 200, 200, 200, 200, 404]
    assert hook.send(text="again").body == "used_url"
    accepted = [r for r in fake.responses if r.status == 200]
    assert [r.body["text"] for r in accepted] == [f"update {i}" for i in range(5)]
    # another response_url has its own budget
    assert WebhookClient(fake.response_url).send(text="x").status_code == 200


def test_response_url_validates_blocks(fake: FakeSlack) -> None:
    resp = WebhookClient(fake.new_response_url()).send(
        text="x", blocks=[section(f"{i}") for i in range(51)]
    )
    assert (resp.status_code, resp.body) == (400, "invalid_blocks")


async def test_bolt_app_dispatches_signed_bodies(fake: FakeSlack) -> None:
    app = AsyncApp(client=async_client_for(fake), signing_secret=SECRET)
    submitted: list[tuple[str, str]] = []

    @app.command("/vllm")
    async def on_command(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        await respond(f"diagnosing {command['text']}")

    @app.action("restart")
    async def on_restart(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await client.chat_update(
            channel=body["channel"]["id"],
            ts=body["container"]["message_ts"],
            text=f"restarting {body['actions'][0]['value']}",
        )

    @app.view("confirm_restart")
    async def on_submit(ack: AsyncAck, view: dict[str, Any]) -> None:
        await ack()
        submitted.append(
            (view["private_metadata"], view["state"]["values"]["reason"]["text"]["value"])
        )

    async def dispatch(body: str, secret: str = SECRET) -> int:
        headers: dict[str, str | Sequence[str]] = {**signed_headers(secret, body)}
        req = AsyncBoltRequest(body=body, headers=headers)
        return (await app.async_dispatch(req)).status

    response_url = fake.new_response_url()
    assert await dispatch(slash_command_body("pod-3", response_url=response_url)) == 200
    await fake.async_wait_for(lambda: fake.responses)
    assert fake.responses[0].body["text"] == "diagnosing pod-3"

    posted = await app.client.chat_postMessage(channel="C123", text="restart pod-3?")
    body = block_action_body("restart", "pod-3", message_ts=posted["ts"], message=posted["message"])
    assert await dispatch(body) == 200
    await fake.async_wait_for(lambda: fake.messages("C123")[0].edited)
    assert fake.messages("C123")[0].text == "restarting pod-3"

    assert (
        await dispatch(
            view_submission_body("confirm_restart", "pod-3", {"reason": {"text": "OOM"}})
        )
        == 200
    )
    assert submitted == [("pod-3", "OOM")]

    assert await dispatch(slash_command_body("pod-3"), secret="wrong-secret") == 401
    # Bolt verified the bot token once, against the fake
    assert len(fake.calls_to("auth.test")) == 1


async def test_send_signed_over_http_to_a_bolt_server(fake: FakeSlack) -> None:
    app = AsyncApp(client=async_client_for(fake), signing_secret=SECRET)

    @app.command("/vllm")
    async def on_command(ack: AsyncAck, say: AsyncSay, command: dict[str, Any]) -> None:
        await ack("on it")
        await say(f"status of {command['text']}: healthy")

    runner = web.AppRunner(app.web_app(path="/slack/events"))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}/slack/events"
        ok = await asyncio.to_thread(send_signed, url, slash_command_body("pod-9"), SECRET)
        assert ok.status == 200
        assert ok.elapsed < 3.0  # Slack's ack deadline
        # over HTTP, Bolt answers a text-only ack() with a plain-text body
        assert ok.body == b"on it"
        await fake.async_wait_for(lambda: fake.messages("C123"))
        assert fake.messages("C123")[0].text == "status of pod-9: healthy"
        bad = await asyncio.to_thread(send_signed, url, slash_command_body("x"), "nope")
        assert bad.status == 401
    finally:
        await runner.cleanup()


# ---------------------------------------------------------------------------
# Socket Mode
# ---------------------------------------------------------------------------


class Recorder:
    """Socket Mode listeners that record what arrives and ack every request."""

    def __init__(self, ack_payload: dict[str, Any] | None = None) -> None:
        self.ack_payload = ack_payload
        self.messages: list[dict[str, Any]] = []  # as passed to message_listeners
        self.frames: list[dict[str, Any]] = []  # every text frame off the socket
        self.requests: list[SocketModeRequest] = []

    async def on_frame(self, frame: WSMessage) -> None:
        self.frames.append(json.loads(frame.data))

    async def on_message(
        self, client: AsyncBaseSocketModeClient, message: dict[str, Any], raw: str | None
    ) -> None:
        self.messages.append(message)

    async def on_request(self, client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        self.requests.append(req)
        await client.send_socket_mode_response(
            SocketModeResponse(envelope_id=req.envelope_id, payload=self.ack_payload)
        )

    def attach(self, client: SocketModeClient) -> SocketModeClient:
        client.on_message_listeners.append(self.on_frame)
        client.message_listeners.append(self.on_message)
        client.socket_mode_request_listeners.append(self.on_request)
        return client


def socket_client(fake: FakeSlack) -> SocketModeClient:
    return SocketModeClient(app_token=fake.app_token, web_client=async_client_for(fake))


async def wait_ack(fake: FakeSlack, envelope_id: str) -> SocketAck:
    ack = await fake.async_wait_for(lambda: fake.ack_for(envelope_id))
    assert ack is not None
    return ack


async def test_socket_mode_slash_command_is_delivered_and_acked(fake: FakeSlack) -> None:
    recorder = Recorder(ack_payload={"text": "on it"})
    client = recorder.attach(socket_client(fake))
    await client.connect()  # type: ignore[no-untyped-call]
    try:
        await fake.async_wait_for_socket_connection()
        (open_call,) = fake.calls_to("apps.connections.open")
        assert open_call.headers["Authorization"] == f"Bearer {fake.app_token}"

        payload = slash_command_payload("diagnose pod-1", response_url=fake.new_response_url())
        envelope_id = fake.socket_send("slash_commands", payload)
        ack = await wait_ack(fake, envelope_id)
        assert ack.payload == {"text": "on it"}
        assert ack.latency is not None and 0 <= ack.latency < 3.0

        (req,) = recorder.requests
        assert (req.type, req.envelope_id, req.payload) == ("slash_commands", envelope_id, payload)
        assert req.accepts_response_payload is True
        hello = recorder.messages[0]
        assert hello["type"] == "hello"
        assert hello["num_connections"] == 1
        assert hello["connection_info"]["app_id"] == fake.app_id
        # the fake answers the client's ping: the SDK records the pong
        await fake.async_wait_for(lambda: client.last_ping_pong_time is not None)
    finally:
        await client.close()  # type: ignore[no-untyped-call]
    await fake.async_wait_for(lambda: not any(c.open for c in fake.socket_connections))


async def test_socket_mode_client_reconnects_after_disconnect(fake: FakeSlack) -> None:
    recorder = Recorder()
    client = recorder.attach(socket_client(fake))
    await client.connect()  # type: ignore[no-untyped-call]
    try:
        await fake.async_wait_for_socket_connection()
        (first,) = fake.socket_connections
        assert fake.disconnect() == [first.id]
        await fake.async_wait_for_socket_connection()
        await fake.async_wait_for(lambda: not fake.socket_connections[0].open)
        second = fake.socket_connections[-1]
        assert second.id != first.id and second.open
        assert len(fake.calls_to("apps.connections.open")) == 2
        # slack_sdk handles "disconnect" itself (message_listeners never see it)
        assert [f["reason"] for f in recorder.frames if f["type"] == "disconnect"] == [
            "refresh_requested"
        ]
        # the SDK hands messages to its listeners from a queue: the second hello may lag
        await fake.async_wait_for(
            lambda: [m["type"] for m in recorder.messages].count("hello") == 2
        )
        assert all(m["type"] != "disconnect" for m in recorder.messages)

        event = {"type": "app_mention", "text": "<@U0BOT> status", "channel": "C123"}
        envelope_id = fake.socket_send(
            "events_api", {"type": "event_callback", "event": event, "event_id": "Ev1"}
        )
        ack = await wait_ack(fake, envelope_id)
        assert ack.connection_id == second.id
        assert recorder.requests[-1].payload["event"] == event
        assert recorder.requests[-1].accepts_response_payload is False
    finally:
        await client.close()  # type: ignore[no-untyped-call]


async def test_socket_mode_routes_each_envelope_to_one_connection(fake: FakeSlack) -> None:
    recorders = [Recorder(), Recorder()]
    clients = [r.attach(socket_client(fake)) for r in recorders]
    for c in clients:
        await c.connect()  # type: ignore[no-untyped-call]
    try:
        await fake.async_wait_for_socket_connection(count=2)
        await fake.async_wait_for(lambda: all(r.messages for r in recorders))
        assert sorted(r.messages[0]["num_connections"] for r in recorders) == [1, 2]
        sent = [
            fake.socket_send("interactive", block_action_payload("restart", f"pod-{i}"))
            for i in range(12)
        ]
        acks = [await wait_ack(fake, e) for e in sent]
        assert sorted(a.envelope_id for a in fake.socket_acks) == sorted(sent)
        assert sum(len(r.requests) for r in recorders) == 12
        assert all(r.requests for r in recorders)  # both replicas got some
        for ack in acks:
            assert ack.envelope is not None and ack.connection_id == ack.envelope.connection_id
    finally:
        for c in clients:
            await c.close()  # type: ignore[no-untyped-call]


def test_socket_send_without_a_connection_raises(fake: FakeSlack) -> None:
    with pytest.raises(RuntimeError, match="no Socket Mode client"):
        fake.socket_send("slash_commands", slash_command_payload("x"))
    with pytest.raises(TimeoutError):
        fake.wait_for_socket_connection(timeout=0.1)


def test_apps_connections_open_needs_the_app_token(fake: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as bot_token:
        client_for(fake).apps_connections_open(app_token=fake.token)
    assert bot_token.value.response["error"] == "not_allowed_token_type"
    with pytest.raises(SlackApiError) as wrong:
        client_for(fake).apps_connections_open(app_token="xapp-1-other")
    assert wrong.value.response["error"] == "invalid_auth"
    url = client_for(fake).apps_connections_open(app_token=fake.app_token)["url"]
    assert url.startswith(f"ws://127.0.0.1:{fake.port}/socket-mode/")


async def test_bolt_socket_mode_handler_end_to_end(fake: FakeSlack) -> None:
    app = AsyncApp(client=async_client_for(fake), signing_secret=SECRET)

    @app.command("/vllm")
    async def on_command(ack: AsyncAck, command: dict[str, Any], say: AsyncSay) -> None:
        await ack("working on it")
        await say(f"{command['text']}: 3 replicas degraded")

    handler = AsyncSocketModeHandler(app, fake.app_token)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    try:
        await fake.async_wait_for_socket_connection()
        envelope_id = fake.socket_send("slash_commands", slash_command_payload("fleet"))
        ack = await wait_ack(fake, envelope_id)
        assert ack.payload == {"text": "working on it"}
        assert ack.latency is not None and ack.latency < 3.0
        await fake.async_wait_for(lambda: fake.messages("C123"))
        assert fake.messages("C123")[0].text == "fleet: 3 replicas degraded"
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
