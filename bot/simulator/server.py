"""The simulator's HTTP face: one port serving every exporter of the fleet.

Layout (documented in README.md, "Fleet simulator"):

- ``GET /replicas/{pod}/metrics``  one vLLM replica's /metrics (503 while it is down)
- ``GET /nodes/{node}/metrics``    one node's dcgm-exporter /metrics
- ``GET /sd/vllm``, ``GET /sd/dcgm`` Prometheus HTTP service discovery: one target per
  replica / node, each with its own ``__metrics_path__`` and ``instance``, ``namespace``,
  ``pod``, ``container`` labels, so Prometheus sees one scrape target (and one ``up``
  series) per exporter, exactly as with Kubernetes service discovery
- ``GET /scenario``  the ground truth of the running scenario (JSON)
- ``POST /scenario`` ``{"scenario": NAME, "seed": S}`` switches scenario at run time
- ``GET /fleet``  the fleet at a glance (JSON): per Deployment ``desired``, ``ready``,
  ``serving`` replicas, ``revision`` and ``image`` (desired/ready/revision from the
  Kubernetes API stand-in when a fleet twin runs, see ``bot.simulator.twin``), its pods;
  per node ``schedulable`` (false once cordoned) and each GPU's pod (``starting`` while
  its pod starts) and current ``faults``; the scenario's ground truth
- ``GET /kube-state-metrics/metrics``  kube-state-metrics' /metrics for the cluster,
  while a fleet twin runs (404 otherwise: a bare fleet has no Kubernetes objects)
- ``GET /sd/kube-state-metrics``  HTTP SD: that target while a fleet twin runs, else none
- ``GET /prometheus.yml`` a scrape configuration for this simulator
  (``?honor_labels=false``: the kube-prometheus-stack form; ``?cluster=NAME``: series
  labelled ``cluster=NAME`` by relabelling)
- ``GET /healthz``
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import yaml
from aiohttp import web

from bot.simulator.exposition import CONTENT_TYPE
from bot.simulator.fleet import Fleet
from bot.simulator.fleet_view import fleet_view
from bot.simulator.render import node_metrics, replica_metrics
from bot.simulator.scenarios import SCENARIOS, GroundTruth, apply_scenario

Clock = Callable[[], float]


class Simulator:
    """A fleet, its current scenario and the clock.

    ``lock`` guards the fleet: the HTTP handlers and a fleet twin (on another thread)
    read and change it, each holding the lock. ``kube_state_metrics``, set by a running
    fleet twin, renders kube-state-metrics' /metrics for its cluster.
    """

    def __init__(
        self,
        fleet: Fleet,
        scenario: str,
        seed: int,
        *,
        ecc_counters: bool = True,
        clock: Clock = time.time,
    ) -> None:
        self.fleet = fleet
        self.clock = clock
        self.ecc_counters = ecc_counters
        self.lock = threading.RLock()
        self.truth: GroundTruth = apply_scenario(fleet, scenario, seed, clock())
        self.kube_state_metrics: Callable[[], str] | None = None

    def switch(self, scenario: str, seed: int | None = None) -> GroundTruth:
        with self.lock:
            self.truth = apply_scenario(
                self.fleet, scenario, self.truth.seed if seed is None else seed, self.clock()
            )
            return self.truth

    def replica_exposition(self, pod: str) -> str | None:
        """The replica's metrics text; None while it is down; KeyError if unknown."""
        with self.lock:
            replica = self.fleet.replica(pod)
            if replica is None:
                raise KeyError(pod)
            now = self.clock()
            replica.advance(now)
            if not replica.available(now):
                return None
            return replica_metrics(replica)

    def node_exposition(self, name: str) -> str:
        with self.lock:
            node = self.fleet.node(name)
            if node is None:
                raise KeyError(name)
            now = self.clock()
            for gpu in node.gpus:
                if gpu.replica is not None:
                    gpu.replica.advance(now)
            return node_metrics(node, now, ecc_counters=self.ecc_counters)

    def view(self) -> dict[str, Any]:
        with self.lock:
            return fleet_view(self.fleet, self.truth, self.clock())

    def sd_vllm(self, address: str) -> list[dict[str, Any]]:
        with self.lock:
            return self._sd_vllm(address)

    def sd_dcgm(self, address: str) -> list[dict[str, Any]]:
        with self.lock:
            return self._sd_dcgm(address)

    def _sd_vllm(self, address: str) -> list[dict[str, Any]]:
        return [
            {
                "targets": [address],
                "labels": {
                    "__metrics_path__": f"/replicas/{r.pod}/metrics",
                    "instance": r.instance,
                    "namespace": r.namespace,
                    "pod": r.pod,
                    "container": "vllm",
                },
            }
            for r in self.fleet.replicas
        ]

    def _sd_dcgm(self, address: str) -> list[dict[str, Any]]:
        """One target per node exporter, labelled as Kubernetes SD labels the exporter's
        own pod (a DaemonSet pod in ``gpu-operator``), as on a real cluster."""
        return [
            {
                "targets": [address],
                "labels": {
                    "__metrics_path__": f"/nodes/{n.name}/metrics",
                    "instance": n.instance,
                    "namespace": EXPORTER_NAMESPACE,
                    "pod": exporter_pod(n.name),
                    "container": "nvidia-dcgm-exporter",
                },
            }
            for n in self.fleet.nodes
        ]

    def sd_kube_state_metrics(self, address: str) -> list[dict[str, Any]]:
        """One target while a fleet twin serves kube-state-metrics, else none."""
        if self.kube_state_metrics is None:
            return []
        return [
            {
                "targets": [address],
                "labels": {
                    "__metrics_path__": KUBE_STATE_METRICS_PATH,
                    "instance": KUBE_STATE_METRICS_INSTANCE,
                },
            }
        ]


EXPORTER_NAMESPACE = "gpu-operator"
KUBE_STATE_METRICS_PATH = "/kube-state-metrics/metrics"
KUBE_STATE_METRICS_INSTANCE = "kube-state-metrics:8080"


def exporter_pod(node: str) -> str:
    """The dcgm-exporter DaemonSet pod on ``node`` (a stable 5-character suffix)."""
    suffix = hashlib.sha256(node.encode()).hexdigest()[:5]
    return f"nvidia-dcgm-exporter-{suffix}"


def scrape_jobs(
    base_url: str, refresh: str, *, honor_labels: bool = True, cluster: str | None = None
) -> list[dict[str, Any]]:
    """The simulator's scrape jobs: vLLM, dcgm-exporter and kube-state-metrics (whose
    service discovery lists a target only while a fleet twin runs).

    ``honor_labels``: dcgm-exporter labels each GPU with the pod using it; ``True`` keeps
    those labels, ``False`` is the kube-prometheus-stack ServiceMonitor default (they
    arrive as ``exported_pod``/``exported_namespace``/``exported_container``).
    kube-state-metrics is always scraped with ``honor_labels: true`` (its series name the
    objects they describe in ``namespace``/``pod``), as kube-prometheus-stack does.
    ``cluster``: add a ``cluster`` label by relabelling (as a federating query layer
    presents each cluster's series), job names suffixed so several clusters' jobs can
    share one configuration while their ``job`` labels stay ``vllm``/``dcgm-exporter``/
    ``kube-state-metrics``.
    """
    base = base_url.rstrip("/")
    jobs: list[dict[str, Any]] = []
    for job, sd in (
        ("vllm", "vllm"),
        ("dcgm-exporter", "dcgm"),
        ("kube-state-metrics", "kube-state-metrics"),
    ):
        config: dict[str, Any] = {
            "job_name": f"{job}-{cluster}" if cluster else job,
            "http_sd_configs": [{"url": f"{base}/sd/{sd}", "refresh_interval": refresh}],
        }
        if sd == "dcgm":
            config["honor_labels"] = honor_labels
        elif sd == "kube-state-metrics":
            config["honor_labels"] = True
        if cluster:
            config["relabel_configs"] = [
                {"target_label": "job", "replacement": job},
                {"target_label": "cluster", "replacement": cluster},
            ]
        jobs.append(config)
    return jobs


def scrape_config(
    base_url: str | dict[str, str],
    interval_s: float = 15.0,
    *,
    honor_labels: bool = True,
) -> dict[str, Any]:
    """A Prometheus configuration that scrapes the simulator like a real fleet.

    ``base_url`` a simulator's URL, or cluster name → simulator URL: one Prometheus
    holding several clusters' series told apart only by their ``cluster`` label.
    """
    interval = f"{interval_s:g}s"
    timeout = f"{min(interval_s, 10.0):g}s"
    refresh = f"{max(1.0, min(interval_s, 30.0)):g}s"
    if isinstance(base_url, str):
        jobs = scrape_jobs(base_url, refresh, honor_labels=honor_labels)
    else:
        jobs = [
            job
            for cluster, url in base_url.items()
            for job in scrape_jobs(url, refresh, honor_labels=honor_labels, cluster=cluster)
        ]
    return {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": timeout,
            "evaluation_interval": interval,
        },
        "scrape_configs": jobs,
    }


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, indent=2) + "\n", status=status, content_type="application/json"
    )


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return _json({"error": message, **extra}, status=status)


def make_app(sim: Simulator) -> web.Application:
    routes = web.RouteTableDef()

    def address(request: web.Request) -> str:
        return request.host

    @routes.get("/")
    async def index(request: web.Request) -> web.Response:
        return _json(
            {
                "replicas": len(sim.fleet.replicas),
                "nodes": len(sim.fleet.nodes),
                "scenario": sim.truth.scenario,
                "scenarios": sorted(SCENARIOS),
                "endpoints": [
                    "/replicas/{pod}/metrics",
                    "/nodes/{node}/metrics",
                    "/sd/vllm",
                    "/sd/dcgm",
                    "/sd/kube-state-metrics",
                    KUBE_STATE_METRICS_PATH,
                    "/scenario",
                    "/fleet",
                    "/prometheus.yml",
                    "/healthz",
                ],
            }
        )

    @routes.get("/healthz")
    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    @routes.get("/replicas/{pod}/metrics")
    async def replica(request: web.Request) -> web.Response:
        try:
            text = sim.replica_exposition(request.match_info["pod"])
        except KeyError:
            return _error(404, f"no replica named {request.match_info['pod']!r}")
        if text is None:
            return web.Response(status=503, text="engine is down\n")
        return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})

    @routes.get("/nodes/{node}/metrics")
    async def node(request: web.Request) -> web.Response:
        try:
            text = sim.node_exposition(request.match_info["node"])
        except KeyError:
            return _error(404, f"no node named {request.match_info['node']!r}")
        return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})

    @routes.get("/sd/vllm")
    async def sd_vllm(request: web.Request) -> web.Response:
        return _json(sim.sd_vllm(address(request)))

    @routes.get("/sd/dcgm")
    async def sd_dcgm(request: web.Request) -> web.Response:
        return _json(sim.sd_dcgm(address(request)))

    @routes.get("/sd/kube-state-metrics")
    async def sd_kube_state_metrics(request: web.Request) -> web.Response:
        return _json(sim.sd_kube_state_metrics(address(request)))

    @routes.get(KUBE_STATE_METRICS_PATH)
    async def kube_state_metrics(request: web.Request) -> web.Response:
        render = sim.kube_state_metrics
        if render is None:
            return _error(404, "no cluster: kube-state-metrics is served while a fleet twin runs")
        return web.Response(body=render().encode(), headers={"Content-Type": CONTENT_TYPE})

    @routes.get("/scenario")
    async def get_scenario(request: web.Request) -> web.Response:
        return _json(sim.truth.model_dump())

    @routes.get("/fleet")
    async def get_fleet(request: web.Request) -> web.Response:
        return _json(sim.view())

    @routes.post("/scenario")
    async def post_scenario(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, 'body must be JSON: {"scenario": NAME, "seed": INT}')
        if not isinstance(body, dict) or not isinstance(body.get("scenario"), str):
            return _error(400, 'body must be {"scenario": NAME, "seed": INT}')
        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            return _error(400, "seed must be an integer")
        if body["scenario"] not in SCENARIOS:
            return _error(400, f"unknown scenario {body['scenario']!r}", known=sorted(SCENARIOS))
        return _json(sim.switch(body["scenario"], seed).model_dump())

    @routes.get("/prometheus.yml")
    async def prometheus_yml(request: web.Request) -> web.Response:
        try:
            interval = float(request.query.get("interval", "15"))
        except ValueError:
            interval = -1.0
        if not 0.1 <= interval <= 3600:
            return _error(400, "interval must be a number of seconds between 0.1 and 3600")
        honor = request.query.get("honor_labels", "true").lower()
        cluster = request.query.get("cluster", "")
        if honor not in ("true", "false") or not re.fullmatch(r"([a-z0-9][-a-z0-9_.]*)?", cluster):
            return _error(400, "honor_labels must be true or false; cluster a name such as east-1")
        url = f"http://{address(request)}"
        config = scrape_config(
            {cluster: url} if cluster else url, interval, honor_labels=honor == "true"
        )
        return web.Response(text=yaml.safe_dump(config, sort_keys=False), content_type="text/yaml")

    app = web.Application()
    app.add_routes(routes)
    return app
