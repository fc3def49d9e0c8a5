"""Child processes of the demo and the test harness that die with their parent.

Prometheus, Alertmanager and the bot run as child processes. Ctrl-C or SIGTERM stops them
through the parent's ``finally`` blocks; ``PR_SET_PDEATHSIG`` covers the parent being
killed outright, so no orphan keeps a port or a data directory busy. ``wait_healthy``
waits for a started bot to answer ``/healthz``.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import httpx

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    args: Sequence[str],
    log: IO[bytes],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``args`` with stdout and stderr going to ``log``; on Linux it dies with us."""
    return subprocess.Popen(
        list(args),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )


def terminate(process: subprocess.Popen[bytes] | None, timeout_s: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout_s``; always reaps the child."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_healthy(
    url: str,
    process: subprocess.Popen[bytes],
    log: Path,
    *,
    timeout_s: float = 60.0,
    error: type[Exception] = RuntimeError,
) -> None:
    """Until the bot started as ``process`` answers ``GET {url}/healthz``; ``error`` when it
    exits first (with the tail of its ``log``) or is still silent after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise error(f"the bot exited with {process.returncode}:\n{tail}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise error(f"the bot did not answer within {timeout_s:.0f} s; log: {log}")
