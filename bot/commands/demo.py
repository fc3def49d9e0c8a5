"""`demo` and `runbooks preview`: the whole product on one machine, played in a browser."""

from __future__ import annotations

import argparse
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from bot.commands.common import EXIT_OK, EXIT_PROBLEM, UsageError, err
from bot.demo.stack import DemoError, DemoOptions, DemoStack
from bot.simulator.prometheus_runner import port_or_free

DEFAULT_MODELS = ("llama-3.1-70b-instruct", "qwen2.5-7b-instruct")
DEFAULT_PORT = 8080


def _options(args: argparse.Namespace, runbooks_dir: Path | None = None) -> DemoOptions:
    state_dir = Path(args.state_dir or tempfile.mkdtemp(prefix="vllm-chatops-demo-"))
    return DemoOptions(
        state_dir=state_dir,
        replicas=getattr(args, "replicas", None) or 8,
        gpus_per_replica=getattr(args, "gpus_per_replica", 4),
        gpus_per_node=getattr(args, "gpus_per_node", 8),
        models=tuple(getattr(args, "models", None) or DEFAULT_MODELS),
        namespace=getattr(args, "namespace", "inference"),
        scenario=getattr(args, "scenario", None) or "healthy",
        seed=getattr(args, "seed", 0),
        legacy_fraction=getattr(args, "legacy_fraction", 0.0),
        console_port=args.port or port_or_free(DEFAULT_PORT),
        scrape_interval_s=args.scrape_interval,
        verify_after_s=args.verify_after,
        runbooks_dir=runbooks_dir,
    )


class _Stopped(Exception):
    """Ctrl-C or SIGTERM."""


def _stop(*_: object) -> None:
    raise _Stopped


@contextmanager
def _running(stack: DemoStack, console: Console) -> Iterator[DemoStack]:
    """Start the stack; on Ctrl-C, SIGTERM or an error stop every part it started."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stop)
    try:
        with console.status("starting…") as status:
            stack.start(lambda part: status.update(f"starting {part}…"))
            status.update("waiting for Prometheus' first scrapes…")
            stack.wait_for_scrapes()
        yield stack
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup
        console.print("stopping…")
        stack.stop()


def _serve_until_stopped(duration: float | None) -> None:
    deadline = None if duration is None else time.monotonic() + duration
    while deadline is None or time.monotonic() < deadline:
        time.sleep(0.5)


def _print_started(console: Console, stack: DemoStack) -> None:
    assert stack.console is not None and stack.prometheus is not None
    assert stack.alertmanager is not None and stack.simulator is not None
    url = stack.console.url
    console.print()
    console.print(f"[bold green]Open {url}[/bold green]")
    console.print()
    console.print("Then try:")
    console.print("  1. type [bold]/vllm diagnose high_latency[/bold] in the composer")
    console.print(
        "  2. inject [bold]underprovisioned[/bold] in the side panel: an alert fires through "
        "Prometheus → Alertmanager → the bot; click its scale button, confirm, and watch "
        "the fleet grow and the thread say [italic]recovered[/italic]"
    )
    console.print(
        "  3. switch user to Sam (no grants) and click a button; run the demo with "
        "[bold]--namespace prod[/bold] to see a rollback or drain wait for a second person"
    )
    console.print()
    console.print(
        f"Fleet simulator {stack.simulator.fleet.namespace}: {len(stack.simulator.fleet.replicas)}"
        f" replicas · Prometheus {stack.prometheus.url} · Alertmanager {stack.alertmanager.url}"
    )
    console.print(
        f"Verification re-checks run {stack.options.verify_after_s} s after an action "
        f"(300 s in production). State and logs: {stack.options.state_dir}"
    )
    console.print("Ctrl-C stops everything.")


def cmd_demo(args: argparse.Namespace) -> int:
    console = Console(soft_wrap=True)
    stack = DemoStack(_options(args))
    try:
        with _running(stack, console):
            _print_started(console, stack)
            _serve_until_stopped(args.duration)
    except _Stopped:
        pass
    except DemoError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        return EXIT_PROBLEM
    return EXIT_OK


def cmd_runbooks_preview(args: argparse.Namespace) -> int:
    from bot.demo.preview import PreviewError, prepare_runbooks, wait_for_post

    console = Console(soft_wrap=True)
    try:
        runbook, runbooks_dir, scenario = prepare_runbooks(
            Path(args.file), args.scenario, Path(tempfile.mkdtemp(prefix="vllm-chatops-preview-"))
        )
    except PreviewError as exc:
        raise UsageError(str(exc)) from exc
    args.scenario = "healthy"
    stack = DemoStack(_options(args, runbooks_dir))
    try:
        with _running(stack, console):
            with console.status(f"injecting {scenario}; waiting for {runbook.id}'s post…"):
                link = wait_for_post(stack, runbook, scenario)
            console.print(f"[bold green]Open {link}[/bold green]")
            console.print(f"(scenario {scenario}; Ctrl-C stops everything)")
            _serve_until_stopped(args.duration)
    except _Stopped:
        pass
    except (DemoError, PreviewError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        return EXIT_PROBLEM
    return EXIT_OK
