"""Hostile and broken input, property-based: the real bot (``serve``) on a real socket, a
fake Slack that validates every message, SQLite, and a Prometheus that refuses connections.

Whatever arrives at ``/alerts`` or ``/slack/events`` ends in a clear 4xx or a helpful Slack
reply — never a 5xx, a stack trace, a partial write or an action run; forged, stale and
replayed Slack requests are refused with nothing done.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from bot_runner import BotRunner
from fakes.slack import (
    FakeSlack,
    block_action_body,
    send_signed,
    signed_headers,
    slash_command_body,
    view_submission_body,
)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.cli import main
from bot.diagnosis.promql import LABEL_NAME, dcgm, history_query, vllm
from bot.diagnosis.scope import parse_scope
from bot.remediation.requests import Asked
from bot.simulator.prometheus_runner import PrometheusRunner, free_port
from bot.slack import ids

settings.register_profile(
    "hostile-input",
    max_examples=25,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
PROFILE = settings.get_profile("hostile-input")
PROFILE_FEW = settings(PROFILE, max_examples=8)  # each example waits for Slack's pace

SECRET = "hostile-signing-secret"
ALERTS_TOKEN = "hostile-alerts-token"
CHANNEL = "C0HOSTILE"
# Statuses /alerts may answer (README): 503 only when the state store is down.
ALERTS_STATUSES = {200, 400, 401, 413, 422, 503}
# What a broken listener says instead of a stack trace: a bug if fuzzing ever sees it.
SORRY = "something went wrong on my side"
# Slack refusals that mean the bot built an invalid message or view.
MALFORMED = {"invalid_blocks", "invalid_arguments", "msg_too_long", "invalid_blocks_format"}


@dataclass
class World:
    slack: FakeSlack
    bot: BotRunner
    db: Path

    def rows(self, table: str, where: str = "1=1") -> int:
        with sqlite3.connect(self.db) as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0])

    def alert_rows(self) -> tuple[int, int]:
        return self.rows("alert_posts"), self.rows("alert_states")

    def alerts(self, body: bytes, content_type: str = "application/json") -> httpx.Response:
        headers = {"Authorization": f"Bearer {ALERTS_TOKEN}", "Content-Type": content_type}
        return httpx.post(f"{self.bot.url}/alerts", content=body, headers=headers, timeout=30)

    def alive(self) -> bool:
        return httpx.get(f"{self.bot.url}/healthz", timeout=5).status_code == 200

    def settle(self) -> None:
        self.bot.drain(20)

    def slack_problems(self, since: int, responses_since: int) -> list[str]:
        """Invalid Block Kit, stack traces or the generic apology in what the bot sent."""
        problems = []
        for call in self.slack.calls[since:]:
            error = str(call.response.get("error", ""))
            if error in MALFORMED:
                problems.append(f"{call.method} refused: {error} {call.response}")
            text = json.dumps(call.params)
            if "Traceback" in text or SORRY in text:
                problems.append(f"{call.method} says: {text[:500]}")
        for post in self.slack.responses[responses_since:]:
            text = json.dumps(post.body)
            if post.status == 400 or "Traceback" in text or SORRY in text:
                problems.append(f"response_url {post.status}: {text[:500]}")
        return problems

    def executed(self) -> int:
        return self.rows(
            "audit_log", "event IN ('requested', 'approval_requested', 'executing', 'executed')"
        ) + self.rows("action_requests", "state NOT IN ('offered', 'expired')")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    slack = FakeSlack().start()
    db = tmp_path_factory.mktemp("hostile") / "bot.db"
    bot = BotRunner(
        slack_bot_token=slack.token,
        slack_signing_secret=SECRET,
        slack_api_url=slack.api_url,
        prometheus_url=f"http://127.0.0.1:{free_port()}",  # nothing listens: refused
        alerts_token=ALERTS_TOKEN,
        default_channel=CHANNEL,
        database_url=f"sqlite:///{db}",
        query_timeout_s=2.0,
    )
    bot.start()
    yield World(slack, bot, db)
    bot.stop()
    slack.stop()


# --- /alerts -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


def webhook(alerts: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {
        "version": "4",
        "receiver": "vllm-chatops",
        "status": "firing",
        "alerts": alerts,
        "groupLabels": {},
        "commonLabels": {},
        "groupKey": '{}:{alertname="hostile"}' + uuid.uuid4().hex,
        **fields,
    }


def alert(labels: dict[str, str], fingerprint: str | None = None) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": labels,
        "annotations": {"summary": "hostile"},
        "startsAt": "2024-01-01T00:00:00Z",
        "fingerprint": fingerprint or uuid.uuid4().hex,
    }


VALID = json.dumps(webhook([alert({"alertname": "Hostile"})])).encode()


@st.composite
def broken_bodies(draw: st.DrawFn) -> bytes:
    """Bodies that are never an Alertmanager v4 webhook."""
    kind = draw(st.sampled_from(["value", "truncated", "bytes", "field", "deep", "number"]))
    if kind == "value":  # any JSON value that is not a webhook
        return json.dumps(draw(json_values)).encode()
    if kind == "truncated":
        return VALID[: draw(st.integers(0, len(VALID) - 1))]
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "deep":
        depth = draw(st.sampled_from([100, 1_000, 100_000]))
        return b"[" * depth + b"]" * depth
    if kind == "number":
        return b'{"status": "firing", "alerts": [], "truncatedAlerts": 1' + b"0" * 5000 + b"}"
    body = webhook([alert({"alertname": "Hostile"})])  # one field of the wrong type
    where = draw(st.sampled_from(["status", "alerts", "commonLabels", "alert", "labels", "fp"]))
    wrong = draw(json_values)
    if where == "alert":
        body["alerts"] = [wrong]
    elif where == "labels":
        body["alerts"][0]["labels"] = {"alertname": wrong if not isinstance(wrong, str) else 1}
    elif where == "fp":
        body["alerts"][0]["fingerprint"] = wrong if wrong != "" and isinstance(wrong, str) else ""
        if isinstance(wrong, str) and wrong:
            body["alerts"][0]["status"] = "maybe"
    elif where == "status":
        body["status"] = 1 if wrong in ("firing", "resolved") else wrong
    else:
        body[where] = 7 if isinstance(wrong, (list, dict)) and where == "commonLabels" else wrong
    return json.dumps(body).encode()


@PROFILE
@given(body=broken_bodies(), content_type=st.sampled_from(["application/json", "text/plain"]))
@example(body=b"[" * 100_000 + b"]" * 100_000, content_type="application/json")
@example(body=b'{"alerts": 1' + b"0" * 5000 + b"}", content_type="application/json")
def test_alerts_refuses_what_is_not_a_webhook_and_writes_nothing(
    world: World, body: bytes, content_type: str
) -> None:
    before = world.alert_rows()
    answer = world.alerts(body, content_type)
    assert answer.status_code == 400, (answer.status_code, answer.text[:300])
    assert "error" in answer.json()
    assert world.alert_rows() == before
    assert world.alive()


def test_alerts_refuses_oversized_bodies_and_bad_tokens(world: World) -> None:
    before = world.alert_rows()
    huge_value = "x" * (5 * 1024 * 1024)
    huge = json.dumps(webhook([alert({"alertname": "Hostile", "big": huge_value})])).encode()
    assert world.alerts(huge).status_code == 413
    headers = {"Authorization": "Bearer wrong", "Content-Type": "application/json"}
    wrong = httpx.post(f"{world.bot.url}/alerts", content=VALID, headers=headers, timeout=10)
    assert wrong.status_code == 401
    missing = httpx.post(f"{world.bot.url}/alerts", content=VALID, timeout=10)
    assert missing.status_code == 401
    assert world.alert_rows() == before
    assert world.alive()


hostile_text = st.text(
    st.characters(codec="utf-8", categories=["L", "N", "P", "S", "Z", "Cc", "Cf", "M"]),
    max_size=60,
)
label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,20}", fullmatch=True)


@st.composite
def hostile_webhooks(draw: st.DrawFn) -> tuple[dict[str, Any], int]:
    """A valid webhook full of hostile text; the number of distinct fingerprints."""
    count = draw(st.integers(1, 4))
    alerts = []
    for _ in range(count):
        labels = draw(st.dictionaries(label_names, hostile_text, max_size=6))
        labels["alertname"] = draw(hostile_text) or "Hostile"
        labels[draw(hostile_text)] = draw(hostile_text)  # label names are not checked
        if draw(st.booleans()):  # thousands of labels, or one huge value
            if draw(st.booleans()):
                labels.update({f"l{i}": f"<!channel> v{i}" for i in range(3000)})
            else:
                labels["huge"] = draw(hostile_text) * 1 + "<@U123>" * 50_000
        alerts.append(alert(labels))
    if draw(st.booleans()):  # the same fingerprint twice in one notification
        alerts.append(dict(alerts[0]))
    common = draw(st.dictionaries(label_names, hostile_text, max_size=4))
    return webhook(alerts, commonLabels=common), count


@PROFILE_FEW
@given(case=hostile_webhooks())
@example(  # each copy of a fingerprint sent twice was lost to a unique-key clash
    case=(
        webhook([alert({"alertname": "Twice"}, "dup-fp"), alert({"alertname": "Twice"}, "dup-fp")]),
        1,
    )
)
@example(case=(webhook([alert({"alertname": "Nul\x00", "x\x00": "\ud800"})]), 1))
def test_hostile_but_valid_alerts_are_recorded_whole_and_posted_valid(
    world: World, case: tuple[dict[str, Any], int]
) -> None:
    body, fingerprints = case
    posts, states = world.alert_rows()
    calls, responses = len(world.slack.calls), len(world.slack.responses)
    answer = world.alerts(json.dumps(body).encode())
    assert answer.status_code == 200, answer.text[:300]
    assert answer.json()["new_posts"] + answer.json()["joined_posts"] == 1
    assert world.alert_rows() == (posts + 1, states + fingerprints)
    world.settle()
    posted = world.slack.wait_for(
        lambda: [c for c in world.slack.calls[calls:] if c.method == "chat.postMessage"],
        timeout=20,
    )
    assert posted[0].ok, posted[0].response
    assert world.slack_problems(calls, responses) == []
    mentions = json.dumps(world.slack.calls[calls:][0].params.get("blocks"))
    assert "<!channel>" not in mentions and "<@U123>" not in mentions


# --- /slack/events -------------------------------------------------------------------------

scope_values = st.text(
    st.sampled_from(list("ab-_.*+?()[]{}|^$\\\"'`=~<>!@#&\n\t\u200b\ufffdé世")), max_size=12
)
scope_words = st.builds(
    lambda key, value: f"{key}={value}",
    st.sampled_from(["ns", "pod", "node", "model", "deployment", "cluster", "x", "1bad", ""]),
    scope_values,
)
verbs = st.sampled_from(
    ["help", "runbooks", "runbook", "diagnose", "status", "audit", "scale", "rollback",
     "restart", "drain", "uncordon", "silence", "unsilence", "doctor", "frobnicate"]
)  # fmt: skip
slash_texts = st.one_of(
    st.text(max_size=80),
    st.builds(
        lambda verb, words: " ".join([verb, *words]),
        verbs,
        st.lists(
            st.one_of(
                scope_words,
                st.sampled_from(["high_latency", "ns/dep", "<!channel>", "<@U999|x>", "²", "-1"]),
                st.text(st.characters(codec="utf-8"), max_size=10),
                st.just("9" * 5000),
            ),
            max_size=4,
        ),
    ),
    st.builds(lambda n: "status " + "ns=x " * n, st.integers(1, 2000)),
)


@PROFILE
@given(text=slash_texts)
@example(text="audit ²")  # int("²") raised: "something went wrong" instead of the usage
@example(text="scale serving/llama ²")
@example(text="audit " + "9" * 5000)  # more digits than int() reads
@example(text="scale serving/llama " + "9" * 5000)
@example(text='diagnose high_latency ns="a')
@example(text="\x00<!channel>\u202e")
def test_any_slash_text_is_acknowledged_and_answered_plainly(world: World, text: str) -> None:
    calls, responses = len(world.slack.calls), len(world.slack.responses)
    response_url = world.slack.new_response_url()
    body = slash_command_body(text, response_url=response_url)
    answer = send_signed(f"{world.bot.url}/slack/events", body, SECRET)
    assert answer.status == 200, answer.body[:300]
    assert answer.elapsed < 3.0
    world.settle()
    assert world.slack_problems(calls, responses) == []
    for post in world.slack.responses[responses:]:
        if post.response_id in response_url:  # a reply to this command: private, valid
            assert post.status == 200
            assert post.body.get("response_type") == "ephemeral"
    assert world.executed() == 0


action_ids = st.one_of(st.sampled_from(list(ids.ACTION_IDS)), st.text(max_size=300))
action_values = st.one_of(
    st.text(max_size=50),
    st.builds(str, st.integers()),
    st.just("x" * 100_000),
    st.just("' OR 1=1 --"),
    st.just('{"kind": "drain", "target": "node/gpu-1"}'),
)


@PROFILE
@given(action_id=action_ids, value=action_values)
def test_tampered_button_clicks_do_nothing_but_say_so(
    world: World, action_id: str, value: str
) -> None:
    calls, responses = len(world.slack.calls), len(world.slack.responses)
    body = block_action_body(action_id, value, response_url=world.slack.new_response_url())
    answer = send_signed(f"{world.bot.url}/slack/events", body, SECRET)
    # an action id the app never registered is Bolt's 404; every other click is acknowledged
    assert answer.status == (200 if action_id in ids.ACTION_IDS else 404), answer.body[:300]
    assert answer.elapsed < 3.0
    world.settle()
    assert world.slack_problems(calls, responses) == []
    assert world.executed() == 0


def offered_request(world: World) -> str:
    """A real, open request (scale, from a recommendation button someone else clicked)."""
    asked = Asked("scale", "serving/llama", {"replicas": 2})
    remediation = world.bot.bot.services.remediation
    return world.bot.call(remediation.offer(asked, reason="hostile input", channel="C123"))


edited_values = st.one_of(
    st.sampled_from(["-1", "1e9", "abc", "", " ", "3.5", "²", "0x10", "10001", "٣", "1_000"]),
    st.text(max_size=30),
    st.just("7" * 1_000_000),
    st.just("9" * 5000),
)


@PROFILE
@given(
    replicas=edited_values,
    param=st.sampled_from(["replicas", "timeout_s", "duration", "command", "x" * 300]),
    known=st.booleans(),
    user=st.sampled_from(["U123", "U999OTHER"]),
)
@example(replicas="²", param="replicas", known=True, user="U123")
@example(replicas="9" * 5000, param="replicas", known=True, user="U123")
def test_edited_modal_values_are_flagged_and_nothing_runs(
    world: World, replicas: str, param: str, known: bool, user: str
) -> None:
    request_id = offered_request(world) if known else f"req-{uuid.uuid4().hex}"
    values = {f"param_{param}": {param: replicas}}
    body = view_submission_body(ids.ACTION_PLAN_VIEW, request_id, values, user_id=user)
    calls, responses = len(world.slack.calls), len(world.slack.responses)
    answer = send_signed(f"{world.bot.url}/slack/events", body, SECRET)
    if len(body) > 4 * 1024 * 1024:
        assert answer.status == 413
        return
    assert answer.status == 200, answer.body[:300]
    assert answer.elapsed < 3.0
    world.settle()
    assert world.slack_problems(calls, responses) == []
    ack = json.loads(answer.body) if answer.body.strip() else {}
    if ack.get("response_action") == "errors":
        assert all(k.startswith("param_") and 0 < len(v) <= 150 for k, v in ack["errors"].items())
    assert world.executed() == 0


def _raw_signed(body: bytes, secret: str, timestamp: int) -> dict[str, str]:
    """Slack's v0 signature over raw bytes (``signed_headers`` needs UTF-8 text)."""
    base = f"v0:{timestamp}:".encode() + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": f"v0={digest}"}


forgeries = st.sampled_from(
    ["unsigned", "wrong secret", "stale", "future", "bad timestamp", "non-ascii signature",
     "tampered body"]
)  # fmt: skip


@PROFILE
@given(how=forgeries, text=st.text(max_size=40), age=st.integers(301, 10**6))
@example(how="bad timestamp", text="help", age=301)  # int("soon") raised before the check
@example(how="non-ascii signature", text="help", age=301)
def test_forged_and_stale_requests_are_refused_and_nothing_is_done(
    world: World, how: str, text: str, age: int
) -> None:
    response_url = world.slack.new_response_url()
    body = slash_command_body(text or "help", response_url=response_url)
    now = int(time.time())
    headers: dict[str, str | bytes] = {"Content-Type": "application/x-www-form-urlencoded"}
    if how == "wrong secret":
        headers |= signed_headers("not-" + SECRET, body)
    elif how == "stale":
        headers |= signed_headers(SECRET, body, now - age)
    elif how == "future":
        # the bot reads its clock later than this line (seconds later on a loaded
        # machine), which brings a timestamp 301 s ahead back within the 300-s window
        headers |= signed_headers(SECRET, body, now + age + 60)
    elif how == "bad timestamp":
        headers |= signed_headers(SECRET, body) | {"X-Slack-Request-Timestamp": "soon"}
    elif how == "non-ascii signature":
        headers |= {"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": "v0=é".encode()}
    elif how == "tampered body":
        headers |= signed_headers(SECRET, body)
        body += "&text=drain+node-1"
    calls = len(world.slack.calls)
    raw = [(k.encode(), v if isinstance(v, bytes) else v.encode()) for k, v in headers.items()]
    answer = httpx.post(
        f"{world.bot.url}/slack/events", content=body.encode(), headers=raw, timeout=10
    )
    assert answer.status_code == 401, answer.text[:300]
    world.settle()
    assert world.slack.calls[calls:] == []
    assert not [r for r in world.slack.responses if r.response_id in response_url]


@PROFILE
@given(body=st.one_of(st.binary(max_size=300), st.just(b"\xff\xfe"), st.just(b"payload=x")))
@example(body=b"\xff\xfe")  # not UTF-8: a 500 before the signature was even checked
@example(body=b"payload=notjson")  # a payload that is not JSON: a 500
def test_unreadable_bodies_are_refused_signed_or_not(world: World, body: bytes) -> None:
    calls = len(world.slack.calls)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    url = f"{world.bot.url}/slack/events"
    unsigned = httpx.post(url, content=body, headers=form, timeout=10)
    assert unsigned.status_code == 401
    signed = httpx.post(
        url, content=body, headers=form | _raw_signed(body, SECRET, int(time.time())), timeout=10
    )
    # 404: nothing handles it; a body that is not UTF-8 cannot be verified, so is not signed
    utf8 = body.decode("utf-8", errors="replace").encode() == body
    assert signed.status_code in ((200, 400, 404) if utf8 else (401,)), signed.text[:300]
    world.settle()
    assert world.slack_problems(calls, len(world.slack.responses)) == []
    assert world.alive()


def test_a_replayed_request_is_refused_and_served_once(world: World) -> None:
    response_url = world.slack.new_response_url()
    body = slash_command_body("help", response_url=response_url)
    headers = {"Content-Type": "application/x-www-form-urlencoded", **signed_headers(SECRET, body)}
    url = f"{world.bot.url}/slack/events"
    first = httpx.post(url, content=body.encode(), headers=headers, timeout=10)
    again = httpx.post(url, content=body.encode(), headers=headers, timeout=10)
    assert (first.status_code, again.status_code) == (200, 401)
    assert "replayed" in again.text
    world.settle()
    time.sleep(0.5)
    replies = [r for r in world.slack.responses if r.response_id in response_url]
    assert len(replies) == 1 and replies[0].status == 200


# --- the CLI's --scope ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus(prometheus_binary: str) -> Iterator[str]:
    """A real (empty) Prometheus: the judge of whether a query parses."""
    runner = PrometheusRunner(f"http://127.0.0.1:{free_port()}", binary=prometheus_binary)
    runner.start()
    yield runner.url
    runner.stop()


bad_scope_words = st.one_of(
    st.text(max_size=30).filter(lambda w: "=" not in w),
    st.builds(
        lambda key, value: f"{key}={value}",
        st.text(max_size=12).filter(lambda k: not LABEL_NAME.match(k.strip())),
        st.text(max_size=12),
    ),
    st.builds(lambda key: f"{key}=", st.sampled_from(["ns", "pod", "cluster", "x"])),
)


@PROFILE
@given(word=bad_scope_words)
@example(word="p\nod=x")
@example(word="=\x00")
@example(word='ns=""')
def test_cli_refuses_a_bad_scope_word_in_one_line(
    word: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    refused = f"http://127.0.0.1:{free_port()}"
    code = main(["diagnose", "high_latency", "--scope", word, "--prometheus", refused])
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    assert err.startswith("error:") and err.strip().count("\n") == 0, err
    assert "Traceback" not in out + err


hostile_values = st.text(
    st.one_of(
        st.sampled_from(list("\"'\\\n\r\t`{}[]()|.*+?^$=~!,<>@#&\u200b\u202e\ufffd\x00é世")),
        st.characters(codec="utf-8"),
    ),
    min_size=1,
    max_size=20,
).filter(lambda v: v.strip().strip('"'))


@PROFILE
@given(
    key=st.sampled_from(["ns", "pod", "node", "deployment", "model", "cluster", "container"]),
    value=hostile_values,
)
@example(key="pod", value="\ufffd\x00\r")  # a literal U+FFFD: "invalid UTF-8 rune"
@example(key="deployment", value='a"\\\n.*(|')
def test_hostile_scope_values_never_make_a_query_prometheus_rejects(
    prometheus: str, key: str, value: str
) -> None:
    scope = parse_scope([f"{key}={value}"])
    queries = [
        vllm("vllm:num_requests_running", scope),
        dcgm("DCGM_FI_DEV_GPU_UTIL", scope),
        history_query(scope, "5m"),
    ]
    for query in queries:
        answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=10)
        assert answer.status_code == 200, (answer.json().get("error"), query)
