"""The fleet twin: a Kubernetes API stand-in whose cluster *is* the simulated fleet.

What the bot does to the cluster happens to the fleet its Prometheus scrapes::

    sim = Simulator(build_fleet(..., spare_nodes=2, now=time.time()), "healthy", seed)
    server = BackgroundServer(make_app(sim)).start()      # /metrics, /sd/*, /fleet
    twin = FleetTwin(sim, startup_delay_s=15).start()
    twin.kubernetes.url, twin.token                       # kube_api_url, kube_token
    ...
    twin.stop(); server.stop()

``start()`` seeds the stand-in from the fleet (see ``twin_seed``: namespace, nodes, a
Deployment per model with two revisions, its pods named as the fleet's, PDBs, an HPA) and
starts a thread that plays scheduler and kubelet, keeping the two in step:

* a new pod (the stand-in's ReplicaSets create them: scale, rollout, a replacement after
  an eviction or deletion) is bound to free GPUs of a schedulable node (none free: it
  stays Pending, Unschedulable, until some are); ``startup_delay_s`` later — the model
  loading — it becomes a scrape target, takes its share of its Deployment's demand, and
  its pod turns Ready;
* a pod that goes (scale-in, eviction, deletion, a rollout replacing it) leaves the fleet;
  an application Xid it hit goes with it;
* a cordoned node takes no new replica; a GPU with a hardware fault is never allocated;
* a replica that is down (crash, lost GPU) has its pod reported not Ready.

A scenario whose fault is a revision (``bad_rollout``) says that revision rolled out when
the scenario began: its ReplicaSet and pods carry that creation time while the scenario
runs, and their own again once another scenario runs.

A canary scenario (``canary_bad``, ``canary_good``) rolls one pod of its Deployment to
the canary image and pauses the rollout (``twin_canary``): two revisions serve side by
side; another scenario rolls the Deployment back to the revision before.

While it runs the twin is the cluster's kube-state-metrics too: the simulator serves
:meth:`FleetTwin.kube_state_metrics` (the stand-in's objects as kube-state-metrics exposes
them) at ``/kube-state-metrics/metrics`` and lists it in ``/sd/kube-state-metrics``.

``token`` is a bearer token that may do everything (an admin's); a pod's image is the
replica's, so a rollback changes the revision that serves. Thread-safety: the fleet is
changed only under ``sim.lock``; the stand-in has its own lock, always taken second.
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass

from bot.simulator import kube_state_metrics as ksm
from bot.simulator.fleet import Fleet, Gpu, Workload
from bot.simulator.kube_objects import REVISION_ANNOTATION, Obj, pod_ready
from bot.simulator.kubernetes_api import KubernetesStandIn
from bot.simulator.scenarios import BAD_REVISION, CANARY_IMAGE, CANARY_REVISION, GroundTruth
from bot.simulator.server import Simulator
from bot.simulator.serving import StartStop
from bot.simulator.twin_canary import end_canary, start_canary
from bot.simulator.twin_seed import iso, seed_objects

log = logging.getLogger(__name__)

DEFAULT_STARTUP_DELAY_S = 15.0
CANARY_PODS = 1  # pods a canary scenario moves to the new revision


@dataclass
class _Starting:
    deployment: str
    gpus: list[Gpu]
    image: str
    ready_at: float


@dataclass(frozen=True)
class _Pod:
    """What the twin reads of a pod (a projection: no copy of the object)."""

    name: str
    app: str
    node: str | None
    ready: bool
    image: str
    created: str


def _pod(obj: Obj) -> _Pod:
    meta = obj["metadata"]
    return _Pod(
        name=meta["name"],
        app=(meta.get("labels") or {}).get("app", ""),
        node=(obj.get("spec") or {}).get("nodeName"),
        ready=pod_ready(obj),
        image=str(obj["spec"]["containers"][0]["image"]),
        created=meta.get("creationTimestamp", ""),
    )


def _workload(obj: Obj) -> tuple[str, Workload]:
    return obj["metadata"]["name"], Workload(
        desired=int(obj["spec"].get("replicas", 0)),
        ready=int((obj.get("status") or {}).get("readyReplicas", 0)),
        revision=(obj["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION, ""),
        image=str(obj["spec"]["template"]["spec"]["containers"][0]["image"]),
    )


def _cordoned(obj: Obj) -> tuple[str, bool]:
    return obj["metadata"]["name"], bool((obj.get("spec") or {}).get("unschedulable"))


@dataclass(frozen=True)
class _Dates:
    """When an object was created (and, for a pod, started)."""

    created: str
    started: str | None = None


def _replicaset_of(pod: Obj) -> str | None:
    for ref in pod["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == "ReplicaSet" and ref.get("controller"):
            return str(ref.get("name"))
    return None


class FleetTwin(StartStop):
    """``startup_delay_s``: from a pod's binding to its replica serving (and Ready);
    ``resync_s``: how often readiness is re-checked when nothing else happens."""

    def __init__(
        self,
        sim: Simulator,
        *,
        startup_delay_s: float = DEFAULT_STARTUP_DELAY_S,
        resync_s: float = 1.0,
        token: str | None = None,
    ) -> None:
        self.sim = sim
        self.startup_delay_s = startup_delay_s
        self.resync_s = resync_s
        self.token = token or secrets.token_urlsafe(24)
        self.kubernetes = KubernetesStandIn(manage_pods=True, admin_token=self.token)
        self._starting: dict[str, _Starting] = {}
        self._dated_for: GroundTruth | None = None
        self._redated: dict[tuple[str, str], _Dates] = {}  # (plural, name) → own dates
        self._canary_for: GroundTruth | None = None
        self._canary: tuple[str, str] | None = None  # (Deployment, its stable ReplicaSet)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def fleet(self) -> Fleet:
        return self.sim.fleet

    def start(self) -> FleetTwin:
        with self.sim.lock:
            self.kubernetes.load(seed_objects(self.fleet, self.sim.clock()))
        self.kubernetes.subscribe(self._wake.set)
        self.kubernetes.start()
        self.reconcile()
        self._thread = threading.Thread(target=self._run, name="FleetTwin", daemon=True)
        self._thread.start()
        self.sim.kube_state_metrics = self.kube_state_metrics
        return self

    def stop(self) -> None:
        if self.sim.kube_state_metrics == self.kube_state_metrics:
            self.sim.kube_state_metrics = None
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.kubernetes.stop()

    def kube_state_metrics(self) -> str:
        """What kube-state-metrics would serve for the stand-in's objects now."""
        samples: list[ksm.Sample] = []
        for plural, fn in (
            ("pods", ksm.pod_samples),
            ("replicasets", ksm.replicaset_samples),
            ("deployments", ksm.deployment_samples),
            ("nodes", ksm.node_samples),
        ):
            for found in self.kubernetes.project(plural, None, fn):
                samples += found
        return ksm.exposition(samples)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                wait = self.reconcile()
            except Exception:  # keep playing the cluster; the next change retries
                log.exception("fleet twin: reconcile failed")
                wait = self.resync_s
            self._wake.wait(wait)
            self._wake.clear()

    def reconcile(self) -> float:
        """Bring the fleet and the stand-in in step; returns seconds until due again."""
        with self.sim.lock:
            now = self.sim.clock()
            pods = {
                p.name: p
                for p in self.kubernetes.project("pods", self.fleet.namespace, _pod)
                if p.app in self.fleet.models
            }
            self._sync_revision_dates()
            self._sync_canary()
            self._sync_nodes()
            self._drop_gone(pods)
            self._serve_started(now)
            self._bind_pending(pods, now)
            self._sync_readiness(pods, now)
            self._sync_workloads()
            due = [s.ready_at - now for s in self._starting.values()]
        return max(0.05, min([self.resync_s, *due]))

    def _sync_revision_dates(self) -> None:
        """Date the revision a scenario's fault is (its ReplicaSet and pods) to when the
        scenario began; give what an earlier scenario dated its own dates back."""
        truth = self.sim.truth
        if truth is self._dated_for:
            return
        self._dated_for = truth
        ns = self.fleet.namespace
        when = iso(truth.started_at)
        wanted: dict[tuple[str, str], _Dates] = {}
        for fault in truth.faults:
            pod = self.kubernetes.get("pods", ns, fault.pod) if fault.pod else None
            if fault.kind != BAD_REVISION or pod is None:
                continue
            wanted[("pods", pod["metadata"]["name"])] = _Dates(when, when)
            replicaset = _replicaset_of(pod)
            if replicaset is not None:
                wanted[("replicasets", replicaset)] = _Dates(when)
        for key in [k for k in self._redated if k not in wanted]:
            self._date(key, self._redated.pop(key))
        for key, dates in wanted.items():
            own = self._date(key, dates)
            if own is not None:
                self._redated.setdefault(key, own)

    def _sync_canary(self) -> None:
        """A canary scenario rolls its Deployment's first pod to the canary image and
        pauses; another scenario rolls the Deployment back to its stable revision."""
        truth = self.sim.truth
        if truth is self._canary_for:
            return
        self._canary_for = truth
        ns = self.fleet.namespace
        wanted = next((f.deployment for f in truth.faults if f.kind == CANARY_REVISION), None)
        if self._canary is not None and self._canary[0] != wanted:
            end_canary(self.kubernetes, ns, *self._canary)
            self._canary = None
        if wanted is not None and self._canary is None:
            stable = start_canary(self.kubernetes, ns, wanted, CANARY_IMAGE, CANARY_PODS)
            self._canary = (wanted, stable) if stable is not None else None

    def _date(self, key: tuple[str, str], dates: _Dates) -> _Dates | None:
        """Set an object's dates; returns those it had (None: it is gone)."""
        plural, name = key
        ns = self.fleet.namespace
        created = self.kubernetes.set_created(plural, ns, name, dates.created)
        if created is None:
            return None
        started: list[str | None] = [None]

        def start(pod: Obj) -> None:
            status = pod.setdefault("status", {})
            started[0] = status.get("startTime")
            if dates.started is not None:
                status["startTime"] = dates.started

        if plural == "pods":
            self.kubernetes.update(plural, ns, name, start)
        return _Dates(created, started[0])

    def _sync_nodes(self) -> None:
        for name, cordoned in self.kubernetes.project("nodes", None, _cordoned):
            node = self.fleet.node(name)
            if node is not None:
                node.schedulable = not cordoned

    def _drop_gone(self, pods: dict[str, _Pod]) -> None:
        for replica in list(self.fleet.replicas):
            if replica.pod not in pods:
                self.fleet.leave(replica.pod)
        for name in [n for n in self._starting if n not in pods]:
            for gpu in self._starting.pop(name).gpus:
                gpu.reserved_for = None

    def _serve_started(self, now: float) -> None:
        for name, starting in sorted(self._starting.items()):
            if starting.ready_at > now:
                continue
            del self._starting[name]
            self.fleet.join(name, starting.deployment, starting.gpus, now, starting.image)
            self._set_ready(name, True)

    def _bind_pending(self, pods: dict[str, _Pod], now: float) -> None:
        pending = sorted(
            (p for p in pods.values() if not p.node), key=lambda p: (p.created, p.name)
        )
        for pod in pending:
            name = pod.name
            gpus = self.fleet.free_slot()
            if gpus is None:
                self.kubernetes.update("pods", self.fleet.namespace, name, self._unschedulable)
                continue
            for gpu in gpus:
                gpu.reserved_for = name
            node = gpus[0].node

            def bind(p: Obj, node: str = node) -> None:
                p["spec"]["nodeName"] = node
                p["status"] = {
                    "phase": "Running",
                    "startTime": iso(now),
                    "conditions": [
                        {"type": "PodScheduled", "status": "True"},
                        {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
                    ],
                }

            if self.kubernetes.update("pods", self.fleet.namespace, name, bind) is None:
                for gpu in gpus:
                    gpu.reserved_for = None
                continue
            self._starting[name] = _Starting(pod.app, gpus, pod.image, now + self.startup_delay_s)

    def _unschedulable(self, pod: Obj) -> None:
        nodes = len(self.fleet.nodes)
        pod["status"] = {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": f"0/{nodes} nodes are available: {nodes} Insufficient "
                    "nvidia.com/gpu or node(s) were unschedulable",
                }
            ],
        }

    def _sync_readiness(self, pods: dict[str, _Pod], now: float) -> None:
        for replica in self.fleet.replicas:
            pod = pods.get(replica.pod)
            up = replica.available(now)
            if pod is not None and pod.ready != up:
                self._set_ready(replica.pod, up)

    def _set_ready(self, name: str, ready: bool) -> None:
        def change(pod: Obj) -> None:
            conditions = [
                c for c in (pod.get("status") or {}).get("conditions") or [] if c["type"] != "Ready"
            ]
            conditions.append({"type": "Ready", "status": "True" if ready else "False"})
            pod.setdefault("status", {})["conditions"] = conditions

        self.kubernetes.update("pods", self.fleet.namespace, name, change)

    def _sync_workloads(self) -> None:
        found = dict(self.kubernetes.project("deployments", self.fleet.namespace, _workload))
        self.fleet.workloads = {d: found[d] for d in self.fleet.deployments if d in found}
