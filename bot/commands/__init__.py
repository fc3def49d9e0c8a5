"""Implementations of the command-line commands; ``bot.cli`` parses and dispatches."""
