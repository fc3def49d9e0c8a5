"""The simulator's HTTP face, served for real on a loopback port and driven with httpx."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml

from bot.simulator.exposition import CONTENT_TYPE
from bot.simulator.fleet import build_fleet
from bot.simulator.scenarios import SCENARIOS
from bot.simulator.server import Simulator, make_app
from bot.simulator.serving import BackgroundServer

from .promtext import declared_types, series, value

T0 = 1_700_000_000.0
SEED = 7


class TickingClock:
    """A deterministic clock: every reading is one second after the previous one."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@dataclass
class Served:
    sim: Simulator
    server: BackgroundServer
    http: httpx.Client

    def truth(self) -> dict[str, Any]:
        """The simulator's current ground truth, read on the server's own loop."""
        result: dict[str, Any] = self.server.call(lambda: self.sim.truth.model_dump())
        return result


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Served:
    fleet = build_fleet(replicas=3, gpus_per_replica=4, legacy_fraction=0.5, seed=SEED, now=T0)
    sim = Simulator(fleet, "healthy", SEED, clock=TickingClock(T0))
    server = BackgroundServer(make_app(sim)).start()
    request.addfinalizer(server.stop)
    http = httpx.Client(base_url=server.url, timeout=10.0)
    request.addfinalizer(http.close)
    return Served(sim, server, http)


def json_of(response: httpx.Response) -> Any:
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


# --- index and discovery ------------------------------------------------------------------


def test_index_describes_the_fleet(served: Served) -> None:
    response = served.http.get("/")
    assert response.status_code == 200
    body = json_of(response)
    assert body["replicas"] == 3
    assert body["nodes"] == 2
    assert body["scenario"] == "healthy"
    assert body["scenarios"] == sorted(SCENARIOS)
    assert {"/sd/vllm", "/sd/dcgm", "/scenario", "/prometheus.yml"} <= set(body["endpoints"])
    assert served.http.get("/healthz").text == "ok\n"


def test_sd_vllm_lists_one_target_per_replica(served: Served) -> None:
    response = served.http.get("/sd/vllm")
    assert response.status_code == 200
    groups = json_of(response)
    fleet = served.sim.fleet
    assert len(groups) == len(fleet.replicas)
    address = served.server.url.removeprefix("http://")
    by_pod = {r.pod: r for r in fleet.replicas}
    for group in groups:
        assert group["targets"] == [address]
        labels = group["labels"]
        replica = by_pod[labels["pod"]]
        assert labels["__metrics_path__"] == f"/replicas/{replica.pod}/metrics"
        assert labels["instance"] == f"{replica.pod}:8000"
        assert labels["namespace"] == replica.namespace == "inference"
    assert {g["labels"]["pod"] for g in groups} == set(by_pod)
    assert len({g["labels"]["instance"] for g in groups}) == len(groups)


def test_sd_dcgm_lists_one_target_per_node(served: Served) -> None:
    groups = json_of(served.http.get("/sd/dcgm"))
    nodes = [n.name for n in served.sim.fleet.nodes]
    assert len(groups) == len(nodes) == 2
    paths = [g["labels"]["__metrics_path__"] for g in groups]
    assert paths == [f"/nodes/{name}/metrics" for name in nodes]
    assert [g["labels"]["instance"] for g in groups] == [f"{name}:9400" for name in nodes]


def test_every_discovered_metrics_path_serves_text_exposition(served: Served) -> None:
    targets = json_of(served.http.get("/sd/vllm")) + json_of(served.http.get("/sd/dcgm"))
    assert len(targets) == 5
    for target in targets:
        labels = target["labels"]
        response = served.http.get(labels["__metrics_path__"])
        assert response.status_code == 200, labels
        content_type = response.headers["content-type"]
        assert content_type.startswith("text/plain")
        assert "version=0.0.4" in content_type
        assert content_type == CONTENT_TYPE
        types = declared_types(response.text)
        if labels["__metrics_path__"].startswith("/replicas/"):
            assert types["vllm:num_requests_running"] == "gauge"
            assert value(response.text, "vllm:num_requests_running") > 0
        else:
            node = labels["instance"].removesuffix(":9400")
            utils = series(response.text, "DCGM_FI_DEV_GPU_UTIL")
            assert len(utils) == 8
            assert all(node in (u.get("hostname"), u.get("Hostname")) for u, _ in utils)


@pytest.mark.parametrize("path", ["/replicas/vllm-nope-123/metrics", "/nodes/gpu-node-999/metrics"])
def test_unknown_exporters_are_404_with_a_json_error(served: Served, path: str) -> None:
    response = served.http.get(path)
    assert response.status_code == 404
    error = json_of(response)["error"]
    assert path.split("/")[2] in error


# --- scenarios ----------------------------------------------------------------------------


def test_post_scenario_switches_and_returns_the_ground_truth(served: Served) -> None:
    response = served.http.post("/scenario", json={"scenario": "xid_48", "seed": 3})
    assert response.status_code == 200
    truth = json_of(response)
    assert (truth["scenario"], truth["seed"], truth["action"]) == ("xid_48", 3, "drain")
    assert json_of(served.http.get("/scenario")) == truth
    assert served.truth() == truth

    [fault] = truth["faults"]
    text = served.http.get(f"/nodes/{fault['node']}/metrics").text
    assert value(text, "DCGM_FI_DEV_XID_ERRORS", gpu=fault["gpu"]) == 48

    # without a seed the current one is kept
    again = json_of(served.http.post("/scenario", json={"scenario": "healthy"}))
    assert (again["scenario"], again["seed"], again["faults"]) == ("healthy", 3, [])
    assert json_of(served.http.get("/scenario")) == again


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"scenario": "xid_48"', "body must be JSON"),
        (b"", "body must be JSON"),
        (b"\xff\xfe not utf-8", "body must be JSON"),
        (b'["xid_48"]', 'body must be {"scenario"'),
        (b'"xid_48"', 'body must be {"scenario"'),
        (b'{"scenario": 48}', 'body must be {"scenario"'),
        (b'{"seed": 1}', 'body must be {"scenario"'),
        (b'{"scenario": "xid_48", "seed": "3"}', "seed must be an integer"),
        (b'{"scenario": "xid_48", "seed": 1.5}', "seed must be an integer"),
    ],
)
def test_bad_scenario_requests_are_400_and_change_nothing(
    served: Served, body: bytes, message: str
) -> None:
    before = json_of(served.http.get("/scenario"))
    response = served.http.post(
        "/scenario", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert message in json_of(response)["error"]
    assert json_of(served.http.get("/scenario")) == before


def test_unknown_scenario_is_400_and_lists_the_known_ones(served: Served) -> None:
    response = served.http.post("/scenario", json={"scenario": "xid_4800"})
    assert response.status_code == 400
    body = json_of(response)
    assert "xid_4800" in body["error"]
    assert body["known"] == sorted(SCENARIOS)
    assert served.truth()["scenario"] == "healthy"


def test_boolean_seed_is_rejected(served: Served) -> None:
    response = served.http.post("/scenario", json={"scenario": "xid_48", "seed": True})
    assert response.status_code == 400


def test_a_replica_that_is_down_answers_503(served: Served) -> None:
    truth = json_of(served.http.post("/scenario", json={"scenario": "xid_79"}))
    [fault] = truth["faults"]
    assert fault["pod"] in {r.pod for r in served.sim.fleet.replicas}
    for replica in served.sim.fleet.replicas:
        response = served.http.get(f"/replicas/{replica.pod}/metrics")
        assert response.status_code == (503 if replica.pod == fault["pod"] else 200)
    node = served.http.get(f"/nodes/{fault['node']}/metrics")
    assert node.status_code == 200
    assert value(node.text, "DCGM_FI_DEV_XID_ERRORS", gpu=fault["gpu"]) == 79

    served.http.post("/scenario", json={"scenario": "healthy"})
    assert served.http.get(f"/replicas/{fault['pod']}/metrics").status_code == 200


# --- scrape configuration -----------------------------------------------------------------


def test_prometheus_yml_scrapes_every_exporter(served: Served) -> None:
    response = served.http.get("/prometheus.yml", params={"interval": "5"})
    assert response.status_code == 200
    config = yaml.safe_load(response.text)
    assert config["global"]["scrape_interval"] == "5s"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"vllm", "dcgm-exporter", "kube-state-metrics"}
    assert jobs["dcgm-exporter"]["honor_labels"] is True
    assert jobs["kube-state-metrics"]["honor_labels"] is True  # its series name their objects
    assert not jobs["vllm"].get("honor_labels", False)
    base = served.server.url
    assert jobs["vllm"]["http_sd_configs"][0]["url"] == f"{base}/sd/vllm"
    assert jobs["dcgm-exporter"]["http_sd_configs"][0]["url"] == f"{base}/sd/dcgm"
    ksm = jobs["kube-state-metrics"]["http_sd_configs"][0]["url"]
    assert ksm == f"{base}/sd/kube-state-metrics"
    # a fleet without a twin has no cluster objects: nothing to scrape there
    assert served.http.get("/sd/kube-state-metrics").json() == []


def test_prometheus_yml_defaults_to_a_15_second_interval(served: Served) -> None:
    config = yaml.safe_load(served.http.get("/prometheus.yml").text)
    assert config["global"]["scrape_interval"] == "15s"
    assert config["global"]["scrape_timeout"] == "10s"


def test_prometheus_yml_rejects_a_bad_interval(served: Served) -> None:
    response = served.http.get("/prometheus.yml", params={"interval": "abc"})
    assert response.status_code == 400
