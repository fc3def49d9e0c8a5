"""Safe PromQL building: quoting untrusted label values, scope selectors, renamed metrics.

Label values reach us from alerts and from people typing in Slack; they only ever enter a
query through ``quote``/``regex_quote`` here, so nothing they contain can change the query.
"""

from __future__ import annotations

import re

from pydantic import Field

from bot.config import LabelConventions
from bot.diagnosis.metric_names import RUNNING
from bot.models import Scope

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
DCGM_HOST_LABELS = ("Hostname", "hostname")
# Scope keys with a meaning beyond "exact label match".
NODE_KEY, DEPLOYMENT_KEY, CLUSTER_KEY, MODEL_KEY = "node", "deployment", "cluster", "model_name"
# Labels dcgm-exporter writes for the workload using a GPU (``exported_`` under honor_labels
# false); on vLLM series the same names come from service discovery.
WORKLOAD_KEYS = ("namespace", "pod", "container")


class ScopeError(ValueError):
    """A scope key or value that cannot become a matcher."""


def quote(value: str) -> str:
    """A PromQL double-quoted string literal holding exactly ``value``.

    U+FFFD is escaped: Prometheus's lexer takes it, written as is, for invalid UTF-8."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    escaped = escaped.replace("\ufffd", "\\ufffd")
    return f'"{escaped}"'


def regex_quote(value: str) -> str:
    """``value`` as a literal inside a PromQL (RE2) regex matcher, then string-quoted."""
    return quote(re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", value))


class LabelledScope(Scope):
    """A scope with the label conventions of the data it reads (configured or detected)."""

    conventions: LabelConventions = Field(default_factory=LabelConventions)


def conventions_of(scope: Scope) -> LabelConventions:
    return scope.conventions if isinstance(scope, LabelledScope) else LabelConventions()


def with_conventions(scope: Scope, conventions: LabelConventions) -> LabelledScope:
    fields = {name: getattr(scope, name) for name in Scope.model_fields}
    return LabelledScope(**fields, conventions=conventions)


def _matchers(scope: Scope, gpu: bool = False) -> list[str]:
    """Label matchers for the scope; on GPU series, workload keys name the GPU's workload
    labels (``namespace=`` means the workload's namespace whatever the stack)."""
    conventions = conventions_of(scope)
    out: list[str] = []
    for key, value in sorted(scope.labels.items()):
        if key in (NODE_KEY, CLUSTER_KEY) or (gpu and key == MODEL_KEY):
            continue
        if not LABEL_NAME.match(key):
            raise ScopeError(f"{key!r} is not a valid label name")
        label = conventions.gpu_label(key) if gpu and key in WORKLOAD_KEYS else key
        if key == DEPLOYMENT_KEY:
            # Deployment pods are named <deployment>-<template hash>-<5 chars>.
            pod = conventions.gpu_label("pod") if gpu else "pod"
            pattern = re.sub(r"^\"|\"$", "", regex_quote(value)) + "-[a-z0-9]+-[a-z0-9]+"
            out.append(f'{pod}=~"{pattern}"')
        else:
            out.append(f"{label}={quote(value)}")
    return [*out, *cluster_matchers(scope)]


def cluster_matchers(scope: Scope) -> list[str]:
    """``cluster="x"`` for a scope in cluster x, unless the data has no cluster label."""
    conventions = conventions_of(scope)
    if scope.cluster is None or conventions.cluster_in_data is False:
        return []
    return [f"{conventions.cluster_label}={quote(scope.cluster)}"]


def host_labels(scope: Scope) -> tuple[str, ...]:
    """DCGM's node label: the configured one, else both spellings exporters use."""
    configured = conventions_of(scope).node_label
    return (configured,) if configured else DCGM_HOST_LABELS


def node_filter(scope: Scope, extra: str = "") -> list[str]:
    """DCGM selectors for the scope's node under each host-label spelling."""
    node = scope.labels.get(NODE_KEY)
    base = ",".join(x for x in (extra,) if x)
    if node is None:
        return [base]
    return [",".join(x for x in (base, f"{h}={quote(node)}") if x) for h in host_labels(scope)]


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


def _dcgm_selectors(scope: Scope, extra: str, assigned: bool) -> list[str]:
    conventions = conventions_of(scope)
    matchers = _matchers(scope, gpu=True)
    if assigned:
        matchers.append(f'{conventions.gpu_label("pod")}!=""')
    return node_filter(scope, ",".join([*matchers, *([extra] if extra else [])]))


def gpu_by(scope: Scope) -> str:
    """Labels that identify one GPU and the workload using it, for ``max by (…)``."""
    c = conventions_of(scope)
    workload = [c.gpu_label("namespace"), c.gpu_label("pod"), c.cluster_label]
    return ", ".join([*host_labels(scope), "gpu", "UUID", *workload])


def _exporter_pods_apart(expr: str, scope: Scope, assigned: bool) -> str:
    """With plain labels, a GPU no workload uses carries the exporter's *own* pod (its
    scrape target's labels fill the gap): never take it for a workload. Such series are
    the ones whose ``instance``/``pod`` are their target's (``up``): dropped when only
    assigned GPUs count, else kept with the pod labels removed."""
    if conventions_of(scope).gpu_workload_labels == "exported":
        return expr  # the workload is in exported_*; pod/namespace are the exporter's
    own = f"on (instance, pod, {conventions_of(scope).cluster_label}) up"
    if assigned or any(k in scope.labels for k in (*WORKLOAD_KEYS, DEPLOYMENT_KEY)):
        return f"({expr} unless {own})"
    blanked = f"{expr} and {own}"
    for label in WORKLOAD_KEYS:
        blanked = f'label_replace({blanked}, "{label}", "", "", "")'
    return f"(({expr} unless {own}) or {blanked})"


def _serving_model(expr: str, scope: Scope) -> str:
    """DCGM labels a GPU with the pod using it, never with a model: a model scope keeps
    the GPUs of the pods that serve the model (a join, however many pods that is)."""
    model = scope.labels.get(MODEL_KEY)
    if model is None:
        return expr
    c = conventions_of(scope)
    model_sel = ",".join([f"{MODEL_KEY}={quote(model)}", *cluster_matchers(scope)])
    cl = c.cluster_label
    served = f"group by (namespace, pod, {cl}) ({RUNNING}{{{model_sel}}})"
    pod, namespace = c.gpu_label("pod"), c.gpu_label("namespace")
    if pod != "pod":
        served = f'label_replace({served}, "{pod}", "$1", "pod", "(.*)")'
        served = f'label_replace({served}, "{namespace}", "$1", "namespace", "(.*)")'
    return f"({expr} and on ({namespace}, {pod}, {cl}) {served})"


def _either(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"


def dcgm(metric: str, scope: Scope, extra: str = "", *, assigned: bool = False) -> str:
    """A DCGM series selector for the scope, whichever host label spelling is in use.

    ``assigned``: only GPUs a workload uses (the exporter's own pod never counts).
    """
    parts = [f"{metric}{{{sel}}}" for sel in _dcgm_selectors(scope, extra, assigned)]
    return _serving_model(_exporter_pods_apart(_either(parts), scope, assigned), scope)


def dcgm_over(function: str, metric: str, scope: Scope, window: str, extra: str = "") -> str:
    """``function(metric[window])`` over DCGM series in the scope.

    A range selector must follow a plain selector, never an ``or`` of two, so with a node
    scope (two host-label spellings) the function is applied to each and the results
    joined: ``increase(A{Hostname="n"}[5m]) or increase(A{hostname="n"}[5m])``.
    """
    check_window(window)
    parts = [
        f"{function}({metric}{{{sel}}}[{window}])"
        for sel in _dcgm_selectors(scope, extra, assigned=False)
    ]
    return _serving_model(_exporter_pods_apart(_either(parts), scope, False), scope)


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
    identity = [*REPLICA_IDENTITY, conventions_of(scope).cluster_label]  # names repeat
    inner = ", ".join(dict.fromkeys([*identity, *wanted]))
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


def history_filled_query(scope: Scope, window: str, fill: float) -> str:
    """Non-empty when some replica in scope has data at least ``fill`` of ``window`` old.

    A sample at ``now - fill × window`` exists exactly when that much history does. One
    instant lookup per series, where :func:`history_query` evaluates a subquery: on a
    large fleet the difference is most of a diagnosis' Prometheus time.
    """
    age = max(1, int(window_seconds(window) * fill))
    return f"count({vllm(RUNNING, scope)} offset {age}s)"


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
