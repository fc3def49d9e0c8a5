"""A Kubernetes API stand-in: real HTTP, JSON shaped like the real API's.

`KubernetesStandIn` is an aiohttp server on 127.0.0.1 (a free port) running on its own
thread and event loop, so synchronous and asynchronous code can both use it (point lightkube
at :attr:`KubernetesStandIn.url` with a bearer token). The demo's fleet twin and the tests
both run on it. It implements what the bot's actions use, with the API's semantics:

* CRUD on pods, nodes, deployments, replicasets, statefulsets, HPAs (autoscaling/v2),
  PodDisruptionBudgets (policy/v1) and KEDA ScaledObjects (keda.sh/v1alpha1), at the real
  paths; lists honour ``labelSelector`` and ``fieldSelector``;
* ``resourceVersion`` (a global counter, as a string), ``uid``, ``creationTimestamp`` and
  ``generation`` (bumped when ``spec`` changes); PUT/PATCH with a stale
  ``metadata.resourceVersion`` answers 409 Conflict; :meth:`KubernetesStandIn.conflict_next`
  injects one;
* PATCH as JSON merge patch, strategic merge patch (treated as merge) and JSON patch;
* ``?dryRun=All``: validated and answered, nothing stored;
* the ``scale`` subresource of deployments, statefulsets, replicasets and rollouts;
* a simplified deployment controller: a new pod template gets a ReplicaSet with
  ``deployment.kubernetes.io/revision`` = max + 1 (an old template's ReplicaSet, found by
  its template whatever its hash, is re-numbered, like ``kubectl rollout undo``), owned by
  the deployment, labelled with ``pod-template-hash``; the deployment's revision annotation
  follows;
* with ``manage_pods=True``, the controllers that need pods (see
  :class:`KubernetesStandIn`): ReplicaSets own pods, Deployments roll by readiness, HPAs
  hold their targets; no scheduler or kubelet: whoever plays them binds pods and reports
  readiness through :meth:`KubernetesStandIn.update`;
* Argo Rollouts (argoproj.io/v1alpha1 ``rollouts``, with a ``scale`` subresource) and a
  simplified Argo Rollouts controller: like the deployment controller, a new pod template
  gets a ReplicaSet (owned by the Rollout, labelled ``rollouts-pod-template-hash``) with
  ``rollout.argoproj.io/revision`` = max + 1, an old template's ReplicaSet is re-numbered,
  and the Rollout's revision annotation and ``status.currentPodHash`` follow;
* a simplified KEDA operator: a ScaledObject's replica bounds are copied to its HPA;
* the Eviction API (``POST .../pods/NAME/eviction``): 429 TooManyRequests when a PDB's
  ``minAvailable``/``maxUnavailable`` would be violated, counting ready pods matching its
  selector; otherwise the pod is deleted;
* RBAC: bearer tokens map to allowed ``(verb, resource)`` pairs (``"pods/eviction"``,
  ``"deployments/scale"`` for subresources, ``"*"`` wildcards); refusals are 403 Status
  objects worded like the API server's; an unknown token is 401.

Every request is recorded in :attr:`KubernetesStandIn.requests`. In-process callers read
with ``get``/``list``, write with ``put_object``/``update``/``delete_object``, restore a
consistent set of objects with ``load``, say when an object was created with
``set_created``, and hear of every change with ``subscribe``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import copy
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from bot.simulator.kube_objects import (
    HASH_LABEL,
    REVISION_ANNOTATION,
    ROLLOUT_HASH_LABEL,
    ROLLOUT_REVISION_ANNOTATION,
    ApiFailure,
    Obj,
    field_selector_matches,
    json_patch,
    label_selector_matches,
    match_label_selector,
    merge_patch,
    now_iso,
    pod_ready,
    same_template,
    scaled_count,
    status_body,
    template_hash,
)
from bot.simulator.kube_seeding import Seeding
from bot.simulator.kube_workloads import (
    Counts,
    held_replicas,
    owner_uid,
    pod_for,
    ready_count,
    removal_order,
    rolling_bounds,
    rollout_step,
)
from bot.simulator.serving import BackgroundServer, StartStop

ADMIN_TOKEN = "stand-in-admin-token"
T = TypeVar("T")
Objs = list[Obj]  # (the stand-in's own ``list`` method shadows the builtin in its body)
ADMIN_USER = "kubernetes-admin"


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``deployments.apps`` / ``pods``: how the API server names the type in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


RESOURCES: dict[str, ResourceType] = {
    rt.plural: rt
    for rt in (
        ResourceType("", "v1", "Namespace", "namespaces", False),
        ResourceType("", "v1", "Pod", "pods", True),
        ResourceType("", "v1", "Node", "nodes", False),
        ResourceType("apps", "v1", "Deployment", "deployments", True),
        ResourceType("apps", "v1", "ReplicaSet", "replicasets", True),
        ResourceType("apps", "v1", "StatefulSet", "statefulsets", True),
        ResourceType(
            "autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True
        ),
        ResourceType("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True),
        ResourceType("keda.sh", "v1alpha1", "ScaledObject", "scaledobjects", True),
        ResourceType("argoproj.io", "v1alpha1", "Rollout", "rollouts", True),
    )
}
_SCALABLE = {"deployments", "statefulsets", "replicasets", "rollouts"}

_PATH = re.compile(
    r"^/(?:api/(?P<cver>v1)|apis/(?P<group>[^/]+)/(?P<ver>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[a-z]+)"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>[a-z]+))?/?$"
)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: Any
    status: int = 0


# --- the server --------------------------------------------------------------------------


@dataclass
class _Grant:
    user: str
    rules: set[tuple[str, str]] = field(default_factory=set)

    def permits(self, verb: str, resource: str) -> bool:
        return any(v in (verb, "*") and r in (resource, "*") for v, r in self.rules)


class KubernetesStandIn(Seeding, StartStop):
    """The API server. ``manage_pods=True`` runs the workload controllers that need pods:
    ReplicaSets create and delete theirs (unscheduled: a scheduler binds them, see
    :meth:`update`), Deployments roll from one template to the next by their pods'
    readiness (maxSurge / maxUnavailable), HPAs hold their target within their bounds.
    Without it, workloads report every replica ready and have no pods (what most tests
    want). ``admin_token`` may do everything."""

    def __init__(self, *, manage_pods: bool = False, admin_token: str = ADMIN_TOKEN) -> None:
        self._lock = threading.RLock()
        self._objects: dict[tuple[str, str, str], Obj] = {}
        self._rv = 1000
        self._manage_pods = manage_pods
        self._changed = False
        self._observers: list[Callable[[], None]] = []
        self._grants: dict[str, _Grant] = {admin_token: _Grant(ADMIN_USER, {("*", "*")})}
        self._conflicts: dict[str, int] = {}
        # the API server failing: (status, remaining or None, path prefix, only writes)
        self._outage: tuple[int, int | None, str, bool] | None = None
        self._hang_s = 0.0
        self._hang_writes_only = False
        self._requests: list[RecordedRequest] = []
        self._server: BackgroundServer | None = None
        self._port = 0

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> KubernetesStandIn:
        if self._server is not None:
            raise RuntimeError("KubernetesStandIn already started")
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._server = BackgroundServer(
            app, name="KubernetesStandIn", timeout=10.0, shutdown_timeout=1.0
        ).start()
        self._port = self._server.port
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    @property
    def url(self) -> str:
        if not self._port:
            raise RuntimeError("KubernetesStandIn is not running; call start()")
        return f"http://127.0.0.1:{self._port}"

    # -- test controls -----------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def allow(
        self,
        token: str,
        verbs_resources: Iterable[tuple[str, str]],
        user: str = "system:serviceaccount:vllm-ops:chatops-bot",
    ) -> None:
        """Let ``token`` (as ``user``) do these ``(verb, resource)`` pairs, added to any it had."""
        with self._lock:
            grant = self._grants.setdefault(token, _Grant(user))
            grant.user = user
            grant.rules.update(verbs_resources)

    def conflict_next(self, path: str, times: int = 1) -> None:
        """The next ``times`` writes to ``path`` answer 409 Conflict."""
        with self._lock:
            self._conflicts[path] = self._conflicts.get(path, 0) + times

    def outage(
        self,
        status: int = 503,
        times: int | None = None,
        path_prefix: str = "/",
        writes_only: bool = False,
    ) -> None:
        """The next ``times`` requests (``None``: until ``recover``) under ``path_prefix``
        answer ``status`` with a Status body, as an overloaded or failing API server does."""
        with self._lock:
            self._outage = (status, times, path_prefix, writes_only)

    def hang(self, seconds: float, writes_only: bool = False) -> None:
        """Every request (or every write) waits ``seconds`` before it is answered."""
        self._hang_s, self._hang_writes_only = seconds, writes_only

    def recover(self) -> None:
        with self._lock:
            self._outage = None
        self._hang_s = 0.0

    def _maybe_fail(self, request: web.Request) -> None:
        if self._outage is None:
            return
        status, times, prefix, writes_only = self._outage
        if not request.path.startswith(prefix) or (writes_only and request.method == "GET"):
            return
        if times is not None:
            self._outage = None if times <= 1 else (status, times - 1, prefix, writes_only)
        reason = {500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}
        raise ApiFailure(
            status, reason.get(status, "InternalError"), "etcdserver: request timed out"
        )

    def get(self, plural: str, namespace: str | None, name: str) -> Obj | None:
        with self._lock:
            obj = self._objects.get((plural, namespace or "", name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, plural: str, namespace: str | None = None) -> list[Obj]:
        with self._lock:
            return [
                copy.deepcopy(o)
                for (p, ns, _), o in sorted(self._objects.items())
                if p == plural and (namespace is None or ns == namespace)
            ]

    def project(
        self, plural: str, namespace: str | None, fn: Callable[[Obj], T]
    ) -> builtins.list[T]:
        """``fn`` of every stored object, without copying them (a large cluster read often):
        ``fn`` must neither change nor keep what it is given."""
        with self._lock:
            return [
                fn(o)
                for (p, ns, _), o in sorted(self._objects.items())
                if p == plural and (namespace is None or ns == namespace)
            ]

    def put_object(self, plural: str, obj: Obj) -> Obj:
        """Create or overwrite an object as the API would store it (runs the controllers)."""
        rt = RESOURCES[plural]
        with self._change():
            ns = obj.get("metadata", {}).get("namespace", "") if rt.namespaced else ""
            key = (plural, ns, obj["metadata"]["name"])
            old = self._objects.get(key)
            stored = self._store(rt, key, copy.deepcopy(obj), old)
            return copy.deepcopy(stored)

    def delete_object(self, plural: str, namespace: str | None, name: str) -> None:
        with self._change():
            self._objects.pop((plural, namespace or "", name), None)
            self._bump()

    def set_pod_ready(self, namespace: str, name: str, ready: bool = True) -> None:
        with self._change():
            pod = self._objects[("pods", namespace, name)]
            pod["status"]["conditions"] = [
                {"type": "Ready", "status": "True" if ready else "False"}
            ]
            pod["metadata"]["resourceVersion"] = self._bump()

    def update(
        self, plural: str, namespace: str | None, name: str, change: Callable[[Obj], None]
    ) -> Obj | None:
        """Change an object in place as a controller would (``change`` edits a copy, which
        is stored and returned); None when it no longer exists, so a deleted object is
        never brought back."""
        rt = RESOURCES[plural]
        key = (plural, namespace or "", name)
        with self._change():
            current = self._objects.get(key)
            if current is None:
                return None
            new = copy.deepcopy(current)
            change(new)
            if new == current:
                return copy.deepcopy(current)
            return copy.deepcopy(self._store(rt, key, new, current))

    def set_created(
        self, plural: str, namespace: str | None, name: str, created: str
    ) -> str | None:
        """Say when an object was created: the API never changes ``creationTimestamp``, a
        simulation deciding when something happened does. Returns the time replaced;
        None when there is no such object."""
        with self._change():
            obj = self._objects.get((plural, namespace or "", name))
            if obj is None:
                return None
            meta = obj["metadata"]
            before = str(meta.get("creationTimestamp", ""))
            if before != created:
                meta["creationTimestamp"] = created
                meta["resourceVersion"] = self._bump()
            return before

    def load(self, objects: Iterable[tuple[str, Obj]]) -> None:
        """Store ``(plural, object)`` pairs exactly as given, as a restore from a backup
        does: server fields are filled in where missing, no controller runs on them
        (they must already agree with each other)."""
        with self._change():
            for plural, given in objects:
                rt = RESOURCES[plural]
                obj = copy.deepcopy(given)
                meta = obj.setdefault("metadata", {})
                if not rt.namespaced:
                    meta.pop("namespace", None)
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", now_iso())
                meta.setdefault("generation", 1)
                meta["resourceVersion"] = self._bump()
                self._objects[(plural, meta.get("namespace", ""), meta["name"])] = obj

    def subscribe(self, observer: Callable[[], None]) -> None:
        """Call ``observer`` after every committed change, on the writer's thread and
        outside the stand-in's lock; it should be quick (e.g. set an event)."""
        with self._lock:
            self._observers.append(observer)

    @contextlib.contextmanager
    def _change(self) -> Iterator[None]:
        """One write from outside (a request, a public mutator): the controllers settle
        what it started, then observers hear of it."""
        with self._lock:
            yield
            if self._changed and self._manage_pods:
                self._settle()
            changed, self._changed = self._changed, False
            observers = list(self._observers)
        if changed:
            for observer in observers:
                observer()

    # -- storage -----------------------------------------------------------------------

    def _bump(self) -> str:
        self._rv += 1
        self._changed = True
        return str(self._rv)

    def _store(
        self,
        rt: ResourceType,
        key: tuple[str, str, str],
        obj: Obj,
        old: Obj | None,
        dry_run: bool = False,
    ) -> Obj:
        """Fill server-managed fields, validate, run controllers; store unless ``dry_run``."""
        meta = obj.setdefault("metadata", {})
        meta["name"] = key[2]
        if rt.namespaced:
            meta["namespace"] = key[1]
        else:
            meta.pop("namespace", None)
        if old is None:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_iso()
            meta["generation"] = 1
        else:
            meta["uid"] = old["metadata"]["uid"]
            meta["creationTimestamp"] = old["metadata"]["creationTimestamp"]
            generation = int(old["metadata"].get("generation", 1))
            if obj.get("spec") != old.get("spec"):
                generation += 1
            meta["generation"] = generation
            if "status" not in obj and "status" in old:
                obj["status"] = copy.deepcopy(old["status"])
        obj.pop("kind", None)
        obj.pop("apiVersion", None)
        self._validate(rt, obj)
        if rt.plural == "deployments":
            self._deployment_controller(obj, dry_run)
        elif rt.plural == "rollouts":
            self._rollout_controller(obj, dry_run)
        elif rt.plural == "statefulsets" or (rt.plural == "replicasets" and not self._manage_pods):
            replicas = int(obj["spec"].get("replicas", 1))
            obj.setdefault("status", {}).update(
                {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas}
            )
        if dry_run:
            meta["resourceVersion"] = old["metadata"]["resourceVersion"] if old else ""
            return self._with_kind(rt, obj)
        meta["resourceVersion"] = self._bump()
        self._objects[key] = obj
        if rt.plural == "scaledobjects":
            self._keda_operator(obj)
        return self._with_kind(rt, obj)

    @staticmethod
    def _with_kind(rt: ResourceType, obj: Obj) -> Obj:
        return {"kind": rt.kind, "apiVersion": rt.api_version, **copy.deepcopy(obj)}

    def _validate(self, rt: ResourceType, obj: Obj) -> None:
        spec = obj.get("spec") or {}
        name = obj["metadata"]["name"]
        errors: list[tuple[str, str]] = []
        if rt.plural in _SCALABLE and rt.plural != "replicasets":
            replicas = spec.get("replicas", 1)
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                errors.append(("spec.replicas", "must be greater than or equal to 0"))
            if not (spec.get("template") or {}).get("spec", {}).get("containers"):
                errors.append(("spec.template.spec.containers", "Required value"))
        if rt.plural == "horizontalpodautoscalers":
            lo, hi = spec.get("minReplicas", 1), spec.get("maxReplicas")
            if not isinstance(lo, int) or lo < 1:
                errors.append(("spec.minReplicas", "must be greater than or equal to 1"))
            if not isinstance(hi, int) or (isinstance(lo, int) and hi < lo):
                errors.append(
                    ("spec.maxReplicas", "must be greater than or equal to `minReplicas`")
                )
        if rt.plural == "scaledobjects":
            lo, hi = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
            if not isinstance(lo, int) or not isinstance(hi, int) or hi < lo:
                errors.append(("spec.maxReplicaCount", "must be >= minReplicaCount"))
        if errors:
            causes = "; ".join(f"{f}: Invalid value: {m}" for f, m in errors)
            raise ApiFailure(
                422,
                "Invalid",
                f'{rt.kind}.{rt.group or "core"} "{name}" is invalid: {causes}',
                {
                    "name": name,
                    "group": rt.group,
                    "kind": rt.kind,
                    "causes": [
                        {"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in errors
                    ],
                },
            )

    def _deployment_controller(self, dep: Obj, dry_run: bool) -> None:
        self._replicaset_controller(
            dep, dry_run, "Deployment", "apps/v1", REVISION_ANNOTATION, HASH_LABEL
        )
        dep["status"] = {
            **(dep.get("status") or {} if self._manage_pods else self._replica_status(dep)),
            "observedGeneration": dep["metadata"].get("generation", 1),
        }

    def _rollout_controller(self, ro: Obj, dry_run: bool) -> None:
        """Argo Rollouts, simplified: the new template is fully promoted at once."""
        _, tmpl_hash = self._replicaset_controller(
            ro,
            dry_run,
            "Rollout",
            "argoproj.io/v1alpha1",
            ROLLOUT_REVISION_ANNOTATION,
            ROLLOUT_HASH_LABEL,
        )
        ro["status"] = {
            **(ro.get("status") or {} if self._manage_pods else self._replica_status(ro)),
            "observedGeneration": str(ro["metadata"].get("generation", 1)),
            "currentPodHash": tmpl_hash,
            "stableRS": tmpl_hash,
            "phase": "Healthy",
        }

    @staticmethod
    def _replica_status(obj: Obj) -> Obj:
        replicas = int(obj["spec"].get("replicas", 1))
        return {
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
        }

    def _replicaset_controller(
        self,
        owner: Obj,
        dry_run: bool,
        owner_kind: str,
        owner_api: str,
        revision_annotation: str,
        hash_label: str,
    ) -> tuple[int, str]:
        """Keep ``owner``'s ReplicaSets in step with its template; returns (revision, hash)."""
        meta = owner["metadata"]
        ns, name = meta["namespace"], meta["name"]
        spec = owner["spec"]
        replicas = int(spec.get("replicas", 1))
        template = copy.deepcopy(spec.get("template") or {})
        owned = [
            rs
            for (p, rns, _), rs in self._objects.items()
            if p == "replicasets"
            and rns == ns
            and any(
                o.get("kind") == owner_kind and o.get("name") == name
                for o in rs["metadata"].get("ownerReferences") or []
            )
        ]
        revisions = [
            int(rs["metadata"].get("annotations", {}).get(revision_annotation, "0")) for rs in owned
        ]
        top = max(revisions, default=0)
        # Found by template, not by hash: a ReplicaSet made under another hash is adopted.
        current = next(
            (
                rs
                for rs in owned
                if same_template((rs.get("spec") or {}).get("template") or {}, template, hash_label)
            ),
            None,
        )
        if current is not None:
            tmpl_hash = current["metadata"]["labels"][hash_label]
            revision = int(current["metadata"]["annotations"][revision_annotation])
            if revision != top:
                revision = top + 1
        else:
            tmpl_hash = template_hash(template, hash_label)
            revision = top + 1
        annotations = meta.setdefault("annotations", {})
        annotations[revision_annotation] = str(revision)
        if dry_run:
            return revision, tmpl_hash
        if self._manage_pods:  # the rolling update moves the counts (_settle)
            replicas = int(current["spec"].get("replicas", 0)) if current else 0
        for rs in owned:
            if rs is current or self._manage_pods:
                continue
            if rs["spec"].get("replicas", 0) != 0:
                rs["spec"]["replicas"] = 0
                rs["status"] = {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0}
                rs["metadata"]["resourceVersion"] = self._bump()
        rs_labels = {
            **(template.get("metadata") or {}).get("labels", {}),
            hash_label: tmpl_hash,
        }
        rs_template = copy.deepcopy(template)
        rs_template.setdefault("metadata", {})["labels"] = dict(rs_labels)
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[hash_label] = tmpl_hash
        rs_name = current["metadata"]["name"] if current else f"{name}-{tmpl_hash}"
        rs_obj: Obj = {
            "metadata": {
                "name": rs_name,
                "namespace": ns,
                "labels": rs_labels,
                "annotations": {revision_annotation: str(revision)},
                "ownerReferences": [
                    {
                        "apiVersion": owner_api,
                        "kind": owner_kind,
                        "name": name,
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {"replicas": replicas, "selector": selector, "template": rs_template},
        }
        key = ("replicasets", ns, rs_name)
        old = self._objects.get(key)
        if (
            old is not None
            and old["spec"] == rs_obj["spec"]
            and old["metadata"].get("annotations") == rs_obj["metadata"]["annotations"]
        ):
            return revision, tmpl_hash
        self._store(RESOURCES["replicasets"], key, rs_obj, old)
        return revision, tmpl_hash

    # -- controllers that need pods (manage_pods) --------------------------------------

    _OWNERS = (
        ("deployments", "Deployment", HASH_LABEL),
        ("rollouts", "Rollout", ROLLOUT_HASH_LABEL),
    )

    def _settle(self) -> None:
        """Run the controllers until nothing changes: HPAs hold their targets, rolling
        updates take their next step, ReplicaSets reach their pod counts, statuses follow."""
        for _ in range(50):
            before = self._rv
            for hpa in self._of("horizontalpodautoscalers"):
                self._hold(hpa)
            for plural, kind, hash_label in self._OWNERS:
                for owner in self._of(plural):
                    self._roll(plural, kind, hash_label, owner)
            pods = self._pods_by_owner()
            for rs in self._of("replicasets"):
                self._reconcile_pods(rs, pods.get(rs["metadata"]["uid"], []))
            if self._rv == before:
                return

    def _of(self, plural: str) -> Objs:
        return [o for (p, _, _), o in sorted(self._objects.items()) if p == plural]

    def _pods_by_owner(self) -> dict[str, Objs]:
        found: dict[str, Objs] = {}
        for pod in self._of("pods"):
            uid = owner_uid(pod, "ReplicaSet")
            if uid is not None:
                found.setdefault(uid, []).append(pod)
        return found

    def _hold(self, hpa: Obj) -> None:
        ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        plural = {"Deployment": "deployments", "Rollout": "rollouts"}.get(ref.get("kind", ""))
        key = (plural or "", hpa["metadata"]["namespace"], ref.get("name", ""))
        target = self._objects.get(key)
        if plural is None or target is None:
            return
        replicas = int(target["spec"].get("replicas", 1))
        held = held_replicas(hpa, replicas)
        status = {"currentReplicas": replicas, "desiredReplicas": held}
        if hpa.get("status") != status:
            hpa["status"] = status
            hpa["metadata"]["resourceVersion"] = self._bump()
        if held != replicas:
            new = copy.deepcopy(target)
            new["spec"]["replicas"] = held
            self._store(RESOURCES[plural], key, new, target)

    def _owned_replicasets(self, owner: Obj, kind: str) -> Objs:
        uid, ns = owner["metadata"]["uid"], owner["metadata"]["namespace"]
        return [
            rs
            for rs in self._of("replicasets")
            if rs["metadata"]["namespace"] == ns and owner_uid(rs, kind) == uid
        ]

    def _roll(self, plural: str, kind: str, hash_label: str, owner: Obj) -> None:
        """One step of the rolling update from the old ReplicaSets to the template's."""
        if owner["spec"].get("paused"):
            return  # a paused rollout takes no step: its ReplicaSets keep their counts
        template = owner["spec"].get("template") or {}
        owned = self._owned_replicasets(owner, kind)
        new = next(
            (
                rs
                for rs in owned
                if same_template(rs["spec"].get("template") or {}, template, hash_label)
            ),
            None,
        )
        if new is None:
            return
        revision = REVISION_ANNOTATION if kind == "Deployment" else ROLLOUT_REVISION_ANNOTATION
        olds = sorted(
            (rs for rs in owned if rs is not new),
            key=lambda rs: int((rs["metadata"].get("annotations") or {}).get(revision, "0")),
        )
        pods = self._pods_by_owner()

        def counts(rs: Obj) -> Counts:
            return Counts(
                int(rs["spec"].get("replicas", 0)), ready_count(pods.get(rs["metadata"]["uid"], []))
            )

        desired = int(owner["spec"].get("replicas", 1))
        surge, unavailable = rolling_bounds(owner["spec"].get("strategy"), desired)
        new_target, old_targets = rollout_step(
            desired, counts(new), [counts(rs) for rs in olds], surge, unavailable
        )
        for rs, target in ((new, new_target), *zip(olds, old_targets, strict=True)):
            if int(rs["spec"].get("replicas", 0)) != target:
                changed = copy.deepcopy(rs)
                changed["spec"]["replicas"] = target
                key = ("replicasets", rs["metadata"]["namespace"], rs["metadata"]["name"])
                self._store(RESOURCES["replicasets"], key, changed, rs)
        all_pods = [p for rs in owned for p in pods.get(rs["metadata"]["uid"], [])]
        updated = pods.get(new["metadata"]["uid"], [])
        status = {
            **(owner.get("status") or {}),
            "replicas": len(all_pods),
            "updatedReplicas": len(updated),
            "readyReplicas": ready_count(all_pods),
            "availableReplicas": ready_count(all_pods),
        }
        if owner.get("status") != status:
            owner["status"] = status
            owner["metadata"]["resourceVersion"] = self._bump()

    def _reconcile_pods(self, rs: Obj, pods: Objs) -> None:
        """Create or delete pods until ``rs`` has as many as its spec asks for."""
        ns = rs["metadata"]["namespace"]
        want = int(rs["spec"].get("replicas", 0))
        if len(pods) < want:
            taken = {name for (p, _, name) in self._objects if p == "pods"}
            for _ in range(want - len(pods)):
                pod = pod_for(rs, taken)
                name = pod["metadata"]["name"]
                taken.add(name)
                self._store(RESOURCES["pods"], ("pods", ns, name), pod, None)
                pods = [*pods, self._objects[("pods", ns, name)]]
        elif len(pods) > want:
            for pod in removal_order(pods)[: len(pods) - want]:
                del self._objects[("pods", ns, pod["metadata"]["name"])]
                self._bump()
            pods = [p for p in pods if ("pods", ns, p["metadata"]["name"]) in self._objects]
        ready = ready_count(pods)
        status = {
            "replicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        if rs.get("status") != status:
            rs["status"] = status
            rs["metadata"]["resourceVersion"] = self._bump()

    def _keda_operator(self, so: Obj) -> None:
        meta = so["metadata"]
        ns, name = meta["namespace"], meta["name"]
        spec = so["spec"]
        hpa_name = f"keda-hpa-{name}"
        key = ("horizontalpodautoscalers", ns, hpa_name)
        old = self._objects.get(key)
        hpa: Obj = {
            "metadata": {
                "name": hpa_name,
                "namespace": ns,
                "labels": {"scaledobject.keda.sh/name": name},
                "ownerReferences": [
                    {
                        "apiVersion": "keda.sh/v1alpha1",
                        "kind": "ScaledObject",
                        "name": name,
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "apps/v1",
                    "kind": spec["scaleTargetRef"].get("kind", "Deployment"),
                    "name": spec["scaleTargetRef"]["name"],
                },
                "minReplicas": max(1, int(spec.get("minReplicaCount", 0))),
                "maxReplicas": int(spec.get("maxReplicaCount", 100)),
            },
        }
        self._store(RESOURCES["horizontalpodautoscalers"], key, hpa, old)

    # -- HTTP --------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                body = raw.decode(errors="replace")
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            content_type=request.headers.get("Content-Type", ""),
            body=body,
        )
        if self._hang_s and not (self._hang_writes_only and request.method == "GET"):
            await asyncio.sleep(self._hang_s)  # an API server too slow to answer in time
        with self._change():
            self._requests.append(record)
            try:
                self._maybe_fail(request)
                status, payload = self._dispatch(request, body, record)
            except ApiFailure as exc:
                status, payload = (
                    exc.code,
                    status_body(exc.code, exc.reason, exc.message, exc.details),
                )
            record.status = status
        # Exactly "application/json", as the API server sends it (lightkube checks this).
        return web.Response(
            body=json.dumps(payload).encode(),
            status=status,
            headers={"Content-Type": "application/json"},
        )

    def _dispatch(
        self, request: web.Request, body: Any, record: RecordedRequest
    ) -> tuple[int, Obj]:
        m = _PATH.match(request.path)
        if m is None:
            raise ApiFailure(404, "NotFound", "the server could not find the requested resource")
        group = m.group("group") or ""
        version = m.group("cver") or m.group("ver")
        plural, name, sub, ns = m.group("plural"), m.group("name"), m.group("sub"), m.group("ns")
        rt = RESOURCES.get(plural)
        if rt is None or rt.group != group or rt.version != version:
            raise ApiFailure(404, "NotFound", "the server could not find the requested resource")
        if (not rt.namespaced and ns is not None) or (rt.namespaced and ns is None and name):
            raise ApiFailure(404, "NotFound", "the server could not find the requested resource")
        method = request.method
        verb = {
            "GET": "get" if name else "list",
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete",
        }.get(method)
        if verb is None:
            raise ApiFailure(405, "MethodNotAllowed", f"method {method} not allowed")
        if sub and sub not in ("scale", "eviction", "status"):
            raise ApiFailure(404, "NotFound", "the server could not find the requested resource")
        if (sub == "scale" and plural not in _SCALABLE) or (sub == "eviction" and plural != "pods"):
            raise ApiFailure(404, "NotFound", "the server could not find the requested resource")
        resource = f"{plural}/{sub}" if sub else plural
        self._authorize(request, verb, rt, resource, ns, name)

        dry_run_values = request.query.getall("dryRun", [])
        if any(v != "All" for v in dry_run_values):
            raise ApiFailure(400, "BadRequest", f"Invalid dry run value: {dry_run_values}")
        dry_run = bool(dry_run_values)
        if dry_run and verb in ("get", "list"):
            dry_run = False
        if verb in ("create", "update", "patch", "delete") and not dry_run:
            pending = self._conflicts.get(request.path, 0)
            if pending:
                self._conflicts[request.path] = pending - 1
                raise self._conflict(rt, name or "")
        nskey = ns or ""
        if name is None:
            if verb == "list":
                return 200, self._list(rt, nskey, request.query)
            if verb == "create":
                return self._create(rt, nskey, body, dry_run)
            raise ApiFailure(
                405, "MethodNotAllowed", f"method {method} not allowed on a collection"
            )
        if sub == "eviction":
            if verb != "create":
                raise ApiFailure(405, "MethodNotAllowed", "only POST is allowed on eviction")
            return self._evict(nskey, name, body, dry_run)
        key = (plural, nskey, name)
        current = self._objects.get(key)
        if current is None:
            raise ApiFailure(
                404,
                "NotFound",
                f'{rt.qualified} "{name}" not found',
                {"name": name, "group": rt.group, "kind": rt.plural},
            )
        if sub == "scale":
            return self._scale(rt, key, current, verb, body, dry_run, request)
        if verb == "get":
            return 200, self._with_kind(rt, current)
        if verb == "delete":
            if not dry_run:
                del self._objects[key]
                self._bump()
            return 200, self._with_kind(rt, current)
        if verb == "update":
            if not isinstance(body, dict):
                raise ApiFailure(400, "BadRequest", "the body of the request was not an object")
            new = copy.deepcopy(body)
            sent_rv = (new.get("metadata") or {}).get("resourceVersion")
            if not sent_rv:
                raise ApiFailure(
                    422,
                    "Invalid",
                    f'{rt.kind}.{rt.group or "core"} "{name}" is invalid: '
                    "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                )
        else:
            new = self._apply_patch(current, body, request.headers.get("Content-Type", ""))
            sent_rv = (
                ((body or {}).get("metadata") or {}).get("resourceVersion")
                if isinstance(body, dict)
                else None
            )
        if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
            raise self._conflict(rt, name)
        stored = self._store(rt, key, new, current, dry_run)
        return 200, stored

    def _authorize(
        self,
        request: web.Request,
        verb: str,
        rt: ResourceType,
        resource: str,
        ns: str | None,
        name: str | None,
    ) -> None:
        header = request.headers.get("Authorization", "")
        token = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
        grant = self._grants.get(token)
        if grant is None:
            raise ApiFailure(401, "Unauthorized", "Unauthorized")
        if grant.permits(verb, resource):
            return
        subject = f'{rt.qualified} "{name}"' if name else rt.qualified
        where = f'in the namespace "{ns}"' if ns else "at the cluster scope"
        raise ApiFailure(
            403,
            "Forbidden",
            f'{subject} is forbidden: User "{grant.user}" cannot {verb} resource '
            f'"{resource}" in API group "{rt.group}" {where}',
            {"name": name, "group": rt.group, "kind": resource}
            if name
            else {"group": rt.group, "kind": resource},
        )

    @staticmethod
    def _conflict(rt: ResourceType, name: str) -> ApiFailure:
        return ApiFailure(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {rt.qualified} "{name}": the object has been '
            "modified; please apply your changes to the latest version and try again",
            {"name": name, "group": rt.group, "kind": rt.plural},
        )

    def _list(self, rt: ResourceType, ns: str, query: Mapping[str, str]) -> Obj:
        labels = query.get("labelSelector")
        fields = query.get("fieldSelector")
        items = []
        for (p, ons, _), obj in sorted(self._objects.items()):
            if p != rt.plural or (rt.namespaced and ns and ons != ns):
                continue
            if labels and not label_selector_matches(labels, obj["metadata"].get("labels") or {}):
                continue
            if fields and not field_selector_matches(fields, obj):
                continue
            items.append(copy.deepcopy(obj))
        return {
            "kind": f"{rt.kind}List",
            "apiVersion": rt.api_version,
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }

    def _create(self, rt: ResourceType, ns: str, body: Any, dry_run: bool) -> tuple[int, Obj]:
        if not isinstance(body, dict):
            raise ApiFailure(400, "BadRequest", "the body of the request was not an object")
        meta = body.get("metadata") or {}
        name = meta.get("name")
        if not name and meta.get("generateName"):
            name = meta["generateName"] + uuid.uuid4().hex[:5]
        if not name:
            raise ApiFailure(422, "Invalid", f"{rt.kind} is invalid: metadata.name: Required value")
        if rt.namespaced and meta.get("namespace") not in (None, "", ns):
            raise ApiFailure(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent "
                "on the request",
            )
        key = (rt.plural, ns, name)
        if key in self._objects:
            raise ApiFailure(
                409,
                "AlreadyExists",
                f'{rt.qualified} "{name}" already exists',
                {"name": name, "group": rt.group, "kind": rt.plural},
            )
        obj = copy.deepcopy(body)
        obj.setdefault("metadata", {}).pop("resourceVersion", None)
        return 201, self._store(rt, key, obj, None, dry_run)

    @staticmethod
    def _apply_patch(current: Obj, body: Any, content_type: str) -> Obj:
        ctype = content_type.split(";")[0].strip()
        if ctype == "application/json-patch+json":
            return json_patch(current, body)
        if ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            if not isinstance(body, dict):
                raise ApiFailure(400, "BadRequest", "the patch was not a JSON object")
            patched = merge_patch(current, body)
            assert isinstance(patched, dict)
            return patched
        raise ApiFailure(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format: {ctype}",
        )

    def _scale(
        self,
        rt: ResourceType,
        key: tuple[str, str, str],
        current: Obj,
        verb: str,
        body: Any,
        dry_run: bool,
        request: web.Request,
    ) -> tuple[int, Obj]:
        def as_scale(obj: Obj) -> Obj:
            selector = (obj["spec"].get("selector") or {}).get("matchLabels") or {}
            return {
                "kind": "Scale",
                "apiVersion": "autoscaling/v1",
                "metadata": {
                    "name": obj["metadata"]["name"],
                    "namespace": obj["metadata"]["namespace"],
                    "uid": obj["metadata"]["uid"],
                    "resourceVersion": obj["metadata"]["resourceVersion"],
                    "creationTimestamp": obj["metadata"]["creationTimestamp"],
                },
                "spec": {"replicas": int(obj["spec"].get("replicas", 1))},
                "status": {
                    "replicas": int((obj.get("status") or {}).get("replicas", 0)),
                    "selector": ",".join(f"{k}={v}" for k, v in sorted(selector.items())),
                },
            }

        scale = as_scale(current)
        if verb == "get":
            return 200, scale
        if verb == "update":
            new_scale = body if isinstance(body, dict) else {}
        elif verb == "patch":
            new_scale = self._apply_patch(scale, body, request.headers.get("Content-Type", ""))
        else:
            raise ApiFailure(405, "MethodNotAllowed", f"{verb} not allowed on scale")
        sent_rv = (new_scale.get("metadata") or {}).get("resourceVersion")
        if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
            raise self._conflict(rt, key[2])
        replicas = (new_scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ApiFailure(
                422,
                "Invalid",
                f'Scale.autoscaling "{key[2]}" is invalid: spec.replicas: Invalid value: '
                f"{replicas}: must be greater than or equal to 0",
            )
        new = copy.deepcopy(current)
        new["spec"]["replicas"] = replicas
        stored = self._store(rt, key, new, current, dry_run)
        return 200, as_scale(stored)

    def _evict(self, ns: str, name: str, body: Any, dry_run: bool) -> tuple[int, Obj]:
        if not isinstance(body, dict) or body.get("kind") not in (None, "Eviction"):
            raise ApiFailure(400, "BadRequest", "the body of the request was not an Eviction")
        if (body.get("metadata") or {}).get("name") not in (None, name):
            raise ApiFailure(
                400, "BadRequest", "name in URL does not match name in Eviction object"
            )
        key = ("pods", ns, name)
        pod = self._objects.get(key)
        if pod is None:
            raise ApiFailure(
                404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"}
            )
        labels = pod["metadata"].get("labels") or {}
        pdbs = [
            obj
            for (p, pns, _), obj in sorted(self._objects.items())
            if p == "poddisruptionbudgets"
            and pns == ns
            and match_label_selector(obj["spec"].get("selector"), labels)
        ]
        if len(pdbs) > 1:
            raise ApiFailure(
                500,
                "InternalError",
                "This pod has more than one PodDisruptionBudget, which the eviction subresource "
                "does not support.",
            )
        if pdbs:
            pdb = pdbs[0]
            matching = [
                obj
                for (p, pns, _), obj in self._objects.items()
                if p == "pods"
                and pns == ns
                and match_label_selector(
                    pdb["spec"].get("selector"), obj["metadata"].get("labels") or {}
                )
            ]
            expected = len(matching)
            healthy = sum(1 for obj in matching if pod_ready(obj))
            spec = pdb["spec"]
            if "minAvailable" in spec:
                desired = scaled_count(spec["minAvailable"], expected)
            elif "maxUnavailable" in spec:
                desired = max(0, expected - scaled_count(spec["maxUnavailable"], expected))
            else:
                desired = 0
            allowed = healthy - desired
            blocked = allowed <= 0 if pod_ready(pod) else healthy < desired
            pdb["status"] = {
                "currentHealthy": healthy,
                "desiredHealthy": desired,
                "expectedPods": expected,
                "disruptionsAllowed": max(0, allowed),
            }
            if blocked:
                raise ApiFailure(
                    429,
                    "TooManyRequests",
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                    {
                        "causes": [
                            {
                                "reason": "DisruptionBudget",
                                "message": f"The disruption budget {pdb['metadata']['name']} "
                                f"needs {desired} healthy pods and has {healthy} currently",
                            }
                        ]
                    },
                )
        if not dry_run:
            del self._objects[key]
            self._bump()
        return 201, {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "code": 201,
        }
