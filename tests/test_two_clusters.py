"""Two clusters in one Prometheus, told apart only by their `cluster` label (added per
scrape job by relabelling, as a federating query layer presents them): two simulated
fleets built with the same seed, so namespace, Deployment, pod and node names are
identical inside. No configuration names the clusters: `cluster=` picks series by label.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from bot_runner import BotRunner
from fakes.slack import FakeSlack, block_action_body, send_signed, slash_command_body
from fleet_stack import eventually

from bot.cli import main
from bot.config import LabelConventions
from bot.diagnosis.engine import DiagnosisOptions, diagnose
from bot.diagnosis.promql import with_conventions
from bot.diagnosis.runbooks import load_runbooks
from bot.models import Diagnosis, RecommendedAction, Scope
from bot.remediation.audit import AuditLog
from bot.simulator.fleet import build_fleet
from bot.simulator.kubernetes_api import ADMIN_TOKEN, KubernetesStandIn
from bot.simulator.prometheus_runner import PrometheusRunner
from bot.simulator.scenarios import GroundTruth
from bot.simulator.server import Simulator, make_app
from bot.simulator.serving import BackgroundServer
from bot.slack import ids
from bot.sources.prometheus import PrometheusSource

pytestmark = [pytest.mark.prometheus]

SECRET = "two-clusters-secret"
CHANNEL = "C0TWOCLU1"
FLEET: dict[str, Any] = {"replicas": 4, "gpus_per_replica": 4, "seed": 11}


@dataclass
class TwoClusters:
    simulators: dict[str, Simulator]
    servers: dict[str, BackgroundServer]
    prometheus: PrometheusRunner

    def switch(self, cluster: str, scenario: str, seed: int = 3) -> GroundTruth:
        sim = self.simulators[cluster]
        truth: GroundTruth = self.servers[cluster].call(lambda: sim.switch(scenario, seed))
        return truth


@pytest.fixture(scope="module")
def federated(prometheus_binary: str) -> Iterator[TwoClusters]:
    now = time.time()
    simulators = {
        c: Simulator(build_fleet(now=now, **FLEET), "healthy", 11) for c in ("east", "west")
    }
    servers = {c: BackgroundServer(make_app(s)).start() for c, s in simulators.items()}
    prometheus = PrometheusRunner(
        {c: s.url for c, s in servers.items()}, scrape_interval_s=1.0, binary=prometheus_binary
    )
    try:
        prometheus.start()
        fleet = simulators["east"].fleet
        prometheus.wait_for_targets(2 * (len(fleet.replicas) + len(fleet.nodes)))
        yield TwoClusters(simulators, servers, prometheus)
    finally:
        prometheus.stop()
        for server in servers.values():
            server.stop()


def diagnosed(url: str, runbook: str, scope: Scope) -> Diagnosis:
    source = PrometheusSource(url, timeout_s=10)
    try:
        rb = load_runbooks()[runbook]
        return asyncio.run(diagnose(rb, scope, source, DiagnosisOptions(window="20s")))
    finally:
        source.close()


def drains(d: Diagnosis) -> list[RecommendedAction]:
    return [a for a in d.actions if a.kind == "drain"]


@pytest.fixture
def no_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VLLM_CHATOPS_CONFIG", "PROMETHEUS_URL"):
        monkeypatch.delenv(name, raising=False)


def cli_json(
    federated: TwoClusters, capsys: pytest.CaptureFixture[str], runbook: str, *scope: str
) -> tuple[int, dict[str, object]]:
    args = ["diagnose", runbook, "--prometheus", federated.prometheus.url, "--format", "json"]
    code = main([*args, *(a for s in scope for a in ("--scope", s)), "--window", "20s"])
    return code, json.loads(capsys.readouterr().out)


def test_the_stack_holds_both_clusters_with_identical_names(federated: TwoClusters) -> None:
    east, west = (federated.simulators[c].fleet for c in ("east", "west"))
    assert [r.pod for r in east.replicas] == [r.pod for r in west.replicas]
    rows = federated.prometheus.query("count by (cluster) (vllm:num_requests_waiting)")
    assert {r["metric"]["cluster"]: r["value"][1] for r in rows} == {"east": "4", "west": "4"}


@pytest.mark.usefixtures("no_config")
def test_cluster_scope_works_without_a_config_file(
    federated: TwoClusters, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = cli_json(federated, capsys, "fleet_status", "cluster=west")
    assert code in (0, 1)
    assert report["scope"] == {"cluster": "west"}
    checks = {c["id"]: c for c in report["checks"]}  # type: ignore[attr-defined]
    # the 4 replicas of west, not the 8 of both clusters
    assert checks["queue_depth"]["facts"]["targets"] == 4, checks["queue_depth"]
    assert any('cluster="west"' in q for q in checks["queue_depth"]["queries"])


@pytest.mark.usefixtures("no_config")
def test_a_cluster_the_data_does_not_hold_is_refused_naming_those_it_holds(
    federated: TwoClusters, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["diagnose", "fleet_status", "--prometheus", federated.prometheus.url,
         "--scope", "cluster=north"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert '"north"' in err and "east, west" in err, err


@dataclass
class World:
    """The bot configured with one cluster (east), reading the federated Prometheus."""

    slack: FakeSlack
    east: KubernetesStandIn
    bot: BotRunner
    db: str

    def slash(self, text: str, user: str = "U1") -> str:
        """Send `/vllm TEXT`; the response_url its replies go to."""
        response_url = self.slack.new_response_url()
        body = slash_command_body(
            text,
            user_id=user,
            channel_id=CHANNEL,
            response_url=response_url,
            trigger_id=self.slack.new_trigger_id(),
        )
        assert send_signed(f"{self.bot.url}/slack/events", body, SECRET).status == 200
        return response_url

    def reply_to(self, response_url: str) -> str:
        def found() -> str:
            rid = response_url.rsplit("/", 1)[-1]
            replies = [r for r in self.slack.responses if r.response_id == rid]
            assert replies, "no reply yet"
            return json.dumps(replies[-1].body)

        return eventually(found, timeout_s=15)

    def report(self, before: set[str], needle: str) -> str:
        """The text of the first new channel message mentioning ``needle``, once final."""

        def found() -> str:
            for m in self.slack.messages(CHANNEL):
                text = json.dumps(m.blocks)
                if m.ts not in before and needle in text and "still running" not in text:
                    return text
            raise AssertionError(f"no report mentioning {needle} yet")

        return eventually(found, timeout_s=40)


@pytest.fixture(scope="module")
def world(federated: TwoClusters, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    slack = FakeSlack().start()
    east = KubernetesStandIn().start()
    db = f"sqlite:///{tmp_path_factory.mktemp('two-clusters') / 'bot.db'}"
    bot = BotRunner(
        slack_bot_token=slack.token,
        slack_signing_secret=SECRET,
        slack_api_url=slack.api_url,
        prometheus_url=federated.prometheus.url,
        alerts_token="t",
        default_channel=CHANNEL,
        database_url=db,
        diagnosis_window="20s",
        clusters=[{"name": "east", "kube_api_url": east.url, "kube_token": ADMIN_TOKEN}],
        policy={"grants": [{"users": ["U1"], "kinds": ["drain"]}], "approvals": []},
    ).start()
    yield World(slack, east, bot, db)
    bot.stop()
    east.stop()
    slack.stop()


def test_slack_refuses_a_cluster_the_data_does_not_hold(world: World) -> None:
    reply = world.reply_to(world.slash("diagnose fleet_status cluster=north"))
    assert "north" in reply and "east, west" in reply, reply
    assert "Traceback" not in reply


def test_slack_diagnoses_a_cluster_no_config_names_by_its_label(world: World) -> None:
    before = {m.ts for m in world.slack.messages(CHANNEL)}
    world.slash("diagnose fleet_status cluster=west")
    report = world.report(before, "cluster=west")
    # one cluster's 4 replicas and 16 GPUs, not both clusters' 8 and 32
    assert "across 4 replicas" in report and "16 GPUs" in report, report


def test_a_fault_in_west_is_acted_on_in_west_only(federated: TwoClusters) -> None:
    federated.switch("east", "healthy")
    (fault,) = federated.switch("west", "xid_48").faults
    url = federated.prometheus.url

    def seen_in_west() -> Diagnosis:
        d = diagnosed(url, "gpu_hardware_failure", Scope(cluster="west"))
        xid = next(c for c in d.checks if c.id == "xid_errors")
        assert drains(d) and xid.status == "crit", [c.summary for c in d.checks]
        return d

    west = eventually(seen_in_west, timeout_s=30)
    assert [(a.target, a.cluster) for a in drains(west)] == [(f"node/{fault.node}", "west")]
    # the same node name exists in east, where nothing is wrong: nothing to do there
    east = diagnosed(url, "gpu_hardware_failure", Scope(cluster="east"))
    xid = next(c for c in east.checks if c.id == "xid_errors")
    assert xid.status == "ok" and xid.facts.get("targets", 16) == 16, xid.summary
    assert east.actions == []
    # unscoped, the drain says where the problem is
    fleet = diagnosed(url, "gpu_hardware_failure", Scope())
    assert [(a.target, a.cluster) for a in drains(fleet)] == [(f"node/{fault.node}", "west")]
    worst = next(c for c in fleet.checks if c.id == "xid_errors").offenders[0]
    assert worst.target["cluster"] == "west"


@pytest.mark.parametrize(
    ("command", "needle"),
    [
        ("diagnose gpu_hardware_failure cluster=west", "cluster=west"),
        # unscoped: the action still carries the cluster of its evidence
        ("diagnose gpu_hardware_failure", "whole fleet"),
    ],
)
def test_a_drain_justified_by_west_is_refused_in_east(
    world: World, federated: TwoClusters, command: str, needle: str
) -> None:
    """Only east is configured: a drain whose evidence is west's data never acts in east,
    though east has a node of the same name."""
    federated.switch("east", "healthy")
    (fault,) = federated.switch("west", "xid_48").faults
    assert fault.node
    world.east.add_node(fault.node)

    def button() -> str:
        before = {m.ts for m in world.slack.messages(CHANNEL)}
        world.slash(command)
        report = world.report(before, needle)
        assert "Drain" in report, report
        for m in world.slack.messages(CHANNEL):
            if m.ts in before:
                continue
            for block in m.blocks or []:
                accessory = block.get("accessory") or {}
                if accessory.get("action_id") == ids.ACTION_BUTTON:
                    return str(accessory["value"])
        raise AssertionError("no action button")

    request_id = eventually(button, timeout_s=60, interval_s=2)
    world.east.clear_requests()
    body = block_action_body(
        ids.ACTION_BUTTON,
        request_id,
        user_id="U1",
        channel_id=CHANNEL,
        trigger_id=world.slack.new_trigger_id(),
    )
    assert send_signed(f"{world.bot.url}/slack/events", body, SECRET).status == 200

    def refused() -> str:
        for view in reversed(world.slack.views):
            text = json.dumps(view.view)
            if request_id in text and "evidence" in text:
                return text
        raise AssertionError("no refusal in the plan modal yet")

    modal = eventually(refused, timeout_s=15)
    assert "from cluster west" in modal and "in cluster east" in modal, modal
    assert "configure cluster west" in modal
    assert not [r for r in world.east.requests if r.method in ("PATCH", "POST", "DELETE")]
    denied = [r for r in AuditLog(world.db).for_request(request_id) if r.event == "denied"]
    assert denied and denied[0].cluster == "east"
    assert denied[0].origin.get("evidence_cluster") == "west"


class RelabelledRunner(PrometheusRunner):
    """The same clusters under a label of another name (`k8s_cluster`)."""

    def config(self) -> dict[str, Any]:
        config = super().config()
        for job in config["scrape_configs"]:
            for rule in job.get("relabel_configs", []):
                if rule.get("target_label") == "cluster":
                    rule["target_label"] = "k8s_cluster"
        return config


@pytest.fixture(scope="module")
def custom_label(federated: TwoClusters, prometheus_binary: str) -> Iterator[str]:
    urls = {c: s.url for c, s in federated.servers.items()}
    prometheus = RelabelledRunner(urls, scrape_interval_s=1.0, binary=prometheus_binary)
    try:
        prometheus.start()
        fleet = federated.simulators["east"].fleet
        prometheus.wait_for_targets(2 * (len(fleet.replicas) + len(fleet.nodes)))
        yield prometheus.url
    finally:
        prometheus.stop()


def test_a_custom_cluster_label_is_honoured_in_vllm_aggregations(
    federated: TwoClusters, custom_label: str
) -> None:
    federated.switch("east", "healthy")
    federated.switch("west", "healthy")
    labels = LabelConventions(cluster_label="k8s_cluster")
    west = diagnosed(custom_label, "fleet_status", with_conventions(Scope(cluster="west"), labels))
    checks = {c.id: c for c in west.checks}
    assert checks["queue_depth"].facts["targets"] == 4, checks["queue_depth"].summary
    assert {o.target.get("cluster") for o in checks["kv_cache_usage"].offenders} == {"west"}
    fleet = diagnosed(custom_label, "fleet_status", with_conventions(Scope(), labels))
    kv = next(c for c in fleet.checks if c.id == "kv_cache_usage")
    # identical pod names in both clusters stay two replicas each, each with its cluster
    assert kv.facts["targets"] == 8, kv.summary
    assert {o.target.get("cluster") for o in kv.offenders} <= {"east", "west"}
    assert all(o.target.get("cluster") for o in kv.offenders)
    for check in fleet.checks:
        for query in check.queries:
            assert "by (namespace, pod, instance, cluster" not in query, query


def test_slack_doctor_answers_privately_with_problems_and_fixes(world: World) -> None:
    reply = json.loads(world.reply_to(world.slash("doctor")))
    assert reply.get("response_type") == "ephemeral"
    text = json.dumps(reply["blocks"])
    assert "label cluster: east, west" in text, text
    assert "job vllm: 8 up, 0 down" in text  # both clusters' targets, one job
    assert "alerting rules not loaded" in text and "rules export" in text  # no rule files
    assert "*Fix:*" in text
    assert "Traceback" not in text
