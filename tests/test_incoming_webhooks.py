"""The console's Slack incoming webhooks (what Alertmanager's slack_configs posts to), and
the Alertmanager configuration that adds that notifier next to the bot's webhook."""

from __future__ import annotations

import time

import httpx
from fakes.slack import FakeSlack

from bot.simulator.alertmanager_runner import AlertmanagerRunner


def test_a_post_is_answered_ok_and_kept_with_its_arrival() -> None:
    with FakeSlack() as slack:
        url = slack.incoming_webhook_url()
        before = time.time()
        answer = httpx.post(url, json={"text": "hello", "attachments": [{"title": "[FIRING:1]"}]})
        assert (answer.status_code, answer.text) == (200, "ok")
        (post,) = slack.webhook_posts
        assert post.body["text"] == "hello" and "[FIRING:1]" in post.text
        assert before <= post.at <= time.time()
        assert httpx.post(url, json={}).text == "no_text"
        assert httpx.post(url, content=b"{not json").status_code == 400
        assert len(slack.webhook_posts) == 1
        slack.reset()
        assert slack.webhook_posts == []


def test_alertmanager_adds_its_slack_notifier_only_when_asked() -> None:
    plain = AlertmanagerRunner("am", "http://bot/alerts", "token").config()
    assert "slack_configs" not in plain["receivers"][0]
    assert plain["route"]["group_by"] == ["alertname", "namespace"]
    slack_url = "http://slack/services/T/B/x"
    both = AlertmanagerRunner(
        "am", "http://bot/alerts", "token", slack_url=slack_url, group_by=("id",)
    ).config()
    (receiver,) = both["receivers"]
    assert receiver["webhook_configs"][0]["url"] == "http://bot/alerts"
    assert receiver["slack_configs"] == [
        {"api_url": slack_url, "channel": "#alerts", "send_resolved": False}
    ]
    assert both["route"]["group_by"] == ["id"] and both["route"]["group_wait"] == "0s"
