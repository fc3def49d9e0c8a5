"""Safe PromQL building: quoting untrusted label values, scope selectors, renamed metrics.

Label values reach us from alerts and from people typing in Slack; they only ever enter a
query through ``quote``/``regex_quote`` here, so nothing they contain can change the query.
"""

from __future__ import annotations

import re

from bot.diagnosis.metric_names import RUNNING
from bot.models import Scope

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
DCGM_HOST_LABELS = ("Hostname", "hostname")
# Scope keys with a meaning beyond "exact label match".
NODE_KEY, DEPLOYMENT_KEY, CLUSTER_KEY, MODEL_KEY = "node", "deployment", "cluster", "model_name"


class ScopeError(ValueError):
    """A scope key or value that cannot become a matcher."""


def quote(value: str) -> str:
    """A PromQL double-quoted string literal holding exactly ``value``."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def regex_quote(value: str) -> str:
    """``value`` as a literal inside a PromQL (RE2) regex matcher, then string-quoted."""
    return quote(re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", value))


def _matchers(scope: Scope) -> list[str]:
    out: list[str] = []
    for key, value in sorted(scope.labels.items()):
        if key in (NODE_KEY, CLUSTER_KEY):
            continue
        if not LABEL_NAME.match(key):
            raise ScopeError(f"{key!r} is not a valid label name")
        if key == DEPLOYMENT_KEY:
            # Deployment pods are named <deployment>-<template hash>-<5 chars>.
            pattern = re.sub(r"^\"|\"$", "", regex_quote(value)) + "-[a-z0-9]+-[a-z0-9]+"
            out.append(f'pod=~"{pattern}"')
        else:
            out.append(f"{key}={quote(value)}")
    return out


def node_filter(scope: Scope, extra: str = "") -> list[str]:
    """DCGM selectors for the scope's node under both host-label spellings."""
    node = scope.labels.get(NODE_KEY)
    base = ",".join(x for x in (extra,) if x)
    if node is None:
        return [base]
    return [",".join(x for x in (base, f"{h}={quote(node)}") if x) for h in DCGM_HOST_LABELS]


def vllm_selector(scope: Scope, extra: str = "") -> str:
    """The ``{…}`` body for vLLM series in ``scope``.

    A ``node`` in the scope restricts to the pods on that node, which the diagnosis
    resolves from DCGM's pod labels first (``Scope.pods``); vLLM series carry no node.
    """
    matchers = _matchers(scope)
    if scope.pods is not None:
        alternatives = "|".join(regex_quote(p)[1:-1] for p in scope.pods) or "^$"
        matchers.append(f'pod=~"{alternatives}"')
    return ",".join([*matchers, *([extra] if extra else [])])


def vllm(metric: str | tuple[str, ...], scope: Scope, extra: str = "") -> str:
    """A vLLM series selector; a tuple of names means 'whichever this replica exposes'.

    Old and new names are joined with ``or`` so a mixed-version fleet is read whole,
    and a replica exposing both (transition releases) is counted once.
    """
    names = (metric,) if isinstance(metric, str) else metric
    sel = vllm_selector(scope, extra)
    parts = [f"{name}{{{sel}}}" for name in names]
    return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"


def _dcgm_selectors(scope: Scope, extra: str) -> list[str]:
    pod_level = {
        k: v for k, v in scope.labels.items() if k not in (NODE_KEY, CLUSTER_KEY, MODEL_KEY)
    }
    base = ",".join([*_matchers(Scope(labels=pod_level)), *([extra] if extra else [])])
    return node_filter(scope, base)


def _serving_model(expr: str, scope: Scope) -> str:
    """DCGM labels a GPU with the pod using it, never with a model: a model scope keeps
    the GPUs of the pods that serve the model (a join, however many pods that is)."""
    model = scope.labels.get(MODEL_KEY)
    if model is None:
        return expr
    served = f"{RUNNING}{{{MODEL_KEY}={quote(model)}}}"  # one name in every vLLM release
    return f"({expr} and on (namespace, pod) group by (namespace, pod) ({served}))"


def _either(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"


def dcgm(metric: str, scope: Scope, extra: str = "") -> str:
    """A DCGM series selector for the scope, whichever host label spelling is in use."""
    parts = [f"{metric}{{{sel}}}" for sel in _dcgm_selectors(scope, extra)]
    return _serving_model(_either(parts), scope)


def dcgm_over(function: str, metric: str, scope: Scope, window: str, extra: str = "") -> str:
    """``function(metric[window])`` over DCGM series in the scope.

    A range selector must follow a plain selector, never an ``or`` of two, so with a node
    scope (two host-label spellings) the function is applied to each and the results
    joined: ``increase(A{Hostname="n"}[5m]) or increase(A{hostname="n"}[5m])``.
    """
    check_window(window)
    parts = [f"{function}({metric}{{{sel}}}[{window}])" for sel in _dcgm_selectors(scope, extra)]
    return _serving_model(_either(parts), scope)


# Labels that tell replicas apart; renamed metrics are merged per replica on these.
REPLICA_IDENTITY = ("namespace", "pod", "instance")


def rate_by(
    metric: str | tuple[str, ...], scope: Scope, window: str, by: str, extra: str = ""
) -> str:
    """``sum by (by) (rate(metric[window]))`` over either name of a renamed metric.

    With several names, each replica's rate is taken from whichever name it exposes
    (``or`` per replica, so one exposing both counts once) before summing by ``by``.
    """
    if isinstance(metric, str):
        return f"sum by ({by}) (rate({vllm(metric, scope, extra)}[{window}]))"
    wanted = [x.strip() for x in by.split(",") if x.strip()]
    inner = ", ".join(dict.fromkeys([*REPLICA_IDENTITY, *wanted]))
    parts = [f"sum by ({inner}) (rate({vllm(name, scope, extra)}[{window}]))" for name in metric]
    return f"sum by ({by}) ({' or '.join(parts)})"


WINDOW = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def check_window(window: str) -> str:
    if not WINDOW.match(window):
        raise ScopeError(f"window {window!r} is not a PromQL duration such as 30s or 5m")
    return window


def window_seconds(window: str) -> float:
    match = WINDOW.match(check_window(window))
    assert match is not None
    return int(match.group(1)) * _SECONDS[match.group(2)]


def history_query(scope: Scope, window: str) -> str:
    """Seconds of data the scope's replicas have within ``window`` (oldest first sample).

    ``timestamp()`` sampled through a subquery is the time of the latest sample at each
    step; its minimum over the window is (to one step) when the oldest replica in scope
    was first scraped, so ``time()`` minus it is how much of the window the data fills.
    Younger than one step, the subquery has no point yet: 0 s, while series exist.
    """
    step = max(1, round(window_seconds(window) / 60))
    series = vllm(RUNNING, scope)
    return (
        f"(time() - min(min_over_time(timestamp({series})[{window}:{step}s])))"
        f" or (0 * count({series}))"
    )
