"""The local Slack-style console: a Slack workspace the unmodified bot talks to, and a web
page to play it without a Slack workspace (``bot.console.app``)."""
