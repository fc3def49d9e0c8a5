"""What every command shares: exit codes, the error console, usage errors."""

from __future__ import annotations

from rich.console import Console

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2

err = Console(stderr=True, soft_wrap=True)


class UsageError(Exception):
    """Bad arguments: exit 2 with the message."""
