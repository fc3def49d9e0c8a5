"""The Slack side: rendering (pure), charts, listeners, and the outbox that posts."""
