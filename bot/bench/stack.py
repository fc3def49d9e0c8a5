"""The product as the bench measures it: the demo stack with the bot as its own process.

Fleet twin, real Prometheus and Alertmanager, the console as the fake Slack and
``vllm-chatops serve`` in HTTP mode (see ``bot.demo.stack``), sized small.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bot.bench.options import Progress
from bot.demo.stack import DemoOptions, DemoStack

REPLICAS = 8


@contextmanager
def running(work_dir: Path, progress: Progress, **options: Any) -> Iterator[DemoStack]:
    """A started stack whose Prometheus has scraped every target; stopped on the way out."""
    opts = DemoOptions(state_dir=work_dir, replicas=REPLICAS, **options)
    stack = DemoStack(opts)
    try:
        stack.start(lambda part: progress(f"starting {part}"))
        progress("waiting for Prometheus' first scrapes")
        stack.wait_for_scrapes()
        yield stack
    finally:
        stack.stop()
